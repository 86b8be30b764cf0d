//! Strict grammars on a pass-through that protects anything: what callgate
//! cannot read one way, it refuses, rather than guess how the site's parser
//! reads it. One Content-Type of exactly one media type (PHP reads the
//! media type up to the first `;`, `,` or blank, callgate by RFC 9110: the
//! grammar leaves them nothing to disagree on), no Content-Encoding where a
//! front controller's actions are protected (callgate scans bodies as they
//! are, and Apache's `SetInputFilter DEFLATE` would inflate one for PHP),
//! header names of token characters only. Pure: no I/O.

use http::HeaderMap;

use super::multipart::Canonical;
use super::protect::Verdict;
use crate::config::Passthrough;

/// The form PHP parses a body as, from its one Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Media {
    UrlEncoded,
    /// `multipart/form-data` and its boundary.
    Multipart(Vec<u8>),
    /// Anything else: PHP leaves it to the script (`php://input`).
    Other,
}

/// Judge the request's headers.
pub(crate) fn headers(site: &Passthrough, headers: &HeaderMap) -> Verdict {
    if site.protect.is_empty() && site.params.is_empty() {
        return Verdict::Open;
    }
    if let Err(why) = media(headers) {
        return Verdict::Doubtful(why);
    }
    if headers.keys().any(|n| !n.as_str().bytes().all(tchar)) {
        return Verdict::Doubtful("a header name with other than token characters");
    }
    let coded = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    if coded && !(site.params.is_empty() && site.values.is_empty()) {
        return Verdict::Doubtful(
            "a Content-Encoding (the body could not be scanned as the site would read it)",
        );
    }
    Verdict::Open
}

/// The canonical-form checker for a multipart body, on a pass-through
/// that protects anything.
pub(crate) fn canonical(site: &Passthrough, headers: &HeaderMap) -> Option<Canonical> {
    if site.protect.is_empty() && site.params.is_empty() {
        return None;
    }
    match media(headers) {
        Ok(Media::Multipart(boundary)) => Some(Canonical::new(&boundary)),
        _ => None,
    }
}

/// The one media type of the request, read by the strict grammar
/// `type "/" subtype *( OWS ";" OWS name "=" ( token / quoted-string ) )`
/// with each parameter once; none: Other.
pub(crate) fn media(headers: &HeaderMap) -> Result<Media, &'static str> {
    let mut all = headers.get_all(http::header::CONTENT_TYPE).iter();
    let value = match (all.next(), all.next()) {
        (None, _) => return Ok(Media::Other),
        (Some(v), None) => v.as_bytes(),
        (Some(_), Some(_)) => return Err("more than one Content-Type"),
    };
    let bad = "a Content-Type that is not exactly one media type";
    let (essence, mut rest) = split_token(value);
    let (sub, r) = match rest {
        [b'/', r @ ..] => split_token(r),
        _ => return Err(bad),
    };
    if essence.is_empty() || sub.is_empty() {
        return Err(bad);
    }
    rest = r;
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        rest = rest.trim_ascii_start();
        let Some(r) = rest.strip_prefix(b";") else {
            break;
        };
        let (name, value, r) = parameter(r.trim_ascii_start()).ok_or(bad)?;
        if params.iter().any(|(n, _)| *n == name) {
            return Err("a Content-Type with a parameter given twice");
        }
        params.push((name, value));
        rest = r;
    }
    if !rest.is_empty() {
        return Err(bad);
    }
    let essence = [essence, b"/", sub].concat().to_ascii_lowercase();
    Ok(match &essence[..] {
        b"application/x-www-form-urlencoded" => Media::UrlEncoded,
        b"multipart/form-data" => {
            let boundary = params
                .into_iter()
                .find(|(n, _)| n == b"boundary")
                .map(|(_, v)| v)
                .filter(|b| (1..=70).contains(&b.len()))
                .ok_or("a multipart Content-Type without a boundary of 1 to 70 characters")?;
            Media::Multipart(boundary)
        }
        _ => Media::Other,
    })
}

/// `name=value`, the value a token or a quoted string without escapes;
/// the name lower case, and what follows.
fn parameter(s: &[u8]) -> Option<(Vec<u8>, Vec<u8>, &[u8])> {
    let (name, rest) = split_token(s);
    let rest = rest.strip_prefix(b"=")?;
    if name.is_empty() {
        return None;
    }
    let (value, rest) = match rest {
        [b'"', r @ ..] => {
            let end = r.iter().position(|b| *b == b'"')?;
            let v = &r[..end];
            if v.iter().any(|b| *b == b'\\' || b.is_ascii_control()) {
                return None;
            }
            (v, &r[end + 1..])
        }
        r => {
            let (v, r) = split_token(r);
            if v.is_empty() {
                return None;
            }
            (v, r)
        }
    };
    Some((name.to_ascii_lowercase(), value.to_vec(), rest))
}

fn split_token(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|b| tchar(**b)).count();
    s.split_at(n)
}

/// RFC 9110's token characters.
pub(crate) fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(values: &[&str]) -> Result<Media, &'static str> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("content-type", v.parse().unwrap());
        }
        media(&h)
    }

    #[test]
    fn one_media_type_read_one_way() {
        let ok: &[(&str, Media)] = &[
            ("application/x-www-form-urlencoded", Media::UrlEncoded),
            (
                "application/x-www-form-urlencoded; charset=UTF-8",
                Media::UrlEncoded,
            ),
            (
                "Application/X-WWW-Form-Urlencoded;charset=\"utf-8\"",
                Media::UrlEncoded,
            ),
            (
                "multipart/form-data; boundary=----WebKitFormBoundaryAbC123",
                Media::Multipart(b"----WebKitFormBoundaryAbC123".to_vec()),
            ),
            (
                "multipart/form-data; boundary=\"a b\"",
                Media::Multipart(b"a b".to_vec()),
            ),
            ("application/json", Media::Other),
            ("text/plain;charset=multipart", Media::Other),
        ];
        for (v, want) in ok {
            assert_eq!(ct(&[v]).as_ref(), Ok(want), "{v}");
        }
        for bad in [
            "application/x-www-form-urlencoded; multipart",
            "application/x-www-form-urlencoded, multipart/form-data",
            "application/x-www-form-urlencoded multipart/form-data",
            "application/x-www-form-urlencoded;",
            "multipart/form-data",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; boundary=\"a\\\"b\"",
            "text",
            "/plain",
            "",
        ] {
            assert!(ct(&[bad]).is_err(), "{bad}");
        }
        assert!(ct(&[
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x"
        ])
        .is_err());
    }
}
