//! A public-key signature (Ed25519, ECDSA, RSA) of the provider's signed
//! string, under any of the route's keys: `verify/public_key.rs`.

use super::{Judgement, Refusal, Seen, Step};
use crate::config::Route;
use crate::verify::public_key;
use crate::verify::signature::Signable;

pub(super) fn body(route: &Route, req: &Signable<'_>) -> Step {
    match &route.signature {
        None => Step::Off,
        Some(s) => Step::of(public_key::verify(s, req).map_err(Refusal::PublicKey)),
    }
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some(s) = &route.signature else {
        return Judgement::Off;
    };
    let tried = format!(
        "{} public key(s) tried, {} {}, header {}",
        s.keys.len(),
        s.algorithm.name(),
        s.encoding.name(),
        s.header
    );
    match public_key::verify(s, &seen.req) {
        Ok(()) => Judgement::Pass(format!("a public key signed it ({tried})")),
        Err(e) => Judgement::Fail(format!("{e} ({tried})")),
    }
}

pub(super) fn describe(route: &Route) -> Option<String> {
    let s = route.signature.as_ref()?;
    let signed = match s.timestamp {
        Some((t, "")) => format!("{t} + body"),
        Some((t, sep)) => format!("{t} {sep:?} body"),
        None => "body".into(),
    };
    Some(format!(
        "{} over {signed} (within {}), header {}, encoding {}, {} public key(s): {} (passes as hmac in the verified header)",
        s.algorithm.name(),
        humantime::format_duration(s.tolerance),
        s.header,
        s.encoding.name(),
        s.sources.len(),
        s.sources.join(", ")
    ))
}
