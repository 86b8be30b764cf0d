//! The operator's console on the admin listener: an overview, the last
//! requests (a refusal opens to its per-check breakdown), the queue with
//! retry and drop; the same data as JSON under `/api/`. Off unless `[admin]
//! console` sets a password. Browsers log in for a session cookie
//! (HttpOnly, SameSite=Strict) and send its CSRF token with every POST;
//! scripts send `Authorization: Bearer <password>`. Everything it serves
//! is in the binary; its Content-Security-Policy allows nothing else.

mod data;
mod login;
mod pages;
pub(crate) mod paging;

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::proxy::RequestBody;
use crate::queue::ops::{self, ActError, Action};
use crate::queue::State;
use crate::sessions::{csrf_matches, Login};
use crate::state::Shared;
use login::{caller, field, login, logout, read_form, retry_after, throttled_page, Caller};
use paging::Paging;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's answer.
pub(crate) type ConsoleResponse = Response<Full<Bytes>>;

/// Answer a request for the console; None when the console is off (the
/// admin listener answers 404 then, as before).
pub(crate) async fn handle(
    shared: &Shared,
    client: IpAddr,
    req: Request<RequestBody>,
) -> Option<ConsoleResponse> {
    let password = shared.config.load().admin.console_password?;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let api = segments.first() == Some(&"api");
    if let Some(asset) = pages::asset(&path) {
        return Some(asset);
    }
    if path == "/login" {
        let from = (client, &parts.method, &parts.headers);
        return Some(login(shared, from, body, &password).await);
    }
    let caller = caller(shared, client, &parts.headers, &password);
    let login = match caller {
        Caller::Throttled(wait) if api => {
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong passwords from this address: wait a minute",
            );
            retry_after(&mut r, wait);
            return Some(r);
        }
        Caller::Throttled(wait) => return Some(throttled_page(wait)),
        Caller::Nobody if api => {
            return Some(json_error(
                StatusCode::UNAUTHORIZED,
                "log in, or send Authorization: Bearer <password>",
            ))
        }
        Caller::Nobody => return Some(page(StatusCode::UNAUTHORIZED, pages::login(None))),
        Caller::Session(ref l) => Some(l.clone()),
        Caller::Bearer => None,
    };
    let form = match parts.method {
        Method::POST => match read_form(body).await {
            Some(form) => form,
            None => return Some(text(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n")),
        },
        _ => Vec::new(),
    };
    // A session's POST carries its CSRF token, as a header or a form field.
    if let Some(l) = login.as_ref().filter(|_| parts.method == Method::POST) {
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| field(&form, "csrf"));
        if !given.is_some_and(|g| csrf_matches(&g, &l.csrf)) {
            return Some(text(StatusCode::FORBIDDEN, "missing or wrong CSRF token\n"));
        }
    }
    let query = parts.uri.query().unwrap_or("");
    let ctx = Ctx {
        shared,
        login: login.as_ref(),
        query,
    };
    Some(route(&ctx, &parts.method, &segments).await)
}

/// One authenticated console request.
struct Ctx<'a> {
    shared: &'a Shared,
    /// None for a bearer (script) caller.
    login: Option<&'a Login>,
    query: &'a str,
}

impl Ctx<'_> {
    fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }

    fn paging(&self) -> Paging {
        Paging::of(|name| self.param(name))
    }

    fn csrf(&self) -> &str {
        self.login.map_or("", |l| l.csrf.as_str())
    }
}

