//! Pass-through protection: could the site behind callgate read this
//! request as one for a protected thing? The site decides what a path
//! means, not callgate, so every reading a server could make
//! ([`crate::paths::readings`]) is walked segment by segment, and the
//! request is refused when any step of any walk is, or lies below, a
//! protected path (a script runs with whatever follows as PATH_INFO; a
//! MultiViews server runs `x.php` for `x`), or a route's own path. A
//! front controller's parameters are looked for on every path, in the
//! query (`&` and `;` separated), the cookies and (streamed, see
//! [`super::form_scan`]) the form body. Pure: no I/O.

use http::HeaderMap;

use crate::config::{Passthrough, ProtectKind, Protected};
use crate::paths::{dot_like, percent_decode, readings};
use crate::php::php_name;

use crate::values::Values;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing protected is reached.
    Open,
    /// Some reading reaches this protected path or parameter (as configured).
    Protected(String),
    /// The target cannot be read with confidence (NUL, an undecodable
    /// escape, a dot-like segment on the way to a protected path): refused
    /// as if protected.
    Doubtful(&'static str),
}

/// Decide a pass-through request from its target and headers (the body, if
/// it is a form, is scanned as it streams).
pub(crate) fn check(
    site: &Passthrough,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    let verdict = check_path(&site.protect, path);
    if verdict != Verdict::Open {
        return verdict;
    }
    let verdict = super::strict::headers(site, headers);
    if verdict != Verdict::Open {
        return verdict;
    }
    if let Some(v) = in_request(&site.values, path, query, headers) {
        return Verdict::Protected(v);
    }
    if site.params.is_empty() {
        return Verdict::Open;
    }
    if let Some(p) = query.and_then(|q| dispatched(&site.params, q.as_bytes(), b"&;")) {
        return Verdict::Protected(p);
    }
    let cookies = headers.get_all(http::header::COOKIE);
    match cookies
        .iter()
        .find_map(|c| dispatched(&site.params, c.as_bytes(), b";,"))
    {
        Some(p) => Verdict::Protected(p),
        None => Verdict::Open,
    }
}

/// A protected value anywhere in the target or the headers (names and
/// values: cookies, Referer, anything a script may read).
fn in_request(
    values: &Values,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    values.found_in(target.as_bytes()).or_else(|| {
        headers.iter().find_map(|(name, value)| {
            values
                .found_in(name.as_str().as_bytes())
                .or_else(|| values.found_in(value.as_bytes()))
        })
    })
}

/// Walk every reading of `path`; the first protected step decides.
pub(crate) fn check_path(protected: &[Protected], path: &str) -> Verdict {
    let readings = match readings(path) {
        Ok(r) => r,
        Err(why) => return Verdict::Doubtful(why),
    };
    for reading in &readings {
        let verdict = walk(protected, reading);
        if verdict != Verdict::Open {
            return verdict;
        }
    }
    Verdict::Open
}

/// Resolve dot segments the way RFC 3986 and the servers do (exact `.` and
/// `..` only), judging the path after every step.
fn walk(protected: &[Protected], reading: &[String]) -> Verdict {
    let mut stack: Vec<&str> = Vec::with_capacity(reading.len());
    for segment in reading {
        match segment.as_str() {
            "." => continue,
            ".." => {
                stack.pop();
            }
            s if dot_like(s) && protected.iter().any(|p| p.on_the_way(&stack)) => {
                return Verdict::Doubtful("a dot-like segment on the way to a protected path");
            }
            s => stack.push(s),
        }
        if let Some(p) = protected.iter().find(|p| p.reached_by(&stack, false)) {
            return Verdict::Protected(p.shown.clone());
        }
    }
    match protected.iter().find(|p| p.reached_by(&stack, true)) {
        Some(p) => Verdict::Protected(p.shown.clone()),
        None => Verdict::Open,
    }
}

impl Protected {
    /// Whether a request whose path (so far) is `path` runs this script,
    /// lies in this directory, or is this route's path or beyond it; at the
    /// `end` of the walk, a directory runs its index script.
    pub(crate) fn reached_by(&self, path: &[&str], end: bool) -> bool {
        let p = &self.segments;
        let Some((last, parents)) = p.split_last() else {
            // The root itself as a directory: everything below it.
            return self.kind == ProtectKind::Directory;
        };
        if path.len() < p.len() {
            // The directory's index script runs for the directory itself.
            return end
                && self.kind == ProtectKind::Script
                && path.len() + 1 == p.len()
                && last.starts_with("index.")
                && path.iter().zip(parents).all(|(a, b)| a == b);
        }
        if !path.iter().zip(parents).all(|(a, b)| a == b) {
            return false;
        }
        let at = path[parents.len()];
        match self.kind {
            ProtectKind::Directory => at == last,
            // MultiViews runs `callback.php` for `callback`.
            ProtectKind::Script => {
                at == last || last.strip_prefix(at).is_some_and(|r| r.starts_with('.'))
            }
            // Equal, extended (`callback.php`, `callbackx`) or below.
            ProtectKind::RoutePath => at.starts_with(last.as_str()),
        }
    }

    /// Whether `path` is the root or a directory on the way to this one.
    fn on_the_way(&self, path: &[&str]) -> bool {
        path.len() < self.segments.len() && path.iter().zip(&self.segments).all(|(a, b)| a == b)
    }
}

/// The first protected `(name, value)` pair that `params` carries, with
/// any of `separators` between fields, as PHP names them (values compared
/// in any case); PHP url-decodes cookie values and query fields alike.
fn dispatched(rules: &[(String, String)], params: &[u8], separators: &[u8]) -> Option<String> {
    params
        .split(|b| separators.contains(b))
        .find_map(|field| field_matches(rules, field))
}

/// Whether one `name=value` field is a protected parameter.
pub(crate) fn field_matches(rules: &[(String, String)], field: &[u8]) -> Option<String> {
    let (name, value) = match field.iter().position(|&b| b == b'=') {
        Some(i) => (&field[..i], &field[i + 1..]),
        None => (field, &b""[..]),
    };
    let value = form_decode(value).to_lowercase();
    names(name).into_iter().find_map(|n| {
        rules
            .iter()
            .find(|(rn, rv)| *rn == n && *rv == value)
            .map(|(rn, rv)| format!("{rn}={rv}"))
    })
}

/// The PHP names a raw field name may be read as: decoded (query, form,
/// cookie values) and as written (cookie names in newer PHP).
pub(crate) fn names(raw: &[u8]) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    // PHP's names are C strings: a NUL ends them, whatever follows.
    let decoded = form_decode_bytes(raw);
    let decoded = decoded.split(|b| *b == 0).next().unwrap_or_default();
    for n in [
        String::from_utf8_lossy(decoded).into_owned(),
        String::from_utf8_lossy(raw).trim().to_owned(),
    ] {
        if let Some(n) = php_name(&n).map(|n| n.base) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding to bytes, UTF-8 or not.
fn form_decode_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match (raw[i], hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding: `+` is a blank.
fn form_decode(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw).replace('+', " ");
    percent_decode(&s).unwrap_or(s)
}

#[cfg(test)]
mod tests;
