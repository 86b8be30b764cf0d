//! The decision: does this request pass route R? Pure functions over
//! (route, client IP, URI, headers, body bytes): no I/O, no clock. The proxy
//! calls them and forwards only what they accept.
//!
//! The checks run in two steps so that a stranger cannot make callgate
//! buffer an upload: [`precheck`] (source address, URL token) before the body
//! is read, then [`finish`] (signature, payload shape) over the body. A
//! [`Prechecked`] can only come from `precheck`, so the body checks cannot run
//! without it, and nothing is checked twice. [`check`] is both in one call.
//! Both steps iterate [`Check::ALL`]: each check is a variant of
//! [`check::Check`] and a file in `check/`.

pub(crate) mod check;
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

use std::net::IpAddr;

use http::{HeaderMap, Uri};

use crate::config::{NamedLists, Route};
use check::Step;
pub use check::{Check, Passed};
pub(crate) use check::{Refusal, TokenFailure};
pub(crate) use signature::Signable;

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
        self.0.passed.contains(Check::Ip) || self.0.passed.contains(Check::Token)
    }
}

/// The checks that need no body (source address, URL token): run before the
/// body is read, so a stranger cannot make callgate buffer an upload.
/// `lists`: what the named address lists hold now.
pub(crate) fn precheck(
    route: &Route,
    client: IpAddr,
    uri: &Uri,
    lists: &dyn NamedLists,
) -> Result<Prechecked, Refusal> {
    let (pre, mut failed) = precheck_all(route, client, uri, lists);
    match failed.is_empty() {
        true => Ok(pre),
        false => Err(failed.remove(0)),
    }
}

/// Every body-less check, each failure collected (report-only routes):
/// what passed, and why the others failed, in the order of [`Check::ALL`]
/// (ip, token, params).
pub(crate) fn precheck_all(
    route: &Route,
    client: IpAddr,
    uri: &Uri,
    lists: &dyn NamedLists,
) -> (Prechecked, Vec<Refusal>) {
    let head = check::Head { client, uri, lists };
    let mut checked = Checked {
        passed: Passed::default(),
        token_secret: None,
    };
    let mut failed = Vec::new();
    for c in Check::ALL {
        match c.head(route, &head, &mut checked) {
            Step::Off => {}
            Step::Pass => checked.passed.insert(c),
            Step::Fail(refusal) => failed.push(refusal),
        }
    }
    (Prechecked(checked), failed)
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

/// Every body check, each failure collected (report-only routes), in the
/// order of [`Check::ALL`] (hmac, public key, params, payload).
pub(crate) fn finish_all(
    route: &Route,
    pre: Prechecked,
    req: &Signable<'_>,
) -> (Checked, Vec<Refusal>) {
    let Prechecked(mut checked) = pre;
    let mut failed = Vec::new();
    for c in Check::ALL {
        match c.body(route, req) {
            Step::Off => {}
            Step::Pass => checked.passed.insert(c),
            Step::Fail(refusal) => failed.push(refusal),
        }
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
        learned: &[],
    };
    finish(
        route,
        precheck(route, client, uri, &crate::config::NoLists)?,
        &req,
    )
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
        let v = v.as_bytes();
        if has_ascii(v, b"multipart") {
            return Some(FormKind::Multipart);
        }
        if has_ascii(v, b"x-www-form-urlencoded") {
            kind = Some(FormKind::UrlEncoded);
        }
    }
    kind
}

/// Whether `value` holds the lowercase ASCII `word` in any case; bytes
/// other than ASCII never match it, so the raw bytes say what a lossy,
/// lowercased copy would, without the copy.
fn has_ascii(value: &[u8], word: &[u8]) -> bool {
    value
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word))
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

#[cfg(test)]
mod tests;
