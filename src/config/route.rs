//! One `[[route]]` resolved: its upstream, the preset's defaults, and each
//! check (allow_ips, token, hmac) ready to run.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use toml::Spanned;

use super::defaults::{
    DEFAULT_ACK_STATUS, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP, DEFAULT_RETRY_MAX_AGE,
    DEFAULT_RETRY_MAX_ATTEMPTS, DEFAULT_TOKEN_PARAM, DEFAULT_TOLERANCE, MAX_MAX_CONCURRENCY,
    MAX_MAX_IN_FLIGHT, MAX_RETRY_ATTEMPTS, MAX_TOLERANCE, MAX_UPSTREAM_TIMEOUT, MIN_TIMEOUT,
};
use super::load::Loader;
use super::presets::Preset;
use super::presets::{Defaults, HmacDefaults, KeyForm, Scheme};
use super::{
    raw, secret, token_digest, ConfigError, Delivery, HmacCheck, IpCheck, Retry, Route,
    SignatureCheck, TokenCheck, Upstream,
};
use crate::crypto::{Algorithm, Encoding, Key};
use crate::learned::Learned;
use crate::php;

/// A route's handshake as `Route` keeps it: the kind, and Meta's verify token.
type RouteHandshake = Option<(super::presets::Handshake, Option<secret::Secret>)>;

/// What every part of one route's resolution needs to name it in errors.
struct At<'a> {
    /// `route[3] ("tolq")`
    label: &'a str,
    /// The whole `[[route]]` table, for problems with no single key.
    span: Range<usize>,
    preset: Option<Defaults>,
    preset_name: &'static str,
}

