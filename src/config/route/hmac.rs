//! `hmac = { algorithm, header, encoding, secrets, tolerance, public_url }`:
//! an HMAC of the provider's signed string, the preset filling in the rest.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::At;
use crate::config::defaults::{DEFAULT_TOLERANCE, MAX_TOLERANCE};
use crate::config::load::Loader;
use crate::config::presets::{self, HmacDefaults, KeyForm, Preset, Scheme};
use crate::config::raw::{Dur, HeaderNameValue};
use crate::config::ConfigError;
use crate::crypto::{Algorithm, Encoding, Key};

/// `hmac = { algorithm, header, encoding, secrets }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHmac {
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) header: Option<HeaderNameValue>,
    pub(crate) encoding: Option<Encoding>,
    pub(crate) secrets: Vec<Spanned<String>>,
    pub(crate) tolerance: Option<Dur>,
    pub(crate) public_url: Option<Spanned<String>>,
}

/// The body signature check.
#[derive(Debug, Clone)]
pub(crate) struct HmacCheck {
    pub(crate) algorithm: Algorithm,
    pub(crate) header: HeaderName,
    pub(crate) encoding: Encoding,
    pub(crate) keys: Vec<Key>,
    pub(crate) sources: Vec<String>,
    /// Which of algorithm/header/encoding the preset filled in.
    pub(crate) from_preset: Vec<&'static str>,
    /// What is signed, and how the header carries it (a preset's, or a
    /// plain HMAC of the body).
    pub(crate) scheme: presets::Scheme,
    /// How far a signed timestamp may be from now.
    pub(crate) tolerance: Duration,
    /// The public base URL (`https://example.com`) when callgate sits
    /// behind another proxy: Twilio signs the URL it called.
    pub(crate) public_url: Option<String>,
    /// `handshake.secret_file`: where the secrets the provider hands over
    /// in its handshake (Asana) are kept, checked after `keys`. The keys
    /// themselves are the gateway's state (`learned::Stores`), handed to
    /// the checks as `Signable::learned`.
    pub(crate) secret_file: Option<PathBuf>,
    /// The route answers a handshake with an HMAC of a token under these
    /// keys (X, Zoom): a signed string shaped like such a token is refused,
    /// whatever the template, so no answer ever passes as a signature.
    pub(crate) refuse_tokens: bool,
}

impl HmacCheck {
    /// Every key a signature is checked with: the configured ones, then
    /// those handed over so far (`learned`, none unless the route has a
    /// `secret_file`).
    pub(crate) fn all_keys<'a>(&'a self, learned: &'a [Key]) -> impl Iterator<Item = &'a Key> {
        let learned = match self.secret_file {
            Some(_) => learned,
            None => &[],
        };
        self.keys.iter().chain(learned)
    }
}

