//! Lists a page at a time: `limit` entries (default 100, at most 500)
//! older than `before`, newest first, within [`MAX_ANSWER`] bytes however
//! many entries are kept; `Link: <…?before=ID&limit=N>; rel="next"` when
//! more exist.

use maud::{Markup, PreEscaped};
use serde::Serialize;

/// Every page and API answer of the console is at most this large.
pub(crate) const MAX_ANSWER: usize = 2 * 1024 * 1024;
/// Entries a page holds unless `limit` says otherwise.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// A larger `limit` is taken as this.
pub(super) const MAX_LIMIT: usize = 500;

/// Which page: `before` (an id; the entries older than it) and `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Paging {
    pub(super) before: Option<u64>,
    pub(super) limit: usize,
}

impl Paging {
    /// From the query's `before` and `limit` (a bad or zero `limit` is the
    /// default; a bad `before` is none).
    pub(super) fn of(param: impl Fn(&str) -> Option<String>) -> Paging {
        let limit = param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .map_or(DEFAULT_LIMIT, |l| l.min(MAX_LIMIT));
        Paging {
            before: param("before").and_then(|b| b.parse().ok()),
            limit,
        }
    }

    /// `path?before=ID&limit=N` and the filters (name, value) that are set.
    pub(super) fn next(&self, path: &str, last: u64, filters: &[(&str, Option<&str>)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("before", &last.to_string());
        q.append_pair("limit", &self.limit.to_string());
        for (k, v) in filters {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        format!("{path}?{}", q.finish())
    }
}

/// A JSON array of `items` (each pretty-printed) within [`MAX_ANSWER`]:
/// the body and how many items it holds (at least one, if any).
pub(super) fn json_array<T: Serialize>(items: impl IntoIterator<Item = T>) -> (Vec<u8>, usize) {
    let mut body = b"[".to_vec();
    let mut shown = 0;
    for item in items {
        let Ok(one) = serde_json::to_vec_pretty(&item) else {
            continue;
        };
        // "[", the items with ",\n" between, "\n]\n".
        if shown > 0 && body.len() + 2 + one.len() + 3 > MAX_ANSWER {
            break;
        }
        body.extend_from_slice(if shown == 0 { b"\n" } else { b",\n" });
        body.extend_from_slice(&one);
        shown += 1;
    }
    body.extend_from_slice(b"\n]\n");
    (body, shown)
}

/// Rows of a page, each made by `row`, while the page stays within
/// `room` bytes: the rows and how many there are (at least one, if any).
/// Each row is maud's markup, escaped as it was made; so is their sum.
pub(super) fn rows<T>(items: &[T], room: usize, row: impl Fn(&T) -> Markup) -> (Markup, usize) {
    let mut out = String::new();
    let mut shown = 0;
    for item in items {
        let r = row(item).into_string();
        if shown > 0 && out.len() + r.len() > room {
            break;
        }
        out.push_str(&r);
        shown += 1;
    }
    (PreEscaped(out), shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_100_and_is_taken_as_500_above() {
        let of = |q: &'static str| {
            Paging::of(|name| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            })
        };
        assert_eq!(of("").limit, 100);
        assert_eq!(of("limit=7").limit, 7);
        assert_eq!(of("limit=100000").limit, 500);
        assert_eq!(of("limit=0").limit, 100);
        assert_eq!(of("before=42").before, Some(42));
        assert_eq!(of("before=x").before, None);
        assert_eq!(
            of("limit=3").next(
                "/api/requests",
                9,
                &[("route", Some("a b")), ("outcome", None)]
            ),
            "/api/requests?before=9&limit=3&route=a+b"
        );
    }

    #[test]
    fn an_array_stays_within_the_cap() {
        let big = "x".repeat(100_000);
        let (body, shown) = json_array((0..100).map(|_| &big));
        assert!(body.len() <= MAX_ANSWER, "{}", body.len());
        assert!(shown > 10 && shown < 100, "{shown}");
        let v: Vec<String> = serde_json::from_slice(&body).unwrap();
        assert_eq!(v.len(), shown);
        let (body, shown) = json_array(Vec::<String>::new());
        assert_eq!((body.as_slice(), shown), (&b"[\n]\n"[..], 0));
    }
}
