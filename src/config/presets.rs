//! Known providers as data: the defaults a `preset` fills in before the
//! route is validated, over one signed-string model ([`Scheme`]): what is
//! signed, where the signature (and timestamp, and message id) come from,
//! how the key is written. Explicit keys on the route always win.
//!
//! Each built-in provider is a file under `presets/` (compiled in, see
//! `builtin.rs`); a config adds or overrides one with `[[preset]]` in the
//! same schema (`schema.rs`).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use toml::Spanned;

use super::load::Loader;
use super::ConfigError;
use crate::crypto::{Algorithm, Encoding};

mod builtin;
mod schema;

pub(crate) use schema::{PresetDef, PresetFile};

impl Loader<'_> {
    /// Every `[[preset]]`, resolved: a name given twice is refused, a
    /// built-in name is overridden (with a warning, so it is never a
    /// surprise).
    pub(super) fn define_presets(&self, raw: Vec<Spanned<PresetFile>>) -> Result<(), ConfigError> {
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let file = spanned.into_inner();
            let label = format!("preset[{i}] ({:?})", file.name);
            // A repeated name is refused before anything is kept for the process.
            if self.presets.borrow().iter().any(|p| p.name() == file.name) {
                return Err(self.error(
                    Some(span),
                    format!("{label}: another [[preset]] has this name; names must be unique"),
                ));
            }
            let text = toml::to_string(&file).unwrap_or_default();
            let def = file.resolve(text).map_err(|e| {
                self.error(Some(span.clone()), format!("{label}: {e} (`callgate presets show NAME` prints a built-in preset in this schema)"))
            })?;
            let preset = Preset::define(def);
            if Preset::builtin(preset.name()).is_some() {
                self.warn(format!(
                    "{label} overrides the built-in preset of that name"
                ));
            }
            self.presets.borrow_mut().push(preset);
        }
        Ok(())
    }

    /// A route's `preset = "NAME"`: the config's own first, then the built-in ones.
    pub(super) fn preset(&self, name: &Spanned<String>) -> Result<Preset, ConfigError> {
        let wanted = name.get_ref().as_str();
        let own = self
            .presets
            .borrow()
            .iter()
            .copied()
            .find(|p| p.name() == wanted);
        own.or_else(|| Preset::builtin(wanted)).ok_or_else(|| {
            let near = did_you_mean(wanted);
            self.at(name, format!("unknown preset {wanted:?}: {near}`callgate presets` lists the built-in ones; describe another with [[preset]]"))
        })
    }
}

/// A provider callgate knows: built in, or a config's `[[preset]]`.
#[derive(Debug, Clone, Copy)]
pub struct Preset(&'static PresetDef);

impl PartialEq for Preset {
    fn eq(&self, other: &Preset) -> bool {
        self.0 == other.0
    }
}

impl Preset {
    /// The built-in presets, in the order `callgate presets` lists them.
    pub(crate) fn all() -> impl Iterator<Item = Preset> {
        static ALL: OnceLock<Vec<&'static PresetDef>> = OnceLock::new();
        ALL.get_or_init(|| {
            builtin::FILES
                .iter()
                .map(|text| {
                    let def = PresetFile::parse(text).unwrap_or_else(|e| {
                        panic!("a built-in preset does not parse: {e}\n{text}")
                    });
                    &*Box::leak(Box::new(def))
                })
                .collect()
        })
        .iter()
        .map(|d| Preset(d))
    }

    /// A built-in preset by name.
    pub(crate) fn builtin(name: &str) -> Option<Preset> {
        Preset::all().find(|p| p.name() == name)
    }

    /// A preset a config defines, kept for the life of the process: the
    /// same definition given again (a reload) is the same preset, so
    /// reloads keep nothing more.
    pub(crate) fn define(def: PresetDef) -> Preset {
        static DEFINED: Mutex<Vec<&'static PresetDef>> = Mutex::new(Vec::new());
        let mut defined = DEFINED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(same) = defined.iter().find(|d| ***d == def) {
            return Preset(same);
        }
        let kept: &'static PresetDef = Box::leak(Box::new(def));
        defined.push(kept);
        Preset(kept)
    }

    /// Name as written in config.
    pub(crate) fn name(self) -> &'static str {
        self.0.name
    }

    /// One line: who the provider is and what it signs.
    pub(crate) fn summary(self) -> &'static str {
        self.0.summary
    }

    /// Where the provider documents its scheme, and where the test vector
    /// that proves callgate reads it comes from.
    pub(crate) fn source(self) -> (&'static str, &'static str) {
        (self.0.docs, self.0.vector)
    }

    /// The preset as TOML, in the `[[preset]]` schema.
    pub(crate) fn text(self) -> &'static str {
        &self.0.text
    }

    /// What the preset fills in or demands.
    pub(crate) fn defaults(self) -> Defaults {
        self.0.defaults
    }

    /// Whether it signs the URL the provider called (the route must then
    /// pin the host or give the public URL).
    pub(crate) fn signs_url(self) -> bool {
        self.0
            .defaults
            .hmac
            .is_some_and(|h| h.scheme.signed == Signed::Twilio)
    }
}

