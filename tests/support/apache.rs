//! Real Apache 2.4 for the legacy-receiver promise, started without
//! systemd on a loopback port: prefork with mod_php (and the usual
//! pretty-URL rewrite to index.php), or event with php-fpm (MultiViews and
//! `FallbackResource /index.php`), serving tests/php/site. Every script run
//! is recorded as one JSON line, as with `php -S`.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How PHP runs under this Apache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// mpm_prefork + mod_php, `RewriteRule ^ index.php [QSA,L]`.
    ModPhp,
    /// mpm_event + mod_proxy_fcgi to php-fpm, MultiViews, FallbackResource.
    PhpFpm,
}

pub struct Apache {
    pub addr: SocketAddr,
    pub engine: Engine,
    apache: Child,
    fpm: Option<Child>,
    record: PathBuf,
    dir: tempfile::TempDir,
}

const MODULES: &str = "/usr/lib/apache2/modules";

pub use super::pebble::free_port;
use crate::running_as_root;

impl Apache {
    /// Start Apache (and php-fpm) serving `tests/php/{docroot}`; `extra` is
    /// appended to the server config (a second vhost, a lock).
    pub fn start(engine: Engine, docroot: &str, extra: &str) -> Apache {
        Apache::start_with_rules(engine, docroot, None, extra)
    }

    /// The same, with `rules` in place of mod_php's usual pretty-URL
    /// rewrite (a site's own front-controller rules, such as OpenCart's).
    pub fn start_with_rules(
        engine: Engine,
        docroot: &str,
        rules: Option<&str>,
        extra: &str,
    ) -> Apache {
        assert!(
            Path::new("/usr/sbin/apache2").exists(),
            "apache2 not found: install apache2, libapache2-mod-php and php-fpm (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        // The server's user (www-data) writes the record and reads the sockets.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let record = dir.path().join("received.jsonl");
        std::fs::write(&record, "").unwrap();
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o666)).unwrap();
        let root = format!("{}/tests/php/{docroot}", crate::served_root());
        let port = free_port();
        let fpm = (engine == Engine::PhpFpm).then(|| start_fpm(dir.path()));
        let conf = dir.path().join("apache2.conf");
        std::fs::write(
            &conf,
            config(engine, dir.path(), &root, port, &record, (rules, extra)),
        )
        .unwrap();
        let d = dir.path().display().to_string();
        // Its own process group: Apache signals its whole group when it stops.
        let apache = Command::new("/usr/sbin/apache2")
            .process_group(0)
            .args(["-f", conf.to_str().unwrap(), "-DFOREGROUND"])
            .env("APACHE_RUN_USER", "www-data")
            .env("APACHE_RUN_GROUP", "www-data")
            .env("APACHE_PID_FILE", format!("{d}/apache2.pid"))
            .env("APACHE_RUN_DIR", &d)
            .env("APACHE_LOCK_DIR", &d)
            .env("APACHE_LOG_DIR", &d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start apache2");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut a = Apache {
            addr,
            engine,
            apache,
            fpm,
            record,
            dir,
        };
        a.wait_ready();
        a
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            if let Ok(Some(status)) = self.apache.try_wait() {
                panic!(
                    "apache2 exited ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "apache2 did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.fpm.is_some() {
            let sock = self.dir.path().join("fpm.sock");
            while !sock.exists() {
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "php-fpm did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the scripts recorded, one JSON object per run.
    pub fn records(&self) -> Vec<serde_json::Value> {
        super::php::read_records(&self.record)
    }

    /// Apache's error log, for a failing test's message.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        // SIGTERM: the parent stops its children and removes its pid file.
        let _ = Command::new("kill")
            .args(["-TERM", &self.apache.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.apache.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.apache.kill();
        let _ = self.apache.wait();
        if let Some(fpm) = &mut self.fpm {
            let _ = fpm.kill();
            let _ = fpm.wait();
        }
    }
}

fn fpm_binary() -> String {
    std::fs::read_dir("/usr/sbin")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("php-fpm"))
        .map(|n| format!("/usr/sbin/{n}"))
        .expect("php-fpm not found: install php-fpm (.ci/run does)")
}

/// php-fpm listening on `dir/fpm.sock` (for Apache event and nginx).
pub fn start_fpm(dir: &Path) -> Child {
    let d = dir.display();
    let user = if running_as_root() {
        "user = www-data\ngroup = www-data\n"
    } else {
        ""
    };
    let conf = dir.join("php-fpm.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\n[site]\n{user}listen = {d}/fpm.sock\nlisten.mode = 0666\npm = static\npm.max_children = 4\nclear_env = no\ncatch_workers_output = yes\n"
        ),
    )
    .unwrap();
    Command::new(fpm_binary())
        .process_group(0)
        .args(["-y", conf.to_str().unwrap(), "-F", "-R", "-n"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start php-fpm")
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per line of the server's config it fills in"
)]
fn config(
    engine: Engine,
    dir: &Path,
    root: &str,
    port: u16,
    record: &Path,
    (rules, extra): (Option<&str>, &str),
) -> String {
    let rules = rules.unwrap_or(
        "RewriteCond %{REQUEST_FILENAME} !-f\n  RewriteCond %{REQUEST_FILENAME} !-d\n  RewriteRule ^ index.php [QSA,L]",
    );
    let d = dir.display();
    let user = if running_as_root() {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let modules = |names: &[&str]| {
        names
            .iter()
            .map(|m| format!("LoadModule {m}_module {MODULES}/mod_{m}.so\n"))
            .collect::<String>()
    };
    let engine_part = match engine {
        Engine::ModPhp => format!(
            "{}LoadModule php_module {MODULES}/libphp8.2.so\n\
             <FilesMatch \"\\.php$\">\n  SetHandler application/x-httpd-php\n</FilesMatch>\n\
             <Directory {root}>\n  Options FollowSymLinks\n  AllowOverride None\n  Require all granted\n\
               RewriteEngine On\n  {rules}\n</Directory>\n",
            modules(&["mpm_prefork", "rewrite", "deflate"])
        ),
        Engine::PhpFpm => format!(
            "{}<FilesMatch \"\\.php$\">\n  SetHandler \"proxy:unix:{d}/fpm.sock|fcgi://localhost\"\n</FilesMatch>\n\
             AddType text/html .php\nAcceptPathInfo On\n\
             <Directory {root}>\n  Options FollowSymLinks MultiViews\n  AllowOverride None\n  Require all granted\n\
               FallbackResource /index.php\n</Directory>\n",
            modules(&["mpm_event", "proxy", "proxy_fcgi", "negotiation"])
        ),
    };
    format!(
        "ServerRoot {d}\nListen 127.0.0.1:{port}\nServerName localhost\nPidFile {d}/apache2.pid\n\
         Mutex file:{d}\nErrorLog {d}/error.log\nLogLevel warn\n{user}\
         {}TypesConfig /etc/mime.types\nDirectoryIndex index.php\nDocumentRoot {root}\n\
         SetEnv CALLGATE_RECORD {}\nStartServers 2\nMaxRequestWorkers 16\n{engine_part}\n{extra}\n",
        modules(&["authz_core", "authz_host", "mime", "dir", "env", "alias"]),
        record.display(),
    )
}
