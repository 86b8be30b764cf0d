//! Real nginx with php-fpm, started without systemd on a loopback port,
//! serving tests/php/{docroot} with the front-controller rule many sites
//! copy: `try_files $uri $uri/ /index.php?q=$uri&$args`. Every script run
//! is recorded as one JSON line, as with `php -S` and Apache.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub addr: SocketAddr,
    nginx: Child,
    fpm: Child,
    record: PathBuf,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Start nginx and php-fpm serving `tests/php/{docroot}`.
    pub fn start(docroot: &str) -> Nginx {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "nginx not found: install nginx and php-fpm"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let record = dir.path().join("received.jsonl");
        std::fs::write(&record, "").unwrap();
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o666)).unwrap();
        // php-fpm finds no script under a path with `..` in it.
        let root = std::fs::canonicalize(format!("{}/tests/php/{docroot}", crate::served_root()))
            .unwrap()
            .display()
            .to_string();
        let port = super::pebble::free_port();
        let fpm = super::apache::start_fpm(dir.path());
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), &root, port, &record)).unwrap();
        let nginx = Command::new("/usr/sbin/nginx")
            .process_group(0)
            .args([
                "-c",
                conf.to_str().unwrap(),
                "-p",
                dir.path().to_str().unwrap(),
            ])
            .args(["-e", dir.path().join("error.log").to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut n = Nginx {
            addr,
            nginx,
            fpm,
            record,
            dir,
        };
        n.wait_ready();
        n
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        let sock = self.dir.path().join("fpm.sock");
        while TcpStream::connect(self.addr).is_err() || !sock.exists() {
            if let Ok(Some(status)) = self.nginx.try_wait() {
                panic!("nginx exited ({status}): {}", self.error_log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "nginx or php-fpm did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the scripts recorded, one JSON object per run.
    pub fn records(&self) -> Vec<serde_json::Value> {
        super::php::read_records(&self.record)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.nginx.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nginx.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
        let _ = self.fpm.kill();
        let _ = self.fpm.wait();
    }
}

fn config(dir: &Path, root: &str, port: u16, record: &Path) -> String {
    let d = dir.display();
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let user = if root_user { "user www-data;\n" } else { "" };
    format!(
        "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fcgi;\n\
           proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    server_name localhost;\n    root {root};\n    index index.php;\n\
             location / {{ try_files $uri $uri/ /index.php?q=$uri&$args; }}\n\
             location ~ \\.php$ {{\n      try_files $uri =404;\n      include /etc/nginx/fastcgi_params;\n\
               fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
               fastcgi_param CALLGATE_RECORD {};\n      fastcgi_pass unix:{d}/fpm.sock;\n    }}\n  }}\n}}\n",
        record.display()
    )
}
