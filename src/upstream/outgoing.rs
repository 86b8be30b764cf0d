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
    pub(crate) headers: http::HeaderMap,
    /// The verified header's value, for the assertion.
    pub(crate) checks: &'a str,
}

impl Outgoing<'_> {
    /// The request, with `body`, and the assertion when `assertion` is set.
    pub(crate) fn build(self, body: Bytes, assertion: Option<&Assertion>) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = self.method;
        *req.uri_mut() = upstream_uri(self.route, self.query);
        *req.version_mut() = http::Version::HTTP_11;
        *req.headers_mut() = self.headers;
        if let Some(a) = assertion {
            crate::assertion::stamp(&mut req, &body, a, &self.route.name, self.checks);
        }
        req
    }
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
