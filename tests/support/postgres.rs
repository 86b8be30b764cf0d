//! A real PostgreSQL for the tests: Debian's server binaries, a throwaway
//! cluster in a temp dir (run as the `postgres` user when the tests run as
//! root: PostgreSQL refuses root), TCP on 127.0.0.1 and a free port.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn bindir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is missing: apt-get install postgresql (.ci/run does)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let pg = Postgres {
            bin: bindir(),
            port: super::pebble::free_port(),
            dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A server tool, run as `postgres` when the tests run as root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.current_dir("/");
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start (again, after [`Postgres::stop`]) on the same port and data.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Serve TLS with this certificate and key (PEM) from now on.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        let data = PathBuf::from(self.data());
        for (name, pem) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            self.write_owned(&data.join(name), pem);
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        self.reload();
    }

    /// A role that must log in with a password over TCP (scram-sha-256).
    pub fn password_role(&self, user: &str, password: &str) {
        self.psql(
            "postgres",
            &format!("CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{password}'"),
        );
        let hba = PathBuf::from(self.data()).join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("host all {user} 127.0.0.1/32 scram-sha-256\n{text}"),
        )
        .unwrap();
        self.reload();
    }

    fn reload(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "reload"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// A file the server reads: 0600 and, as root, owned by `postgres`.
    fn write_owned(&self, path: &std::path::Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(path)
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }

    /// Stop at once: clients see their connections die.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// A fresh database; its URL.
    pub fn database(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("callgate_{}", N.fetch_add(1, Ordering::SeqCst));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        // The throwaway cluster speaks plaintext on loopback: said explicitly,
        // as callgate demands (no sslmode means verify-full).
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// Run SQL; the unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let db = db.rsplit('/').next().unwrap();
        let db = db.split('?').next().unwrap();
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-XAtq", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Which store a queue test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store a gateway under test uses, kept alive for the test.
pub struct QueueStore {
    pub dir: tempfile::TempDir,
    pub pg: Option<Postgres>,
    pub url: String,
}

impl QueueStore {
    pub fn new(backend: Backend) -> QueueStore {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => QueueStore {
                dir,
                pg: None,
                url: String::new(),
            },
            Backend::Postgres => {
                let pg = Postgres::start();
                let url = pg.database();
                QueueStore {
                    dir,
                    pg: Some(pg),
                    url,
                }
            }
        }
    }

    /// The `[queue]` table for a config.
    pub fn section(&self) -> String {
        match &self.pg {
            None => format!("[queue]\ndir = \"{}\"\n", self.dir.path().display()),
            Some(_) => format!(
                "[queue]\nbackend = \"postgres\"\nurl = \"{}\"\nlease = \"3s\"\n",
                self.url
            ),
        }
    }

    /// `SELECT COUNT(*)` of a table (`callbacks` or `replay`).
    pub fn count(&self, table: &str) -> i64 {
        match &self.pg {
            None => {
                let db = self.dir.path().join("callgate-queue.sqlite3");
                let conn = rusqlite::Connection::open(db).unwrap();
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                    .unwrap()
            }
            Some(pg) => pg
                .psql(&self.url, &format!("SELECT COUNT(*) FROM callgate_{table}"))
                .parse()
                .unwrap(),
        }
    }
}
