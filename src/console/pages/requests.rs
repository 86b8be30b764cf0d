//! The requests pages: the last requests with filters and paging, and one
//! request with every check's verdict, its headers and its body.

use std::sync::Arc;

use maud::{html, Markup};

use super::{cut_mark, footer, frame, visible, CUT, ROWS_ROOM};
use crate::console::paging::{self, Paging};
use crate::metrics::Outcome;
use crate::recent::{Entry, Page};

/// Characters of a target or reason a list row shows (the request's own
/// page shows all that was kept): long unbroken text makes a table slow
/// to lay out, and a row is for finding the request.
const ROW_CHARS: usize = 240;

/// A page of the last requests, with filters by route and outcome, and a
/// link to older ones.
pub(in crate::console) fn requests(
    list: &Page,
    routes: &[String],
    filter: (Option<&str>, Option<&str>),
    paging: Paging,
    csrf: &str,
) -> String {
    let filters = html! {
        form method="get" action="/requests" class="filters" {
            label { "route " select name="route" {
                option value="" { "any" }
                @for r in routes.iter().map(String::as_str).chain(["passthrough", "-"]) {
                    (choice(r, filter.0))
                }
            } }
            " "
            label { "outcome " select name="outcome" {
                option value="" { "any" }
                @for o in Outcome::ALL { (choice(o.as_str(), filter.1)) }
            } }
            " "
            button { "Filter" }
        }
    };
    let room = ROWS_ROOM.saturating_sub(filters.0.len());
    let (rows, shown) = paging::rows(&list.entries, room, request_row);
    let last = list.entries.get(..shown).and_then(|s| s.last());
    let older = last
        .filter(|_| list.more || shown < list.entries.len())
        .map(|last| {
            let filters = [("route", filter.0), ("outcome", filter.1)];
            paging.next("/requests", last.id, &filters)
        });
    let newest = paging.before.map(|_| "/requests");
    let body = html! {
        (filters)
        table id="requests" {
            tr { th { "time (UTC)" } th { "route" } th { "client" } th { "request" } th { "outcome" } th { "status" } th { "reason" } }
            (rows)
        }
        (footer(shown, "request(s)", older, newest))
    };
    frame("Requests", csrf, body)
}

/// A filter's option, chosen when it is the filter's value.
fn choice(value: &str, chosen: Option<&str>) -> Markup {
    html! { option value=(value) selected[chosen == Some(value)] { (value) } }
}

/// The start of `s` for a list row, with "…" when there is more and the
/// cut mark when what was kept was cut.
fn preview(s: &str, cut: bool) -> Markup {
    match s.char_indices().nth(ROW_CHARS) {
        Some((end, _)) => html! { (&s[..end]) "…" },
        None => html! { (s) (cut_mark(cut)) },
    }
}

fn request_row(e: &Arc<Entry>) -> Markup {
    let cut = e.cut();
    let e = e.view();
    html! {
        tr class={ "o-" (e.outcome) } {
            td { a href={ "/requests/" (e.id) } { (e.time) } }
            td { (e.route) }
            td { (e.client) }
            td { (e.method) " " (preview(e.target, cut.target)) }
            td { (e.outcome) }
            td { (e.status) }
            td { (preview(e.reason, cut.reason)) }
        }
    }
}

/// One request: what happened, and for a refusal every check's verdict,
/// the headers (credentials redacted) and the start of the body.
pub(in crate::console) fn request(e: &Entry, csrf: &str) -> String {
    let cut = e.cut();
    let e = e.view();
    let body = html! {
        dl {
            dt { "time" } dd { (e.time) }
            dt { "route" } dd { (e.route) }
            dt { "client" } dd { (e.client) }
            dt { "request" } dd { (e.method) " " (e.target) (cut_mark(cut.target)) }
            dt { "outcome" } dd class={ "o-" (e.outcome) } { (e.outcome) " (" (e.status) ")" }
            dt { "reason" } dd id="reason" { (e.reason) (cut_mark(cut.reason)) }
        }
        @if let Some(d) = e.detail {
            h3 { "Checks" }
            table id="checks" {
                tr { th { "check" } th { "verdict" } th { "why" } }
                @for c in &d.checks {
                    tr class={ "v-" (c.verdict) } { td { (c.check) } td { (c.verdict) } td { (c.why) } }
                }
            }
            h3 { "Headers" }
            table {
                @for (k, v) in &d.headers { tr { td { (k) } td { (v) } } }
                @if cut.headers { tr { td colspan="2" { (CUT) } } }
            }
            h3 { "Body" (body_note(d.body_read, d.body_bytes, d.body.len())) }
            pre { (visible(&d.body)) }
            p {
                a href={ "/api/requests/" (e.id) } { "as JSON" }
                " (what " code { "callgate explain --request" } " reads)"
            }
        }
    };
    frame(&format!("Request {}", e.id), csrf, body)
}

/// What the body heading says of the body: not read, cut, or its length.
fn body_note(read: bool, bytes: usize, kept: usize) -> String {
    match (read, bytes > kept) {
        (false, _) => " (not read: refused before the body)".to_owned(),
        (true, true) => format!(" (first 4 KiB of {bytes} bytes {CUT})"),
        (true, false) => format!(" ({bytes} bytes)"),
    }
}
