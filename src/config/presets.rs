//! Known providers as data: the defaults a `preset` fills in before the
//! route is validated, over one signed-string model ([`Scheme`]): what is
//! signed, where the signature (and timestamp, and message id) come from,
//! how the key is written. Explicit keys on the route always win.

use std::time::Duration;

use serde::Deserialize;

use crate::crypto::{Algorithm, Encoding};

/// A provider whose callback conventions callgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Tolq: HMAC-SHA1 of the raw JSON body keyed with the API key, from 84.22.114.141.
    Tolq,
    /// Gengo: unsigned form posts whose `job` or `comment` field holds JSON.
    Gengo,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` of the body; `X-GitHub-Delivery` ids.
    Github,
    /// Stripe: `Stripe-Signature: t=…,v1=…` over `t.body`; the event id in the body.
    Stripe,
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:timestamp:body`.
    Slack,
    /// Shopify: `X-Shopify-Hmac-Sha256`, base64 of the body's HMAC-SHA256.
    Shopify,
    /// Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 of the URL and sorted form parameters.
    Twilio,
    /// Standard Webhooks: `webhook-signature: v1,<base64>` over `id.timestamp.body`, `whsec_` keys.
    StandardWebhooks,
    /// Svix: the Standard Webhooks scheme under `svix-id`, `svix-timestamp`, `svix-signature`.
    Svix,
    /// Clerk (signs with Svix).
    Clerk,
    /// Resend (signs with Svix).
    Resend,
    /// Discord interactions: Ed25519 over `timestamp + body`, hex, the application's public key.
    Discord,
    /// Telnyx: Ed25519 over `timestamp|body`, base64.
    Telnyx,
    /// SendGrid Event Webhook: ECDSA P-256 over `timestamp + body`, base64 DER.
    Sendgrid,
    /// Zoom: `x-zm-signature: v0=<hex>` over `v0:timestamp:body`; URL validation answered.
    Zoom,
    /// Meta (Facebook, WhatsApp, Instagram): `X-Hub-Signature-256`; the verify-token GET answered.
    Meta,
    /// X (Twitter) Account Activity: `x-twitter-webhooks-signature: sha256=<base64>`; CRC answered.
    X,
    /// Dropbox: `X-Dropbox-Signature` hex HMAC-SHA256; the challenge GET answered.
    Dropbox,
    /// Typeform: `Typeform-Signature: sha256=<base64>` of the body.
    Typeform,
    /// Linear: `Linear-Signature`, hex HMAC-SHA256 of the body.
    Linear,
    /// Lemon Squeezy: `X-Signature`, hex HMAC-SHA256 of the body.
    LemonSqueezy,
    /// Sentry: `Sentry-Hook-Signature`, hex HMAC-SHA256 of the body.
    Sentry,
    /// Coinbase Commerce: `X-CC-Webhook-Signature`, hex HMAC-SHA256 of the body.
    CoinbaseCommerce,
    /// Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>` of the body.
    Bitbucket,
    /// Vercel: `x-vercel-signature`, hex HMAC-SHA1 of the body.
    Vercel,
    /// Intercom: `X-Hub-Signature: sha1=<hex>` of the body.
    Intercom,
    /// WooCommerce: `X-WC-Webhook-Signature`, base64 HMAC-SHA256 of the body.
    Woocommerce,
    /// Gitea: `X-Gitea-Signature`, hex HMAC-SHA256 of the body.
    Gitea,
    /// Gogs: `X-Gogs-Signature`, hex HMAC-SHA256 of the body.
    Gogs,
    /// Segment: `X-Signature`, hex HMAC-SHA1 of the body.
    Segment,
    /// DocuSign Connect: `X-DocuSign-Signature-1`, base64 HMAC-SHA256 of the body.
    Docusign,
    /// Calendly: `Calendly-Webhook-Signature: t=…,v1=<hex>` over `t.body`.
    Calendly,
    /// Mux: `Mux-Signature: t=…,v1=<hex>` over `t.body`.
    Mux,
}

/// An endpoint check a provider makes, answered by callgate (`verify::handshake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    SlackUrlVerification,
    ZoomUrlValidation,
    MetaVerifyToken,
    XCrc,
    DropboxChallenge,
}

