//! `signature = { algorithm, header, encoding, public_keys, tolerance }`:
//! a public-key signature (Ed25519, ECDSA, RSA), the preset filling in the rest.

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::At;
use crate::config::defaults::{DEFAULT_TOLERANCE, MAX_TOLERANCE};
use crate::config::load::Loader;
use crate::config::presets;
use crate::config::raw::{Dur, HeaderNameValue};
use crate::config::{secret, ConfigError};
use crate::crypto::Encoding;

/// `signature = { algorithm, header, encoding, public_keys }`: a public-key signature.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignature {
    pub(crate) algorithm: Option<Spanned<String>>,
    pub(crate) header: Option<HeaderNameValue>,
    pub(crate) encoding: Option<Encoding>,
    pub(crate) public_keys: Vec<Spanned<String>>,
    pub(crate) tolerance: Option<Dur>,
}

/// A route's public-key signature check, resolved.
#[derive(Debug, Clone)]
pub(crate) struct SignatureCheck {
    pub(crate) algorithm: presets::PkAlgorithm,
    pub(crate) header: HeaderName,
    pub(crate) encoding: Encoding,
    /// Public keys as ring reads them (raw Ed25519, EC point, RSAPublicKey DER).
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) sources: Vec<String>,
    /// The header holding a signed timestamp, and what joins it to the body.
    pub(crate) timestamp: Option<(&'static str, &'static str)>,
    /// A signed message-id header, and what joins it to the timestamp.
    pub(crate) id: Option<(&'static str, &'static str)>,
    /// Space-separated `prefix<signature>` entries; None: one signature.
    pub(crate) list_prefix: Option<&'static str>,
    pub(crate) tolerance: Duration,
}

impl Loader<'_> {
    /// `signature = { algorithm, header, encoding, public_keys }`, the
    /// preset filling in what the route leaves out.
    pub(super) fn signature(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<RawSignature>>,
    ) -> Result<Option<SignatureCheck>, ConfigError> {
        let label = at.label;
        let preset = at.preset.and_then(|d| d.signature);
        let Some(raw) = raw else {
            if preset.is_some() {
                return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} checks a public-key signature: add signature = {{ public_keys = [\"<the provider's public key>\"] }}", at.preset_name)));
            }
            return Ok(None);
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let algorithm = match &raw.algorithm {
            Some(a) => super::presets::PkAlgorithm::NAMES
                .iter()
                .find(|(n, _)| n == a.get_ref())
                .map(|(_, alg)| *alg)
                .ok_or_else(|| self.at(a, format!("{label}.signature.algorithm must be one of ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pkcs1-sha256, rsa-pss-sha256")))?,
            None => preset.map(|p| p.algorithm).ok_or_else(|| self.error(Some(span.clone()), format!("{label}.signature.algorithm is missing: add algorithm = \"ed25519\" (or ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pkcs1-sha256, rsa-pss-sha256)")))?,
        };
        let header = match raw.header {
            Some(h) => h.0,
            None => preset
                .map(|p| HeaderName::from_static(p.header))
                .ok_or_else(|| {
                    self.error(
                        Some(span.clone()),
                        format!(
                            "{label}.signature.header is missing: add header = \"X-Signature\""
                        ),
                    )
                })?,
        };
        let encoding = raw
            .encoding
            .or(preset.map(|p| p.encoding))
            .unwrap_or(Encoding::Base64);
        if raw.public_keys.is_empty() {
            return Err(self.error(Some(span), format!("{label}.signature.public_keys is empty: give the provider's public key (PEM, base64 or hex; several for rotation)")));
        }
        let (keys, sources) = self.public_keys(label, algorithm, &raw.public_keys)?;
        Ok(Some(SignatureCheck {
            algorithm,
            header,
            encoding,
            keys,
            sources,
            timestamp: preset.and_then(|p| p.timestamp),
            id: preset.and_then(|p| p.id),
            list_prefix: preset.and_then(|p| p.list_prefix),
            tolerance: self.duration(
                raw.tolerance,
                DEFAULT_TOLERANCE,
                Duration::from_secs(1)..=MAX_TOLERANCE,
                &format!("{label}.signature.tolerance"),
            )?,
        }))
    }

    /// `signature.public_keys`: each parsed for `algorithm` (a spec is
    /// resolved first), and how each was given.
    pub(super) fn public_keys(
        &self,
        label: &str,
        algorithm: super::presets::PkAlgorithm,
        specs: &[Spanned<String>],
    ) -> Result<(Vec<Vec<u8>>, Vec<String>), ConfigError> {
        let mut keys = Vec::new();
        let mut sources = Vec::new();
        for (j, spec) in specs.iter().enumerate() {
            // A public key is no secret; a secret spec is accepted all the same.
            let text = match ["env:", "file:", "cred:"]
                .iter()
                .any(|p| spec.get_ref().starts_with(p))
            {
                true if self.offline => None,
                true => self.or_defer(
                    secret::resolve(spec.get_ref()).map(Some).map_err(|e| {
                        self.at(spec, format!("{label}.signature.public_keys[{j}]: {e}"))
                    }),
                    || None,
                ),
                false => Some(secret::Secret::from(spec.get_ref().as_bytes().to_vec())),
            };
            sources.push(secret::describe(spec.get_ref()).replace("literal", "inline"));
            let Some(text) = text else { continue };
            let text = String::from_utf8_lossy(text.expose()).into_owned();
            let key = crate::config::public_key::parse(algorithm, &text)
                .map_err(|e| self.at(spec, format!("{label}.signature.public_keys[{j}]: {e}")))?;
            keys.push(key);
        }
        Ok((keys, sources))
    }
}
