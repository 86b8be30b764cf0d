//! `callgate explain` and the console's breakdown: every check of a route
//! ([`Check::ALL`], the list the gateway enforces from) run on a captured
//! request, each with why it passes or fails (which key, by index, and
//! encoding matched or were tried; the signed timestamp's skew; never a
//! secret), and what the gateway would answer, in its order: the checks
//! before the body, a handshake answered there, the body's checks, a
//! handshake answered after them. Pure.

use std::net::IpAddr;

use super::check::{self, Answered, Check, Judgement, Passed, Seen, Step};
use super::Checked;
use crate::config::Route;

/// What the gateway would do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Every check passes: delivered.
    Accept,
    /// A check fails: 403.
    Refuse,
    /// The provider's endpoint check, answered by callgate (200).
    Handshake,
    /// No check fails, but these cannot be decided from the capture.
    Undecided(Vec<Check>),
}

/// Every check's judgement, in the gateway's order, and the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explanation {
    pub(crate) checks: Vec<(Check, Judgement)>,
    pub(crate) decision: Decision,
}

/// Judge `seen` against `route`, as the gateway would.
pub(crate) fn explain(route: &Route, seen: &Seen<'_>) -> Explanation {
    let mut checks: Vec<(Check, Judgement)> = Check::ALL
        .iter()
        .map(|c| (*c, c.explain(route, seen)))
        .collect();
    let handshake = check::answered(
        route,
        seen.method,
        seen.uri,
        seen.req.headers,
        Some(seen.req.body),
    );
    let answered = handshake == Some(Answered::Yes);
    // The checks before the body decide first; a handshake answered there
    // is answered before any body check runs.
    let decision = match decide_head(route, seen, &checks) {
        Some(Decision::Refuse) => Decision::Refuse,
        head if answered && check::before_body(route) => {
            skip(
                &mut checks,
                Check::reads_body,
                "answered as a handshake first",
            );
            head.unwrap_or(Decision::Handshake)
        }
        _ => match decide(&checks, true) {
            Some(d) => d,
            None if answered => Decision::Handshake,
            None => Decision::Accept,
        },
    };
    if answered && decision != Decision::Handshake {
        skip(
            &mut checks,
            |c| c == Check::Handshake,
            "a check before it decides",
        );
    }
    Explanation { checks, decision }
}

/// The gateway's own steps before the body, on this capture: refused if one
/// fails (unless the capture cannot decide its check: no `--from`, a
/// REDACTED token), undecided if a check cannot be told; None: go on. The
/// steps themselves, not the judgements: a check like params judges the query
/// here and the form body later.
fn decide_head(route: &Route, seen: &Seen<'_>, checks: &[(Check, Judgement)]) -> Option<Decision> {
    let mut scratch = Checked {
        passed: Passed::default(),
        token_secret: None,
    };
    let head = check::Head {
        client: seen.client.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        uri: seen.uri,
        lists: seen.lists,
    };
    let refused = checks.iter().any(|(c, v)| match v {
        Judgement::Unknown(_) => false,
        Judgement::Fail(_) if !c.reads_body() => true,
        _ => matches!(c.head(route, &head, &mut scratch), Step::Fail(_)),
    });
    match refused {
        true => Some(Decision::Refuse),
        false => decide(checks, false),
    }
}

/// The decision of the checks before the body (`body` false) or of all of
/// them: refused if one fails, undecided if one cannot be told; None: go on.
fn decide(checks: &[(Check, Judgement)], body: bool) -> Option<Decision> {
    let now = || checks.iter().filter(move |(c, _)| body || !c.reads_body());
    if now().any(|(_, v)| matches!(v, Judgement::Fail(_))) {
        return Some(Decision::Refuse);
    }
    let unknown: Vec<Check> = now()
        .filter(|(_, v)| matches!(v, Judgement::Unknown(_)))
        .map(|(c, _)| *c)
        .collect();
    (!unknown.is_empty()).then_some(Decision::Undecided(unknown))
}

/// The configured checks `which` picks are not reached.
fn skip(checks: &mut [(Check, Judgement)], which: impl Fn(Check) -> bool, why: &str) {
    for (_, v) in checks.iter_mut().filter(|(c, _)| which(*c)) {
        if *v != Judgement::Off {
            *v = Judgement::Skipped(format!("not reached: {why}"));
        }
    }
}

#[cfg(test)]
mod tests;
