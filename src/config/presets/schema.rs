//! The preset file: one provider as TOML, the schema of the built-in files
//! under `presets/`, of `[[preset]]` in the config and of what
//! `callgate presets show` prints. Resolved once into the signed-string
//! model ([`Defaults`]); every value checked, unknown keys refused.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Claims, Defaults, Handshake, HmacDefaults, IdSource, KeyForm, Payload, PkAlgorithm, Scheme,
    SignatureDefaults, Signed,
};
use crate::crypto::{Algorithm, Encoding};

/// Longest dedupe window a preset may ask for.
const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest body bound a preset may set.
const MAX_BODY: u64 = 1 << 30;

/// One provider, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresetFile {
    /// As routes name it: lower case, digits and `-`.
    pub(crate) name: String,
    /// One line: who the provider is and what it signs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) summary: String,
    /// Where the provider documents its scheme.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) docs: String,
    /// Where the test vector proving callgate reads it comes from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) vector: String,
    /// The provider's published source addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) allow_ips: Vec<String>,
    /// The provider signs nothing: the route must carry a URL token.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) requires_token: bool,
    /// A body shape checked after the signature: `gengo-form`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_body_bytes: Option<u64>,
    /// The replay window the provider's retries call for ("0": none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dedupe_window: Option<String>,
    /// The endpoint check callgate answers (see [`HANDSHAKES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) handshake: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hmac: Option<HmacFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<SignatureFile>,
}

/// An HMAC scheme: what is signed and where the signature is carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HmacFile {
    pub(crate) algorithm: Algorithm,
    pub(crate) header: String,
    pub(crate) encoding: Encoding,
    /// The signed-string template (see [`TEMPLATES`]).
    #[serde(default = "body_template")]
    pub(crate) signed: String,
    /// `whole`, `prefixed` (after `prefix`), `fields` (`t=…,v1=…`) or
    /// `list` (space-separated `prefix<sig>` entries).
    #[serde(default = "whole")]
    pub(crate) claims: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature_field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp_field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id_body_field: Option<String>,
    /// `raw` (the secret's bytes) or `whsec` (`whsec_<base64>` or bare base64).
    #[serde(default = "raw_key")]
    pub(crate) key: String,
    /// Refuse timestamps too far in the future too, not only too old.
    #[serde(default = "yes")]
    pub(crate) refuse_future: bool,
}

/// A public-key scheme: the route lists the keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignatureFile {
    /// See [`PkAlgorithm::NAMES`].
    pub(crate) algorithm: String,
    pub(crate) header: String,
    pub(crate) encoding: Encoding,
    /// `{body}`; `{timestamp}` + a separator of up to 3 characters +
    /// `{body}`; or `{id}` + a separator before that.
    #[serde(default = "body_template")]
    pub(crate) signed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id_header: Option<String>,
    /// `whole`, or `list`: space-separated `prefix<signature>` entries.
    #[serde(default = "whole")]
    pub(crate) claims: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}
fn yes() -> bool {
    true
}
fn body_template() -> String {
    "{body}".into()
}
fn whole() -> String {
    "whole".into()
}
fn raw_key() -> String {
    "raw".into()
}

/// The signed-string templates of the model, as written.
pub(crate) const TEMPLATES: [(&str, Signed); 5] = [
    ("{body}", Signed::Body),
    ("{timestamp}.{body}", Signed::TimestampBody),
    ("{id}.{timestamp}.{body}", Signed::IdTimestampBody),
    ("v0:{timestamp}:{body}", Signed::SlackV0),
    ("{url}{params}", Signed::Twilio),
];

/// The endpoint checks callgate can answer, as written.
pub(crate) const HANDSHAKES: [(&str, Handshake); 7] = [
    ("slack-url-verification", Handshake::SlackUrlVerification),
    ("zoom-url-validation", Handshake::ZoomUrlValidation),
    ("meta-verify-token", Handshake::MetaVerifyToken),
    ("x-crc", Handshake::XCrc),
    ("dropbox-challenge", Handshake::DropboxChallenge),
    ("microsoft-graph-validation", Handshake::GraphValidation),
    ("asana-hook-secret", Handshake::AsanaHookSecret),
];