/// Parse `--preset NAME` (clap): a built-in preset.
pub(crate) fn parse_builtin(name: &str) -> Result<Preset, String> {
    Preset::builtin(name).ok_or_else(|| {
        format!(
            "unknown preset {name:?}: {}`callgate presets` lists the built-in ones",
            did_you_mean(name)
        )
    })
}

/// `did you mean "tolq"? ` for the built-in preset one or two edits from
/// `name`; empty when there is none.
pub(crate) fn did_you_mean(name: &str) -> String {
    Preset::all()
        .map(|p| (edits(name, p.name()), p.name()))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| format!("did you mean {n:?}? "))
        .unwrap_or_default()
}

/// Levenshtein distance, for suggestions.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// An endpoint check a provider makes, answered by callgate (`verify::handshake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    SlackUrlVerification,
    ZoomUrlValidation,
    MetaVerifyToken,
    XCrc,
    DropboxChallenge,
    /// Microsoft Graph's `validationToken` (on subscription and renewal).
    GraphValidation,
    /// Asana's `X-Hook-Secret`: the signing secret itself, handed over
    /// unsigned (the route's URL token guards it), kept and echoed.
    AsanaHookSecret,
}

impl Handshake {
    /// Whether the check is answered from the request line alone, before
    /// the body (Meta, X, Dropbox: a GET; Microsoft Graph: a POST with
    /// `?validationToken=`); the others are signed POST bodies.
    pub(crate) fn answered_from_query(self) -> bool {
        matches!(
            self,
            Handshake::MetaVerifyToken
                | Handshake::XCrc
                | Handshake::DropboxChallenge
                | Handshake::GraphValidation
        )
    }

    /// Whether the check comes as a GET (the route then takes GET too).
    pub(crate) fn by_get(self) -> bool {
        self.answered_from_query() && self != Handshake::GraphValidation
    }

    /// Whether the check hands over the signing secret (kept in a file).
    pub(crate) fn hands_over_secret(self) -> bool {
        self == Handshake::AsanaHookSecret
    }

    /// Whether its answer is computed with the route's key (X's CRC,
    /// Zoom's validation): the route must then let only the provider ask
    /// (URL token or allow_ips), and the scheme must never sign a token.
    pub(crate) fn computes_with_key(self) -> bool {
        matches!(self, Handshake::XCrc | Handshake::ZoomUrlValidation)
    }

    /// The name config uses.
    pub(crate) fn name(self) -> &'static str {
        schema::HANDSHAKES
            .iter()
            .find(|(_, h)| *h == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether it is answered before the body is read (the request line
    /// and headers say it all).
    pub(crate) fn before_body(self) -> bool {
        self.answered_from_query() || self.hands_over_secret()
    }
}

/// A public-key signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PkAlgorithm {
    Ed25519,
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    RsaPkcs1Sha256,
    RsaPssSha256,
}

impl PkAlgorithm {
    /// The names config uses.
    pub(crate) const NAMES: [(&'static str, PkAlgorithm); 5] = [
        ("ed25519", PkAlgorithm::Ed25519),
        ("ecdsa-p256-sha256", PkAlgorithm::EcdsaP256Sha256),
        ("ecdsa-p384-sha384", PkAlgorithm::EcdsaP384Sha384),
        ("rsa-pkcs1-sha256", PkAlgorithm::RsaPkcs1Sha256),
        ("rsa-pss-sha256", PkAlgorithm::RsaPssSha256),
    ];

    pub(crate) fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
}

/// What a public-key preset fills in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SignatureDefaults {
    pub(crate) algorithm: PkAlgorithm,
    pub(crate) header: &'static str,
    pub(crate) encoding: Encoding,
    /// The timestamp header and what joins it to the body in the signed string.
    pub(crate) timestamp: Option<(&'static str, &'static str)>,
    /// A message-id header signed first, and what joins it to the timestamp
    /// (Standard Webhooks v1a: `id.timestamp.body`).
    pub(crate) id: Option<(&'static str, &'static str)>,
    /// Space-separated `prefix<signature>` entries (`v1a,…`), one per key in
    /// rotation; None: the whole value is one signature.
    pub(crate) list_prefix: Option<&'static str>,
}

/// Shape a body must have, checked after the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `application/x-www-form-urlencoded` with a `job` or `comment` field holding a JSON object.
    GengoForm,
    /// A JSON object (X's events): never a handshake's token.
    JsonObject,
}

