//! Real peers for the integration tests: the callgate binary itself, a
//! recording upstream, and a rustls client speaking HTTP/1.1 or h2.

/// The callgate checkout the tests run in (tests/php, tests/signers, examples/).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

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
