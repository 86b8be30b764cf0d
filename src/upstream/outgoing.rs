//! What a verified callback sends: the route's target with the caller's
//! query, the prepared headers, and the assertion signed over exactly that.

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Method, Request, Uri};
use http_body_util::Full;

use crate::config::{Assertion, Route};
use crate::verify::query;

/// A verified callback on its way to the route's upstream. Direct delivery
/// and the queue worker both build the outgoing request here: the route's
/// target with the caller's query, HTTP/1.1, the headers as prepared (the
/// verified header already set), and the assertion when configured, signed
/// at this moment over exactly what is sent.
pub(crate) struct Outgoing<'a> {
    pub(crate) route: &'a Route,
    pub(crate) method: Method,
    /// The caller's query (token restored or stripped as the route says).
    pub(crate) query: Option<&'a str>,
    /// The caller's own target, as it came (direct delivery): sent as it
    /// is, not written again, when it is the one `query` would make.
    pub(crate) target: Option<&'a PathAndQuery>,
    pub(crate) headers: http::HeaderMap,
    /// The verified header's value, for the assertion.
    pub(crate) checks: &'a str,
}

impl Outgoing<'_> {
    /// The request, with `body`, and the assertion when `assertion` is set.
    pub(crate) fn build(self, body: Bytes, assertion: Option<&Assertion>) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = self.method;
        *req.uri_mut() = match self.target.filter(|t| unchanged(self.route, t)) {
            // The bytes hyper already holds: nothing to join or parse again.
            Some(target) => Uri::from(target.clone()),
            None => upstream_uri(self.route, self.query),
        };
        *req.version_mut() = http::Version::HTTP_11;
        *req.headers_mut() = self.headers;
        if let Some(a) = assertion {
            crate::assertion::stamp(&mut req, &body, a, &self.route.name, self.checks);
        }
        req
    }
}

/// Whether [`upstream_uri`] writes the caller's `target` as it came: the
/// upstream's path is the caller's, the route adds no query of its own and
/// strips no token, and the caller's query is absent or not empty (an
/// empty one is dropped).
fn unchanged(route: &Route, target: &PathAndQuery) -> bool {
    let up = &route.upstream;
    up.query.is_none()
        && !(route.strip_token && route.token.is_some())
        && target.path() == up.path
        && target.query() != Some("")
}

/// The request target sent upstream (origin-form: the route's upstream path
/// and query, then the caller's query, token stripped if asked). Where it is
/// sent is the route's upstream authority.
pub(crate) fn upstream_uri(route: &Route, incoming_query: Option<&str>) -> Uri {
    let stripped;
    let mut query = incoming_query;
    if let (true, Some(token), Some(q)) = (route.strip_token, &route.token, query) {
        stripped = query::strip(q, &token.param);
        query = Some(stripped.as_str());
    }
    let up = &route.upstream;
    let queries = [up.query.as_deref(), query.filter(|q| !q.is_empty())];
    let mut target = String::with_capacity(
        up.path.len() + queries.iter().flatten().map(|q| q.len() + 1).sum::<usize>(),
    );
    target.push_str(&up.path);
    for (i, q) in queries.iter().flatten().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        target.push_str(q);
    }
    PathAndQuery::from_maybe_shared(Bytes::from(target))
        // Every part came from a parsed URI, so the join is a valid target.
        .expect("upstream target from valid parts")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn route(upstream: &str, token: &str) -> std::sync::Arc<Route> {
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"{upstream}\"\nallow_ips = [\"127.0.0.1\"]\n{token}\n"
        );
        let cfg = Config::from_str(&text, std::path::Path::new("t.toml")).unwrap();
        let r = cfg.routes.get("/cb", None).unwrap().clone();
        r
    }

    /// The caller's target is kept only where writing it again gives the
    /// same bytes.
    #[test]
    fn a_target_kept_as_it_came_is_the_one_upstream_uri_writes() {
        let token = "token = { secrets = [\"t-0123456789abcdef\"] }";
        let routes = [
            route("http://127.0.0.1:9/cb", ""),
            route("http://127.0.0.1:9/cb", token),
            route(
                "http://127.0.0.1:9/cb",
                &format!("{token}\nstrip_token = true"),
            ),
            route("http://127.0.0.1:9/cb?a=1", ""),
            route("http://127.0.0.1:9/other", ""),
        ];
        for r in &routes {
            for t in [
                "/cb",
                "/cb?",
                "/cb?x=1",
                "/cb?token=t-0123456789abcdef&b=2",
                "/cb?&",
            ] {
                let target = PathAndQuery::from_static(t);
                let written = upstream_uri(r, target.query());
                if unchanged(r, &target) {
                    assert_eq!(Uri::from(target.clone()), written, "{t}");
                    assert_eq!(target.as_str(), written.to_string(), "{t}");
                }
            }
        }
        let plain = PathAndQuery::from_static("/cb?x=1");
        assert!(unchanged(&routes[0], &plain));
        assert!(unchanged(&routes[1], &plain));
        assert!(!unchanged(&routes[2], &plain));
        assert!(!unchanged(&routes[3], &plain));
        assert!(!unchanged(&routes[4], &plain));
        assert!(!unchanged(&routes[0], &PathAndQuery::from_static("/cb?")));
    }
}
