//! One issuance against the ACME server: the account (created once, then
//! restored from its stored credentials), a new order, each authorization's
//! challenge published and answered, finalization with a fresh key, the
//! chain downloaded and stored.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::live::{Acme, ACME_TLS_ALPN};
use crate::config::{self, tls, AcmeChallenge};
use crate::queue::StoreError;

/// Where an issuance keeps the account and the certificate it makes, and
/// how its challenge answers reach every instance that may be asked:
/// `files.rs` (this instance alone) or `shared.rs` (the shared database).
pub(super) trait Keep {
    async fn account(&self) -> Result<Option<Vec<u8>>, OrderError>;
    async fn save_account(&self, json: &[u8]) -> Result<(), OrderError>;
    async fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), OrderError>;
    /// Make an answer (already published here) known to the others, and
    /// wait until they can give it.
    async fn publish(&self, answer: &ChallengeProof) -> Result<(), OrderError>;
    /// The order is over: its answers go.
    async fn withdraw(&self);
}

/// One challenge answer: for tls-alpn-01 the domain and the hex SHA-256
/// of the key authorization, for http-01 the token and the key authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChallengeProof {
    pub(super) kind: AcmeChallenge,
    pub(super) name: String,
    pub(super) value: String,
}

impl ChallengeProof {
    /// Serve it from this instance.
    pub(super) fn publish_here(&self, acme: &Acme) -> Result<(), OrderError> {
        match self.kind {
            AcmeChallenge::TlsAlpn01 => {
                let digest = hex::decode(&self.value).map_err(|_| {
                    OrderError::Other("a stored tls-alpn-01 answer is not hex".into())
                })?;
                acme.publish_alpn(&self.name, alpn_answer(&self.name, &digest)?);
            }
            AcmeChallenge::Http01 => acme.publish_http(&self.name, &self.value),
        }
        Ok(())
    }
}

/// Why an issuance failed; the old certificate keeps serving.
#[derive(Debug, thiserror::Error)]
pub(super) enum OrderError {
    #[error("ACME server: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("ACME state in the shared database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sealed(#[from] super::seal::SealError),
    #[error("the ACME state directory: {0} (check that it is writable by callgate: StateDirectory= in the unit)")]
    Files(#[from] std::io::Error),
    #[error("stored account credentials are unreadable: {0}")]
    Account(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
    #[error("the order did not complete within {0:?} (an ACME server that accepts connections but does not answer?)")]
    Timeout(Duration),
}

impl OrderError {
    /// The server limits how often this account may order: wait long.
    pub(super) fn rate_limited(&self) -> bool {
        matches!(self, OrderError::Acme(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited"))
    }
}

/// How long the server gets to validate and to issue.
fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(120))
}

/// Order a certificate for every domain, store it, and return it loaded.
pub(super) async fn issue(
    acme: &Acme,
    settings: &config::Acme,
    keep: &impl Keep,
) -> Result<tls::Loaded, OrderError> {
    let account = account(settings, keep).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let answered = answer_challenges(acme, keep, settings.challenge, &mut order).await;
    let ready = match answered {
        Ok(()) => order.poll_ready(&polling()).await.map_err(OrderError::from),
        Err(e) => Err(e),
    };
    acme.withdraw_challenges();
    keep.withdraw().await;
    match ready? {
        OrderStatus::Ready => {}
        status => {
            let why = order.state().error.as_ref().map(|p| p.to_string());
            return Err(OrderError::Other(format!(
                "the order became {status:?}: {}",
                why.unwrap_or_else(|| "no reason given".into())
            )));
        }
    }
    let key = KeyPair::generate().map_err(|e| OrderError::Other(e.to_string()))?;
    let mut params = CertificateParams::new(settings.domains.clone())
        .map_err(|e| OrderError::Other(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| OrderError::Other(e.to_string()))?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&polling()).await?;
    let key_pem = key.serialize_pem();
    let loaded = tls::from_pem(chain.as_bytes(), key_pem.as_bytes())
        .map_err(|e| OrderError::Other(format!("the issued certificate is unusable: {e}")))?;
    keep.save_certificate(&chain, &key_pem).await?;
    Ok(loaded)
}

/// The stored account, or a new one (stored before it is used).
async fn account(settings: &config::Acme, keep: &impl Keep) -> Result<Account, OrderError> {
    let builder = || super::client::http(&settings.ca_roots).map(Account::builder_with_http);
    if let Some(json) = keep.account().await? {
        let credentials: AccountCredentials = serde_json::from_slice(&json)?;
        return Ok(builder()?.from_credentials(credentials).await?);
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await?;
    keep.save_account(&serde_json::to_vec(&credentials)?)
        .await?;
    tracing::info!(directory = %settings.directory, "acme: account created");
    Ok(account)
}

/// Publish each pending authorization's answer, here and to the other
/// instances, then tell the server to look.
async fn answer_challenges(
    acme: &Acme,
    keep: &impl Keep,
    kind: AcmeChallenge,
    order: &mut instant_acme::Order,
) -> Result<(), OrderError> {
    let wanted = match kind {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(OrderError::Other(format!("an authorization is {other:?}"))),
        }
        let mut challenge = authz.challenge(wanted.clone()).ok_or_else(|| {
            OrderError::Other(format!("the server offers no {wanted:?} challenge"))
        })?;
        let key_authorization = challenge.key_authorization();
        let answer = match kind {
            AcmeChallenge::TlsAlpn01 => ChallengeProof {
                kind,
                name: challenge.identifier().to_string(),
                value: hex::encode(key_authorization.digest()),
            },
            AcmeChallenge::Http01 => ChallengeProof {
                kind,
                name: challenge.token.clone(),
                value: key_authorization.as_str().to_owned(),
            },
        };
        answer.publish_here(acme)?;
        keep.publish(&answer).await?;
        challenge.set_ready().await?;
    }
    Ok(())
}

/// RFC 8737 §3: a self-signed certificate for the domain carrying the
/// key authorization's digest in the critical acmeIdentifier extension,
/// offered only under ALPN `acme-tls/1`.
fn alpn_answer(domain: &str, digest: &[u8]) -> Result<Arc<rustls::ServerConfig>, OrderError> {
    let err =
        |e: &dyn std::fmt::Display| OrderError::Other(format!("tls-alpn-01 certificate: {e}"));
    let key = KeyPair::generate().map_err(|e| err(&e))?;
    let mut params = CertificateParams::new(vec![domain.to_owned()]).map_err(|e| err(&e))?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| err(&e))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let certified = tls::unchecked(cert.der().clone(), key_der).map_err(|e| err(&e))?;
    let mut sni = tls::Sni::default();
    sni.set_default(certified);
    tls::server_config_for(sni, vec![ACME_TLS_ALPN.to_vec()]).map_err(|e| err(&e))
}
