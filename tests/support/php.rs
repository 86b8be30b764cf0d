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
    errors: PathBuf,
    _dir: tempfile::TempDir,
}

impl PhpReceiver {
    /// php is a real peer here, never mocked: a machine without it fails the test.
    pub fn start() -> PhpReceiver {
        PhpReceiver::start_in("")
    }

    /// Serve `tests/php/{sub}` as the document root.
    pub fn start_in(sub: &str) -> PhpReceiver {
        PhpReceiver::start_with_ini(sub, &[])
    }

    /// [`PhpReceiver::start_in`] with php.ini settings (`-d NAME=VALUE`).
    pub fn start_with_ini(sub: &str, ini: &[&str]) -> PhpReceiver {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("received.jsonl");
        let errors = dir.path().join("php-errors.log");
        let docroot = format!("{}/tests/php/{sub}", crate::ROOT);
        let mut args = vec![format!("error_log={}", errors.display())];
        args.extend(ini.iter().map(|s| s.to_string()));
        let mut child = Command::new("php")
            .args(args.iter().flat_map(|a| ["-d", a.as_str()]))
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
            errors,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What PHP's error_log() wrote.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(&self.errors).unwrap_or_default()
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
