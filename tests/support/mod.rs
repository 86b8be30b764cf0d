//! Real peers for the integration tests: the callgate binary itself, a
//! recording upstream, and a rustls client speaking HTTP/1.1 or h2.

/// The callgate checkout the tests run in (tests/php, tests/signers, examples/).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The checkout as the web servers' own user (www-data) can read it:
/// tests/php and examples/ under the returned directory. As another user,
/// that is [`ROOT`]. As root (a fresh machine, the checkout in /root, which
/// www-data cannot enter), a world-readable copy made once per test binary
/// in the temporary directory (left there: a few hundred KiB).
pub fn served_root() -> &'static str {
    static SERVED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVED.get_or_init(|| {
        let root = std::fs::canonicalize(ROOT).unwrap();
        if !running_as_root() {
            return root.display().to_string();
        }
        let copy = std::env::temp_dir().join(format!("callgate-served-{}", std::process::id()));
        for sub in ["tests/php", "examples"] {
            copy_readable(&root.join(sub), &copy.join(sub));
        }
        readable(&copy.join("tests"), 0o755);
        readable(&copy, 0o755);
        copy.display().to_string()
    })
}

/// True when the tests run as root (the web servers then drop to www-data).
pub fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn copy_readable(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    readable(to, 0o755);
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_readable(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            readable(&target, 0o644);
        }
    }
}

fn readable(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub mod apache;
pub mod browser;
pub mod client;
pub mod gateway;
pub mod nginx;
pub mod pebble;
pub mod php;
pub mod postgres;
pub mod raw;
pub mod signers;
pub mod upstream;

pub use client::{Client, Reply, Version};
pub use gateway::Gateway;
pub use php::PhpReceiver;
pub use upstream::{Recorded, Upstream};

/// HMAC of `body` as `callgate sign` would print it, computed by the library.
pub fn sign(
    alg: callgate::crypto::Algorithm,
    key: &str,
    enc: callgate::crypto::Encoding,
    body: &[u8],
) -> String {
    let digest = callgate::crypto::Key::new(alg, key.as_bytes()).digest(body);
    callgate::crypto::encode(&digest, enc)
}

/// Unix seconds now (a provider's timestamp).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
