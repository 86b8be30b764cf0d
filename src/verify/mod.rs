//! The decision: does this request pass route R? Pure functions over
//! (route, client IP, URI, headers, body bytes): no I/O, no clock. The proxy
//! calls them and forwards only what they accept.
//!
//! The checks run in two steps so that a stranger cannot make callgate
//! buffer an upload: [`precheck`] (source address, URL token) before the body
//! is read, then [`finish`] (signature, payload shape) over the body. A
//! [`Prechecked`] can only come from `precheck`, so the body checks cannot run
//! without it, and nothing is checked twice. [`check`] is both in one call.

pub mod client_ip;
pub(crate) mod explain;
pub(crate) mod form_scan;
pub(crate) mod handshake;
pub(crate) mod multipart;
pub(crate) mod protect;
pub(crate) mod public_key;
pub mod query;
pub(crate) mod replay;
pub mod signature;
pub(crate) mod strict;

use std::fmt;
use std::net::IpAddr;

use http::{HeaderMap, Uri};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::presets::Payload;
use crate::config::{token_digest, Route, TokenCheck};
use crate::php::php_name;
use query::Lookup;
pub(crate) use signature::Signable;
use signature::SignatureError;

/// The checks a request passed; only configured checks can be true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Passed {
    /// The client address is in the route's allow_ips.
    pub ip: bool,
    /// The URL token matched one of the route's secrets.
    pub token: bool,
    /// The body's signature matched one of the route's keys.
    pub hmac: bool,
}

impl Passed {
    /// The verified header's value: passed checks in the order ip, token, hmac.
    pub fn header_value(self) -> &'static str {
        match (self.ip, self.token, self.hmac) {
            (true, true, true) => "ip,token,hmac",
            (true, true, false) => "ip,token",
            (true, false, true) => "ip,hmac",
            (false, true, true) => "token,hmac",
            (true, false, false) => "ip",
            (false, true, false) => "token",
            (false, false, true) => "hmac",
            (false, false, false) => "none",
        }
    }
}

/// A request that passed every check of its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Which checks it passed.
    pub(crate) passed: Passed,
    /// Which of the route's token secrets it carried: a queued callback
    /// stores this index, never the token.
    pub(crate) token_secret: Option<usize>,
}

/// The body-less checks passed; the body checks come next ([`finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prechecked(Checked);

impl Prechecked {
    /// Whether the address or the URL token vouched for the request before
    /// its body was read (an HMAC-only route vouches for nobody yet).
    pub(crate) fn vouches(&self) -> bool {
        self.0.passed.ip || self.0.passed.token
    }
}

/// Why the token check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenFailure {
    /// No token parameter in the query.
    Missing,
    /// The token parameter appears more than once.
    Repeated,
    /// The token matches none of the route's secrets.
    Mismatch,
}

/// Why a request was refused: for the log only, the caller sees `forbidden`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client address is not in allow_ips.
    Ip(IpAddr),
    /// The URL token is missing, repeated or wrong.
    Token(TokenFailure),
    /// The body signature is missing, malformed or wrong.
    Hmac(SignatureError),
    /// The caller sends a parameter it may not (see [`check_query_params`], [`check_body_params`]).
    Param(String),
    /// The body does not have the shape the preset demands.
    Payload(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Ip(ip) => write!(f, "ip: {ip} is not in allow_ips"),
            Refusal::Token(TokenFailure::Missing) => f.write_str("token: missing"),
            Refusal::Token(TokenFailure::Repeated) => {
                f.write_str("token: parameter sent more than once")
            }
            Refusal::Token(TokenFailure::Mismatch) => f.write_str("token: does not match"),
            Refusal::Hmac(e) => write!(f, "hmac: {e}"),
            Refusal::Param(why) => write!(f, "param: {why}"),
            Refusal::Payload(why) => write!(f, "payload: {why}"),
        }
    }
}

/// The checks that need no body (source address, URL token): run before the
/// body is read, so a stranger cannot make callgate buffer an upload.
pub(crate) fn precheck(route: &Route, client: IpAddr, uri: &Uri) -> Result<Prechecked, Refusal> {
    let (pre, mut failed) = precheck_all(route, client, uri);
    match failed.is_empty() {
        true => Ok(pre),
        false => Err(failed.remove(0)),
    }
}

