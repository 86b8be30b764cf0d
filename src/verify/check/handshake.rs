//! A provider's endpoint check, answered by callgate from the route's own
//! secrets (`verify/handshake.rs`, answered by the proxy): which request is
//! one, and whether callgate answers it, as the gateway decides.

use http::{HeaderMap, Method, Uri};

use super::{Judgement, Seen};
use crate::config::presets::Handshake;
use crate::config::Route;
use crate::verify::handshake::{self, Answer};

/// What the gateway does with a request that is its route's handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answered {
    /// Answered by callgate itself: the receiver never sees it.
    Yes,
    /// Refused (403), and why.
    Refused(String),
}

/// The provider's endpoint check, in words.
fn what(kind: Handshake) -> &'static str {
    match kind {
        Handshake::SlackUrlVerification => "Slack's url_verification (signed POST)",
        Handshake::ZoomUrlValidation => "Zoom's endpoint.url_validation (signed POST)",
        Handshake::MetaVerifyToken => "Meta's subscription check (GET with hub.verify_token)",
        Handshake::XCrc => "X's CRC (GET with crc_token)",
        Handshake::DropboxChallenge => "Dropbox's challenge (GET)",
        Handshake::GraphValidation => "Microsoft Graph's validationToken (POST)",
        Handshake::AsanaHookSecret => "Asana's X-Hook-Secret (kept, then echoed)",
    }
}

/// Whether this request is the route's handshake and how the gateway
/// answers it; `body`: None before the body is read. The request line and
/// headers decide a handshake answered before the body (Meta, X, Dropbox,
/// Graph, Asana), the verified body one answered after it (Slack, Zoom).
pub(crate) fn answered(
    route: &Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Option<Answered> {
    let (kind, token) = route.handshake.as_ref()?;
    let key = route.hmac.as_ref().and_then(|h| h.keys.first());
    if kind.hands_over_secret() {
        let secret = handshake::handed_over(headers)?;
        route.hmac.as_ref()?.learned.as_ref()?;
        return Some(match secret {
            Ok(_) => Answered::Yes,
            Err(refusal) => Answered::Refused(refusal.to_string()),
        });
    }
    let answer = match kind.before_body() {
        true => {
            let wanted = if kind.by_get() {
                Method::GET
            } else {
                Method::POST
            };
            if *method != wanted {
                return None;
            }
            handshake::answer_get(*kind, uri.query(), key, token.as_ref())?
        }
        false => handshake::answer_post(*kind, body?, key)?,
    };
    Some(match answer {
        Answer::Ok(..) => Answered::Yes,
        // Meta's verify token does not match (or the input is not one
        // callgate answers): the gateway's 403.
        Answer::Refused(why) => Answered::Refused(format!("refused (403): {why}")),
    })
}

/// Whether the route's handshake is answered before the body is read.
pub(crate) fn before_body(route: &Route) -> bool {
    route
        .handshake
        .as_ref()
        .is_some_and(|(k, _)| k.before_body())
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some((kind, _)) = &route.handshake else {
        return Judgement::Off;
    };
    let r = &seen.req;
    match answered(route, seen.method, seen.uri, r.headers, Some(r.body)) {
        Some(Answered::Yes) => Judgement::Pass(format!("answered as a handshake: {}", what(*kind))),
        Some(Answered::Refused(why)) => Judgement::Fail(format!("{why}: {}", what(*kind))),
        None => Judgement::Pass(format!("not {}: judged as a callback", what(*kind))),
    }
}

pub(super) fn describe(route: &Route) -> Option<String> {
    let (kind, _) = route.handshake.as_ref()?;
    let when = match kind.before_body() {
        true => "once the address and token checks pass, before the body",
        false => "once every check passed",
    };
    Some(format!("{} answered by callgate {when}", what(*kind)))
}
