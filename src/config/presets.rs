//! Known providers as data: the defaults a `preset` fills in before the
//! route is validated. Explicit keys on the route always win.

use serde::Deserialize;

use crate::crypto::{Algorithm, Encoding};

/// A provider whose callback conventions callgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Preset {
    /// Tolq: HMAC-SHA1 of the raw JSON body keyed with the API key, from 84.22.114.141.
    Tolq,
    /// Gengo: unsigned form posts whose `job` or `comment` field holds JSON.
    Gengo,
}

/// Shape a body must have, checked after the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `application/x-www-form-urlencoded` with a `job` or `comment` field holding a JSON object.
    GengoForm,
}

/// HMAC settings a preset supplies (the secrets never come from a preset).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HmacDefaults {
    pub(crate) algorithm: Algorithm,
    pub(crate) header: &'static str,
    pub(crate) encoding: Encoding,
}

/// Everything one preset fills in or demands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) allow_ips: &'static [&'static str],
    pub(crate) hmac: Option<HmacDefaults>,
    /// The route must configure a token (the provider signs nothing).
    pub(crate) requires_token: bool,
    pub(crate) payload: Option<Payload>,
}

impl Preset {
    /// Name as written in config.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Preset::Tolq => "tolq",
            Preset::Gengo => "gengo",
        }
    }

    /// The preset's defaults.
    pub(crate) fn defaults(self) -> Defaults {
        match self {
            // Tolq sends every callback from one address; its documentation
            // does not say whether the signature is hex or base64, hence auto.
            Preset::Tolq => Defaults {
                allow_ips: &["84.22.114.141/32"],
                hmac: Some(HmacDefaults {
                    algorithm: Algorithm::Sha1,
                    header: "x-tolq-signature",
                    encoding: Encoding::Auto,
                }),
                requires_token: false,
                payload: None,
            },
            // Gengo signs nothing and publishes no source range: the URL
            // token is the only secret it can carry.
            Preset::Gengo => Defaults {
                allow_ips: &[],
                hmac: None,
                requires_token: true,
                payload: Some(Payload::GengoForm),
            },
        }
    }
}