impl Loader<'_> {
    pub(super) fn route(
        &self,
        i: usize,
        span: Range<usize>,
        raw: raw::RawRoute,
        default_upstream_timeout: Duration,
        max_body_bytes: u64,
    ) -> Result<Route, ConfigError> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(self.at(
                &raw.name,
                format!("route[{i}].name is empty: give the route a name for logs and metrics"),
            ));
        }
        let label = format!("route[{i}] ({name:?})");
        let path = raw.path.get_ref().clone();
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(self.at(&raw.path, format!("{label}.path {path:?} must be an absolute path such as \"/tolq/callback\", without query or fragment")));
        }
        let mut upstream = Upstream::parse(raw.upstream.get_ref())
            .map_err(|m| self.at(&raw.upstream, format!("{label}.upstream: {m}")))?;
        upstream.tls = self.upstream_tls(&label, &upstream, raw.upstream_tls)?;
        let preset = raw.preset.as_ref().map(|p| self.preset(p)).transpose()?;
        let at = At {
            label: &label,
            span,
            preset: preset.map(Preset::defaults),
            preset_name: preset.map_or("", Preset::name),
        };
        let allow_ips = self.allow_ips(&at, raw.allow_ips)?;
        let token = self.token(&at, raw.token)?;
        let guarded = (token.is_some(), allow_ips.is_some());
        let (handshake, learned) = self.handshake(&at, raw.handshake, guarded)?;
        let mut hmac = self.hmac(&at, raw.hmac, learned)?;
        if let (Some(h), Some((kind, _))) = (hmac.as_mut(), &handshake) {
            h.refuse_tokens = kind.computes_with_key();
        }
        let signature = self.signature(&at, raw.signature)?;
        if allow_ips.is_none() && token.is_none() && hmac.is_none() && signature.is_none() {
            return Err(self.error(Some(at.span), format!("{label} has no check: configure at least one of allow_ips, token or hmac (an unchecked route would forward anything)")));
        }
        let everyone = allow_ips
            .as_ref()
            .and_then(|a| a.nets.iter().find(|n| n.prefix_len() == 0));
        if let Some(all) = everyone {
            let msg = format!(
                "{label}.allow_ips contains \"{all}\", which is every address: it checks nothing"
            );
            if token.is_none() && hmac.is_none() && signature.is_none() {
                return Err(self.error(Some(at.span), format!("{msg}, and it is the route's only check (an anonymous POST would be forwarded as verified \"ip\"). List the provider's addresses, or add a token or hmac")));
            }
            self.warn(format!(
                "{msg}; remove it, or list the provider's addresses"
            ));
        }
        if raw.strip_token && token.is_none() {
            return Err(self.error(Some(at.span), format!("{label}: strip_token = true but the route has no token; remove strip_token or add a token")));
        }
        let reserved_params = token
            .iter()
            .map(|t| t.param.clone())
            .chain(upstream.params.iter().cloned())
            .collect();
        let hosts = raw.host.map(|h| self.hosts(&label, h)).transpose()?;
        // Twilio signs the URL it called: built from an unchecked Host, a
        // request signed for another site (staging) would verify here.
        let signs_url = hmac.as_ref().is_some_and(|h| {
            h.scheme.signed == super::presets::Signed::Twilio && h.public_url.is_none()
        });
        if signs_url && hosts.is_none() {
            return Err(self.error(Some(at.span), format!("{label}: a {} route checks a signature over the URL the provider called, so that URL must not come from the caller's Host alone: add host = [\"www.example.com\"] (the host it calls) or hmac.public_url = \"https://www.example.com\"", at.preset_name)));
        }
        let window = raw.dedupe_window.map(|w| w.0);
        let dedupe_window = self.replay_window(&at, window, hmac.as_ref(), signature.as_ref())?;
        Ok(Route {
            name,
            hosts,
            path,
            upstream,
            preset,
            methods: self.methods(&at, raw.methods)?,
            allow_ips,
            token,
            hmac,
            signature,
            handshake,
            payload: at.preset.and_then(|d| d.payload),
            strip_token: raw.strip_token,
            enforce: raw.enforce.unwrap_or(true),
            store_credentials: raw.store_credentials.unwrap_or(false),
            max_concurrency: self.max_concurrency(&label, raw.max_concurrency)?,
            rate: raw.rate.map(|r| r.0),
            on_failure_queue: self.on_failure(&label, raw.on_failure.as_ref(), raw.delivery)?,
            upstream_timeout: self.duration(
                raw.upstream_timeout,
                default_upstream_timeout,
                MIN_TIMEOUT..=MAX_UPSTREAM_TIMEOUT,
                &format!("{label}.upstream_timeout"),
            )?,
            delivery: raw.delivery.unwrap_or(Delivery::Direct),
            ack_status: self.ack_status(&at, raw.ack_status)?,
            max_in_flight: self.number(
                raw.max_in_flight,
                1,
                1..=MAX_MAX_IN_FLIGHT,
                &format!("{label}.max_in_flight must be between 1 (keeps arrival order) and {MAX_MAX_IN_FLIGHT}"),
            )?,
            retry: self.retry(&label, raw.retry.unwrap_or_default())?,
            dedupe_window,
            max_body_bytes: self.body_bound(&at, raw.max_body_bytes, max_body_bytes)?,
            reserved_params,
            metrics: Default::default(),
        })
    }

    /// The route's own list, else the preset's, else none.
    fn allow_ips(
        &self,
        at: &At<'_>,
        raw: Option<Vec<raw::AllowEntry>>,
    ) -> Result<Option<IpCheck>, ConfigError> {
        Ok(match raw {
            Some(list) if list.is_empty() => {
                return Err(self.error(Some(at.span.clone()), format!("{}.allow_ips is empty, which would refuse every caller: list the provider's addresses, or remove the key", at.label)))
            }
            Some(list) => {
                let (mut nets, mut lists) = (Vec::new(), Vec::new());
                for entry in list {
                    match entry {
                        raw::AllowEntry::Net(n) => nets.push(n),
                        raw::AllowEntry::List(name) => {
                            self.known_list(at, &name)?;
                            if !lists.contains(&name) {
                                lists.push(name);
                            }
                        }
                    }
                }
                Some(IpCheck {
                    nets,
                    lists,
                    from_preset: false,
                })
            }
            None => match at.preset {
                Some(d) if !d.allow_ips.is_empty() => Some(IpCheck {
                    nets: d
                        .allow_ips
                        .iter()
                        .map(|s| s.parse().expect("preset CIDRs are valid"))
                        .collect(),
                    lists: Vec::new(),
                    from_preset: true,
                }),
                _ => None,
            },
        })
    }

    /// `list:NAME` names a built-in list or an `[[ip_list]]`.
    fn known_list(&self, at: &At<'_>, name: &str) -> Result<(), ConfigError> {
        let known = self.ip_list_names();
        if known.iter().any(|k| k == name) {
            return Ok(());
        }
        Err(self.error(Some(at.span.clone()), format!("{}.allow_ips names \"list:{name}\", which is no list: built in are {}; define another as [[ip_list]] name = {name:?}, url = \"https://…\", format = \"json\" or \"lines\"", at.label, known.join(", "))))
    }

    fn token(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<raw::RawToken>>,
    ) -> Result<Option<TokenCheck>, ConfigError> {
        let label = at.label;
        let Some(t) = raw else {
            if at.preset.is_some_and(|d| d.requires_token) {
                return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} requires a URL token (the provider signs nothing): add token = {{ param = \"token\", secrets = [\"env:GENGO_CALLBACK_TOKEN\"] }}", at.preset_name)));
            }
            return Ok(None);
        };
        let t_span = t.span();
        let t = t.into_inner();
        let param = match &t.param {
            Some(p) if p.get_ref().is_empty() => {
                return Err(self.at(
                    p,
                    format!(
                        "{label}.token.param is empty: name the query parameter, e.g. \"token\""
                    ),
                ))
            }
            Some(p) => php::folded(p.get_ref()),
            None => DEFAULT_TOKEN_PARAM.to_owned(),
        };
        let (secrets, sources) = self.secrets(label, "token", t_span, &t.secrets)?;
        Ok(Some(TokenCheck {
            param,
            digests: secrets.iter().map(|s| token_digest(s.expose())).collect(),
            secrets,
            sources,
        }))
    }

    fn hmac(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<raw::RawHmac>>,
        learned: Option<Arc<Learned>>,
    ) -> Result<Option<HmacCheck>, ConfigError> {
        let label = at.label;
        let preset = at.preset.and_then(|d| d.hmac);
        let Some(h) = raw else {
            return self.hmac_unwritten(at, learned);
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
            learned,
            refuse_tokens: false,
        }))
    }

    /// A route without `hmac`: the preset's check when every key comes
    /// from the provider's handshake (Asana), else none (or the missing key).
    fn hmac_unwritten(
        &self,
        at: &At<'_>,
        learned: Option<Arc<Learned>>,
    ) -> Result<Option<HmacCheck>, ConfigError> {
        let preset = at.preset.and_then(|d| d.hmac);
        if let (Some(p), Some(learned)) = (preset, learned) {
            return Ok(Some(HmacCheck {
                learned: Some(learned),
                ..HmacCheck::from_defaults(p, Vec::new())
            }));
        }
        if preset.is_some() {
            return Err(self.error(Some(at.span.clone()), format!("{}: preset {} checks the body signature and needs the provider's key: add hmac = {{ secrets = [\"env:TOLQ_API_KEY\"] }} (the Tolq API key)", at.label, at.preset_name)));
        }
        Ok(None)
    }

    /// The route's replay window (its own, else the preset's). A signed
    /// timestamp's tolerance may not outlive it: a captured callback would
    /// pass its timestamp check after its replay key was forgotten.
    fn replay_window(
        &self,
        at: &At<'_>,
        own: Option<Option<Duration>>,
        hmac: Option<&HmacCheck>,
        signature: Option<&SignatureCheck>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(window) = own.unwrap_or_else(|| at.preset.and_then(|d| d.dedupe_window)) else {
            return Ok(None);
        };
        let stamped = hmac
            .filter(|h| h.scheme.timed())
            .map(|h| ("hmac", h.tolerance))
            .or_else(|| {
                signature
                    .filter(|s| s.timestamp.is_some())
                    .map(|s| ("signature", s.tolerance))
            });
        let Some((key, tolerance)) = stamped.filter(|(_, t)| *t > window) else {
            return Ok(Some(window));
        };
        let (t, w) = (
            humantime::format_duration(tolerance),
            humantime::format_duration(window),
        );
        Err(self.error(Some(at.span.clone()), format!("{}: {key}.tolerance = \"{t}\" is longer than dedupe_window = \"{w}\": a captured callback would pass its timestamp check after its replay key is forgotten, and be forwarded again. Give {key}.tolerance = \"{w}\" or less, or dedupe_window = \"{t}\" or more", at.label)))
    }

    /// A key a handshake answers with (X's CRC, Zoom's validation: HMAC of
    /// any token the caller chooses) must sign nothing that could be a
    /// token on another route either: a route holding the same key under
    /// `{body}` without a JSON-object payload would take the answer as the
    /// signature of a token-shaped body.
    pub(super) fn no_shared_oracle_key(&self, routes: &[Arc<Route>]) -> Result<(), ConfigError> {
        if self.offline {
            return Ok(()); // stand-in secrets, all alike
        }
        let id = |k: &Key| k.digest(b"callgate: is this the same key?");
        let answering = routes.iter().filter_map(|r| {
            let (kind, _) = r
                .handshake
                .as_ref()
                .filter(|(k, _)| k.computes_with_key())?;
            Some((
                r,
                *kind,
                r.hmac.as_ref()?.keys.iter().map(id).collect::<Vec<_>>(),
            ))
        });
        for (oracle, kind, keys) in answering {
            let token_taking = routes.iter().find(|r| {
                let takes = r.hmac.as_ref().filter(|h| {
                    h.scheme.signed == super::presets::Signed::Body
                        && r.payload != Some(super::presets::Payload::JsonObject)
                });
                takes.is_some_and(|h| h.keys.iter().any(|k| keys.contains(&id(k))))
            });
            if let Some(r) = token_taking {
                return Err(self.error(None, format!("route {:?} signs with the key of route {:?}, whose {} handshake answers an HMAC of any token the caller chooses; {:?} checks an HMAC of the body alone, so a token-shaped body signed by that answer would pass. Give each route its own secret (the provider issues one per endpoint)", r.name, oracle.name, kind.name(), r.name)));
            }
        }
        Ok(())
    }

    /// `max_concurrency`: callbacks in flight to the receiver at once.
    fn max_concurrency(
        &self,
        label: &str,
        raw: Option<Spanned<usize>>,
    ) -> Result<Option<usize>, ConfigError> {
        raw.map(|m| {
            self.number(
                Some(m),
                1,
                1..=MAX_MAX_CONCURRENCY,
                &format!("{label}.max_concurrency must be between 1 and {MAX_MAX_CONCURRENCY}"),
            )
        })
        .transpose()
    }

    /// `on_failure = "queue"`: whether a direct route stores what its receiver refuses.
    fn on_failure(
        &self,
        label: &str,
        raw: Option<&Spanned<String>>,
        delivery: Option<Delivery>,
    ) -> Result<bool, ConfigError> {
        match raw.map(|o| o.get_ref().as_str()) {
            None | Some("fail") => Ok(false),
            Some("queue") => Ok(delivery != Some(Delivery::Queue)),
            Some(_) => Err(self.at(raw.expect("matched Some"), format!("{label}.on_failure must be \"queue\" (store and answer ack_status when the receiver fails) or \"fail\" (default: the receiver's failure is the answer)"))),
        }
    }

    /// The preset's endpoint check, with Meta's verify token, or the file
    /// that keeps the secret Asana hands over.
    fn handshake(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<raw::RawHandshake>>,
        (has_token, has_ips): (bool, bool),
    ) -> Result<(RouteHandshake, Option<Arc<Learned>>), ConfigError> {
        let label = at.label;
        let Some(kind) = at.preset.and_then(|d| d.handshake) else {
            if let Some(r) = raw {
                return Err(self.error(Some(r.span()), format!("{label}.handshake is for presets whose provider checks the endpoint (meta, zoom, x, dropbox, slack, microsoft-graph, asana)")));
            }
            return Ok((None, None));
        };
        // Its answer is an HMAC under the route's key: only the provider may ask.
        if kind.computes_with_key() && !has_token && !has_ips {
            return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} answers the {} handshake with an HMAC under the route's key, so only the provider may ask it: add token = {{ secrets = [\"env:URL_TOKEN\"] }} and give the provider the URL with ?token=…, or allow_ips = [the provider's addresses]", at.preset_name, kind.name())));
        }
        let (spec, file) = match raw {
            Some(r) => {
                let r = r.into_inner();
                (r.verify_token, r.secret_file)
            }
            None => (None, None),
        };
        if let (false, Some(f)) = (kind.hands_over_secret(), &file) {
            return Err(self.at(f, format!("{label}.handshake.secret_file is for a provider that hands its secret over in the handshake (asana); remove it")));
        }
        let learned = match kind.hands_over_secret() {
            true => Some(self.secret_file(at, file, has_token)?),
            false => None,
        };
        let token = match (kind, spec) {
            (super::presets::Handshake::MetaVerifyToken, None) => {
                return Err(self.error(Some(at.span.clone()), format!("{label}: preset meta answers Meta's verification request itself and needs the verify token you gave Meta: add handshake = {{ verify_token = \"env:META_VERIFY_TOKEN\" }}")));
            }
            (_, None) => None,
            (_, Some(spec)) if self.offline => {
                let _ = spec;
                Some(secret::Secret::from(b"offline".to_vec()))
            }
            (_, Some(spec)) => {
                let key = format!("{label}.handshake.verify_token");
                let resolved = secret::resolve(spec.get_ref())
                    .map_err(|e| self.at(&spec, format!("{key}: {e}")));
                if let Ok(s) = &resolved {
                    self.keep(&key, s);
                }
                Some(self.or_defer(resolved, || secret::Secret::from(b"stand-in".to_vec())))
            }
        };
        Ok((Some((kind, token)), learned))
    }

    /// `handshake = { secret_file = PATH }`: where the secrets Asana hands
    /// over are kept. Its handshake is signed by nothing, so the route's
    /// URL token must guard it.
    fn secret_file(
        &self,
        at: &At<'_>,
        file: Option<Spanned<String>>,
        has_token: bool,
    ) -> Result<Arc<Learned>, ConfigError> {
        let label = at.label;
        let Some(file) = file else {
            return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} hands its signing secret over in a handshake, and callgate keeps it: add handshake = {{ secret_file = \"/var/lib/callgate/{}.secrets\" }} (a file in a directory of callgate's own)", at.preset_name, at.preset_name)));
        };
        if !has_token {
            return Err(self.error(Some(at.span.clone()), format!("{label}: the {} handshake is signed by nothing, so anyone could hand callgate a key; the route's URL token must guard it: add token = {{ secrets = [\"env:ASANA_URL_TOKEN\"] }} and give Asana the URL with ?token=…", at.preset_name)));
        }
        let path = std::path::Path::new(file.get_ref());
        if !path.is_absolute() {
            return Err(self.at(&file, format!("{label}.handshake.secret_file must be an absolute path such as \"/var/lib/callgate/asana.secrets\"")));
        }
        let algorithm = at
            .preset
            .and_then(|d| d.hmac)
            .map_or(Algorithm::Sha256, |h| h.algorithm);
        if self.offline {
            return Ok(Learned::detached(path, algorithm));
        }
        let learned = Learned::open(path, algorithm)
            .map_err(|e| self.at(&file, format!("{label}.handshake.secret_file: {e}")))?;
        if learned.keys().is_empty() {
            self.warn(format!("{label}: no secret in {} yet; signed events are refused until the provider's handshake (with the URL token) hands one over", path.display()));
        }
        Ok(learned)
    }

    /// `signature = { algorithm, header, encoding, public_keys }`, the
    /// preset filling in what the route leaves out.
    fn signature(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<raw::RawSignature>>,
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
    fn public_keys(
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
            let key = super::public_key::parse(algorithm, &text)
                .map_err(|e| self.at(spec, format!("{label}.signature.public_keys[{j}]: {e}")))?;
            keys.push(key);
        }
        Ok((keys, sources))
    }

    /// The route's body bound: its own, the preset's, or the gateway's, never above that.
    fn body_bound(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<u64>>,
        gateway: u64,
    ) -> Result<u64, ConfigError> {
        let preset = at.preset.and_then(|d| d.max_body_bytes);
        self.number(
            raw,
            preset.map_or(gateway, |p| p.min(gateway)),
            1..=gateway,
            &format!(
                "{}.max_body_bytes must be between 1 and gateway.max_body_bytes ({gateway})",
                at.label
            ),
        )
    }

    fn methods(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<Vec<raw::MethodValue>>>,
    ) -> Result<Vec<Method>, ConfigError> {
        let by_get = at
            .preset
            .and_then(|d| d.handshake)
            .is_some_and(super::presets::Handshake::by_get);
        match raw {
            // The provider's endpoint check comes as a GET: answered, never forwarded.
            None if by_get => Ok(vec![Method::POST, Method::GET]),
            None => Ok(vec![Method::POST]),
            Some(m) if m.get_ref().is_empty() => Err(self.at(
                &m,
                format!(
                    "{}.methods is empty: list at least \"POST\", or remove the key",
                    at.label
                ),
            )),
            Some(m) => Ok(m.into_inner().into_iter().map(|m| m.0).collect()),
        }
    }

    fn ack_status(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<u16>>,
    ) -> Result<http::StatusCode, ConfigError> {
        let Some(s) = raw else {
            return Ok(http::StatusCode::from_u16(DEFAULT_ACK_STATUS).expect("valid status"));
        };
        match http::StatusCode::from_u16(*s.get_ref()) {
            Ok(code) if code.is_success() => Ok(code),
            _ => Err(self.at(
                &s,
                format!(
                    "{}.ack_status must be a 2xx status such as 202 or 200",
                    at.label
                ),
            )),
        }
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
    fn from_defaults(d: HmacDefaults, keys: Vec<Key>) -> HmacCheck {
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
            learned: None,
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
    /// `retry = { base, cap, max_attempts, max_age }`, each bounded so that
    /// no backoff overflows and no callback is kept for ever.
    fn retry(&self, label: &str, raw: raw::RawRetry) -> Result<Retry, ConfigError> {
        let (ms, secs) = (Duration::from_millis, Duration::from_secs);
        let base = self.duration(
            raw.base,
            DEFAULT_RETRY_BASE,
            ms(10)..=secs(3600),
            &format!("{label}.retry.base"),
        )?;
        let cap = self.duration(
            raw.cap,
            DEFAULT_RETRY_CAP.max(base),
            base..=secs(86_400),
            &format!("{label}.retry.cap"),
        )?;
        let max_age = self.duration(
            raw.max_age,
            DEFAULT_RETRY_MAX_AGE,
            secs(60)..=secs(90 * 86_400),
            &format!("{label}.retry.max_age"),
        )?;
        let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_RETRY_MAX_ATTEMPTS);
        if !(1..=MAX_RETRY_ATTEMPTS).contains(&max_attempts) {
            return Err(self.error(None, format!("{label}.retry.max_attempts = {max_attempts} is out of range: give 1 to {MAX_RETRY_ATTEMPTS}")));
        }
        Ok(Retry {
            base,
            cap,
            max_attempts,
            max_age,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use std::sync::Arc;

    fn route(spec: &str) -> Arc<Route> {
        let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n");
        let config = Config::from_str(&text, Path::new("t.toml")).unwrap();
        let route = config.routes.iter().next().unwrap().clone();
        route
    }

    #[test]
    fn gengo_retries_for_12_hours_with_bodies_of_at_most_64_kib() {
        let r = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }");
        assert_eq!(r.dedupe_window, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(r.max_body_bytes, 64 * 1024);
        let own = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }\ndedupe_window = \"1h\"\nmax_body_bytes = 1000");
        assert_eq!(
            (own.dedupe_window, own.max_body_bytes),
            (Some(Duration::from_secs(3600)), 1000)
        );
    }

    #[test]
    fn presets_with_a_replay_story_dedupe_by_default_and_0_turns_it_off() {
        let hours = |spec: &str| route(spec).dedupe_window.map(|w| w.as_secs() / 3600);
        assert_eq!(
            hours("preset = \"github\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }"),
            Some(72)
        );
        assert_eq!(
            hours("preset = \"shopify\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }"),
            Some(48)
        );
        assert_eq!(
            hours("preset = \"tolq\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }"),
            None,
            "Tolq's replay story is its source address"
        );
        assert_eq!(
            hours("preset = \"github\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }\ndedupe_window = \"0\""),
            None
        );
        assert_eq!(
            hours("hmac = { secrets = [\"s-0123456789abcdef\"], algorithm = \"sha256\", header = \"x-sig\" }"),
            None
        );
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\nhmac = { secrets = [\"s-0123456789abcdef\"], algorithm = \"sha256\", header = \"x-sig\" }\ndedupe_window = \"1000d\"\n";
        let err = Config::from_str(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than 90 days"), "{err}");
    }

    #[test]
    fn asanas_handshake_needs_a_secret_file_and_the_url_token_to_guard_it() {
        let err = |spec: &str| {
            let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n");
            Config::from_str(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string()
        };
        let token = "token = { secrets = [\"u-0123456789abcdef\"] }";
        let e = err(&format!("preset = \"asana\"\n{token}"));
        assert!(e.contains("add handshake = { secret_file ="), "{e}");
        let e = err("preset = \"asana\"\nhandshake = { secret_file = \"/var/lib/callgate/a.secrets\" }\nallow_ips = [\"10.0.0.1\"]");
        assert!(e.contains("URL token must guard it"), "{e}");
        let e = err(&format!(
            "preset = \"asana\"\n{token}\nhandshake = {{ secret_file = \"a.secrets\" }}"
        ));
        assert!(e.contains("must be an absolute path"), "{e}");
        let e = err(&format!("preset = \"dropbox\"\n{token}\nhmac = {{ secrets = [\"d-0123456789abcdef\"] }}\nhandshake = {{ secret_file = \"/x/a\" }}"));
        assert!(
            e.contains("secret_file is for a provider that hands"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("asana.secrets");
        let r = route(&format!(
            "preset = \"asana\"\n{token}\nhandshake = {{ secret_file = {:?} }}",
            file.display().to_string()
        ));
        let h = r.hmac.as_ref().expect("the preset's check");
        assert!(h.keys.is_empty());
        assert_eq!(h.learned_keys().map(|k| k.len()), Some(0));
        assert_eq!(h.header.as_str(), "x-hook-signature");
    }

    #[test]
    fn a_twilio_route_needs_its_host_or_public_url() {
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\npreset = \"twilio\"\nhmac = { secrets = [\"twilio-auth-token-1\"] }\n";
        let err = Config::from_str(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("add host = [") && err.contains("hmac.public_url"),
            "{err}"
        );
        route("preset = \"twilio\"\nhost = [\"www.example.com\"]\nhmac = { secrets = [\"t-0123456789abcdef\"] }");
        route("preset = \"twilio\"\nhmac = { secrets = [\"t-0123456789abcdef\"], public_url = \"https://www.example.com\" }");
    }

    #[test]
    fn a_whsec_key_must_be_base64_and_tolerance_is_the_routes_to_set() {
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\npreset = \"standard-webhooks\"\nhmac = { secrets = [\"whsec_!!-0123456789abcdef\"] }\n";
        let err = Config::from_str(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a whsec_ key"), "{err}");
        let r = route(
            "preset = \"slack\"\nhmac = { secrets = [\"s-0123456789abcdef\"], tolerance = \"1m\" }",
        );
        let h = r.hmac.as_ref().unwrap();
        assert_eq!(h.tolerance, Duration::from_secs(60));
        assert_eq!(h.header.as_str(), "x-slack-signature");
    }

    #[test]
    fn a_routes_script_is_protected_on_every_passthrough_unless_opted_out() {
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://localhost:8080/cb.php\"\nallow_ips = [\"10.0.0.0/8\"]\n[[passthrough]]\nupstream = \"http://127.0.0.1:8080\"\n[[passthrough]]\nupstream = \"http://127.0.0.1:8081\"\n[[passthrough]]\nupstream = \"http://127.0.0.1:8082\"\nprotect_routes = false\n";
        let config = Config::from_str(text, Path::new("t.toml")).unwrap();
        let protected: Vec<Vec<String>> = config
            .passthroughs
            .iter()
            .map(|p| p.protect.iter().map(|p| p.shown.clone()).collect())
            .collect();
        assert_eq!(
            protected,
            [
                vec!["/cb.php", "/cb (route \"r\")"],
                vec!["/cb.php", "/cb (route \"r\")"],
                vec!["/cb (route \"r\")"]
            ],
            "the route's path everywhere; its script unless protect_routes = false"
        );
    }
}