/// Every body-less check, each failure collected (report-only routes):
/// what passed, and why the others failed, in the order ip, token, params.
pub(crate) fn precheck_all(route: &Route, client: IpAddr, uri: &Uri) -> (Prechecked, Vec<Refusal>) {
    let mut passed = Passed::default();
    let mut failed = Vec::new();
    if let Some(allow) = &route.allow_ips {
        match client_ip::is_in(client, &allow.nets) {
            true => passed.ip = true,
            false => failed.push(Refusal::Ip(client_ip::canonical(client))),
        }
    }
    let query = uri.query().unwrap_or("");
    let mut token_secret = None;
    if let Some(token) = &route.token {
        match check_token(token, query) {
            Ok(i) => {
                token_secret = Some(i);
                passed.token = true;
            }
            Err(r) => failed.push(r),
        }
    }
    failed.extend(check_query_params(route, query).err());
    let pre = Prechecked(Checked {
        passed,
        token_secret,
    });
    (pre, failed)
}

/// The checks over the body (signature, payload shape), after [`precheck`].
/// `req` carries the headers as they will be forwarded, the body, the time
/// and (for Twilio) the public URL.
pub(crate) fn finish(
    route: &Route,
    pre: Prechecked,
    req: &Signable<'_>,
) -> Result<Checked, Refusal> {
    let (checked, mut failed) = finish_all(route, pre, req);
    match failed.is_empty() {
        true => Ok(checked),
        false => Err(failed.remove(0)),
    }
}

/// Every body check, each failure collected (report-only routes).
pub(crate) fn finish_all(
    route: &Route,
    pre: Prechecked,
    req: &Signable<'_>,
) -> (Checked, Vec<Refusal>) {
    let Prechecked(mut checked) = pre;
    let mut failed = Vec::new();
    let (headers, body) = (req.headers, req.body);
    if let Some(h) = &route.hmac {
        // Every spelling a receiver reads as the signature header counts:
        // two of them are two signatures, and which one would it check?
        match signature::verify_scheme(h, req) {
            Ok(_) => checked.passed.hmac = true,
            Err(e) => failed.push(Refusal::Hmac(e)),
        }
    }
    // A public-key signature stands where an HMAC would (the verified
    // header calls both `hmac`: the body's signature was checked).
    if let Some(s) = &route.signature {
        match public_key::verify(s, req) {
            Ok(()) => checked.passed.hmac = true,
            Err(e) => failed.push(Refusal::Hmac(e)),
        }
    }
    failed.extend(check_body_params(route, headers, body).err());
    if let Some(payload) = route.payload {
        failed.extend(
            check_payload(payload, headers, body)
                .err()
                .map(Refusal::Payload),
        );
    }
    (checked, failed)
}

