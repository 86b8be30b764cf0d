//! Trial values (`[tls] self_signed = true`, the example's CHANGE-ME
//! placeholder secrets) are served on loopback only: a config that still
//! holds them and listens on a public address is refused, naming what to
//! edit (INTERFACE.md, "Uploads refused over HTTP/2, trial configs").

use std::net::SocketAddr;

use super::Listen;

/// The marker config.example.toml puts in each of its demo secrets.
pub(crate) const PLACEHOLDER: &[u8] = b"CHANGE-ME";

/// Whether a secret's value is the example's placeholder.
pub(crate) fn is_placeholder(value: &[u8]) -> bool {
    value.windows(PLACEHOLDER.len()).any(|w| w == PLACEHOLDER)
}

/// Whether an address is on loopback (127.0.0.0/8, ::1, ::ffff:127.x).
pub(crate) fn on_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// The configured listeners off loopback, as `listen.NAME = "ADDR"`.
pub(super) fn configured_off_loopback(listen: &Listen) -> Vec<String> {
    [
        ("https", listen.https),
        ("http", listen.http),
        ("admin", listen.admin),
    ]
    .into_iter()
    .filter_map(|(name, addr)| Some((name, addr?)))
    .filter(|(_, addr)| !on_loopback(addr))
    .map(|(name, addr)| format!("listen.{name} = \"{addr}\""))
    .collect()
}

/// The refusal: which listeners are public, which trial values to edit.
pub(crate) fn refusal(trial: &[String], off_loopback: &[String]) -> String {
    format!(
        "trial values are served only when every listener is on loopback, and {} is not: \
         edit {} (or, for a trial, listen on 127.0.0.1)",
        off_loopback.join(", "),
        trial.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_in_every_spelling() {
        for a in [
            "127.0.0.1:443",
            "127.1.2.3:80",
            "[::1]:443",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(on_loopback(&a.parse().unwrap()), "{a}");
        }
        for a in [
            "0.0.0.0:443",
            "[::]:443",
            "203.0.113.5:443",
            "[::ffff:10.0.0.1]:1",
        ] {
            assert!(!on_loopback(&a.parse().unwrap()), "{a}");
        }
        assert!(is_placeholder(b"demo-tolq-token-CHANGE-ME"));
        assert!(!is_placeholder(b"0123456789abcdef"));
    }
}