/// One preset resolved: its texts and what it fills in.
#[derive(Debug, PartialEq)]
pub(crate) struct PresetDef {
    pub(crate) name: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) docs: &'static str,
    pub(crate) vector: &'static str,
    pub(crate) defaults: Defaults,
    /// The file as written (built-in presets keep their comments).
    pub(crate) text: String,
}

/// Strings of presets live as long as the process: each distinct one is
/// kept once, so reloading the same config keeps nothing more.
fn intern(s: &str) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(kept) = seen.get(s) {
        return kept;
    }
    let kept: &'static str = Box::leak(s.to_owned().into_boxed_str());
    seen.insert(kept);
    kept
}

/// A header name as the model keeps it: valid, lower case.
fn header(key: &str, value: &str) -> Result<&'static str, String> {
    let lower = value.trim().to_ascii_lowercase();
    http::HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| format!("{key} = {value:?} is not a header name"))?;
    Ok(intern(&lower))
}

fn optional_header(key: &str, value: &Option<String>) -> Result<Option<&'static str>, String> {
    value.as_deref().map(|v| header(key, v)).transpose()
}

fn named<T: Copy>(key: &str, value: &str, table: &[(&str, T)]) -> Result<T, String> {
    table
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = table.iter().map(|(n, _)| format!("{n:?}")).collect();
            format!("{key} = {value:?}: one of {}", names.join(", "))
        })
}

impl PresetFile {
    /// Parse one file (built in, or `[[preset]]` text) and resolve it.
    pub(crate) fn parse(text: &str) -> Result<PresetDef, String> {
        let file: PresetFile = toml::from_str(text).map_err(|e| e.to_string())?;
        file.resolve(text.to_owned())
    }

    /// Resolve the written values into the model; `text` is what `presets
    /// show` prints.
    pub(crate) fn resolve(&self, text: String) -> Result<PresetDef, String> {
        let name = self.name.as_str();
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "name = {name:?}: 1 to 40 characters of a-z, 0-9 and -"
            ));
        }
        let defaults = self.defaults()?;
        let checks_something = defaults.hmac.is_some()
            || defaults.signature.is_some()
            || defaults.requires_token
            || !defaults.allow_ips.is_empty();
        if !checks_something {
            return Err(
                "checks nothing: give it hmac, signature, requires_token or allow_ips".into(),
            );
        }
        Ok(PresetDef {
            name: intern(name),
            summary: intern(&self.summary),
            docs: intern(&self.docs),
            vector: intern(&self.vector),
            defaults,
            text,
        })
    }

    fn defaults(&self) -> Result<Defaults, String> {
        if self.hmac.is_some() && self.signature.is_some() {
            return Err("give hmac or signature, not both".into());
        }
        let mut ips = Vec::new();
        for ip in &self.allow_ips {
            let ok = ip.parse::<ipnet::IpNet>().is_ok() || ip.parse::<std::net::IpAddr>().is_ok();
            if !ok {
                return Err(format!("allow_ips: {ip:?} is not an address or a network"));
            }
            ips.push(intern(ip));
        }
        let dedupe_window = match self.dedupe_window.as_deref() {
            None | Some("0") => None,
            Some(w) => {
                let d = humantime::parse_duration(w)
                    .map_err(|e| format!("dedupe_window = {w:?}: {e}"))?;
                if d > MAX_WINDOW {
                    return Err(format!("dedupe_window = {w:?}: at most 30 days"));
                }
                Some(d)
            }
        };
        if let Some(b) = self.max_body_bytes.filter(|b| *b == 0 || *b > MAX_BODY) {
            return Err(format!("max_body_bytes = {b}: between 1 and {MAX_BODY}"));
        }
        let defaults = Defaults {
            allow_ips: Box::leak(ips.into_boxed_slice()),
            hmac: self.hmac.as_ref().map(HmacFile::resolve).transpose()?,
            requires_token: self.requires_token,
            payload: self
                .payload
                .as_deref()
                .map(|p| named("payload", p, &PAYLOADS))
                .transpose()?,
            max_body_bytes: self.max_body_bytes,
            dedupe_window,
            signature: self
                .signature
                .as_ref()
                .map(SignatureFile::resolve)
                .transpose()?,
            handshake: self
                .handshake
                .as_deref()
                .map(|h| named("handshake", h, &HANDSHAKES))
                .transpose()?,
        };
        no_oracle(&defaults)?;
        Ok(defaults)
    }
}