/// Every check the route configures, all of them, in one call. The proxy
/// runs the two steps itself, with the bounded body read between them.
#[cfg(test)]
pub(crate) fn check(
    route: &Route,
    client: IpAddr,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, Refusal> {
    let req = Signable {
        headers,
        body,
        url: None,
        now: 0,
    };
    finish(route, precheck(route, client, uri)?, &req)
}

/// The index of the secret the query's token matches. Every secret is
/// compared (constant time), so timing tells neither whether nor which one
/// matched.
fn check_token(token: &TokenCheck, query: &str) -> Result<usize, Refusal> {
    let given = match query::lookup(query, &token.param) {
        Lookup::Missing => return Err(Refusal::Token(TokenFailure::Missing)),
        Lookup::Repeated => return Err(Refusal::Token(TokenFailure::Repeated)),
        Lookup::One(v) => token_digest(v.as_bytes()),
    };
    let mut index = u32::MAX;
    for (i, d) in token.digests.iter().enumerate() {
        index.conditional_assign(&(i as u32), d.ct_eq(&given));
    }
    match index {
        u32::MAX => Err(Refusal::Token(TokenFailure::Mismatch)),
        i => Ok(i as usize),
    }
}

/// A parameter the route's upstream URL sets may not come from the caller,
/// in any spelling PHP folds to it: the caller's copy comes later, and wins.
fn check_query_params(route: &Route, query: &str) -> Result<(), Refusal> {
    match query::first_named(query.as_bytes(), &route.upstream.params) {
        Some(name) => Err(Refusal::Param(format!(
            "{name:?} is set by the upstream URL; the caller may not send it"
        ))),
        None => Ok(()),
    }
}

/// A form body may not carry the token or an upstream URL's parameter:
/// `$_REQUEST` takes the body's copy over the query's.
fn check_body_params(route: &Route, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let in_body = match form_kind(headers) {
        Some(FormKind::UrlEncoded) => query::first_named(body, &route.reserved_params),
        Some(FormKind::Multipart) => multipart_names(body).find_map(|n| {
            let n = php_name(&n)?;
            route
                .reserved_params
                .iter()
                .find(|r| **r == n.base)
                .map(String::as_str)
        }),
        None => None,
    };
    match in_body {
        Some(name) => Err(Refusal::Param(format!(
            "{name:?} in the form body would override the query's"
        ))),
        None => Ok(()),
    }
}

/// The form encodings PHP parses into `$_POST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormKind {
    /// `application/x-www-form-urlencoded`
    UrlEncoded,
    /// `multipart/form-data`
    Multipart,
}

/// Whether any Content-Type the request carries makes PHP parse the body;
/// multipart wins when in doubt, since its names are scanned more widely.
pub(crate) fn form_kind(headers: &HeaderMap) -> Option<FormKind> {
    let mut kind = None;
    for v in headers.get_all(http::header::CONTENT_TYPE) {
        let v = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
        if v.contains("multipart") {
            return Some(FormKind::Multipart);
        }
        if v.contains("x-www-form-urlencoded") {
            kind = Some(FormKind::UrlEncoded);
        }
    }
    kind
}

/// The `name` of every `Content-Disposition` line in a multipart body,
/// boundaries or not: scanning more than PHP parses only refuses more.
fn multipart_names(body: &[u8]) -> impl Iterator<Item = String> + '_ {
    body.split(|&b| b == b'\n').filter_map(|line| {
        disposition_names(&String::from_utf8_lossy(line))
            .into_iter()
            .next()
    })
}

/// Every `name` a `Content-Disposition` header line gives its part
/// (quotes dropped); empty for any other line.
pub(crate) fn disposition_names(line: &str) -> Vec<String> {
    let Some((field, params)) = line.split_once(':') else {
        return Vec::new();
    };
    if !field.trim().eq_ignore_ascii_case("content-disposition") {
        return Vec::new();
    }
    params
        .split(';')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("name")
                .then(|| v.trim().trim_matches('"').to_owned())
        })
        .collect()
}

fn check_payload(payload: Payload, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    match payload {
        Payload::GengoForm => {
            let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
            let only = match (types.next(), types.next()) {
                (Some(v), None) => v,
                (Some(_), Some(_)) => return Err("Content-Type sent more than once"),
                (None, _) => return Err("Content-Type is not application/x-www-form-urlencoded"),
            };
            let media = only.to_str().ok().and_then(|v| v.split(';').next());
            if !media.is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            }) {
                return Err("Content-Type is not application/x-www-form-urlencoded");
            }
            gengo_field(body)
        }
    }
}

/// Exactly one `job` or `comment` field, in any spelling PHP folds to one
/// of them, not an array, holding a JSON object.
fn gengo_field(body: &[u8]) -> Result<(), &'static str> {
    let mut field = None;
    for (k, v) in form_urlencoded::parse(body) {
        let Some(name) = php_name(&k) else { continue };
        if name.base != "job" && name.base != "comment" {
            continue;
        }
        if name.array {
            return Err("the job/comment field is sent as an array");
        }
        if field.replace(v).is_some() {
            return Err("more than one job/comment field in the form");
        }
    }
    let value = field.ok_or("no job or comment field in the form")?;
    match serde_json::from_str::<serde_json::Value>(&value) {
        Ok(j) if j.is_object() => Ok(()),
        _ => Err("the job/comment field is not a JSON object"),
    }
}

#[cfg(test)]
mod tests;
