//! The last requests, in memory only, for the console: a bounded ring of
//! what happened to each (route, client, target with the token REDACTED,
//! outcome, reason, status); for a refused callback also the per-check
//! breakdown `callgate explain` prints, its headers with credentials
//! redacted and the first 4 KiB of its body. And requests per minute by
//! outcome over the last hour, for the overview's chart.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::{HeaderMap, Method, Uri};
use serde::Serialize;

use crate::config::redact::Redactor;
use crate::config::Route;
use crate::metrics::Outcome;
use crate::verify::explain::{explain, Verdict};
use crate::verify::{query, Signable};

/// Body bytes kept with a refused request.
pub(crate) const BODY_KEPT: usize = 4096;
/// Minutes of per-outcome counts kept for the chart.
pub(crate) const MINUTES: usize = 60;

/// One request as kept: compact (recording is on every request's path;
/// the text the console shows is made when it is shown, by [`Entry::view`]).
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    at_ms: i64,
    route: Who,
    client: IpAddr,
    method: Method,
    /// The target as received, every token parameter REDACTED.
    target: String,
    outcome: Outcome,
    reason: String,
    status: u16,
    duration_ms: f64,
    /// For refusals (and report-only failures) of a route: the evidence.
    detail: Option<Box<Detail>>,
}

/// What a request was for.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    Route(Arc<Route>),
    /// The site behind callgate (a pass-through).
    Site,
    /// Neither: refused before routing, redirected, an ACME answer.
    Unrouted,
}

impl Who {
    fn name(&self) -> &str {
        match self {
            Who::Route(r) => &r.name,
            Who::Site => "passthrough",
            Who::Unrouted => "-",
        }
    }
}

/// One request as the console shows it (and its JSON API serves it).
#[derive(Debug, Serialize)]
pub(crate) struct View<'a> {
    pub(crate) id: u64,
    /// RFC 3339, UTC, milliseconds.
    pub(crate) time: String,
    pub(crate) route: &'a str,
    pub(crate) client: String,
    pub(crate) method: &'a str,
    /// The target as received, every token parameter REDACTED.
    pub(crate) target: &'a str,
    pub(crate) outcome: &'static str,
    pub(crate) reason: &'a str,
    pub(crate) status: u16,
    pub(crate) duration_ms: f64,
    /// For refusals (and report-only failures) of a route: the evidence.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<&'a Detail>,
}

impl Entry {
    /// The entry as text, for a page or the API.
    pub(crate) fn view(&self) -> View<'_> {
        View {
            id: self.id,
            time: rfc3339_ms(self.at_ms),
            route: self.route.name(),
            client: self.client.to_canonical().to_string(),
            method: self.method.as_str(),
            target: &self.target,
            outcome: self.outcome.as_str(),
            reason: &self.reason,
            status: self.status,
            duration_ms: (self.duration_ms * 10.0).round() / 10.0,
            detail: self.detail.as_deref(),
        }
    }

    /// Whether it was for `route` ("passthrough", "-" for the others).
    pub(crate) fn is_route(&self, route: &str) -> bool {
        self.route.name() == route
    }

    /// Whether its outcome is named `outcome`.
    pub(crate) fn is_outcome(&self, outcome: &str) -> bool {
        self.outcome.as_str() == outcome
    }
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
    /// The config's secrets, hidden by value in all that is kept.
    pub(crate) redactor: &'a Redactor,
}

impl Detail {
    /// Run every check on the request, one at a time (as `callgate explain`
    /// does), and keep what the console may show of it: every secret the
    /// config holds REDACTED, in the verdicts, the headers and the body.
    pub(crate) fn of(e: &Evidence<'_>) -> Detail {
        let hide = |why: &str| e.redactor.text(why).into_owned();
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
                Verdict::Pass(why) => line(check, "pass", &hide(&why)),
                Verdict::Fail(why) => line(check, "fail", &hide(&why)),
                Verdict::Unknown(why) => line(check, "unknown", &hide(&why)),
                Verdict::NotConfigured => line(check, "off", "not configured"),
            })
            .collect();
        let body = e.signable.body;
        let kept = e.redactor.bytes(&body[..body.len().min(BODY_KEPT)]);
        Detail {
            checks,
            headers: redact_headers(e.signable.headers, e.redactor),
            body: String::from_utf8_lossy(&kept).into_owned(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(&kept),
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

/// Headers as (name, value), values as text: a credential header's value
/// (its name folded: `x_api_key` is `x-api-key`) REDACTED whatever it is,
/// and every secret the config holds REDACTED in the others.
pub(crate) fn redact_headers(headers: &HeaderMap, redactor: &Redactor) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| redactor.header(name.as_str(), value.as_bytes()))
        .collect()
}

