//! A check is one thing: a [`Check`] variant and its file in `check/`.
//! Enforcement ([`super::precheck_all`], [`super::finish_all`]), report-only,
//! `callgate explain`, the console's breakdown, `callgate check`'s listing,
//! the verified header and the metrics' reason label all iterate
//! [`Check::ALL`] and match on it exhaustively, so a new check is a new
//! variant and its file, and the compiler names every other place.

mod handshake;
mod hmac;
mod ip;
mod params;
mod payload;
mod public_key;
mod replay;
mod timestamp;
mod token;

use std::fmt;
use std::net::IpAddr;

use http::{Method, Uri};

use super::signature::{Signable, SignatureError};
use super::Checked;
use crate::config::{NamedLists, Route};
use crate::metrics::Reason;

pub(crate) use handshake::{answered, before_body, Answered};

/// One check a route may configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The client address is in `allow_ips`.
    Ip,
    /// The URL token matches one of the route's secrets.
    Token,
    /// An HMAC of the signed string matches one of the route's keys.
    Hmac,
    /// A public-key signature (Ed25519, ECDSA, RSA) of the signed string.
    PublicKey,
    /// The signed timestamp is within the tolerance.
    Timestamp,
    /// No parameter the receiver would read differently (the upstream
    /// URL's, the token in a form body).
    Params,
    /// The body has the shape the preset demands.
    Payload,
    /// A copy of a message already delivered is not delivered again.
    Replay,
    /// A provider's endpoint check, answered by callgate.
    Handshake,
}

impl Check {
    /// Every check, in the order the gateway runs them: before the body
    /// (ip, token, the query's params), then over it (the signatures with
    /// their timestamp, the form body's params, payload), then the replay
    /// claim; a handshake is answered where its provider's request allows.
    pub const ALL: [Check; 9] = [
        Check::Ip,
        Check::Token,
        Check::Hmac,
        Check::PublicKey,
        Check::Timestamp,
        Check::Params,
        Check::Payload,
        Check::Replay,
        Check::Handshake,
    ];

