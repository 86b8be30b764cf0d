//! The signed timestamp within the route's tolerance. It is part of the
//! signed string, so the signature checks refuse a stale one (before
//! comparing any signature); here it is judged on its own for `explain`.

use std::time::Duration;

use super::{Judgement, Seen};
use crate::config::Route;
use crate::verify::signature::{self, SignatureError};

/// Whether the route's signature scheme signs a timestamp.
pub(super) fn configured(route: &Route) -> bool {
    route.hmac.as_ref().is_some_and(|h| h.scheme.timed())
        || route
            .signature
            .as_ref()
            .is_some_and(|s| s.timestamp.is_some())
}

/// The tolerance, and whether a future timestamp is held to it too.
fn window(route: &Route) -> Option<(Duration, bool)> {
    if let Some(h) = route.hmac.as_ref().filter(|h| h.scheme.timed()) {
        return Some((h.tolerance, h.scheme.both_ways));
    }
    let s = route.signature.as_ref().filter(|s| s.timestamp.is_some())?;
    Some((s.tolerance, true))
}

/// The timestamp as sent: its own header, or a field of the signature's.
fn raw<'a>(route: &Route, seen: &Seen<'a>) -> Result<&'a [u8], SignatureError> {
    let headers = seen.req.headers;
    if let Some(h) = route.hmac.as_ref().filter(|h| h.scheme.timed()) {
        return match h.scheme.timestamp {
            Some(name) => signature::one_header(headers, name)?.ok_or(SignatureError::Timestamp),
            None => {
                let value = signature::one_header(headers, h.header.as_str())?
                    .ok_or(SignatureError::Timestamp)?;
                signature::claims(h.scheme.claims, value)
                    .0
                    .ok_or(SignatureError::Timestamp)
            }
        };
    }
    let (name, _) = route
        .signature
        .as_ref()
        .and_then(|s| s.timestamp)
        .ok_or(SignatureError::Timestamp)?;
    signature::one_header(headers, name)?.ok_or(SignatureError::Timestamp)
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some((tolerance, both_ways)) = window(route) else {
        return Judgement::Off;
    };
    let within = humantime::format_duration(tolerance);
    match raw(route, seen).and_then(|raw| signature::fresh(raw, seen.req.now, tolerance, both_ways))
    {
        Ok(skew) => Judgement::Pass(format!("signed {skew} s ago, within {within}")),
        Err(e) => Judgement::Fail(format!("{e} ({within})")),
    }
}

pub(super) fn describe(route: &Route) -> Option<String> {
    let (tolerance, both_ways) = window(route)?;
    Some(format!(
        "signed, within {}{}",
        humantime::format_duration(tolerance),
        if both_ways {
            " either way"
        } else {
            " (past only)"
        }
    ))
}