/// The target with every named parameter's value REDACTED (`redact`:
/// names already folded, as `Config::redact_params` keeps them), and every
/// secret the config holds REDACTED wherever it is, under any name, raw or
/// encoded. Made on every request while the log or the console is on.
pub(crate) fn redacted_target(uri: &Uri, redact: &[String], redactor: &Redactor) -> String {
    let path = uri.path();
    let mut out = String::with_capacity(path.len() + 1 + uri.query().map_or(0, str::len) + 8);
    out.push_str(path);
    if let Some(q) = uri.query() {
        out.push('?');
        query::redact_folded_into(q, redact, &mut out);
    }
    match redactor.text(&out) {
        std::borrow::Cow::Borrowed(_) => out,
        std::borrow::Cow::Owned(hidden) => hidden,
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

/// The console's memory of requests: the newest `cap`, and an hour of
/// minutes. Sharded: each serving thread records into its own shard (its
/// own lock), so recording never waits for another thread; a shard keeps
/// its share of `cap` and numbers its own entries (an id names its shard:
/// `seq * SHARDS + shard`), and reading merges them by time.
pub(crate) struct Recent {
    cap: usize,
    /// Entries kept in all shards together.
    kept: AtomicUsize,
    shards: Box<[Mutex<Inner>]>,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Arc<Entry>>,
    minutes: VecDeque<Minute>,
    /// The last sequence number this shard gave out.
    seq: u64,
}

/// Shards: enough for the serving threads of a large machine.
const SHARDS: usize = 8;

thread_local! {
    /// This thread's shard, given out round-robin as threads first record.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// What is recorded of one request, before it gets its id and time.
pub(crate) struct Record {
    pub(crate) route: Who,
    pub(crate) client: IpAddr,
    pub(crate) method: Method,
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
            kept: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// How many it keeps.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(shard: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add one request at `now_ms`; when full, the oldest of its shard goes.
    pub(crate) fn record(&self, r: Record, now_ms: i64) {
        let shard = SHARD.with(|s| *s);
        let mut inner = Recent::lock(&self.shards[shard]);
        inner.seq += 1;
        let entry = Arc::new(Entry {
            id: inner.seq * SHARDS as u64 + shard as u64,
            at_ms: now_ms,
            route: r.route,
            client: r.client,
            method: r.method,
            target: r.target,
            outcome: r.outcome,
            reason: r.reason,
            status: r.status,
            duration_ms: r.duration_ms,
            detail: r.detail,
        });
        // Full: this thread's shard gives up its oldest (a thread that
        // records more keeps more), and the count shared by every thread
        // is not written at all (one entry out, one in): once the ring is
        // full, recording writes nothing another serving thread reads.
        let full = self.kept.load(Ordering::Relaxed) >= self.cap;
        if !(full && inner.entries.pop_front().is_some()) {
            self.kept.fetch_add(1, Ordering::Relaxed);
        }
        inner.entries.push_back(entry);
        count(&mut inner.minutes, now_ms / 60_000, r.outcome);
    }

    /// Newest first (at most `cap`), those `keep` accepts.
    pub(crate) fn list(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        let mut all: Vec<Arc<Entry>> = Vec::new();
        for shard in self.shards.iter() {
            all.extend(Recent::lock(shard).entries.iter().cloned());
        }
        all.sort_unstable_by_key(|e| std::cmp::Reverse((e.at_ms, e.id)));
        all.truncate(self.cap);
        all.retain(|e| keep(e));
        all
    }

    /// One request by id, while it is kept.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Entry>> {
        let inner = Recent::lock(&self.shards[(id % SHARDS as u64) as usize]);
        let i = inner.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        inner.entries.get(i).cloned()
    }

    /// The last hour, a minute each, oldest first, ending at `now_ms`'s
    /// minute; minutes without requests are zero.
    pub(crate) fn minutes(&self, now_ms: i64) -> Vec<Minute> {
        let now = now_ms / 60_000;
        let mut out: Vec<Minute> = (now - MINUTES as i64 + 1..=now)
            .map(|at| Minute {
                at,
                counts: [0; Outcome::ALL.len()],
            })
            .collect();
        for shard in self.shards.iter() {
            for m in Recent::lock(shard).minutes.iter() {
                if let Some(slot) = out.iter_mut().find(|o| o.at == m.at) {
                    for (total, n) in slot.counts.iter_mut().zip(m.counts) {
                        *total = total.saturating_add(n);
                    }
                }
            }
        }
        out
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