impl Payload {
    /// What `check` says the body must be.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Payload::GengoForm => "form body with a `job` or `comment` field holding a JSON object",
            Payload::JsonObject => "a JSON object",
        }
    }
}

/// What the signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    /// The raw body.
    Body,
    /// `timestamp.body` (Stripe).
    TimestampBody,
    /// `id.timestamp.body` (Standard Webhooks).
    IdTimestampBody,
    /// `v0:timestamp:body` (Slack).
    SlackV0,
    /// The public URL, then each form parameter sorted by name as
    /// name+value; for a JSON body, the URL alone, whose `bodySHA256`
    /// parameter must be the body's SHA-256 (Twilio).
    Twilio,
}

/// How the signature header carries its signature(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claims {
    /// The whole value (an `algo=` prefix naming the route's algorithm allowed).
    Whole,
    /// The value after this prefix (Slack's `v0=`).
    Prefixed(&'static str),
    /// `t=…,v1=…,v1=…` fields: signatures under `sig`, the timestamp under `ts` (Stripe).
    Fields { sig: &'static str, ts: &'static str },
    /// Space-separated `v1,<sig>` entries, one per key in rotation (Standard Webhooks).
    List { prefix: &'static str },
}

/// Where a message's id comes from, for redelivery dedupe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSource {
    None,
    /// A header.
    Header(&'static str),
    /// A top-level string field of a JSON body (Stripe's event `id`).
    JsonField(&'static str),
}

/// How a configured key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyForm {
    /// The secret's bytes are the key.
    Raw,
    /// `whsec_<base64>`: the key is the decoded base64 (a bare base64 too).
    Whsec,
}

/// One provider's signed-string model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scheme {
    pub(crate) signed: Signed,
    pub(crate) claims: Claims,
    /// The header holding the signed timestamp (Unix seconds), when apart
    /// from the signature header.
    pub(crate) timestamp: Option<&'static str>,
    pub(crate) id: IdSource,
    pub(crate) key: KeyForm,
    /// Refuse timestamps too far in the future too (the provider's own
    /// libraries do), not only too old.
    pub(crate) both_ways: bool,
}

impl Scheme {
    /// A plain HMAC of the body in one header: routes without a preset.
    pub(crate) const PLAIN: Scheme = Scheme {
        signed: Signed::Body,
        claims: Claims::Whole,
        timestamp: None,
        id: IdSource::None,
        key: KeyForm::Raw,
        both_ways: true,
    };

    /// Whether the scheme signs a timestamp (then `tolerance` applies).
    pub(crate) fn timed(&self) -> bool {
        self.timestamp.is_some() || matches!(self.claims, Claims::Fields { .. })
    }
}

/// HMAC settings a preset supplies (the secrets never come from a preset).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HmacDefaults {
    pub(crate) algorithm: Algorithm,
    pub(crate) header: &'static str,
    pub(crate) encoding: Encoding,
    pub(crate) scheme: Scheme,
}

/// Everything one preset fills in or demands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Defaults {
    pub(crate) allow_ips: &'static [&'static str],
    pub(crate) hmac: Option<HmacDefaults>,
    /// The route must configure a token (the provider signs nothing).
    pub(crate) requires_token: bool,
    pub(crate) payload: Option<Payload>,
    /// A body bound of the route's own, below the gateway's.
    pub(crate) max_body_bytes: Option<u64>,
    /// A dedupe window the provider's retries call for.
    pub(crate) dedupe_window: Option<Duration>,
    /// A public-key signature (the route gives the public keys).
    pub(crate) signature: Option<SignatureDefaults>,
    /// The provider's endpoint check, answered by callgate.
    pub(crate) handshake: Option<Handshake>,
}

#[cfg(test)]
mod tests;
