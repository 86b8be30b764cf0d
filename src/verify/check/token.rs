//! The URL token: one of the route's secrets in the query, compared in
//! constant time, before the body is read.

use http::Uri;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{Judgement, Refusal, Seen, Step, TokenFailure};
use crate::config::{token_digest, Route, TokenCheck};
use crate::verify::query::{self, Lookup};
use crate::verify::Checked;

pub(super) fn head(route: &Route, uri: &Uri, checked: &mut Checked) -> Step {
    let Some(token) = &route.token else {
        return Step::Off;
    };
    match check_token(token, uri.query().unwrap_or("")) {
        Ok(i) => {
            checked.token_secret = Some(i);
            Step::Pass
        }
        Err(r) => Step::Fail(r),
    }
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

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some(t) = &route.token else {
        return Judgement::Off;
    };
    match check_token(t, seen.query()) {
        Ok(i) => Judgement::Pass(format!("parameter {:?} matches secret #{i}", t.param)),
        // The console never keeps a token: its capture cannot prove one.
        Err(_) if matches!(query::lookup(seen.query(), &t.param), Lookup::One(v) if v == "REDACTED") => {
            Judgement::Unknown(
                "the capture has the token REDACTED (the console never keeps it)".into(),
            )
        }
        Err(refusal) => Judgement::Fail(refusal.to_string()),
    }
}

pub(super) fn describe(route: &Route) -> String {
    match &route.token {
        Some(t) => format!(
            "query parameter {:?}, {} secret(s): {}{}",
            t.param,
            t.sources.len(),
            t.sources.join(", "),
            if route.strip_token {
                "; stripped before forwarding"
            } else {
                ""
            }
        ),
        None => "(none)".into(),
    }
}
