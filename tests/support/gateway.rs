//! `Gateway::start(toml)`: the real callgate binary on 127.0.0.1:0, with a
//! test certificate; stopped (SIGKILL) on drop. Its log is captured.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// PEM files of a certificate for localhost / 127.0.0.1 / ::1, made once per test binary.
pub struct TestCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_der: Vec<u8>,
}

pub fn test_cert() -> &'static TestCert {
    static CERT: OnceLock<TestCert> = OnceLock::new();
    CERT.get_or_init(|| {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        let dir = tempfile::tempdir().unwrap().keep();
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, ck.cert.pem()).unwrap();
        std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
        TestCert {
            cert_path,
            key_path,
            cert_der: ck.cert.der().to_vec(),
        }
    })
}

/// The shipped Apache example, runnable here: the test certificate for
/// certbot's files, listeners on 127.0.0.1:0, and its three systemd
/// credentials as files in the returned directory (CREDENTIALS_DIRECTORY).
pub fn apache_example() -> (String, tempfile::TempDir) {
    let cert = test_cert();
    let creds = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("tolq-api-key", "k-0123456789abcdef\n"),
        ("tolq-callback-token", "t-0123456789abcdef\n"),
        ("gengo-callback-token", "g-0123456789abcdef\n"),
    ] {
        std::fs::write(creds.path().join(name), value).unwrap();
    }
    let root = crate::ROOT;
    let text = std::fs::read_to_string(format!("{root}/examples/tolq-gengo-apache.toml"))
        .unwrap()
        .replace(
            "/etc/letsencrypt/live/www.example.com/fullchain.pem",
            &cert.cert_path.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/www.example.com/privkey.pem",
            &cert.key_path.display().to_string(),
        )
        .replace("0.0.0.0:443", "127.0.0.1:0")
        .replace("0.0.0.0:80", "127.0.0.1:0");
    (text, creds)
}

/// Path of the binary under test: cargo builds it beside the test binaries
/// (target/<profile>/callgate next to target/<profile>/deps/<test>).
pub fn binary() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target/<profile>/deps");
        let bin = dir.join(format!("callgate{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} not built", bin.display());
        bin.display().to_string()
    })
}

/// `text` with a `[queue] dir` in `dir`, unless it has a `[queue]` table of
/// its own (not the example's commented `# [queue]`): each gateway its own
/// store, so no test touches the default /var/lib/callgate (dedupe and
/// queued callbacks would outlive the test there, root-owned).
fn own_store(text: &str, dir: &std::path::Path) -> String {
    match has_queue_table(text) {
        true => text.to_owned(),
        false => format!(
            "{text}\n[queue]\ndir = {:?}\n",
            dir.join("queue").display().to_string()
        ),
    }
}

fn has_queue_table(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with("[queue]"))
}

pub struct Gateway {
    child: Child,
    pub https: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Gateway {
    /// Start with `[listen] https` and `http` on 127.0.0.1:0, the test
    /// certificate, and the given `[gateway]`/`[[route]]` sections.
    pub fn start(sections: &str) -> Gateway {
        Gateway::start_with(sections, &[])
    }

    pub fn start_with(sections: &str, env: &[(&str, &str)]) -> Gateway {
        let cert = test_cert();
        let text = format!(
            "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n\n{sections}\n",
            cert.cert_path.display().to_string(),
            cert.key_path.display().to_string(),
        );
        Gateway::start_raw(&text, env)
    }

    /// Start on a complete config text.
    pub fn start_raw(text: &str, env: &[(&str, &str)]) -> Gateway {
        Gateway::launch(text, env, &[], &[])
    }

    /// Start `PREFIX... callgate run --config FILE ARGS...`; the prefix is a
    /// wrapper such as systemd-socket-activate.
    pub fn launch(text: &str, env: &[(&str, &str)], prefix: &[&str], args: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("callgate.toml");
        let text = own_store(text, dir.path());
        let text = text.as_str();
        std::fs::write(&config_path, text).unwrap();
        let mut cmd = match prefix.split_first() {
            Some((wrapper, rest)) => {
                let mut c = Command::new(wrapper);
                c.args(rest).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        cmd.arg("run").arg("--config").arg(&config_path).args(args);
        cmd.env(
            "RUST_LOG",
            std::env::var("CALLGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env_remove("CREDENTIALS_DIRECTORY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let want = ["https", "http", "admin"]
            .iter()
            .filter(|l| text.contains(&format!("\n{l} =")))
            .count();
        let (mut https, mut http, mut admin) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while https.iter().count() + http.iter().count() + admin.iter().count() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("callgate did not start; its log:\n{}", log.lock().unwrap()),
            };
            if line.contains("listening") {
                // Text ("addr=127.0.0.1:1") or JSON ("addr":"127.0.0.1:1") log lines.
                let after = line.rsplit("addr").next().unwrap();
                let addr: SocketAddr = after
                    .trim_matches(|c: char| "=\":} ".contains(c))
                    .parse()
                    .unwrap();
                if line.contains("https") {
                    https = Some(addr);
                } else if line.contains("admin") {
                    admin = Some(addr);
                } else {
                    http = Some(addr);
                }
            }
        }
        Gateway {
            child,
            https,
            http,
            admin,
            log,
            dir,
            config_path,
        }
    }

    pub fn https_port(&self) -> u16 {
        self.https.unwrap().port()
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log holds `needle` (log lines are written after the response).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the log holds `needle` `times` times (panics with the log
    /// after `within`); how long that took.
    pub fn wait_for_log_times(&self, needle: &str, times: usize, within: Duration) -> Duration {
        let start = Instant::now();
        while self.log().matches(needle).count() < times {
            assert!(
                start.elapsed() < within,
                "no {needle:?} (x{times}) within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replace the config file (then `signal("HUP")` to reload it), keeping
    /// the gateway's own store as `launch` gave it.
    pub fn rewrite(&self, text: &str) {
        std::fs::write(&self.config_path, own_store(text, self.dir.path())).unwrap();
    }

    /// Send a signal by name (HUP, TERM) with kill(1). Before a reload, the
    /// file must still name a store: one written without `rewrite` would
    /// move it to /var/lib/callgate.
    pub fn signal(&self, name: &str) {
        if name == "HUP" {
            let text = std::fs::read_to_string(&self.config_path).unwrap_or_default();
            assert!(
                has_queue_table(&text),
                "a reload of a config without a [queue] table would use /var/lib/callgate: write it with Gateway::rewrite"
            );
        }
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Wait for the process to exit; its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `callgate ARGS` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("CREDENTIALS_DIRECTORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit before reading stdin (e.g. on a bad --secret).
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
