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
use crate::verify::check::{Judgement, Seen};
use crate::verify::explain::explain;
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
    /// Which fields were cut to what an entry keeps.
    cut: Cut,
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
    /// True when a field was cut to what an entry keeps (4 KiB of target,
    /// 8 KiB of headers, 4 KiB of body).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) cut: bool,
    /// Which ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) cut_fields: Vec<&'static str>,
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
            cut: self.cut.any(),
            cut_fields: self.cut.fields(),
        }
    }

    /// Which fields were cut.
    pub(crate) fn cut(&self) -> Cut {
        self.cut
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
    /// `pass`, `fail`, `unknown`, `skipped` or `off`.
    pub(crate) verdict: &'static str,
    pub(crate) why: String,
}

/// A refused request as it came, for [`Detail::of`].
pub(crate) struct Evidence<'a> {
    pub(crate) route: &'a Route,
    pub(crate) client: IpAddr,
    /// What the named address lists hold now.
    pub(crate) lists: &'a dyn crate::config::NamedLists,
    pub(crate) method: &'a Method,
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
        let seen = Seen {
            client: Some(e.client),
            method: e.method,
            uri: e.uri,
            req: e.signable,
            lists: e.lists,
        };
        let checks = explain(e.route, &seen)
            .checks
            .into_iter()
            .map(|(check, verdict)| match verdict {
                // Checks of the body say nothing when it was never read.
                Judgement::Fail(_) | Judgement::Pass(_) if !e.body_read && check.reads_body() => {
                    CheckLine {
                        check: check.name(),
                        verdict: "unknown",
                        why: "not reached: refused before the body was read".into(),
                    }
                }
                v => CheckLine {
                    check: check.name(),
                    verdict: v.word(),
                    why: hide(v.why()),
                },
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

/// The method as logged and kept: a method that holds a secret (any
/// token is a valid method) is shown as `REDACTED`.
pub(crate) fn redacted_method(method: &Method, redactor: &Redactor) -> Method {
    match redactor.text(method.as_str()) {
        std::borrow::Cow::Borrowed(_) => method.clone(),
        std::borrow::Cow::Owned(hidden) => {
            Method::from_bytes(hidden.as_bytes()).unwrap_or_else(|_| REDACTED_METHOD.clone())
        }
    }
}

static REDACTED_METHOD: std::sync::LazyLock<Method> =
    std::sync::LazyLock::new(|| Method::from_bytes(b"REDACTED").expect("a token"));

/// Counts by outcome in one minute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Minute {
    /// Minutes since the Unix epoch.
    pub(crate) at: i64,
    /// Indexed like [`Outcome::ALL`].
    pub(crate) counts: [u32; Outcome::ALL.len()],
}

/// The console's memory of requests: the newest `cap` in the order they
/// were recorded (ids increase with time; the oldest goes first), within
/// [`RING_BYTES`], and an hour of minutes. The entries share one lock
/// (held for a push and a pop): only that order keeps "the last N". The
/// minutes are sharded: each serving thread counts into its own.
pub(crate) struct Recent {
    cap: usize,
    ring: Mutex<Ring>,
    shards: Box<[Mutex<VecDeque<Minute>>]>,
}

#[derive(Default)]
struct Ring {
    /// Oldest first; ids strictly increasing.
    entries: VecDeque<Arc<Entry>>,
    /// What the entries weigh together ([`Entry::weight`]).
    bytes: usize,
    /// The last id given out.
    last_id: u64,
}

/// Memory the kept entries may take together, whatever `requests_kept`
/// is: when large entries would take more, the oldest go first.
pub(crate) const RING_BYTES: usize = 64 * 1024 * 1024;
/// Target bytes an entry keeps.
pub(crate) const TARGET_KEPT: usize = 4096;
/// Header bytes (names and values) an entry keeps.
pub(crate) const HEADERS_KEPT: usize = 8192;
/// Reason bytes an entry keeps.
const REASON_KEPT: usize = 1024;

/// Shards of the minute counts: enough for the serving threads of a large machine.
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

/// One page of entries, newest first.
pub(crate) struct Page {
    pub(crate) entries: Vec<Arc<Entry>>,
    /// More (older) entries match beyond this page.
    pub(crate) more: bool,
}

impl Recent {
    /// Keep the newest `cap` requests (at least one).
    pub(crate) fn new(cap: usize) -> Recent {
        Recent {
            cap: cap.max(1),
            ring: Mutex::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// How many it keeps.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add one request at `now_ms`, cut to what an entry keeps; the oldest
    /// go while more than `cap` are kept or they weigh over [`RING_BYTES`].
    pub(crate) fn record(&self, r: Record, now_ms: i64) {
        let outcome = r.outcome;
        let mut entry = Entry::kept(r);
        let weight = entry.weight();
        {
            let mut ring = Recent::lock(&self.ring);
            ring.last_id += 1;
            entry.id = ring.last_id;
            // Never earlier than the entry before it: time follows the ids.
            entry.at_ms = ring.entries.back().map_or(now_ms, |b| now_ms.max(b.at_ms));
            ring.entries.push_back(Arc::new(entry));
            ring.bytes += weight;
            while ring.entries.len() > 1
                && (ring.entries.len() > self.cap || ring.bytes > RING_BYTES)
            {
                if let Some(old) = ring.entries.pop_front() {
                    ring.bytes -= old.weight();
                }
            }
        }
        let shard = SHARD.with(|s| *s);
        count(
            &mut Recent::lock(&self.shards[shard]),
            now_ms / 60_000,
            outcome,
        );
    }

    /// Newest first, every kept entry `keep` accepts.
    #[cfg(test)]
    pub(crate) fn list(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        self.page(keep, None, usize::MAX).entries
    }

    /// At most `limit` entries `keep` accepts, newest first, older than
    /// the entry `before` when given.
    pub(crate) fn page(
        &self,
        keep: impl Fn(&Entry) -> bool,
        before: Option<u64>,
        limit: usize,
    ) -> Page {
        let ring = Recent::lock(&self.ring);
        let end = match before {
            Some(id) => ring.entries.partition_point(|e| e.id < id),
            None => ring.entries.len(),
        };
        let mut entries = Vec::new();
        let mut more = false;
        for e in ring.entries.range(..end).rev().filter(|e| keep(e)) {
            if entries.len() == limit {
                more = true;
                break;
            }
            entries.push(e.clone());
        }
        Page { entries, more }
    }

    /// One request by id, while it is kept.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Entry>> {
        let ring = Recent::lock(&self.ring);
        let i = ring.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        ring.entries.get(i).cloned()
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
            for m in Recent::lock(shard).iter() {
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

/// Which of an entry's fields were cut to what an entry keeps.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cut {
    pub(crate) target: bool,
    pub(crate) reason: bool,
    pub(crate) headers: bool,
    pub(crate) body: bool,
}

impl Cut {
    fn any(&self) -> bool {
        self.target || self.reason || self.headers || self.body
    }

    /// The names of the cut fields.
    pub(crate) fn fields(&self) -> Vec<&'static str> {
        [
            ("target", self.target),
            ("reason", self.reason),
            ("headers", self.headers),
            ("body", self.body),
        ]
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(n, _)| n)
        .collect()
    }
}

/// `s` cut to at most `max` bytes (on a character boundary), its memory
/// given back; whether it was cut.
fn cut_to(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.shrink_to_fit();
    true
}

/// Headers cut to [`HEADERS_KEPT`] bytes of names and values, in order:
/// the header that crosses the line is cut, the rest are left out.
fn cut_headers(headers: &mut Vec<(String, String)>) -> bool {
    let mut left = HEADERS_KEPT;
    for i in 0..headers.len() {
        let (name, value) = &mut headers[i];
        if name.len() >= left {
            headers.truncate(i);
            headers.shrink_to_fit();
            return true;
        }
        left -= name.len();
        if cut_to(value, left) {
            headers.truncate(i + 1);
            headers.shrink_to_fit();
            return true;
        }
        left -= value.len();
    }
    false
}

impl Entry {
    /// The entry `r` makes, cut to what an entry keeps (id and time are
    /// given when it is recorded).
    fn kept(mut r: Record) -> Entry {
        let mut cut = Cut {
            target: cut_to(&mut r.target, TARGET_KEPT),
            reason: cut_to(&mut r.reason, REASON_KEPT),
            ..Cut::default()
        };
        if let Some(d) = r.detail.as_mut() {
            cut.headers = cut_headers(&mut d.headers);
            cut.body = d.body_read && d.body_bytes > BODY_KEPT;
        }
        Entry {
            id: 0,
            at_ms: 0,
            route: r.route,
            client: r.client,
            method: r.method,
            target: r.target,
            outcome: r.outcome,
            reason: r.reason,
            status: r.status,
            duration_ms: r.duration_ms,
            detail: r.detail,
            cut,
        }
    }

    /// About the memory it holds: what [`RING_BYTES`] counts.
    fn weight(&self) -> usize {
        let detail = self.detail.as_deref().map_or(0, |d| {
            std::mem::size_of::<Detail>()
                + d.headers
                    .iter()
                    .map(|(k, v)| k.capacity() + v.capacity() + 2 * 24)
                    .sum::<usize>()
                + d.body.capacity()
                + d.body_base64.capacity()
                + d.checks
                    .iter()
                    .map(|c| std::mem::size_of::<CheckLine>() + c.why.capacity())
                    .sum::<usize>()
        });
        // The Arc's counts and the allocator's rounding, roughly.
        std::mem::size_of::<Entry>() + 32 + self.target.capacity() + self.reason.capacity() + detail
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
