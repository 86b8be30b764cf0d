//! `callgate explain`: run a route's checks on a captured request and say,
//! check by check, what passes and why the rest fail.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::config::redact::Redactor;
use crate::config::Config;
use crate::verify::check::{Judgement, Seen};
use crate::verify::explain::{explain as run, Decision, Explanation};
use crate::verify::Signable;

/// Explain one captured request against one route; Err (exit 1) if refused.
pub(super) fn explain(
    config: &Path,
    route: &str,
    request: &Path,
    from: Option<IpAddr>,
    url: Option<String>,
) -> anyhow::Result<()> {
    // Only this route's secrets are read: explaining one route needs no other's.
    let config = Config::load_for_route(config, route)?;
    let Some(r) = config.routes.iter().find(|r| r.name == route) else {
        let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        bail!("no route named {route:?} (routes: {})", names.join(", "));
    };
    let capture = read_capture(request)?;
    let Capture {
        method,
        uri,
        headers,
        body,
        client,
        cut,
    } = capture;
    let from = from.or(client);
    if cut {
        eprintln!("warning: the console keeps the first 4 KiB of a body: this one was cut, so its signature cannot match here");
    }
    let url = url.or_else(|| {
        let host = headers.get(http::header::HOST)?.to_str().ok()?;
        Some(format!("https://{host}{}", uri.path_and_query()?.as_str()))
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let req = Signable {
        headers: &headers,
        body: &body,
        url: url.as_deref(),
        now,
    };
    // The URL token is a secret: the target is shown with it REDACTED, and
    // every other secret the config holds, under any name.
    let shown = match (uri.query(), &r.token) {
        (Some(q), Some(t)) => format!(
            "{}?{}",
            uri.path(),
            crate::verify::query::redact(q, std::slice::from_ref(&t.param))
        ),
        _ => uri.to_string(),
    };
    let shown = config.redactor.text(&shown);
    println!(
        "route {:?}: {} bytes of body, target {shown}",
        r.name,
        body.len()
    );
    // Named address lists as stored by the gateway (nothing is fetched here).
    let lists = crate::lists::OnDisk::read(&config);
    let seen = Seen {
        client: from,
        method: &method,
        uri: &uri,
        req,
        lists: &lists,
    };
    let mut e = run(r, &seen);
    for (_, v) in &mut e.checks {
        hide(&config.redactor, v);
    }
    report(&e)
}

/// A judgement whose reason quotes no secret of the config.
fn hide(redactor: &Redactor, v: &mut Judgement) {
    match v {
        Judgement::Pass(why)
        | Judgement::Fail(why)
        | Judgement::Unknown(why)
        | Judgement::Skipped(why) => {
            *why = redactor.text(why).into_owned();
        }
        Judgement::Off => {}
    }
}

/// Print each check's judgement, then the gateway's answer: exit 0 only
/// when it would accept the request or answer it as a handshake.
fn report(e: &Explanation) -> anyhow::Result<()> {
    for (check, judgement) in &e.checks {
        let mark = match judgement {
            Judgement::Pass(_) => "pass ",
            Judgement::Fail(_) => "FAIL ",
            Judgement::Unknown(_) => "?    ",
            Judgement::Skipped(_) | Judgement::Off => "-    ",
        };
        // Names longer than the column still get a space after them.
        let name = format!("{check:<8}");
        let gap = if name.len() > 8 { " " } else { "" };
        println!("  {name}{gap}{mark} {}", judgement.why());
    }
    match &e.decision {
        Decision::Accept => println!("the gateway would accept this request"),
        Decision::Handshake => println!(
            "answered as a handshake: callgate answers this request itself (200); the receiver never sees it"
        ),
        Decision::Refuse => bail!("the gateway would refuse this request (403)"),
        Decision::Undecided(checks) => {
            let names: Vec<&str> = checks.iter().map(|c| c.name()).collect();
            bail!(
                "cannot decide: the capture cannot settle the {} check(s) (marked ?); no other check fails",
                names.join(", ")
            )
        }
    }
    Ok(())
}

/// The request in `path`: the console's JSON of one request (`GET
/// /api/requests/ID`), or a raw HTTP/1.1 capture.
fn read_capture(path: &Path) -> anyhow::Result<Capture> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.trim_ascii_start().first() == Some(&b'{') {
        return from_console(&raw)
            .with_context(|| format!("{} is not a request the console exported", path.display()));
    }
    let (method, uri, headers, body) =
        parse(&raw).with_context(|| format!("{} is not an HTTP/1.1 request", path.display()))?;
    Ok(Capture {
        method,
        uri,
        headers,
        body,
        client: None,
        cut: false,
    })
}

/// A request to judge: from a raw capture, or from the console.
struct Capture {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The client address the console saw.
    client: Option<IpAddr>,
    /// The console kept only the body's start.
    cut: bool,
}

/// The console's JSON of a refused request: target, headers, the body's
/// bytes (base64) and the client address.
fn from_console(raw: &[u8]) -> anyhow::Result<Capture> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(raw)?;
    let uri: Uri = v["target"].as_str().context("no target")?.parse()?;
    let method = Method::from_bytes(v["method"].as_str().unwrap_or("POST").as_bytes())?;
    let mut headers = HeaderMap::new();
    for pair in v["headers"]
        .as_array()
        .context("no headers: only refusals carry their headers and body")?
    {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
            bail!("a header is not a [name, value] pair");
        };
        headers.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["body_base64"].as_str().context("no body_base64")?)?;
    let whole = v["body_bytes"].as_u64().unwrap_or(body.len() as u64);
    Ok(Capture {
        method,
        uri,
        headers,
        cut: whole > body.len() as u64,
        body,
        client: v["client"].as_str().and_then(|c| c.parse().ok()),
    })
}

/// Method, target, headers and body of a raw request (chunked bodies decoded).
fn parse(raw: &[u8]) -> anyhow::Result<(Method, Uri, HeaderMap, Vec<u8>)> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    let head = match req.parse(raw)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => bail!("the head is cut short"),
    };
    let uri: Uri = req.path.context("no request target")?.parse()?;
    let method = Method::from_bytes(req.method.context("no method")?.as_bytes())?;
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        headers.append(
            HeaderName::from_bytes(h.name.as_bytes())?,
            HeaderValue::from_bytes(h.value)?,
        );
    }
    let rest = &raw[head..];
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        let len = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(rest.len());
        rest.get(..len)
            .context("the body is shorter than its Content-Length")?
            .to_vec()
    };
    Ok((method, uri, headers, body))
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk size line is cut short")?;
        let size_text = std::str::from_utf8(&rest[..line_end])?
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let size = usize::from_str_radix(size_text, 16).context("a bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).context("a chunk is cut short")?);
        rest = rest.get(size + 2..).context("a chunk is cut short")?;
    }
}
