//! `PhpReceiver::start()`: the real `php -S 127.0.0.1:0` serving the legacy
//! receivers in tests/php, each request recorded as one JSON line.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PhpReceiver {
    child: Child,
    pub addr: SocketAddr,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl PhpReceiver {
    /// php is a real peer here, never mocked: a machine without it fails the test.
    pub fn start() -> PhpReceiver {
        PhpReceiver::start_in("")
    }

    /// Serve `tests/php/{sub}` as the document root.
    pub fn start_in(sub: &str) -> PhpReceiver {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("received.jsonl");
        let docroot = format!("{}/tests/php/{sub}", crate::ROOT);
        let mut child = Command::new("php")
            .args(["-S", "127.0.0.1:0", "-t", &docroot])
            .env("CALLGATE_RECORD", &record)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("php not found: install php-cli (.ci/run does it with apt-get)");
        let (tx, rx) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("php -S did not start");
            if let Some(rest) = line.split("(http://").nth(1) {
                break rest.split(')').next().unwrap().parse().unwrap();
            }
        };
        PhpReceiver {
            child,
            addr,
            record,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the receivers recorded, one JSON object per request.
    pub fn records(&self) -> Vec<serde_json::Value> {
        read_records(&self.record)
    }
}

impl Drop for PhpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON lines the test receivers (tests/php/record.php) wrote to `path`.
pub fn read_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
