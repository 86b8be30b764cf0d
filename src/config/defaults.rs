//! Every default the config falls back to, named, in one place; each is
//! documented for operators in `config.example.toml`.

use std::time::Duration;

/// Headers callgate alone sets for the upstream: every incoming header that
/// a receiver reads as one of these (case and `_`/`-` aside) is removed,
/// as are the verified and assertion headers, whatever they are named.
pub const RESERVED_HEADERS: [&str; 11] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "forwarded",
    "x-real-ip",
    "client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
];

/// Default path of the config file.
pub(crate) const DEFAULT_PATH: &str = "/etc/callgate/callgate.toml";
/// Default name of the header carrying callgate's signed assertion.
pub(crate) const DEFAULT_ASSERTION_HEADER: &str = "x-callgate-assertion";
/// Default name of the header that tells the upstream what was verified.
pub(crate) const DEFAULT_VERIFIED_HEADER: &str = "x-callgate-verified";
/// Default bound on a request body: 1 MiB (provider callbacks are small).
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default time a client has to finish the TLS handshake.
pub(crate) const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send the request head.
pub(crate) const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send the whole body.
pub(crate) const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default keep-alive idle time.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time the upstream has to answer.
pub(crate) const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on open client connections.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time in-flight requests get to finish on SIGTERM.
pub(crate) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on a request head: 16 KiB (hyper's floor is 8 KiB).
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Smallest accepted max_header_bytes: hyper's HTTP/1.1 read buffer cannot be smaller.
pub(crate) const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;
/// Default bound on the number of request headers.
pub(crate) const DEFAULT_MAX_HEADERS: usize = 100;
/// Default tolerance for a signed timestamp (both directions, or past only).
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Default query parameter holding the URL token.
pub(crate) const DEFAULT_TOKEN_PARAM: &str = "token";
/// The default body-buffer budget gives each connection this share of
/// max_body_bytes: callbacks are small, and few connections upload at once.
pub(crate) const BUFFERED_SHARE_OF_BODY: u64 = 64;
/// The default body-buffer budget at most (when max_connections is large).
pub(crate) const MAX_DEFAULT_BUFFERED_BODY_BYTES: u64 = 256 * 1024 * 1024;
/// The default per-client share: this fraction of the budget.
pub(crate) const BUFFERED_PER_CLIENT_DIVISOR: u64 = 8;
/// Default bound on a pass-through request body (streamed, never held whole).
pub(crate) const DEFAULT_PASSTHROUGH_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
/// The largest pass-through body a config may allow (streamed, never held).
pub(crate) const MAX_PASSTHROUGH_MAX_BODY_BYTES: u64 = 1 << 40;
/// Concurrent pass-through requests and tunnels one client may hold.
pub(crate) const DEFAULT_MAX_REQUESTS_PER_CLIENT: usize = 32;
/// Bytes per second a pass-through upload keeps up after its grace period.
pub(crate) const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// How long an upload may be slower than min_body_rate at its start.
pub(crate) const MIN_BODY_RATE_GRACE: Duration = Duration::from_secs(10);
/// Largest body bound accepted in config: bodies are held in memory.
pub(crate) const MAX_MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;
/// Default first redelivery wait.
pub(crate) const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Default longest redelivery wait.
pub(crate) const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(300);
/// Default attempts before a dead letter.
pub(crate) const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 20;
/// Default age after which a failing callback becomes a dead letter.
pub(crate) const DEFAULT_RETRY_MAX_AGE: Duration = Duration::from_secs(2 * 24 * 3600);
/// Default answer to the provider once a callback is stored.
pub(crate) const DEFAULT_ACK_STATUS: u16 = 202;
/// Default claim on a queued callback in a shared (PostgreSQL) store.
pub(crate) const DEFAULT_QUEUE_LEASE: Duration = Duration::from_secs(30);
/// Default directory of the callback store.
pub(crate) const DEFAULT_QUEUE_DIR: &str = "/var/lib/callgate";
/// Default ACME directory: Let's Encrypt's production one.
pub(crate) const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Default place of the ACME account key and certificates (the unit's StateDirectory).
pub(crate) const DEFAULT_ACME_STATE: &str = "/var/lib/callgate/acme";
/// Default time before expiry at which an ACME certificate is renewed
/// (a third of the lifetime instead, for certificates that live less than 90 days).
pub(crate) const DEFAULT_ACME_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Upper bounds of the numeric keys (the README's reference table).
pub(crate) const MAX_MAX_CONNECTIONS: usize = 1_000_000;
pub(crate) const MAX_MAX_HEADER_BYTES: usize = 1024 * 1024;
pub(crate) const MAX_MAX_HEADERS: usize = 1000;
pub(crate) const MAX_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3600);
/// Shortest secret, key or token accepted.
pub(crate) const MIN_SECRET_BYTES: usize = 16;
pub(crate) const MAX_MAX_IN_FLIGHT: usize = 1000;
pub(crate) const MAX_RETRY_ATTEMPTS: u32 = 100_000;
/// A signed timestamp older than this is never fresh, whatever is configured.
pub(crate) const MAX_TOLERANCE: Duration = Duration::from_secs(86_400);
/// Shortest timeout of any kind.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(100);
pub(crate) const MAX_MAX_CONCURRENCY: usize = 10_000;

/// Requests the console keeps in memory by default (`[admin] requests_kept`).
pub(crate) const DEFAULT_REQUESTS_KEPT: u64 = 1_000;
/// At most this many: each holds up to 4 KiB of body and its headers.
pub(crate) const MAX_REQUESTS_KEPT: u64 = 100_000;
