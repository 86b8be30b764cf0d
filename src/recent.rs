//! The last requests, in memory only, for the console: a bounded ring of
//! what happened to each (route, client, target with the token REDACTED,
//! outcome, reason, status); for a refused callback also the per-check
//! breakdown `callgate explain` prints, its headers with credentials
//! redacted and the first 4 KiB of its body. And requests per minute by
//! outcome over the last hour, for the overview's chart.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::{HeaderMap, Uri};
use serde::Serialize;

use crate::config::Route;
use crate::metrics::Outcome;
use crate::verify::explain::{explain, Verdict};
use crate::verify::{query, Signable};

/// Body bytes kept with a refused request.
pub(crate) const BODY_KEPT: usize = 4096;
/// Minutes of per-outcome counts kept for the chart.
pub(crate) const MINUTES: usize = 60;

/// One request as the console shows it.
#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    /// RFC 3339, UTC, milliseconds.
    pub(crate) time: String,
    pub(crate) route: String,
    pub(crate) client: String,
    pub(crate) method: String,
    /// The target as received, every token parameter REDACTED.
    pub(crate) target: String,
    pub(crate) outcome: &'static str,
    pub(crate) reason: String,
    pub(crate) status: u16,
    pub(crate) duration_ms: f64,
    /// For refusals (and report-only failures) of a route: the evidence.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<Box<Detail>>,
}

/// Why a callback was refused, check by check, and what it carried.
#[derive(Debug, Serialize)]
pub(crate) struct Detail {
    pub(crate) checks: Vec<CheckLine>,
    /// As they came (after hop-by-hop removal), credentials REDACTED.
    pub(crate) headers: Vec<(String, String)>,
    /// The first [`BODY_KEPT`] bytes, as text (invalid UTF-8 replaced).
    pub(crate) body: String,
    /// The same bytes, exactly (what `callgate explain` reads back).
    pub(crate) body_base64: String,
    /// The whole body's length; more than kept means the body was cut.
    pub(crate) body_bytes: usize,
    /// False when the request was refused before its body was read.
    pub(crate) body_read: bool,
}

/// One check's verdict, as `callgate explain` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct CheckLine {
    pub(crate) check: &'static str,
    /// `pass`, `fail`, `unknown` or `off`.
    pub(crate) verdict: &'static str,
    pub(crate) why: String,
}

/// A refused request as it came, for [`Detail::of`].
pub(crate) struct Evidence<'a> {
    pub(crate) route: &'a Route,
    pub(crate) client: IpAddr,
    pub(crate) uri: &'a Uri,
    /// Headers, body (empty if not read), public URL, now.
    pub(crate) signable: Signable<'a>,
    pub(crate) body_read: bool,
}

impl Detail {
    /// Run every check on the request, one at a time (as `callgate explain`
    /// does), and keep what the console may show of it.
    pub(crate) fn of(e: &Evidence<'_>) -> Detail {
        let checks = explain(e.route, Some(e.client), e.uri, &e.signable)
            .into_iter()
            .map(|(check, verdict)| match verdict {
                // Checks of the body say nothing when it was never read.
                Verdict::Fail(_) | Verdict::Pass(_)
                    if !e.body_read && matches!(check, "hmac" | "payload" | "params") =>
                {
                    line(
                        check,
                        "unknown",
                        "not reached: refused before the body was read",
                    )
                }
                Verdict::Pass(why) => line(check, "pass", &why),
                Verdict::Fail(why) => line(check, "fail", &why),
                Verdict::Unknown(why) => line(check, "unknown", &why),
                Verdict::NotConfigured => line(check, "off", "not configured"),
            })
            .collect();
        let body = e.signable.body;
        let kept = &body[..body.len().min(BODY_KEPT)];
        Detail {
            checks,
            headers: redact_headers(e.signable.headers),
            body: String::from_utf8_lossy(kept).into_owned(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(kept),
            body_bytes: body.len(),
            body_read: e.body_read,
        }
    }
}

fn line(check: &'static str, verdict: &'static str, why: &str) -> CheckLine {
    CheckLine {
        check,
        verdict,
        why: why.to_owned(),
    }
}

/// Header names whose values are credentials: shown as REDACTED.
fn is_credential(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];
    const PARTS: &[&str] = &[
        "token", "secret", "password", "api-key", "apikey", "session",
    ];
    EXACT.contains(&name) || PARTS.iter().any(|p| name.contains(p))
}