/// The body shapes a preset may demand, as written.
const PAYLOADS: [(&str, Payload); 2] = [
    ("gengo-form", Payload::GengoForm),
    ("json-object", Payload::JsonObject),
];

/// A handshake answered with an HMAC under the route's key (X's CRC,
/// Zoom's validation) hashes a token of 1 to 256 characters of
/// `A-Za-z0-9+/=_-` (`verify::handshake::token_shaped`). Its answer must
/// never be the signature of a message the scheme accepts, so the scheme's
/// signed string must never be such a token: `{timestamp}.{body}` and
/// `{id}.{timestamp}.{body}` have a `.`, `v0:{timestamp}:{body}` a `:`,
/// `{url}{params}` the URL's `://`, none of them a token's character; a
/// `{body}` must be a JSON object (its `{` is not one either).
fn no_oracle(d: &Defaults) -> Result<(), String> {
    let Some(handshake) = d.handshake.filter(|h| h.computes_with_key()) else {
        return Ok(());
    };
    let name = handshake.name();
    let Some(hmac) = d.hmac else {
        return Err(format!("handshake = {name:?} answers with an HMAC under the route's key: give [preset.hmac], the scheme that key signs, so that callgate can make sure the answer never signs a message"));
    };
    if hmac.scheme.signed == Signed::Body && d.payload != Some(Payload::JsonObject) {
        return Err(format!("handshake = {name:?} answers HMAC(key, token) for any token of A-Za-z0-9+/=_- the caller chooses, and hmac.signed = \"{{body}}\" would accept that token as a body signed by the answer: add payload = \"json-object\" (the provider's events are JSON objects; a token never is one), or sign a timestamp (signed = \"{{timestamp}}.{{body}}\")"));
    }
    Ok(())
}

impl HmacFile {
    fn resolve(&self) -> Result<HmacDefaults, String> {
        let signed = named("hmac.signed", &self.signed, &TEMPLATES)?;
        let field = |key: &str, v: &Option<String>| {
            v.as_deref()
                .filter(|s| !s.is_empty() && !s.contains([',', '=', ' ']))
                .map(intern)
                .ok_or_else(|| format!("hmac.claims = {:?} needs hmac.{key}", self.claims))
        };
        let claims = match self.claims.as_str() {
            "whole" => Claims::Whole,
            "prefixed" => Claims::Prefixed(
                self.prefix
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .map(intern)
                    .ok_or("hmac.claims = \"prefixed\" needs hmac.prefix")?,
            ),
            "fields" => Claims::Fields {
                sig: field("signature_field", &self.signature_field)?,
                ts: field("timestamp_field", &self.timestamp_field)?,
            },
            "list" => Claims::List {
                prefix: self
                    .prefix
                    .as_deref()
                    .filter(|p| !p.is_empty() && !p.contains(' '))
                    .map(intern)
                    .ok_or("hmac.claims = \"list\" needs hmac.prefix (without spaces)")?,
            },
            other => {
                return Err(format!(
                    "hmac.claims = {other:?}: one of \"whole\", \"prefixed\", \"fields\", \"list\""
                ))
            }
        };
        let id = match (&self.id_header, &self.id_body_field) {
            (Some(_), Some(_)) => {
                return Err("give hmac.id_header or hmac.id_body_field, not both".into())
            }
            (Some(h), None) => IdSource::Header(header("hmac.id_header", h)?),
            (None, Some(f)) if !f.is_empty() => IdSource::JsonField(intern(f)),
            (None, Some(_)) => return Err("hmac.id_body_field is empty".into()),
            (None, None) => IdSource::None,
        };
        let scheme = Scheme {
            signed,
            claims,
            timestamp: optional_header("hmac.timestamp_header", &self.timestamp_header)?,
            id,
            key: named(
                "hmac.key",
                &self.key,
                &[("raw", KeyForm::Raw), ("whsec", KeyForm::Whsec)],
            )?,
            both_ways: self.refuse_future,
        };
        let stamped = matches!(
            signed,
            Signed::TimestampBody | Signed::IdTimestampBody | Signed::SlackV0
        );
        if stamped && !scheme.timed() {
            return Err(format!("hmac.signed = {:?} signs a timestamp: give hmac.timestamp_header, or claims = \"fields\" with timestamp_field", self.signed));
        }
        if scheme.timed() && !stamped {
            return Err(format!("a timestamp is read but hmac.signed = {:?} does not sign it: an unsigned timestamp proves nothing", self.signed));
        }
        if signed == Signed::IdTimestampBody && !matches!(id, IdSource::Header(_)) {
            return Err("hmac.signed signs {id}: give hmac.id_header".into());
        }
        Ok(HmacDefaults {
            algorithm: self.algorithm,
            header: header("hmac.header", &self.header)?,
            encoding: self.encoding,
            scheme,
        })
    }
}

