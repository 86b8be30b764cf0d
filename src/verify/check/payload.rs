//! The body's shape, as the preset demands it (Gengo: a form with one
//! `job` or `comment` field holding a JSON object, as PHP reads it).

use http::HeaderMap;

use super::{Judgement, Refusal, Seen, Step};
use crate::config::presets::Payload;
use crate::config::Route;
use crate::php::php_name;
use crate::verify::signature::Signable;

pub(super) fn body(route: &Route, req: &Signable<'_>) -> Step {
    match route.payload {
        None => Step::Off,
        Some(p) => Step::of(check_payload(p, req.headers, req.body).map_err(Refusal::Payload)),
    }
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    match route.payload {
        None => Judgement::Off,
        Some(p) => match check_payload(p, seen.req.headers, seen.req.body) {
            Ok(()) => Judgement::Pass("the body has the preset's shape".into()),
            Err(why) => Judgement::Fail(why.into()),
        },
    }
}

pub(super) fn describe(route: &Route) -> Option<String> {
    let p = route.payload?;
    Some(format!("{p:?}: {}", p.describe()))
}

fn check_payload(payload: Payload, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    match payload {
        Payload::GengoForm => {
            let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
            let only = match (types.next(), types.next()) {
                (Some(v), None) => v,
                (Some(_), Some(_)) => return Err("Content-Type sent more than once"),
                (None, _) => return Err("Content-Type is not application/x-www-form-urlencoded"),
            };
            let media = only.to_str().ok().and_then(|v| v.split(';').next());
            if !media.is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            }) {
                return Err("Content-Type is not application/x-www-form-urlencoded");
            }
            gengo_field(body)
        }
        // Valid JSON whose first character is `{`: a token never is one.
        Payload::JsonObject => {
            let object = body.trim_ascii_start().first() == Some(&b'{')
                && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
            object.then_some(()).ok_or("the body is not a JSON object")
        }
    }
}

/// Exactly one `job` or `comment` field, in any spelling PHP folds to one
/// of them, not an array, holding a JSON object.
fn gengo_field(body: &[u8]) -> Result<(), &'static str> {
    let mut field = None;
    for (k, v) in form_urlencoded::parse(body) {
        let Some(name) = php_name(&k) else { continue };
        if name.base != "job" && name.base != "comment" {
            continue;
        }
        if name.array {
            return Err("the job/comment field is sent as an array");
        }
        if field.replace(v).is_some() {
            return Err("more than one job/comment field in the form");
        }
    }
    let value = field.ok_or("no job or comment field in the form")?;
    match serde_json::from_str::<serde_json::Value>(&value) {
        Ok(j) if j.is_object() => Ok(()),
        _ => Err("the job/comment field is not a JSON object"),
    }
}