async fn route(ctx: &Ctx<'_>, method: &Method, segments: &[&str]) -> ConsoleResponse {
    match (method, segments) {
        (&Method::GET, [""]) => {
            let o = data::overview(ctx.shared).await;
            page(StatusCode::OK, pages::overview(&o, ctx.csrf()))
        }
        (&Method::GET, ["api", "overview"]) => json(&data::overview(ctx.shared).await),
        (&Method::GET, ["requests"]) => requests_page(ctx),
        (&Method::GET, ["api", "requests"]) => requests_json(ctx),
        (&Method::GET, ["api", "health"]) => json(&data::health(ctx.shared).await),
        (&Method::GET, ["requests", id]) => match request_entry(ctx, id) {
            Some(e) => page(StatusCode::OK, pages::request(&e, ctx.csrf())),
            None => page(
                StatusCode::NOT_FOUND,
                pages::missing("request", id, ctx.csrf()),
            ),
        },
        (&Method::GET, ["api", "requests", id]) => match request_entry(ctx, id) {
            Some(e) => json(&e.view()),
            None => json_error(
                StatusCode::NOT_FOUND,
                "no such request (kept: the last requests_kept)",
            ),
        },
        (&Method::GET, ["queue"]) => queue_page(ctx).await,
        (&Method::GET, ["api", "queue"]) => queue_json(ctx).await,
        (&Method::GET, ["queue", id]) => queue_item(ctx, id, false).await,
        (&Method::GET, ["api", "queue", id]) => queue_item(ctx, id, true).await,
        (&Method::POST, ["logout"]) => logout(ctx),
        (&Method::POST, ["queue", rest @ ..]) => act(ctx, rest, false).await,
        (&Method::POST, ["api", "queue", rest @ ..]) => act(ctx, rest, true).await,
        (_, [""] | ["requests" | "queue", ..] | ["api", ..] | ["logout"]) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn requests_page(ctx: &Ctx<'_>) -> ConsoleResponse {
    let (route, outcome) = (ctx.param("route"), ctx.param("outcome"));
    let filter = (route.as_deref(), outcome.as_deref());
    let paging = ctx.paging();
    let list = data::requests(ctx.shared, filter, paging.before, paging.limit);
    let routes = route_names(ctx.shared);
    let html = pages::requests(&list, &routes, filter, paging, ctx.csrf());
    page(StatusCode::OK, html)
}

fn requests_json(ctx: &Ctx<'_>) -> ConsoleResponse {
    let (route, outcome) = (ctx.param("route"), ctx.param("outcome"));
    let filter = (route.as_deref(), outcome.as_deref());
    let paging = ctx.paging();
    let list = data::requests(ctx.shared, filter, paging.before, paging.limit);
    let (body, shown) = paging::json_array(list.entries.iter().map(|e| e.view()));
    let mut r = respond(StatusCode::OK, "application/json", body);
    if let Some(last) = list.entries.get(..shown).and_then(|s| s.last()) {
        if list.more || shown < list.entries.len() {
            let filters = [("route", filter.0), ("outcome", filter.1)];
            link_next(&mut r, &paging.next("/api/requests", last.id, &filters));
        }
    }
    r
}

/// `Link: <next>; rel="next"`.
fn link_next(r: &mut ConsoleResponse, next: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
        r.headers_mut().insert(header::LINK, v);
    }
}

fn route_names(shared: &Shared) -> Vec<String> {
    shared
        .config
        .load()
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect()
}

fn request_entry(ctx: &Ctx<'_>, id: &str) -> Option<std::sync::Arc<crate::recent::Entry>> {
    let id: u64 = id.parse().ok()?;
    ctx.shared.recent.load().as_ref()?.get(id)
}

fn state_param(ctx: &Ctx<'_>) -> Option<State> {
    match ctx.param("state").as_deref() {
        Some("pending") => Some(State::Pending),
        Some("dead") => Some(State::Dead),
        _ => None,
    }
}

async fn queue_page(ctx: &Ctx<'_>) -> ConsoleResponse {
    let store = match ctx.shared.store() {
        Ok(s) => s,
        Err(e) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::unavailable(&e.to_string(), ctx.csrf()),
            )
        }
    };
    let route = ctx.param("route");
    let paging = ctx.paging();
    let found = data::queue_items(
        &store,
        (route.clone(), state_param(ctx)),
        paging.before,
        paging.limit,
    );
    let items = match found.await {
        Ok(items) => items,
        Err(e) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::unavailable(&e.to_string(), ctx.csrf()),
            )
        }
    };
    let overview = data::overview(ctx.shared).await;
    let filters = pages::QueueFilters {
        route: route.as_deref(),
        state: ctx.param("state"),
        done: ctx.param("done"),
        paging,
    };
    page(
        StatusCode::OK,
        pages::queue(&items, &overview.store, &filters, ctx.csrf()),
    )
}