impl Handshake {
    /// Whether the check comes as a GET (the route then takes GET too).
    pub(crate) fn by_get(self) -> bool {
        matches!(
            self,
            Handshake::MetaVerifyToken | Handshake::XCrc | Handshake::DropboxChallenge
        )
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
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignatureDefaults {
    pub(crate) algorithm: PkAlgorithm,
    pub(crate) header: &'static str,
    pub(crate) encoding: Encoding,
    /// The timestamp header and what joins it to the body in the signed string.
    pub(crate) timestamp: Option<(&'static str, &'static str)>,
}

/// Shape a body must have, checked after the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `application/x-www-form-urlencoded` with a `job` or `comment` field holding a JSON object.
    GengoForm,
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
#[derive(Debug, Clone, Copy)]
pub(crate) struct HmacDefaults {
    pub(crate) algorithm: Algorithm,
    pub(crate) header: &'static str,
    pub(crate) encoding: Encoding,
    pub(crate) scheme: Scheme,
}

/// Everything one preset fills in or demands.
#[derive(Debug, Clone, Copy)]
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

const NONE: Defaults = Defaults {
    allow_ips: &[],
    hmac: None,
    requires_token: false,
    payload: None,
    max_body_bytes: None,
    dedupe_window: None,
    signature: None,
    handshake: None,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A preset that only signs: header, algorithm, encoding and scheme.
const fn signed(
    header: &'static str,
    algorithm: Algorithm,
    encoding: Encoding,
    scheme: Scheme,
) -> Defaults {
    Defaults {
        hmac: Some(HmacDefaults {
            algorithm,
            header,
            encoding,
            scheme,
        }),
        ..NONE
    }
}

impl Preset {
    /// Every preset, in the order `callgate presets` lists them (the
    /// declaration order, as clap knows it).
    pub(crate) fn all() -> &'static [Preset] {
        <Preset as clap::ValueEnum>::value_variants()
    }

    /// Where the provider documents its scheme, and where the test vector
    /// that proves callgate reads it comes from.
    pub(crate) fn source(self) -> (&'static str, &'static str) {
        match self {
            Preset::Tolq => ("https://docs.tolq.com/", "openssl's HMAC-SHA1 of a recorded callback (tests/providers.rs, tests/differentials.rs)"),
            Preset::Gengo => ("https://developers.gengo.com/v2/callback_urls/", "recorded form callbacks (tests/providers.rs)"),
            Preset::Github => ("https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries", "GitHub's published example (src/verify/signature.rs); @octokit/webhooks-methods (tests/replay.rs)"),
            Preset::Stripe => ("https://docs.stripe.com/webhooks#verify-manually", "stripe-node's generateTestHeaderString (tests/replay.rs)"),
            Preset::Slack => ("https://api.slack.com/authentication/verifying-requests-from-slack", "Slack's published example (src/verify/signature.rs); slack_sdk (tests/replay.rs)"),
            Preset::Shopify => ("https://shopify.dev/docs/apps/build/webhooks/subscribe/https", "an independent HMAC-SHA256 (tests/more_providers.rs)"),
            Preset::Twilio => ("https://www.twilio.com/docs/usage/webhooks/webhooks-security", "Twilio's published example (src/verify/signature.rs); twilio's RequestValidator (tests/replay.rs)"),
            Preset::StandardWebhooks => ("https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md", "the reference example (src/verify/signature.rs); standardwebhooks (tests/replay.rs)"),
            Preset::Svix => ("https://docs.svix.com/receiving/verifying-payloads/how-manual", "the svix library (tests/more_providers.rs)"),
            Preset::Clerk => ("https://clerk.com/docs/webhooks/sync-data", "the svix library Clerk uses (tests/more_providers.rs)"),
            Preset::Resend => ("https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests", "the svix library Resend uses (tests/more_providers.rs)"),
            Preset::Discord => ("https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers", "openssl's Ed25519 (tests/public_keys.rs)"),
            Preset::Telnyx => ("https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks", "openssl's Ed25519 (tests/public_keys.rs)"),
            Preset::Sendgrid => ("https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features", "openssl's ECDSA P-256 (tests/public_keys.rs)"),
            Preset::Zoom => ("https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events", "Zoom's documented url_validation body (src/verify/handshake.rs); an independent HMAC (tests/handshakes.rs)"),
            Preset::Meta => ("https://developers.facebook.com/docs/graph-api/webhooks/getting-started", "Meta's documented verification GET (src/verify/handshake.rs, tests/handshakes.rs)"),
            Preset::X => ("https://developer.x.com/en/docs/x-api/enterprise/account-activity-api/guides/securing-webhooks", "X's documented CRC (src/verify/handshake.rs, tests/handshakes.rs)"),
            Preset::Dropbox => ("https://www.dropbox.com/developers/reference/webhooks", "Dropbox's documented challenge and signature (tests/handshakes.rs)"),
            Preset::Typeform => ("https://www.typeform.com/developers/webhooks/secure-your-webhooks/", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Linear => ("https://linear.app/developers/webhooks#securing-webhooks", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::LemonSqueezy => ("https://docs.lemonsqueezy.com/help/webhooks/signing-requests", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Sentry => ("https://docs.sentry.io/organization/integrations/integration-platform/webhooks/", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::CoinbaseCommerce => ("https://docs.cdp.coinbase.com/commerce-onchain/docs/webhooks-security", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Bitbucket => ("https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Vercel => ("https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Intercom => ("https://developers.intercom.com/docs/references/webhooks/webhook-models", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Woocommerce => ("https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Gitea => ("https://docs.gitea.com/usage/webhooks", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Gogs => ("https://gogs.io/docs/features/webhook", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Segment => ("https://segment.com/docs/connections/destinations/catalog/webhooks/", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Docusign => ("https://developers.docusign.com/platform/webhooks/connect/hmac/", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Calendly => ("https://developer.calendly.com/api-docs/4c305798a61d3-webhook-signatures", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
            Preset::Mux => ("https://docs.mux.com/core/verify-webhook-signatures", "openssl's HMAC of the documented signed string (tests/body_presets.rs)"),
        }
    }

    /// Name as written in config.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Preset::Tolq => "tolq",
            Preset::Gengo => "gengo",
            Preset::Github => "github",
            Preset::Stripe => "stripe",
            Preset::Slack => "slack",
            Preset::Shopify => "shopify",
            Preset::Twilio => "twilio",
            Preset::StandardWebhooks => "standard-webhooks",
            Preset::Svix => "svix",
            Preset::Clerk => "clerk",
            Preset::Resend => "resend",
            Preset::Discord => "discord",
            Preset::Telnyx => "telnyx",
            Preset::Sendgrid => "sendgrid",
            Preset::Zoom => "zoom",
            Preset::Meta => "meta",
            Preset::X => "x",
            Preset::Dropbox => "dropbox",
            Preset::Typeform => "typeform",
            Preset::Linear => "linear",
            Preset::LemonSqueezy => "lemon-squeezy",
            Preset::Sentry => "sentry",
            Preset::CoinbaseCommerce => "coinbase-commerce",
            Preset::Bitbucket => "bitbucket",
            Preset::Vercel => "vercel",
            Preset::Intercom => "intercom",
            Preset::Woocommerce => "woocommerce",
            Preset::Gitea => "gitea",
            Preset::Gogs => "gogs",
            Preset::Segment => "segment",
            Preset::Docusign => "docusign",
            Preset::Calendly => "calendly",
            Preset::Mux => "mux",
        }
    }

    /// The preset's defaults.
    pub(crate) fn defaults(self) -> Defaults {
        let plain = Scheme::PLAIN;
        match self {
            // Tolq sends every callback from one address; its documentation
            // does not say whether the signature is hex or base64, hence
            // auto (its client library compares `sha1=` + lower-case hex,
            // which the algorithm prefix rule accepts).
            // It signs no timestamp; a captured callback could only be
            // replayed from Tolq's own address (no window by default:
            // dedupe_window = "24h" adds one).
            Preset::Tolq => Defaults {
                allow_ips: &["84.22.114.141/32"],
                ..signed("x-tolq-signature", Algorithm::Sha1, Encoding::Auto, plain)
            },
            // Gengo signs nothing and publishes no source range: the URL
            // token is the only secret it can carry. It retries every 15
            // minutes for 12 hours until a 200, with bodies of at most 60 KB.
            Preset::Gengo => Defaults {
                requires_token: true,
                payload: Some(Payload::GengoForm),
                max_body_bytes: Some(64 * 1024),
                dedupe_window: Some(HOUR * 12),
                ..NONE
            },
            Preset::Discord | Preset::Telnyx | Preset::Sendgrid => self.public_key(),
            Preset::Zoom | Preset::Meta | Preset::X | Preset::Dropbox => self.handshaking(),
            body if body.table().is_some() => body.table_defaults(),
            signing => signing.signing(),
        }
    }

    /// The providers that sign with an HMAC in one header, as a table: the
    /// header, the algorithm, the encoding, and whether a Stripe-style
    /// `t=…,v1=…` timestamp is signed (`t.body`); otherwise the body alone.
    fn table(self) -> Option<(&'static str, Algorithm, Encoding, bool)> {
        Some(match self {
            Preset::Typeform => (
                "typeform-signature",
                Algorithm::Sha256,
                Encoding::Base64,
                false,
            ),
            Preset::Linear => ("linear-signature", Algorithm::Sha256, Encoding::Hex, false),
            Preset::LemonSqueezy => ("x-signature", Algorithm::Sha256, Encoding::Hex, false),
            Preset::Sentry => (
                "sentry-hook-signature",
                Algorithm::Sha256,
                Encoding::Hex,
                false,
            ),
            Preset::CoinbaseCommerce => (
                "x-cc-webhook-signature",
                Algorithm::Sha256,
                Encoding::Hex,
                false,
            ),
            Preset::Bitbucket => ("x-hub-signature", Algorithm::Sha256, Encoding::Hex, false),
            Preset::Vercel => ("x-vercel-signature", Algorithm::Sha1, Encoding::Hex, false),
            Preset::Intercom => ("x-hub-signature", Algorithm::Sha1, Encoding::Hex, false),
            Preset::Woocommerce => (
                "x-wc-webhook-signature",
                Algorithm::Sha256,
                Encoding::Base64,
                false,
            ),
            Preset::Gitea => ("x-gitea-signature", Algorithm::Sha256, Encoding::Hex, false),
            Preset::Gogs => ("x-gogs-signature", Algorithm::Sha256, Encoding::Hex, false),
            Preset::Segment => ("x-signature", Algorithm::Sha1, Encoding::Hex, false),
            Preset::Docusign => (
                "x-docusign-signature-1",
                Algorithm::Sha256,
                Encoding::Base64,
                false,
            ),
            Preset::Calendly => (
                "calendly-webhook-signature",
                Algorithm::Sha256,
                Encoding::Hex,
                true,
            ),
            Preset::Mux => ("mux-signature", Algorithm::Sha256, Encoding::Hex, true),
            _ => return None,
        })
    }

    /// A table preset's defaults: replay by the body's digest for a day
    /// (untimed), or for an hour beside a signed timestamp.
    fn table_defaults(self) -> Defaults {
        let Some((header, algorithm, encoding, timed)) = self.table() else {
            return NONE;
        };
        let scheme = match timed {
            true => Scheme {
                signed: Signed::TimestampBody,
                claims: Claims::Fields { sig: "v1", ts: "t" },
                ..Scheme::PLAIN
            },
            false => Scheme::PLAIN,
        };
        Defaults {
            dedupe_window: Some(if timed { HOUR } else { HOUR * 24 }),
            ..signed(header, algorithm, encoding, scheme)
        }
    }

    /// The presets whose provider checks the endpoint before it delivers:
    /// callgate answers that check itself.
    fn handshaking(self) -> Defaults {
        use Algorithm::Sha256;
        use Encoding::{Base64, Hex};
        let plain = Scheme::PLAIN;
        let (defaults, handshake) = match self {
            Preset::Zoom => (
                signed(
                    "x-zm-signature",
                    Sha256,
                    Hex,
                    Scheme {
                        signed: Signed::SlackV0,
                        claims: Claims::Prefixed("v0="),
                        timestamp: Some("x-zm-request-timestamp"),
                        ..plain
                    },
                ),
                Handshake::ZoomUrlValidation,
            ),
            Preset::Meta => (
                signed("x-hub-signature-256", Sha256, Hex, plain),
                Handshake::MetaVerifyToken,
            ),
            Preset::X => (
                signed("x-twitter-webhooks-signature", Sha256, Base64, plain),
                Handshake::XCrc,
            ),
            _ => (
                signed("x-dropbox-signature", Sha256, Hex, plain),
                Handshake::DropboxChallenge,
            ),
        };
        Defaults {
            handshake: Some(handshake),
            dedupe_window: Some(HOUR),
            ..defaults
        }
    }

    /// The presets that sign with a private key: the route lists public keys.
    fn public_key(self) -> Defaults {
        let (algorithm, header, encoding, timestamp) = match self {
            Preset::Discord => (
                PkAlgorithm::Ed25519,
                "x-signature-ed25519",
                Encoding::Hex,
                ("x-signature-timestamp", ""),
            ),
            Preset::Telnyx => (
                PkAlgorithm::Ed25519,
                "telnyx-signature-ed25519",
                Encoding::Base64,
                ("telnyx-timestamp", "|"),
            ),
            _ => (
                PkAlgorithm::EcdsaP256Sha256,
                "x-twilio-email-event-webhook-signature",
                Encoding::Base64,
                ("x-twilio-email-event-webhook-timestamp", ""),
            ),
        };
        Defaults {
            signature: Some(SignatureDefaults {
                algorithm,
                header,
                encoding,
                timestamp: Some(timestamp),
            }),
            // Signed timestamps: copies within twice the tolerance are replays.
            dedupe_window: Some(Duration::from_secs(600)),
            ..NONE
        }
    }

    /// The presets that only sign: each provider's documented scheme.
    fn signing(self) -> Defaults {
        use Algorithm::{Sha1, Sha256};
        use Encoding::{Base64, Hex};
        let plain = Scheme::PLAIN;
        match self {
            Preset::Tolq
            | Preset::Gengo
            | Preset::Discord
            | Preset::Telnyx
            | Preset::Sendgrid
            | Preset::Zoom
            | Preset::Meta
            | Preset::X
            | Preset::Dropbox => NONE,
            // GitHub signs neither id nor time; deliveries can be redelivered by hand for 3 days.
            Preset::Github => Defaults {
                dedupe_window: Some(HOUR * 72),
                ..signed(
                    "x-hub-signature-256",
                    Sha256,
                    Hex,
                    Scheme {
                        id: IdSource::Header("x-github-delivery"),
                        ..plain
                    },
                )
            },
            // stripe-node and stripe-python refuse only old timestamps.
            // Stripe retries an event for up to 3 days, each time newly
            // signed, under one event id.
            Preset::Stripe => Defaults {
                dedupe_window: Some(HOUR * 72),
                ..signed(
                    "stripe-signature",
                    Sha256,
                    Hex,
                    Scheme {
                        signed: Signed::TimestampBody,
                        claims: Claims::Fields { sig: "v1", ts: "t" },
                        id: IdSource::JsonField("id"),
                        both_ways: false,
                        ..plain
                    },
                )
            },
            // Slack retries three times within minutes, newly timestamped, with the same body.
            Preset::Slack => Defaults {
                dedupe_window: Some(HOUR),
                handshake: Some(Handshake::SlackUrlVerification),
                ..signed(
                    "x-slack-signature",
                    Sha256,
                    Hex,
                    Scheme {
                        signed: Signed::SlackV0,
                        claims: Claims::Prefixed("v0="),
                        timestamp: Some("x-slack-request-timestamp"),
                        ..plain
                    },
                )
            },
            // Shopify retries a failed webhook over 48 hours under one X-Shopify-Webhook-Id.
            Preset::Shopify => Defaults {
                dedupe_window: Some(HOUR * 48),
                ..signed(
                    "x-shopify-hmac-sha256",
                    Sha256,
                    Base64,
                    Scheme {
                        id: IdSource::Header("x-shopify-webhook-id"),
                        ..plain
                    },
                )
            },
            // Twilio signs no timestamp: a day of replay memory by the signed URL and parameters.
            Preset::Twilio => Defaults {
                dedupe_window: Some(HOUR * 24),
                ..signed(
                    "x-twilio-signature",
                    Sha1,
                    Base64,
                    Scheme {
                        signed: Signed::Twilio,
                        id: IdSource::Header("i-twilio-idempotency-token"),
                        ..plain
                    },
                )
            },
            // Standard Webhooks (Svix) retries for about 28 hours under one signed webhook-id.
            Preset::StandardWebhooks => Defaults {
                dedupe_window: Some(HOUR * 48),
                ..signed(
                    "webhook-signature",
                    Sha256,
                    Base64,
                    Scheme {
                        signed: Signed::IdTimestampBody,
                        claims: Claims::List { prefix: "v1," },
                        timestamp: Some("webhook-timestamp"),
                        id: IdSource::Header("webhook-id"),
                        key: KeyForm::Whsec,
                        both_ways: true,
                    },
                )
            },
            // Svix signs Standard Webhooks under its own header names (Clerk, Resend).
            Preset::Svix | Preset::Clerk | Preset::Resend => Defaults {
                dedupe_window: Some(HOUR * 48),
                ..signed(
                    "svix-signature",
                    Sha256,
                    Base64,
                    Scheme {
                        signed: Signed::IdTimestampBody,
                        claims: Claims::List { prefix: "v1," },
                        timestamp: Some("svix-timestamp"),
                        id: IdSource::Header("svix-id"),
                        key: KeyForm::Whsec,
                        both_ways: true,
                    },
                )
            },
            _ => NONE,
        }
    }
}
