//! Parameters a receiver would read differently: one the route's upstream
//! URL sets may not come from the caller (query, before the body), and a
//! form body may not carry the token or such a parameter (after it).

use http::{HeaderMap, Uri};

use super::{Judgement, Refusal, Seen, Step};
use crate::config::Route;
use crate::php::php_name;
use crate::verify::signature::Signable;
use crate::verify::{form_kind, multipart_names, query, FormKind};

pub(super) fn head(route: &Route, uri: &Uri) -> Step {
    Step::of(check_query_params(route, uri.query().unwrap_or("")))
}

pub(super) fn body(route: &Route, req: &Signable<'_>) -> Step {
    Step::of(check_body_params(route, req.headers, req.body))
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    match check_query_params(route, seen.query())
        .and_then(|()| check_body_params(route, seen.req.headers, seen.req.body))
    {
        Ok(()) => Judgement::Pass("no parameter a receiver would read differently".into()),
        Err(refusal) => Judgement::Fail(refusal.to_string()),
    }
}

pub(super) fn describe(route: &Route) -> Option<String> {
    (!route.reserved_params.is_empty()).then(|| {
        format!(
            "refused from the caller (any spelling PHP folds to them): {}",
            route.reserved_params.join(", ")
        )
    })
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
