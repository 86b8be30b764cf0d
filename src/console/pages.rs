//! The console's pages: server-rendered HTML over the values of `data.rs`,
//! every value escaped, no inline script or style (the CSP forbids them),
//! the chart as SVG. The stylesheet and script are compiled in.

use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;

use super::data::{MinuteLine, Overview, QueueItem, StoreLine};
use super::paging::{self, Paging, MAX_ANSWER};
use super::{respond, ConsoleResponse};
use crate::metrics::Outcome;
use crate::recent::{Entry, Page};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The compiled-in stylesheet and script, to anyone (they hold no data).
pub(super) fn asset(path: &str) -> Option<ConsoleResponse> {
    let (ct, body) = match path {
        "/static/console.css" => ("text/css; charset=utf-8", CSS),
        "/static/console.js" => ("text/javascript; charset=utf-8", JS),
        _ => return None,
    };
    Some(respond(
        StatusCode::OK,
        ct,
        Bytes::from_static(body.as_bytes()),
    ))
}

/// Text as HTML: every character that could end an attribute or open a tag.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn url_param(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The frame every page shares: title, navigation, logout.
fn frame(title: &str, csrf: &str, body: &str) -> String {
    let nav = match csrf.is_empty() {
        true => String::new(),
        false => format!(
            r#"<nav><a href="/">Overview</a> <a href="/requests">Requests</a> <a href="/queue">Queue</a>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button>Log out</button></form></nav>"#,
            esc(csrf)
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t} · callgate</title>
<link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script></head>
<body><header><h1>callgate</h1>{nav}</header><main><h2>{t}</h2>
{body}</main></body></html>
"#,
        t = esc(title)
    )
}

/// The login form, with why the last attempt failed.
pub(super) fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" id="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    frame(
        "Log in",
        "",
        &format!(
            r#"{error}<form method="post" action="/login" id="login">
<label>Password <input type="password" name="password" autocomplete="current-password" autofocus></label>
<button type="submit">Log in</button></form>"#
        ),
    )
}

pub(super) fn missing(what: &str, id: &str, csrf: &str) -> String {
    frame(
        "Not found",
        csrf,
        &format!("<p>No {} {}.</p>", esc(what), esc(id)),
    )
}

