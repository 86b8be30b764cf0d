//! The admin listener (meant for 127.0.0.1): `GET /healthz`, `GET
//! /metrics`, and the console when `[admin] console` is set.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::proxy::RequestBody;
use crate::state::Shared;

/// `ok`, then the store's state when a route needs it. Serving is up
/// either way (direct routes do not need the store), so the status stays
/// 200 and the line says what queue routes will answer.
async fn health(shared: &Shared) -> String {
    if !shared.config.load().needs_store() {
        return "ok\n".to_owned();
    }
    let state = match shared.store() {
        Ok(store) => match store.health().await {
            Ok(()) => format!("ok ({})", store.describe()),
            Err(e) => format!("unavailable, queue routes answer 503: {e}"),
        },
        Err(e) => format!("unavailable, queue routes answer 503: {e}"),
    };
    format!("ok\nstore: {state}\n")
}

/// Answer one admin request.
pub(super) async fn handle(
    shared: Arc<Shared>,
    req: Request<RequestBody>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            health(&shared).await,
        ),
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            {
                // Ages grow by the second: set when scraped.
                shared.ip_lists.export(&shared.metrics);
                shared.metrics.render()
            },
        ),
        (_, "/healthz" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_owned(),
        ),
        _ => match crate::console::handle(&shared, req).await {
            Some(answer) => return Ok(answer),
            None => (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n".to_owned(),
            ),
        },
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}
