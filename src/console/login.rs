//! Who is asking the console: a browser's session (the login form, the
//! cookie, logout), a script's bearer password, or a client throttled for
//! guessing; and the small forms they post.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::{page, pages, see_other, text, ConsoleResponse, Ctx};
use crate::proxy::RequestBody;
use crate::sessions::{password_matches, Login, Refused};
use crate::state::Shared;

/// The session cookie's name.
pub(super) const COOKIE: &str = "callgate_session";
/// A login form or an action's form is small.
const MAX_FORM_BYTES: usize = 8 * 1024;
/// Who is asking.
pub(super) enum Caller {
    /// A script with the password as a bearer token: no cookie, no CSRF.
    Bearer,
    /// A browser's live session, with the CSRF token its forms carry.
    Session(Login),
    Nobody,
    /// Too many wrong passwords or bearers from this address lately.
    Throttled(Duration),
}

pub(super) fn logout(ctx: &Ctx<'_>) -> ConsoleResponse {
    if let Some(l) = ctx.login {
        ctx.shared.sessions.logout(&l.id);
    }
    see_other(
        "/login",
        Some(format!(
            "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        )),
    )
}

pub(super) fn retry_after(r: &mut ConsoleResponse, wait: Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

pub(super) fn throttled_page(wait: Duration) -> ConsoleResponse {
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        pages::login(Some("too many wrong passwords: wait a minute")),
    );
    retry_after(&mut r, wait);
    r
}

/// `GET /login`: the form; `POST /login`: a session, or why not.
pub(super) async fn login(
    shared: &Shared,
    (client, method, headers): (IpAddr, &Method, &HeaderMap),
    body: RequestBody,
    password: &[u8; 32],
) -> ConsoleResponse {
    match *method {
        Method::GET | Method::HEAD => return page(StatusCode::OK, pages::login(None)),
        Method::POST => {}
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
    // Another origin's page, in the operator's own browser, shares the
    // operator's address: its guesses must not count against it.
    if from_another_origin(headers) {
        return text(
            StatusCode::FORBIDDEN,
            "a login from another origin's page is refused\n",
        );
    }
    let Some(form) = read_form(body).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n");
    };
    let given = field(&form, "password").unwrap_or_default();
    let ok = || password_matches(given.as_bytes(), password);
    match shared.sessions.login(client, ok, Instant::now()) {
        Ok(l) => {
            // The admin listener is plain HTTP (loopback, or an SSH tunnel):
            // a Secure cookie would never be sent back.
            let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", l.id);
            tracing::info!("console: logged in");
            see_other("/", Some(cookie))
        }
        Err(Refused::Wrong) => {
            tracing::warn!(%client, "console: wrong password");
            page(
                StatusCode::UNAUTHORIZED,
                pages::login(Some("wrong password")),
            )
        }
        Err(Refused::Throttled(wait)) => throttled_page(wait),
    }
}

/// A login posted by another origin's page (a form, a no-cors fetch), as
/// the browser says (`Sec-Fetch-Site`, else `Origin` against `Host`).
/// Scripts and curl send neither.
fn from_another_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, a)| a) != Some(host),
        _ => false,
    }
}

/// Who sent these headers. A wrong bearer (any Authorization that is not
/// the password) counts as a wrong password from `client`.
pub(super) fn caller(
    shared: &Shared,
    client: IpAddr,
    headers: &HeaderMap,
    password: &[u8; 32],
) -> Caller {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let now = Instant::now();
        if let Some(wait) = shared.sessions.throttled(client, now) {
            return Caller::Throttled(wait);
        }
        let given = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer "));
        if given.is_some_and(|p| password_matches(p.trim().as_bytes(), password)) {
            return Caller::Bearer;
        }
        tracing::warn!(%client, "console: wrong bearer");
        shared.sessions.failed(client, now);
        return Caller::Nobody;
    }
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned());
    match id.and_then(|id| Some((shared.sessions.csrf(&id, Instant::now())?, id))) {
        Some((csrf, id)) => Caller::Session(Login { id, csrf }),
        None => Caller::Nobody,
    }
}

/// A urlencoded form, bounded; None if it is too large.
pub(super) async fn read_form(body: RequestBody) -> Option<Vec<(String, String)>> {
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .ok()?
        .to_bytes();
    Some(
        form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

pub(super) fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}