impl Loader<'_> {
    pub(super) fn hmac(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<RawHmac>>,
        secret_file: Option<PathBuf>,
    ) -> Result<Option<HmacCheck>, ConfigError> {
        let label = at.label;
        let preset = at.preset.and_then(|d| d.hmac);
        let Some(h) = raw else {
            return self.hmac_unwritten(at, secret_file);
        };
        let h_span = h.span();
        let h = h.into_inner();
        let mut from_preset = Vec::new();
        let mut filled = |key: &'static str, value: Option<HmacDefaults>| {
            if value.is_some() {
                from_preset.push(key);
            }
            value
        };
        let missing = |fix: &str| self.error(Some(h_span.clone()), format!("{label}.{fix}"));
        let algorithm = match h.algorithm {
            Some(a) => a,
            None => filled("algorithm", preset).map(|p| p.algorithm).ok_or_else(|| {
                missing("hmac.algorithm is missing: add algorithm = \"sha256\" (or \"sha1\", \"sha512\")")
            })?,
        };
        let header = match h.header {
            Some(v) => v.0,
            None => filled("header", preset).map(|p| HeaderName::from_static(p.header)).ok_or_else(|| {
                missing("hmac.header is missing: add header = \"X-Signature\" (the header carrying the provider's signature)")
            })?,
        };
        let encoding = match h.encoding {
            Some(e) => e,
            None => filled("encoding", preset).map_or(Encoding::Hex, |p| p.encoding),
        };
        let scheme = preset.map_or(Scheme::PLAIN, |p| p.scheme);
        let (secrets, sources) = self.secrets(label, "hmac", h_span.clone(), &h.secrets)?;
        let mut keys = Vec::with_capacity(secrets.len());
        for (j, s) in secrets.iter().enumerate() {
            let bytes = key_bytes(scheme.key, s.expose()).ok_or_else(|| {
                missing(&format!("hmac.secrets[{j}] is not a whsec_ key: give the signing secret as the provider shows it, whsec_ and base64"))
            })?;
            if scheme.key == KeyForm::Whsec {
                // The key the text stands for is a secret too, and so is
                // its base64 alone (the redactor hides a key's base64).
                self.keep(
                    &format!("{label}.hmac.secrets[{j}]"),
                    &crate::config::secret::Secret::from(bytes.clone()),
                );
            }
            keys.push(Key::new(algorithm, &bytes));
        }
        if let Some(u) = &h.public_url {
            if !(u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://")) {
                return Err(self.at(u, format!("{label}.hmac.public_url must be the base the provider calls, such as \"https://www.example.com\"")));
            }
        }
        Ok(Some(HmacCheck {
            algorithm,
            header,
            encoding,
            keys,
            sources,
            from_preset,
            scheme,
            tolerance: self.duration(
                h.tolerance,
                DEFAULT_TOLERANCE,
                Duration::from_secs(1)..=MAX_TOLERANCE,
                &format!("{label}.hmac.tolerance"),
            )?,
            public_url: h
                .public_url
                .map(|u| u.into_inner().trim_end_matches('/').to_owned()),
            secret_file,
            refuse_tokens: false,
        }))
    }

    /// A route without `hmac`: the preset's check when every key comes
    /// from the provider's handshake (Asana), else none (or the missing key).
    pub(super) fn hmac_unwritten(
        &self,
        at: &At<'_>,
        secret_file: Option<PathBuf>,
    ) -> Result<Option<HmacCheck>, ConfigError> {
        let preset = at.preset.and_then(|d| d.hmac);
        if let (Some(p), Some(file)) = (preset, secret_file) {
            return Ok(Some(HmacCheck {
                secret_file: Some(file),
                ..HmacCheck::from_defaults(p, Vec::new())
            }));
        }
        if preset.is_some() {
            return Err(self.error(Some(at.span.clone()), format!("{}: preset {} checks the body signature and needs the provider's key: add hmac = {{ secrets = [\"env:TOLQ_API_KEY\"] }} (the Tolq API key)", at.label, at.preset_name)));
        }
        Ok(None)
    }
}

impl HmacCheck {
    /// A preset's signature check with one key, for `callgate sign --preset`.
    pub(crate) fn for_preset(preset: Preset, secret: &[u8]) -> Result<HmacCheck, String> {
        let defaults = preset.defaults();
        let d = defaults.hmac.ok_or_else(|| match defaults.signature {
            Some(s) => format!(
                "{} signs with its private key ({}): callgate holds only public keys; sign a test request with your own key pair (openssl) and list its public key",
                preset.name(),
                s.algorithm.name()
            ),
            None => format!("{} signs nothing: it is guarded by the URL token", preset.name()),
        })?;
        let key = key_bytes(d.scheme.key, secret)
            .ok_or("the secret is not a whsec_ key (whsec_ and base64)")?;
        Ok(HmacCheck::from_defaults(
            d,
            vec![Key::new(d.algorithm, &key)],
        ))
    }

    /// A preset's check as it stands, with these keys.
    pub(super) fn from_defaults(d: HmacDefaults, keys: Vec<Key>) -> HmacCheck {
        HmacCheck {
            algorithm: d.algorithm,
            header: HeaderName::from_static(d.header),
            encoding: d.encoding,
            keys,
            sources: vec![],
            from_preset: vec![],
            scheme: d.scheme,
            tolerance: DEFAULT_TOLERANCE,
            public_url: None,
            secret_file: None,
            refuse_tokens: false,
        }
    }
}

/// A secret as the key it stands for: its bytes, or a `whsec_` key's decoded base64.
fn key_bytes(form: KeyForm, secret: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    match form {
        KeyForm::Raw => Some(secret.to_vec()),
        KeyForm::Whsec => {
            let b64 = secret.strip_prefix(b"whsec_").unwrap_or(secret);
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        }
    }
}

impl Loader<'_> {
    /// Twilio signs the URL it called: built from an unchecked Host, a
    /// request signed for another site (staging) would verify here.
    pub(super) fn signed_url_has_a_host(
        &self,
        at: &At<'_>,
        hmac: Option<&HmacCheck>,
        has_hosts: bool,
    ) -> Result<(), ConfigError> {
        let signs_url = hmac
            .is_some_and(|h| h.scheme.signed == presets::Signed::Twilio && h.public_url.is_none());
        if signs_url && !has_hosts {
            return Err(self.error(Some(at.span.clone()), format!("{}: a {} route checks a signature over the URL the provider called, so that URL must not come from the caller's Host alone: add host = [\"www.example.com\"] (the host it calls) or hmac.public_url = \"https://www.example.com\"", at.label, at.preset_name)));
        }
        Ok(())
    }
}