/// A separator of a public-key template: up to 3 characters, no braces.
fn separator(key: &str, sep: &str) -> Result<&'static str, String> {
    match sep.len() <= 3 && !sep.contains(['{', '}']) {
        true => Ok(intern(sep)),
        false => Err(format!(
            "{key}: a separator of up to 3 characters between the parts"
        )),
    }
}

impl SignatureFile {
    fn resolve(&self) -> Result<SignatureDefaults, String> {
        let algorithm = named("signature.algorithm", &self.algorithm, &PkAlgorithm::NAMES)?;
        let bad = || {
            format!("signature.signed = {:?}: \"{{body}}\", \"{{timestamp}}<sep>{{body}}\" or \"{{id}}<sep>{{timestamp}}<sep>{{body}}\"", self.signed)
        };
        let rest = self.signed.strip_suffix("{body}").ok_or_else(bad)?;
        let (id_sep, ts_sep) = match rest.strip_prefix("{id}") {
            Some(r) => {
                let (a, b) = r.split_once("{timestamp}").ok_or_else(bad)?;
                (
                    Some(separator("signature.signed", a)?),
                    Some(separator("signature.signed", b)?),
                )
            }
            None if rest.is_empty() => (None, None),
            None => (
                None,
                Some(separator(
                    "signature.signed",
                    rest.strip_prefix("{timestamp}").ok_or_else(bad)?,
                )?),
            ),
        };
        let timestamp = match (
            ts_sep,
            optional_header("signature.timestamp_header", &self.timestamp_header)?,
        ) {
            (Some(sep), Some(h)) => Some((h, sep)),
            (Some(_), None) => {
                return Err(
                    "signature.signed signs {timestamp}: give signature.timestamp_header".into(),
                )
            }
            (None, Some(_)) => {
                return Err(
                    "signature.timestamp_header is given but signature.signed does not sign it"
                        .into(),
                )
            }
            (None, None) => None,
        };
        let id = match (
            id_sep,
            optional_header("signature.id_header", &self.id_header)?,
        ) {
            (Some(sep), Some(h)) => Some((h, sep)),
            (Some(_), None) => {
                return Err("signature.signed signs {id}: give signature.id_header".into())
            }
            (None, Some(_)) => {
                return Err(
                    "signature.id_header is given but signature.signed does not sign it".into(),
                )
            }
            (None, None) => None,
        };
        let list_prefix = match self.claims.as_str() {
            "whole" => None,
            "list" => Some(
                self.prefix
                    .as_deref()
                    .filter(|p| !p.is_empty() && !p.contains(' '))
                    .map(intern)
                    .ok_or("signature.claims = \"list\" needs signature.prefix (without spaces)")?,
            ),
            other => {
                return Err(format!(
                    "signature.claims = {other:?}: \"whole\" or \"list\""
                ))
            }
        };
        Ok(SignatureDefaults {
            algorithm,
            header: header("signature.header", &self.header)?,
            encoding: self.encoding,
            timestamp,
            id,
            list_prefix,
        })
    }
}