async fn queue_json(ctx: &Ctx<'_>) -> ConsoleResponse {
    let paging = ctx.paging();
    let (route, state) = (ctx.param("route"), state_param(ctx));
    let items = match ctx.shared.store() {
        Ok(store) => {
            let filter = (route.clone(), state);
            data::queue_items(&store, filter, paging.before, paging.limit).await
        }
        Err(e) => Err(e),
    };
    let (items, more) = match items {
        Ok(found) => found,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let (body, shown) = paging::json_array(&items);
    let mut r = respond(StatusCode::OK, "application/json", body);
    if let Some(last) = items.get(..shown).and_then(|s| s.last()) {
        if more || shown < items.len() {
            let state = ctx.param("state");
            let filters = [("route", route.as_deref()), ("state", state.as_deref())];
            link_next(&mut r, &paging.next("/api/queue", last.id as u64, &filters));
        }
    }
    r
}

async fn queue_item(ctx: &Ctx<'_>, id: &str, api: bool) -> ConsoleResponse {
    let config = ctx.shared.config.load_full();
    let found = match (id.parse::<i64>(), ctx.shared.store()) {
        (Ok(id), Ok(store)) => data::queue_item_detail(&store, &config, id)
            .await
            .map_err(|e| e.to_string()),
        (Err(_), _) => Ok(None),
        (_, Err(e)) => Err(e.to_string()),
    };
    match (found, api) {
        (Ok(Some(item)), true) => json(&item),
        (Ok(Some(item)), false) => page(StatusCode::OK, pages::queue_item(&item, ctx.csrf())),
        (Ok(None), true) => json_error(StatusCode::NOT_FOUND, "no such callback"),
        (Ok(None), false) => page(
            StatusCode::NOT_FOUND,
            pages::missing("callback", id, ctx.csrf()),
        ),
        (Err(e), true) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
        (Err(e), false) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::unavailable(&e, ctx.csrf()),
        ),
    }
}

/// Retry, drop, retry every dead one: the CLI's code path.
async fn act(ctx: &Ctx<'_>, rest: &[&str], api: bool) -> ConsoleResponse {
    let action = match rest {
        ["retry-dead"] => Action::RetryAllDead,
        [id, "retry"] => match id.parse() {
            Ok(id) => Action::Retry(id),
            Err(_) => return text(StatusCode::NOT_FOUND, "not found\n"),
        },
        [id, "drop"] => match id.parse() {
            Ok(id) => Action::Drop(id),
            Err(_) => return text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let done = match ctx.shared.store() {
        Ok(store) => ops::act(&store, action).await,
        Err(e) => Err(ActError::Store(e)),
    };
    if done.is_ok() && !matches!(action, Action::Drop(_)) {
        // Retried callbacks go out now, not at the worker's next look.
        for r in ctx
            .shared
            .config
            .load()
            .routes
            .iter()
            .filter(|r| r.stores())
        {
            ctx.shared.queue_wake(&r.name).notify_one();
        }
    }
    let status = match &done {
        Ok(_) => StatusCode::OK,
        Err(ActError::NotFound(_)) => StatusCode::NOT_FOUND,
        Err(ActError::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let message = match done {
        Ok(m) => m,
        Err(e) => e.to_string(),
    };
    match api {
        true if status == StatusCode::OK => json(&serde_json::json!({ "done": message })),
        true => json_error(status, &message),
        false => {
            let back: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("done", &message)
                .finish();
            see_other(&format!("/queue?{back}"), None)
        }
    }
}

/// A response with the console's headers: no caching, no framing, no
/// script or style from anywhere but itself.
fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> ConsoleResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(status: StatusCode, html: String) -> ConsoleResponse {
    respond(status, "text/html; charset=utf-8", html)
}

fn text(status: StatusCode, body: &'static str) -> ConsoleResponse {
    respond(status, "text/plain; charset=utf-8", body)
}

fn json<T: Serialize + ?Sized>(value: &T) -> ConsoleResponse {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot serialize\n"),
    }
}

fn json_error(status: StatusCode, error: &str) -> ConsoleResponse {
    let body = serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default();
    respond(status, "application/json", body)
}

fn see_other(location: &str, cookie: Option<String>) -> ConsoleResponse {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(l) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}