    /// Its name in `explain`, the console and `check`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Ip => "ip",
            Check::Token => "token",
            Check::Hmac => "hmac",
            Check::PublicKey => "public_key",
            Check::Timestamp => "timestamp",
            Check::Params => "params",
            Check::Payload => "payload",
            Check::Replay => "replay",
            Check::Handshake => "handshake",
        }
    }

    /// The word the verified header (`X-Callgate-Verified`) gives it once
    /// passed, if it vouches for the sender: a public-key signature is
    /// `hmac` too (the body's signature was checked).
    fn verified_as(self) -> Option<&'static str> {
        match self {
            Check::Ip => Some("ip"),
            Check::Token => Some("token"),
            Check::Hmac | Check::PublicKey => Some("hmac"),
            Check::Timestamp
            | Check::Params
            | Check::Payload
            | Check::Replay
            | Check::Handshake => None,
        }
    }

    /// The `reason` label of `callgate_refusals_total` when it refuses.
    pub(crate) fn reason(self) -> Reason {
        match self {
            Check::Ip => Reason::Ip,
            Check::Token => Reason::Token,
            // Signature and timestamp failures are all `hmac`.
            Check::Hmac | Check::PublicKey | Check::Timestamp => Reason::Hmac,
            Check::Params => Reason::Param,
            Check::Payload => Reason::Payload,
            Check::Replay => Reason::Replay,
            // Meta's wrong verify token is a token refusal.
            Check::Handshake => Reason::Token,
        }
    }

    /// Whether its judgement needs the body (unknown when the request was
    /// refused before the body was read).
    pub(crate) fn reads_body(self) -> bool {
        match self {
            Check::Ip | Check::Token | Check::Handshake => false,
            Check::Hmac
            | Check::PublicKey
            | Check::Timestamp
            | Check::Params
            | Check::Payload
            | Check::Replay => true,
        }
    }

    /// Whether the route runs it.
    pub(crate) fn configured(self, route: &Route) -> bool {
        match self {
            Check::Ip => route.allow_ips.is_some(),
            Check::Token => route.token.is_some(),
            Check::Hmac => route.hmac.is_some(),
            Check::PublicKey => route.signature.is_some(),
            Check::Timestamp => timestamp::configured(route),
            Check::Params => true,
            Check::Payload => route.payload.is_some(),
            Check::Replay => route.dedupe_window.is_some(),
            Check::Handshake => route.handshake.is_some(),
        }
    }

    /// Enforce it before the body is read (the request line only).
    pub(crate) fn head(self, route: &Route, head: &Head<'_>, c: &mut Checked) -> Step {
        match self {
            Check::Ip => ip::head(route, head.client, head.lists),
            Check::Token => token::head(route, head.uri, c),
            Check::Params => params::head(route, head.uri),
            // Over the body, below.
            Check::Hmac | Check::PublicKey | Check::Timestamp | Check::Payload => Step::Off,
            // The proxy claims the replay keys in the store after every
            // check passed (`proxy/replay.rs`, keys from `check/replay.rs`),
            // and answers a handshake itself (`proxy::Callback::handshake_head`).
            Check::Replay | Check::Handshake => Step::Off,
        }
    }

    /// Enforce it over the body, on the headers as they will be forwarded.
    pub(crate) fn body(self, route: &Route, req: &Signable<'_>) -> Step {
        match self {
            Check::Hmac => hmac::body(route, req),
            Check::PublicKey => public_key::body(route, req),
            Check::Params => params::body(route, req),
            Check::Payload => payload::body(route, req),
            // Signed: the signature checks refuse a stale timestamp first
            // (`hmac: timestamp … old`), so it is never checked twice.
            Check::Timestamp => Step::Off,
            // Before the body, above; or by the proxy (see `head`).
            Check::Ip | Check::Token | Check::Replay | Check::Handshake => Step::Off,
        }
    }

    /// Its judgement on a captured request, and why (`explain`, the console).
    pub(crate) fn explain(self, route: &Route, seen: &Seen<'_>) -> Judgement {
        if !self.configured(route) {
            return Judgement::Off;
        }
        match self {
            Check::Ip => ip::explain(route, seen),
            Check::Token => token::explain(route, seen),
            Check::Hmac => hmac::explain(route, seen),
            Check::PublicKey => public_key::explain(route, seen),
            Check::Timestamp => timestamp::explain(route, seen),
            Check::Params => params::explain(route, seen),
            Check::Payload => payload::explain(route, seen),
            Check::Replay => replay::explain(route, seen),
            Check::Handshake => handshake::explain(route, seen),
        }
    }

    /// What the route configures for it, for `callgate check` (never a
    /// secret); None when it is off and there is nothing to say.
    pub(crate) fn describe(self, route: &Route) -> Option<String> {
        match self {
            Check::Ip => Some(ip::describe(route)),
            Check::Token => Some(token::describe(route)),
            Check::Hmac => hmac::describe(route),
            Check::PublicKey => public_key::describe(route),
            Check::Timestamp => timestamp::describe(route),
            Check::Params => params::describe(route),
            Check::Payload => payload::describe(route),
            Check::Replay => Some(replay::describe(route)),
            Check::Handshake => handshake::describe(route),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One check's result at one stage of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Not configured, or not run at this stage.
    Off,
    Pass,
    Fail(Refusal),
}

impl Step {
    fn of(r: Result<(), Refusal>) -> Step {
        match r {
            Ok(()) => Step::Pass,
            Err(refusal) => Step::Fail(refusal),
        }
    }
}

/// What the checks before the body see: the request line and the source.
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) client: IpAddr,
    pub(crate) uri: &'a Uri,
    /// What the named address lists (`"list:NAME"`) hold now.
    pub(crate) lists: &'a dyn NamedLists,
}

/// What `explain` and the console judge: a request as captured.
#[derive(Clone, Copy)]
pub(crate) struct Seen<'a> {
    /// None: not known (`explain` without `--from`).
    pub(crate) client: Option<IpAddr>,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    /// Headers (as forwarded), body, public URL, now.
    pub(crate) req: Signable<'a>,
    /// What the named address lists hold (the gateway's copies, or those
    /// stored in the state directory).
    pub(crate) lists: &'a dyn NamedLists,
}

impl Seen<'_> {
    fn query(&self) -> &str {
        self.uri.query().unwrap_or("")
    }
}

/// One check's judgement on a captured request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judgement {
    Pass(String),
    Fail(String),
    /// Configured, but the capture cannot tell (no source address given).
    Unknown(String),
    /// Configured, but the gateway would not get to it (a handshake is
    /// answered first).
    Skipped(String),
    /// The route does not configure it.
    Off,
}

