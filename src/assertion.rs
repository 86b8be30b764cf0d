//! The signed assertion: a header that tells the receiver what callgate
//! verified, in a form the receiver can check itself, so a forged verified
//! header, or a request that reached the receiver by another path, cannot
//! pass for one callgate vouched for.
//!
//! `v1;t=<unix seconds>;route=<name>;checks=<ip,token,hmac>;body=<sha256 hex>;sig=<hex>`,
//! or (version 2) `v2;t=…;id=<128 random bits, hex>;route=…;checks=…;host=<Host>;ct=<Content-Type>;body=…;sig=…`,
//! `sig` = HMAC-SHA256(key, everything before `;sig=` + `\n` + METHOD + ` ` +
//! the request target exactly as sent upstream). `examples/verify-assertion.php`
//! checks it in PHP.

use std::fmt::Write;

use http::{header, HeaderValue, Method};
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::config::{Assertion, AssertionVersion};
use crate::crypto::Key;

/// What one assertion vouches for.
pub(crate) struct Fields<'a> {
    pub(crate) version: AssertionVersion,
    /// Unix seconds.
    pub(crate) t: u64,
    /// v2: 128 random bits a receiver can remember, to accept each once.
    pub(crate) id: u128,
    pub(crate) route: &'a str,
    pub(crate) checks: &'a str,
    /// v2: the Host and Content-Type as forwarded (empty when absent).
    pub(crate) host: &'a [u8],
    pub(crate) content_type: &'a [u8],
    pub(crate) method: &'a Method,
    pub(crate) target: &'a str,
    pub(crate) body: &'a [u8],
}

/// The header's value: the fields, then `;sig=` and the HMAC of the fields,
/// a newline, the method, a space and the request target.
pub(crate) fn value(key: &Key, f: &Fields<'_>) -> Vec<u8> {
    let mut signed = Vec::with_capacity(256);
    match f.version {
        AssertionVersion::V1 => {
            let _ = write!(
                Text(&mut signed),
                "v1;t={};route={};checks={}",
                f.t,
                f.route,
                f.checks
            );
        }
        AssertionVersion::V2 => {
            let _ = write!(
                Text(&mut signed),
                "v2;t={};id={:032x};route={};checks={};host=",
                f.t,
                f.id,
                f.route,
                f.checks
            );
            signed.extend_from_slice(f.host);
            signed.extend_from_slice(b";ct=");
            signed.extend_from_slice(f.content_type);
        }
    }
    signed.extend_from_slice(b";body=");
    signed.extend_from_slice(hex::encode(Sha256::digest(f.body)).as_bytes());
    let mut message = Vec::with_capacity(signed.len() + f.target.len() + 16);
    message.extend_from_slice(&signed);
    message.push(b'\n');
    message.extend_from_slice(f.method.as_str().as_bytes());
    message.push(b' ');
    message.extend_from_slice(f.target.as_bytes());
    signed.extend_from_slice(b";sig=");
    signed.extend_from_slice(hex::encode(key.digest(&message)).as_bytes());
    signed
}

/// `write!` into bytes.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Add the assertion to a request about to go upstream (`body` is its
/// body), signed now, over its method, target and headers as they will be
/// sent.
pub(crate) fn stamp<B>(
    req: &mut http::Request<B>,
    body: &[u8],
    assertion: &Assertion,
    route: &str,
    checks: &str,
) {
    let t = crate::clock::unix_secs().max(0) as u64;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = req.method();
    let headers = req.headers();
    let one = |name| headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
    let fields = Fields {
        version: assertion.version,
        t,
        id: rand::rng().random(),
        route,
        checks,
        host: one(header::HOST),
        content_type: one(header::CONTENT_TYPE),
        method,
        target,
        body,
    };
    let v = value(&assertion.key, &fields);
    // Route names are config text; one that is no header value gets no assertion
    // rather than a broken one (the receiver then refuses the request).
    if let Ok(v) = HeaderValue::from_bytes(&v) {
        req.headers_mut().insert(assertion.header.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;

    fn v1(t: u64, method: &Method, target: &str, body: &[u8]) -> String {
        let key = Key::new(Algorithm::Sha256, b"k");
        let f = Fields {
            version: AssertionVersion::V1,
            t,
            id: 0,
            route: "tolq",
            checks: "ip,hmac",
            host: b"",
            content_type: b"",
            method,
            target,
            body,
        };
        String::from_utf8(value(&key, &f)).unwrap()
    }

    #[test]
    fn v2_signs_the_id_host_and_content_type_too() {
        let key = Key::new(Algorithm::Sha256, b"k");
        let f = Fields {
            version: AssertionVersion::V2,
            t: 1700000000,
            id: 0xabc,
            route: "tolq",
            checks: "ip,hmac",
            host: b"www.example.com",
            content_type: b"application/json",
            method: &Method::POST,
            target: "/cb.php",
            body: b"{}",
        };
        let v = String::from_utf8(value(&key, &f)).unwrap();
        let body = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let signed = format!("v2;t=1700000000;id=00000000000000000000000000000abc;route=tolq;checks=ip,hmac;host=www.example.com;ct=application/json;body={body}");
        let sig = hex::encode(key.digest(format!("{signed}\nPOST /cb.php").as_bytes()));
        assert_eq!(v, format!("{signed};sig={sig}"));
        let form = Fields {
            content_type: b"application/x-www-form-urlencoded",
            ..f
        };
        assert_ne!(value(&key, &form), v.as_bytes());
    }

    #[test]
    fn the_value_is_the_documented_string_and_its_hmac() {
        let key = Key::new(Algorithm::Sha256, b"k");
        let v = v1(1700000000, &Method::POST, "/cb.php?a=1", b"{}");
        let body = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let signed = format!("v1;t=1700000000;route=tolq;checks=ip,hmac;body={body}");
        let message = format!("{signed}\nPOST /cb.php?a=1");
        let sig = hex::encode(key.digest(message.as_bytes()));
        assert_eq!(v, format!("{signed};sig={sig}"));
        // Another target, method or body signs differently.
        assert_ne!(v, v1(1700000000, &Method::POST, "/other.php?a=1", b"{}"));
        assert_ne!(v, v1(1700000000, &Method::PUT, "/cb.php?a=1", b"{}"));
        assert_ne!(v, v1(1700000000, &Method::POST, "/cb.php?a=1", b"{ }"));
    }
}
