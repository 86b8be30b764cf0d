//! The signed assertion: a header that tells the receiver what callgate
//! verified, in a form the receiver can check itself, so a forged verified
//! header, or a request that reached the receiver by another path, cannot
//! pass for one callgate vouched for.
//!
//! `v1;t=<unix seconds>;route=<name>;checks=<ip,token,hmac>;body=<sha256 hex>;sig=<hex>`,
//! `sig` = HMAC-SHA256(key, everything before `;sig=` + `\n` + METHOD + ` ` +
//! the request target exactly as sent upstream). `examples/verify-assertion.php`
//! checks it in PHP.

use std::fmt::Write;

use http::{HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};

use crate::config::Assertion;
use crate::crypto::Key;

/// The header's value for one forwarded request, signed at `t`.
pub(crate) fn value(
    key: &Key,
    t: u64,
    route: &str,
    checks: &str,
    method: &Method,
    target: &str,
    body: &[u8],
) -> String {
    let mut signed = format!("v1;t={t};route={route};checks={checks};body=");
    for b in Sha256::digest(body) {
        let _ = write!(signed, "{b:02x}");
    }
    let mut message = Vec::with_capacity(signed.len() + target.len() + 16);
    message.extend_from_slice(signed.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(method.as_str().as_bytes());
    message.push(b' ');
    message.extend_from_slice(target.as_bytes());
    let sig = hex::encode(key.digest(&message));
    format!("{signed};sig={sig}")
}

/// Add the assertion to a request about to go upstream, signed now.
pub(crate) fn stamp(
    headers: &mut HeaderMap,
    assertion: &Assertion,
    route: &str,
    checks: &str,
    method: &Method,
    target: &str,
    body: &[u8],
) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let v = value(&assertion.key, t, route, checks, method, target, body);
    // Route names are config text; one that is no header value gets no assertion
    // rather than a broken one (the receiver then refuses the request).
    if let Ok(v) = HeaderValue::from_str(&v) {
        headers.insert(assertion.header.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;

    #[test]
    fn the_value_is_the_documented_string_and_its_hmac() {
        let key = Key::new(Algorithm::Sha256, b"k");
        let v = value(
            &key,
            1700000000,
            "tolq",
            "ip,hmac",
            &Method::POST,
            "/cb.php?a=1",
            b"{}",
        );
        let body = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let signed = format!("v1;t=1700000000;route=tolq;checks=ip,hmac;body={body}");
        let message = format!("{signed}\nPOST /cb.php?a=1");
        let sig = hex::encode(key.digest(message.as_bytes()));
        assert_eq!(v, format!("{signed};sig={sig}"));
        // Another target, method or body signs differently.
        assert_ne!(
            v,
            value(
                &key,
                1700000000,
                "tolq",
                "ip,hmac",
                &Method::POST,
                "/other.php?a=1",
                b"{}"
            )
        );
        assert_ne!(
            v,
            value(
                &key,
                1700000000,
                "tolq",
                "ip,hmac",
                &Method::PUT,
                "/cb.php?a=1",
                b"{}"
            )
        );
        assert_ne!(
            v,
            value(
                &key,
                1700000000,
                "tolq",
                "ip,hmac",
                &Method::POST,
                "/cb.php?a=1",
                b"{ }"
            )
        );
    }
}