/// Headers as (name, value), credentials REDACTED, values as text.
pub(crate) fn redact_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = match is_credential(name.as_str()) {
                true => "REDACTED".to_owned(),
                false => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

/// The target with every named parameter's value REDACTED.
pub(crate) fn redacted_target(uri: &Uri, redact: &[String]) -> String {
    match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), query::redact(q, redact)),
        None => uri.path().to_owned(),
    }
}

/// Counts by outcome in one minute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Minute {
    /// Minutes since the Unix epoch.
    pub(crate) at: i64,
    /// Indexed like [`Outcome::ALL`].
    pub(crate) counts: [u32; Outcome::ALL.len()],
}

/// The console's memory of requests: the newest `cap`, and an hour of minutes.
pub(crate) struct Recent {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Arc<Entry>>,
    next_id: u64,
    minutes: VecDeque<Minute>,
}

/// What is recorded of one request, before it gets its id and time.
pub(crate) struct Record {
    pub(crate) route: String,
    pub(crate) client: IpAddr,
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) outcome: Outcome,
    pub(crate) reason: String,
    pub(crate) status: u16,
    pub(crate) duration_ms: f64,
    pub(crate) detail: Option<Box<Detail>>,
}

impl Recent {
    /// Keep the newest `cap` requests (at least one).
    pub(crate) fn new(cap: usize) -> Recent {
        Recent {
            cap: cap.max(1),
            inner: Mutex::default(),
        }
    }

    /// How many it keeps.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Add one request at `now_ms`; the oldest goes when full.
    pub(crate) fn record(&self, r: Record, now_ms: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next_id += 1;
        let entry = Entry {
            id: inner.next_id,
            time: rfc3339_ms(now_ms),
            route: r.route,
            client: r.client.to_canonical().to_string(),
            method: r.method,
            target: r.target,
            outcome: r.outcome.as_str(),
            reason: r.reason,
            status: r.status,
            duration_ms: (r.duration_ms * 10.0).round() / 10.0,
            detail: r.detail,
        };
        if inner.entries.len() == self.cap {
            inner.entries.pop_front();
        }
        inner.entries.push_back(Arc::new(entry));
        count(&mut inner.minutes, now_ms / 60_000, r.outcome);
    }

    /// Newest first, those `keep` accepts.
    pub(crate) fn list(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .entries
            .iter()
            .rev()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    }

    /// One request by id, while it is kept.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Entry>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let first = inner.entries.front()?.id;
        let i = usize::try_from(id.checked_sub(first)?).ok()?;
        inner.entries.get(i).cloned()
    }

    /// The last hour, a minute each, oldest first, ending at `now_ms`'s
    /// minute; minutes without requests are zero.
    pub(crate) fn minutes(&self, now_ms: i64) -> Vec<Minute> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms / 60_000;
        (now - MINUTES as i64 + 1..=now)
            .map(|at| {
                inner
                    .minutes
                    .iter()
                    .find(|m| m.at == at)
                    .copied()
                    .unwrap_or(Minute {
                        at,
                        counts: [0; Outcome::ALL.len()],
                    })
            })
            .collect()
    }
}

/// One more request in minute `at`; minutes older than the hour go.
fn count(minutes: &mut VecDeque<Minute>, at: i64, outcome: Outcome) {
    if minutes.back().is_none_or(|m| m.at != at) {
        minutes.push_back(Minute {
            at,
            counts: [0; Outcome::ALL.len()],
        });
    }
    while minutes.front().is_some_and(|m| m.at <= at - MINUTES as i64) {
        minutes.pop_front();
    }
    let i = Outcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or_default();
    if let Some(m) = minutes.back_mut() {
        m.counts[i] = m.counts[i].saturating_add(1);
    }
}

/// `2026-12-03T09:33:15.123Z`
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests;