pub(super) fn unavailable(why: &str, csrf: &str) -> String {
    frame(
        "Store unavailable",
        csrf,
        &format!(r#"<p class="error">{}</p>"#, esc(why)),
    )
}

/// Routes, the last hour's chart, certificates, the store, the last reload.
pub(super) fn overview(o: &Overview, csrf: &str) -> String {
    let mut b = String::from(
        "<section><h3>Routes</h3><table><tr><th>route</th><th>path</th><th>preset</th><th>checks</th><th>delivery</th></tr>",
    );
    for r in &o.routes {
        let enforce = if r.enforce { "" } else { " (report-only)" };
        let _ = write!(
            b,
            r#"<tr><td><a href="/requests?route={}">{}</a></td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>"#,
            url_param(&r.name),
            esc(&r.name),
            esc(&r.path),
            esc(r.preset.unwrap_or("-")),
            esc(&r.checks.join(", ")),
            enforce,
            esc(r.delivery)
        );
    }
    b.push_str("</table></section>");
    let _ = write!(
        b,
        "<section><h3>Requests per minute, last hour</h3>{}</section>",
        chart(&o.minutes)
    );
    b.push_str("<section><h3>Certificates</h3><table><tr><th>host</th><th>expires</th><th>days left</th><th>renewal</th></tr>");
    for c in &o.certificates {
        let class = if c.days_left < 14 {
            r#" class="warn""#
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.host),
            esc(&c.not_after),
            c.days_left,
            esc(&c.renewal)
        );
    }
    b.push_str("</table></section>");
    b.push_str(&store(&o.store));
    let error = o
        .reload
        .error
        .as_deref()
        .map(|e| format!(r#"<pre class="error">{}</pre>"#, esc(e)))
        .unwrap_or_default();
    let _ = write!(
        b,
        "<section><h3>Config</h3><p>last {}: {}</p>{error}</section>",
        esc(o.reload.result),
        esc(&o.reload.at)
    );
    frame("Overview", csrf, &b)
}

fn store(s: &StoreLine) -> String {
    let mut b = format!(
        "<section><h3>Store</h3><p id=\"store\">{}</p>",
        esc(&s.state)
    );
    if !s.queues.is_empty() {
        b.push_str(
            "<table><tr><th>route</th><th>pending</th><th>dead</th><th>oldest pending</th></tr>",
        );
        for q in &s.queues {
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td><a href="/queue?route={r}&amp;state=pending">{}</a></td><td><a href="/queue?route={r}&amp;state=dead">{}</a></td><td>{}</td></tr>"#,
                esc(&q.route),
                q.pending,
                q.dead,
                esc(q.oldest.as_deref().unwrap_or("-")),
                r = url_param(&q.route),
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");
    b
}

/// Stacked bars, one a minute, colored by outcome (the stylesheet's
/// `o-<outcome>` classes), with a legend of the outcomes seen.
fn chart(minutes: &[MinuteLine]) -> String {
    const W: usize = 8;
    const H: f64 = 120.0;
    let max = minutes
        .iter()
        .map(|m| m.counts.values().sum::<u32>())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="requests per minute by outcome" xmlns="http://www.w3.org/2000/svg">"#,
        minutes.len() * W,
        H + 1.0
    );
    let mut seen = Vec::new();
    for (i, m) in minutes.iter().enumerate() {
        let mut y = H;
        for o in Outcome::ALL {
            let Some(&n) = m.counts.get(o.as_str()) else {
                continue;
            };
            if !seen.contains(&o) {
                seen.push(o);
            }
            let h = f64::from(n) / f64::from(max) * H;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect class="o-{}" x="{}" y="{y:.1}" width="{}" height="{h:.1}"><title>{} {}: {n}</title></rect>"#,
                o.as_str(),
                i * W,
                W - 1,
                esc(&m.at),
                o.as_str()
            );
        }
    }
    svg.push_str("</svg>");
    let legend: Vec<String> = seen
        .iter()
        .map(|o| format!(r#"<span class="key o-{0}">{0}</span>"#, o.as_str()))
        .collect();
    format!(
        "{svg}<p class=\"legend\">peak {max}/min {}</p>",
        legend.join(" ")
    )
}

/// Room for a page's rows: the cap less the frame, the filters and the footer.
const ROWS_ROOM: usize = MAX_ANSWER - 64 * 1024;

/// What a cut field shows after what was kept.
const CUT: &str = "… (cut)";

fn cut_mark(cut: bool) -> &'static str {
    if cut {
        CUT
    } else {
        ""
    }
}

/// A page of the last requests, with filters by route and outcome, and a
/// link to older ones.
pub(super) fn requests(
    list: &Page,
    routes: &[String],
    filter: (Option<&str>, Option<&str>),
    paging: Paging,
    csrf: &str,
) -> String {
    let option = |value: &str, chosen: Option<&str>| {
        let sel = if chosen == Some(value) {
            " selected"
        } else {
            ""
        };
        format!(r#"<option value="{0}"{sel}>{0}</option>"#, esc(value))
    };
    let mut b = String::from(
        r#"<form method="get" action="/requests" class="filters"><label>route <select name="route"><option value="">any</option>"#,
    );
    for r in routes
        .iter()
        .map(String::as_str)
        .chain(["passthrough", "-"])
    {
        b.push_str(&option(r, filter.0));
    }
    b.push_str(
        r#"</select></label> <label>outcome <select name="outcome"><option value="">any</option>"#,
    );
    for o in Outcome::ALL {
        b.push_str(&option(o.as_str(), filter.1));
    }
    b.push_str(r#"</select></label> <button>Filter</button></form>"#);
    b.push_str("<table id=\"requests\"><tr><th>time (UTC)</th><th>route</th><th>client</th><th>request</th><th>outcome</th><th>status</th><th>reason</th></tr>");
    let room = ROWS_ROOM.saturating_sub(b.len());
    let (rows, shown) = paging::rows(&list.entries, room, request_row);
    b.push_str(&rows);
    let _ = write!(b, "</table><p>{shown} request(s)");
    let last = list.entries.get(..shown).and_then(|s| s.last());
    if let Some(last) = last.filter(|_| list.more || shown < list.entries.len()) {
        let next = paging.next(
            "/requests",
            last.id,
            &[("route", filter.0), ("outcome", filter.1)],
        );
        let _ = write!(b, r#" · <a href="{}" id="older">older →</a>"#, esc(&next));
    }
    if paging.before.is_some() {
        b.push_str(r#" · <a href="/requests">newest</a>"#);
    }
    b.push_str("</p>");
    frame("Requests", csrf, &b)
}

/// Characters of a target or reason a list row shows (the request's own
/// page shows all that was kept): long unbroken text makes a table slow
/// to lay out, and a row is for finding the request.
const ROW_CHARS: usize = 240;

/// The start of `s` for a list row, escaped, with "…" when there is more
/// and the cut mark when what was kept was cut.
fn preview(s: &str, cut: bool) -> String {
    match s.char_indices().nth(ROW_CHARS) {
        Some((end, _)) => format!("{}…", esc(&s[..end])),
        None => format!("{}{}", esc(s), cut_mark(cut)),
    }
}

fn request_row(e: &Arc<Entry>) -> String {
    let cut = e.cut();
    let e = e.view();
    format!(
        r#"<tr class="o-{o}"><td><a href="/requests/{id}">{}</a></td><td>{}</td><td>{}</td><td>{} {}</td><td>{o}</td><td>{}</td><td>{}</td></tr>"#,
        esc(&e.time),
        esc(e.route),
        esc(&e.client),
        esc(e.method),
        preview(e.target, cut.target),
        e.status,
        preview(e.reason, cut.reason),
        id = e.id,
        o = esc(e.outcome),
    )
}

/// One request: what happened, and for a refusal every check's verdict,
/// the headers (credentials redacted) and the start of the body.
pub(super) fn request(e: &Entry, csrf: &str) -> String {
    let cut = e.cut();
    let e = e.view();
    let mut b = format!(
        r#"<dl><dt>time</dt><dd>{}</dd><dt>route</dt><dd>{}</dd><dt>client</dt><dd>{}</dd><dt>request</dt><dd>{} {}{}</dd><dt>outcome</dt><dd class="o-{o}">{o} ({})</dd><dt>reason</dt><dd id="reason">{}{}</dd></dl>"#,
        esc(&e.time),
        esc(e.route),
        esc(&e.client),
        esc(e.method),
        esc(e.target),
        cut_mark(cut.target),
        e.status,
        esc(e.reason),
        cut_mark(cut.reason),
        o = esc(e.outcome),
    );
    if let Some(d) = e.detail {
        b.push_str("<h3>Checks</h3><table id=\"checks\"><tr><th>check</th><th>verdict</th><th>why</th></tr>");
        for c in &d.checks {
            let _ = write!(
                b,
                r#"<tr class="v-{v}"><td>{}</td><td>{v}</td><td>{}</td></tr>"#,
                esc(c.check),
                esc(&c.why),
                v = esc(c.verdict)
            );
        }
        b.push_str("</table><h3>Headers</h3><table>");
        for (k, v) in &d.headers {
            let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
        }
        if cut.headers {
            let _ = write!(b, "<tr><td colspan=\"2\">{CUT}</td></tr>");
        }
        let cut = match (d.body_read, d.body_bytes > d.body.len()) {
            (false, _) => " (not read: refused before the body)".to_owned(),
            (true, true) => format!(" (first 4 KiB of {} bytes {CUT})", d.body_bytes),
            (true, false) => format!(" ({} bytes)", d.body_bytes),
        };
        let _ = write!(
            b,
            "</table><h3>Body{cut}</h3><pre>{}</pre><p><a href=\"/api/requests/{}\">as JSON</a> (what <code>callgate explain --request</code> reads)</p>",
            esc(&d.body),
            e.id
        );
    }
    frame(&format!("Request {}", e.id), csrf, &b)
}

/// What the queue page is filtered by, and the last action's result.
pub(super) struct QueueFilters<'a> {
    pub(super) route: Option<&'a str>,
    pub(super) state: Option<String>,
    pub(super) done: Option<String>,
    pub(super) paging: Paging,
}

fn action(csrf: &str, path: &str, label: &str) -> String {
    format!(
        r#"<form method="post" action="{}" class="inline"><input type="hidden" name="csrf" value="{}"><button>{}</button></form>"#,
        esc(path),
        esc(csrf),
        esc(label)
    )
}

/// A page of pending and dead callbacks, each with retry and drop, and a
/// link to older ones.
pub(super) fn queue(
    (items, more): &(Vec<QueueItem>, bool),
    store_line: &StoreLine,
    f: &QueueFilters<'_>,
    csrf: &str,
) -> String {
    let mut b = f
        .done
        .as_deref()
        .map(|d| format!(r#"<p class="done" id="done">{}</p>"#, esc(d)))
        .unwrap_or_default();
    b.push_str(&store(store_line));
    let _ = write!(
        b,
        "<p>{} {}</p>",
        action(csrf, "/queue/retry-dead", "Retry all dead"),
        match (f.route, f.state.as_deref()) {
            (None, None) => "all callbacks".to_owned(),
            (r, s) => format!(
                "route {}, state {}",
                esc(r.unwrap_or("any")),
                esc(s.unwrap_or("any"))
            ),
        }
    );
    b.push_str("<table id=\"queue\"><tr><th>id</th><th>route</th><th>state</th><th>attempts</th><th>arrived (UTC)</th><th>next attempt</th><th>bytes</th><th>last error</th><th></th></tr>");
    let room = ROWS_ROOM.saturating_sub(b.len());
    let (rows, shown) = paging::rows(items, room, |c| queue_row(c, csrf));
    b.push_str(&rows);
    let _ = write!(b, "</table><p>{shown} callback(s)");
    let last = items.get(..shown).and_then(|s| s.last());
    if let Some(last) = last.filter(|_| *more || shown < items.len()) {
        let filters = [("route", f.route), ("state", f.state.as_deref())];
        let next = f.paging.next("/queue", last.id as u64, &filters);
        let _ = write!(b, r#" · <a href="{}" id="older">older →</a>"#, esc(&next));
    }
    b.push_str("</p>");
    frame("Queue", csrf, &b)
}

fn queue_row(c: &QueueItem, csrf: &str) -> String {
    format!(
        r#"<tr class="s-{}"><td><a href="/queue/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>"#,
        esc(c.state),
        esc(&c.route),
        esc(c.state),
        c.attempts,
        esc(&c.arrived),
        esc(c.next_attempt.as_deref().unwrap_or("-")),
        c.bytes,
        esc(c.last_error.as_deref().unwrap_or("-")),
        action(csrf, &format!("/queue/{}/retry", c.id), "Retry"),
        action(csrf, &format!("/queue/{}/drop", c.id), "Drop"),
        id = c.id,
    )
}

/// One stored callback: its state and the request as it will be delivered.
pub(super) fn queue_item(c: &QueueItem, csrf: &str) -> String {
    let mut b = format!(
        "<dl><dt>route</dt><dd>{}</dd><dt>state</dt><dd>{} after {} attempt(s)</dd><dt>arrived</dt><dd>{}</dd><dt>last error</dt><dd>{}</dd></dl><p>{}{}</p>",
        esc(&c.route),
        esc(c.state),
        c.attempts,
        esc(&c.arrived),
        esc(c.last_error.as_deref().unwrap_or("-")),
        action(csrf, &format!("/queue/{}/retry", c.id), "Retry"),
        action(csrf, &format!("/queue/{}/drop", c.id), "Drop"),
    );
    if let Some(d) = &c.detail {
        let _ = write!(
            b,
            "<h3>Request</h3><p>{} {} (verified: {})</p><table>",
            esc(&d.method),
            esc(&d.target),
            esc(&d.verified)
        );
        for (k, v) in &d.headers {
            let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
        }
        let _ = write!(b, "</table><h3>Body</h3><pre>{}</pre>", esc(&d.body));
    }
    frame(&format!("Callback {}", c.id), csrf, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_control_bytes() {
        let e = esc("<script>alert('x')</script>&\"\u{1b}[2J");
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('\''));
        assert!(!e.contains('\u{1b}'), "{e}");
        assert!(e.contains("&lt;script&gt;"));
    }

    #[test]
    fn pages_have_no_inline_script_or_style() {
        let html = login(Some("wrong <password>"));
        assert!(html.contains("wrong &lt;password&gt;"));
        for bad in ["<script>", "style=", "onload=", "onclick="] {
            assert!(!html.contains(bad), "{bad}");
        }
    }
}
