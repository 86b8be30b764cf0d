//! The console's pages: server-rendered HTML over the values of `data.rs`,
//! no inline script or style (the CSP forbids them), the chart as SVG. The
//! stylesheet and script are compiled in.
//!
//! Every page is a maud template: each `(value)` spliced in is escaped by
//! the macro, so no value from outside can open an element or end an
//! attribute (every attribute is written double-quoted). `PreEscaped` is
//! for markup maud made itself ([`paging::rows`]) and nothing else.

mod queue;
mod requests;

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use super::data::{MinuteLine, Overview, StoreLine};
use super::paging;
use super::{respond, ConsoleResponse};
use crate::metrics::Outcome;

pub(super) use queue::{queue, queue_item, QueueFilters};
pub(super) use requests::{request, requests};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Room for a page's rows: the cap less the frame, the filters and the footer.
const ROWS_ROOM: usize = paging::MAX_ANSWER - 64 * 1024;

/// What a cut field shows after what was kept.
const CUT: &str = "… (cut)";

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

/// A body as the page shows it: control characters (a terminal's escape
/// sequences, say) written out as `\xNN`, so that nothing is invisible.
/// Not for safety (maud escapes the markup): for the reader.
fn visible(s: &str) -> Cow<'_, str> {
    let hidden = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.contains(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match hidden(c) {
            true => out.push_str(&format!("\\x{:02x}", c as u32)),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The frame every page shares: title, navigation, logout.
fn frame(title: &str, csrf: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · callgate" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    h1 { "callgate" }
                    @if !csrf.is_empty() {
                        nav {
                            a href="/" { "Overview" } " "
                            a href="/requests" { "Requests" } " "
                            a href="/queue" { "Queue" }
                            form method="post" action="/logout" class="inline" {
                                input type="hidden" name="csrf" value=(csrf);
                                button { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h2 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// The login form, with why the last attempt failed.
pub(super) fn login(error: Option<&str>) -> String {
    let body = html! {
        @if let Some(e) = error {
            p class="error" id="error" { (e) }
        }
        form method="post" action="/login" id="login" {
            label {
                "Password "
                input type="password" name="password" autocomplete="current-password" autofocus;
            }
            button type="submit" { "Log in" }
        }
    };
    frame("Log in", "", body)
}

pub(super) fn missing(what: &str, id: &str, csrf: &str) -> String {
    frame("Not found", csrf, html! { p { "No " (what) " " (id) "." } })
}

pub(super) fn unavailable(why: &str, csrf: &str) -> String {
    frame(
        "Store unavailable",
        csrf,
        html! { p class="error" { (why) } },
    )
}

/// Routes, the last hour's chart, certificates, the store, the last reload.
pub(super) fn overview(o: &Overview, csrf: &str) -> String {
    let body = html! {
        section {
            h3 { "Routes" }
            table {
                tr { th { "route" } th { "path" } th { "preset" } th { "checks" } th { "delivery" } }
                @for r in &o.routes {
                    tr {
                        td { a href={ "/requests?route=" (url_param(&r.name)) } { (r.name) } }
                        td { (r.path) }
                        td { (r.preset.unwrap_or("-")) }
                        td { (r.checks.join(", ")) @if !r.enforce { " (report-only)" } }
                        td { (r.delivery) }
                    }
                }
            }
        }
        section { h3 { "Requests per minute, last hour" } (chart(&o.minutes)) }
        section {
            h3 { "Certificates" }
            table {
                tr { th { "host" } th { "expires" } th { "days left" } th { "renewal" } }
                @for c in &o.certificates {
                    tr class=[(c.days_left < 14).then_some("warn")] {
                        td { (c.host) } td { (c.not_after) } td { (c.days_left) } td { (c.renewal) }
                    }
                }
            }
        }
        (store(&o.store))
        section {
            h3 { "Config" }
            p { "last " (o.reload.result) ": " (o.reload.at) }
            @if let Some(e) = &o.reload.error {
                pre class="error" { (e) }
            }
        }
    };
    frame("Overview", csrf, body)
}

/// A value as one query parameter.
fn url_param(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn store(s: &StoreLine) -> Markup {
    html! {
        section {
            h3 { "Store" }
            p id="store" { (s.state) }
            @if !s.queues.is_empty() {
                table {
                    tr { th { "route" } th { "pending" } th { "dead" } th { "oldest pending" } }
                    @for q in &s.queues {
                        @let r = url_param(&q.route);
                        tr {
                            td { (q.route) }
                            td { a href={ "/queue?route=" (r) "&state=pending" } { (q.pending) } }
                            td { a href={ "/queue?route=" (r) "&state=dead" } { (q.dead) } }
                            td { (q.oldest.as_deref().unwrap_or("-")) }
                        }
                    }
                }
            }
        }
    }
}

/// Stacked bars, one a minute, colored by outcome (the stylesheet's
/// `o-<outcome>` classes), with a legend of the outcomes seen.
fn chart(minutes: &[MinuteLine]) -> Markup {
    const W: usize = 8;
    const H: f64 = 120.0;
    let max = minutes
        .iter()
        .map(|m| m.counts.values().sum::<u32>())
        .max()
        .unwrap_or(0)
        .max(1);
    let seen: Vec<Outcome> = Outcome::ALL
        .into_iter()
        .filter(|o| minutes.iter().any(|m| m.counts.contains_key(o.as_str())))
        .collect();
    // Each minute's bars, stacked from the bottom: (x, y, height, minute, outcome, count).
    let mut bars = Vec::new();
    for (i, m) in minutes.iter().enumerate() {
        let mut y = H;
        for o in Outcome::ALL {
            let Some(&n) = m.counts.get(o.as_str()) else {
                continue;
            };
            let h = f64::from(n) / f64::from(max) * H;
            y -= h;
            bars.push((i * W, y, h, &m.at, o.as_str(), n));
        }
    }
    let view_box = format!("0 0 {} {}", minutes.len() * W, H + 1.0);
    html! {
        svg class="chart" viewBox=(view_box) role="img" aria-label="requests per minute by outcome" xmlns="http://www.w3.org/2000/svg" {
            @for (x, y, h, at, o, n) in bars {
                rect class={ "o-" (o) } x=(x) y=(format!("{y:.1}")) width=(W - 1) height=(format!("{h:.1}")) {
                    title { (at) " " (o) ": " (n) }
                }
            }
        }
        p class="legend" {
            "peak " (max) "/min "
            @for (i, o) in seen.iter().enumerate() {
                @if i > 0 { " " }
                span class={ "key o-" (o.as_str()) } { (o.as_str()) }
            }
        }
    }
}

/// The cut mark, when what was kept was cut.
fn cut_mark(cut: bool) -> &'static str {
    match cut {
        true => CUT,
        false => "",
    }
}

/// The paragraph under a page of rows: how many, and the links on.
fn footer(shown: usize, what: &str, older: Option<String>, newest: Option<&str>) -> Markup {
    html! {
        p {
            (shown) " " (what)
            @if let Some(next) = older { " · " a href=(next) id="older" { "older →" } }
            @if let Some(newest) = newest { " · " a href=(newest) { "newest" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_control_bytes_shown() {
        let html = unavailable("<script>alert(\"x\")</script>&", "c\"srf");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;"));
        assert!(html.contains(r#"value="c&quot;srf""#), "{html}");
        assert_eq!(visible("a\u{1b}[2J\tb\n"), "a\\x1b[2J\tb\n");
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