impl Judgement {
    /// The word `explain` prints before the reason, and the console shows.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Judgement::Pass(_) => "pass",
            Judgement::Fail(_) => "fail",
            Judgement::Unknown(_) => "unknown",
            Judgement::Skipped(_) => "skipped",
            Judgement::Off => "off",
        }
    }

    /// Why.
    pub(crate) fn why(&self) -> &str {
        match self {
            Judgement::Pass(w)
            | Judgement::Fail(w)
            | Judgement::Unknown(w)
            | Judgement::Skipped(w) => w,
            Judgement::Off => "not configured",
        }
    }
}

/// The checks a request passed, as a set; only configured checks are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Passed(u16);

impl Passed {
    /// These checks.
    pub const fn of(checks: &[Check]) -> Passed {
        let mut bits = 0;
        let mut i = 0;
        while i < checks.len() {
            bits |= 1 << checks[i] as u16;
            i += 1;
        }
        Passed(bits)
    }

    /// One more.
    pub fn insert(&mut self, check: Check) {
        self.0 |= 1 << check as u16;
    }

    /// Whether it passed `check`.
    pub fn contains(self, check: Check) -> bool {
        self.0 & (1 << check as u16) != 0
    }

    /// Whether none of its checks vouches for the sender (a report-only
    /// route's stranger): then no verified header at all.
    pub fn names_nothing(self) -> bool {
        !Check::ALL
            .iter()
            .any(|c| self.contains(*c) && c.verified_as().is_some())
    }

    /// The verified header's value: the words of the passed checks that
    /// vouch for the sender, in the order ip, token, hmac; else `none`.
    pub fn header_value(self) -> String {
        self.words().to_owned()
    }

    /// [`Passed::header_value`] without a copy: one of eight constants
    /// (every callback's verified header and log line name one).
    pub fn words(self) -> &'static str {
        const WORDS: [&str; 8] = [
            "none",
            "ip",
            "token",
            "ip,token",
            "hmac",
            "ip,hmac",
            "token,hmac",
            "ip,token,hmac",
        ];
        let mut bits = 0;
        for c in Check::ALL.iter().filter(|c| self.contains(**c)) {
            bits |= match c.verified_as() {
                Some("ip") => 1,
                Some("token") => 2,
                Some(_) => 4,
                None => 0,
            };
        }
        WORDS[bits]
    }
}

/// Why the token check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenFailure {
    /// No token parameter in the query.
    Missing,
    /// The token parameter appears more than once.
    Repeated,
    /// The token matches none of the route's secrets.
    Mismatch,
}

/// Why a request was refused: for the log only, the caller sees `forbidden`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client address is not in allow_ips.
    Ip(IpAddr),
    /// The client address is in none of allow_ips' addresses, and this
    /// named list has no copy yet (never fetched, nothing stored).
    NoList(String),
    /// The URL token is missing, repeated or wrong.
    Token(TokenFailure),
    /// The body's HMAC (or its signed timestamp) is missing, malformed or wrong.
    Hmac(SignatureError),
    /// The body's public-key signature (or its signed timestamp) is
    /// missing, malformed or wrong.
    PublicKey(SignatureError),
    /// The caller sends a parameter it may not (see `check/params.rs`).
    Param(String),
    /// The body does not have the shape the preset demands.
    Payload(&'static str),
}

impl Refusal {
    /// The check that refused.
    pub(crate) fn check(&self) -> Check {
        match self {
            Refusal::Ip(_) | Refusal::NoList(_) => Check::Ip,
            Refusal::Token(_) => Check::Token,
            Refusal::Hmac(_) => Check::Hmac,
            Refusal::PublicKey(_) => Check::PublicKey,
            Refusal::Param(_) => Check::Params,
            Refusal::Payload(_) => Check::Payload,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Ip(ip) => write!(f, "ip: {ip} is not in allow_ips"),
            Refusal::NoList(name) => write!(
                f,
                "ip: list:{name} has no copy yet (not fetched, none stored): the route refuses until it has one"
            ),
            Refusal::Token(TokenFailure::Missing) => f.write_str("token: missing"),
            Refusal::Token(TokenFailure::Repeated) => {
                f.write_str("token: parameter sent more than once")
            }
            Refusal::Token(TokenFailure::Mismatch) => f.write_str("token: does not match"),
            // The log's word for every signature, as the verified header's.
            Refusal::Hmac(e) | Refusal::PublicKey(e) => write!(f, "hmac: {e}"),
            Refusal::Param(why) => write!(f, "param: {why}"),
            Refusal::Payload(why) => write!(f, "payload: {why}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
