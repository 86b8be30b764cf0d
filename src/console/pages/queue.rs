//! The queue pages: pending and dead callbacks with retry and drop, and
//! one stored callback as it will be delivered.

use maud::{html, Markup};

use super::{footer, frame, store, visible, ROWS_ROOM};
use crate::console::data::{QueueItem, StoreLine};
use crate::console::paging::{self, Paging};

/// What the queue page is filtered by, and the last action's result.
pub(in crate::console) struct QueueFilters<'a> {
    pub(in crate::console) route: Option<&'a str>,
    pub(in crate::console) state: Option<String>,
    pub(in crate::console) done: Option<String>,
    pub(in crate::console) paging: Paging,
}

/// A button that POSTs to `path` with the session's CSRF token.
fn action(csrf: &str, path: &str, label: &str) -> Markup {
    html! {
        form method="post" action=(path) class="inline" {
            input type="hidden" name="csrf" value=(csrf);
            button { (label) }
        }
    }
}

/// Retry and drop, for one callback.
fn actions(csrf: &str, id: i64) -> Markup {
    html! {
        (action(csrf, &format!("/queue/{id}/retry"), "Retry"))
        (action(csrf, &format!("/queue/{id}/drop"), "Drop"))
    }
}

/// A page of pending and dead callbacks, each with retry and drop, and a
/// link to older ones.
pub(in crate::console) fn queue(
    (items, more): &(Vec<QueueItem>, bool),
    store_line: &StoreLine,
    f: &QueueFilters<'_>,
    csrf: &str,
) -> String {
    let head = html! {
        @if let Some(d) = &f.done { p class="done" id="done" { (d) } }
        (store(store_line))
        p {
            (action(csrf, "/queue/retry-dead", "Retry all dead")) " "
            @match (f.route, f.state.as_deref()) {
                (None, None) => "all callbacks",
                (r, s) => { "route " (r.unwrap_or("any")) ", state " (s.unwrap_or("any")) }
            }
        }
    };
    let room = ROWS_ROOM.saturating_sub(head.0.len());
    let (rows, shown) = paging::rows(items, room, |c| queue_row(c, csrf));
    let last = items.get(..shown).and_then(|s| s.last());
    let older = last.filter(|_| *more || shown < items.len()).map(|last| {
        let filters = [("route", f.route), ("state", f.state.as_deref())];
        f.paging.next("/queue", last.id as u64, &filters)
    });
    let body = html! {
        (head)
        table id="queue" {
            tr { th { "id" } th { "route" } th { "state" } th { "attempts" } th { "arrived (UTC)" } th { "next attempt" } th { "bytes" } th { "last error" } th {} }
            (rows)
        }
        (footer(shown, "callback(s)", older, None))
    };
    frame("Queue", csrf, body)
}

fn queue_row(c: &QueueItem, csrf: &str) -> Markup {
    html! {
        tr class={ "s-" (c.state) } {
            td { a href={ "/queue/" (c.id) } { (c.id) } }
            td { (c.route) }
            td { (c.state) }
            td { (c.attempts) }
            td { (c.arrived) }
            td { (c.next_attempt.as_deref().unwrap_or("-")) }
            td { (c.bytes) }
            td { (c.last_error.as_deref().unwrap_or("-")) }
            td { (actions(csrf, c.id)) }
        }
    }
}

/// One stored callback: its state and the request as it will be delivered.
pub(in crate::console) fn queue_item(c: &QueueItem, csrf: &str) -> String {
    let body = html! {
        dl {
            dt { "route" } dd { (c.route) }
            dt { "state" } dd { (c.state) " after " (c.attempts) " attempt(s)" }
            dt { "arrived" } dd { (c.arrived) }
            dt { "last error" } dd { (c.last_error.as_deref().unwrap_or("-")) }
        }
        p { (actions(csrf, c.id)) }
        @if let Some(d) = &c.detail {
            h3 { "Request" }
            p { (d.method) " " (d.target) " (verified: " (d.verified) ")" }
            table { @for (k, v) in &d.headers { tr { td { (k) } td { (v) } } } }
            h3 { "Body" }
            pre { (visible(&d.body)) }
        }
    };
    frame(&format!("Callback {}", c.id), csrf, body)
}
