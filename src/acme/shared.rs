//! ACME state in the queue's PostgreSQL database, shared by every instance
//! behind one balancer: the account and the certificate (private keys
//! sealed, `seal.rs`), and the challenge answers of the order under way, so
//! whichever instance the CA's validation reaches can answer it. One
//! instance orders at a time: it holds a session advisory lock on a
//! connection of its own, which ends with the connection if the process
//! dies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::order::{ChallengeProof, Keep, OrderError};
use super::seal::Seal;
use crate::config::{self, tls, AcmeChallenge};
use crate::queue::postgres::{pg_err, Postgres, CALL_TIMEOUT};
use crate::queue::StoreError;

/// How often every instance reads the shared state (a new certificate,
/// challenge answers).
pub(super) const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long the ordering instance waits after publishing an answer before
/// the CA may look: every instance has read it by then.
const PROPAGATION: Duration = Duration::from_millis(2500);
/// How long a published answer stays valid if its order is never withdrawn
/// (an instance killed while ordering).
const ANSWER_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// The shared certificate as stored.
pub(super) struct Stored {
    /// When it was written: instances serve the newest.
    pub(super) updated_ms: i64,
    pub(super) loaded: tls::Loaded,
    pub(super) chain_pem: String,
    pub(super) key_pem: String,
}

/// One `[tls.acme]`'s rows.
pub(super) struct SharedState {
    pg: Arc<Postgres>,
    seal: Seal,
    /// `account:<directory URL>`: one account per ACME server.
    account: String,
    /// `certificate:<domains>`.
    certificate: String,
    domains: Vec<String>,
    /// The advisory lock for ordering this certificate.
    lock: i64,
    /// The `updated_ms` this instance wrote last.
    written: Mutex<Option<i64>>,
    /// The answers this instance published for the order under way.
    published: Mutex<Vec<String>>,
}

/// Held while ordering; dropping it closes its connection and so the lock.
pub(super) struct OrderLock(#[allow(dead_code)] deadpool_postgres::ClientWrapper);

impl SharedState {
    pub(super) fn new(pg: Arc<Postgres>, settings: &config::Acme, key: &[u8]) -> SharedState {
        let certificate = format!("certificate:{}", settings.domains.join(","));
        let digest = Sha256::digest(certificate.as_bytes());
        let lock = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        SharedState {
            pg,
            seal: Seal::new(key),
            account: format!("account:{}", settings.directory),
            certificate,
            domains: settings.domains.clone(),
            lock,
            written: Mutex::new(None),
            published: Mutex::new(Vec::new()),
        }
    }

    /// Whether this is still the database the queue uses.
    pub(super) fn on(&self, pg: &Arc<Postgres>) -> bool {
        Arc::ptr_eq(&self.pg, pg)
    }

    /// When the shared certificate was last written, if there is one.
    pub(super) async fn updated_ms(&self) -> Result<Option<i64>, StoreError> {
        let row = self.select("updated_ms", &self.certificate).await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `columns` of the row `name`, if it exists.
    async fn select(
        &self,
        columns: &'static str,
        name: &str,
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let sql = format!("SELECT {columns} FROM callgate_acme_state WHERE name = $1");
        let name = name.to_owned();
        self.pg
            .call(|c| async move { c.query_opt(&sql, &[&name]).await })
            .await
    }

    /// Whether `updated_ms` is the one this instance wrote.
    pub(super) fn wrote(&self, updated_ms: i64) -> bool {
        *super::live::lock(&self.written) == Some(updated_ms)
    }

    /// The shared certificate, opened and loaded, if it names every domain.
    pub(super) async fn certificate(&self) -> Result<Option<Stored>, OrderError> {
        let Some((updated_ms, chain_pem, sealed)) = self.row(&self.certificate).await? else {
            return Ok(None);
        };
        let chain_pem = chain_pem.unwrap_or_default();
        let key = self.seal.open(&self.certificate, &sealed)?;
        let key_pem = String::from_utf8(key)
            .map_err(|_| OrderError::Other("the shared certificate's key is not PEM".into()))?;
        let loaded = tls::from_pem(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| OrderError::Other(format!("the shared certificate is unusable: {e}")))?;
        if !self.domains.iter().all(|d| loaded.names.contains(d)) {
            return Ok(None);
        }
        Ok(Some(Stored {
            updated_ms,
            loaded,
            chain_pem,
            key_pem,
        }))
    }

    async fn row(&self, name: &str) -> Result<Option<(i64, Option<String>, Vec<u8>)>, StoreError> {
        let row = self.select("updated_ms, chain, sealed", name).await?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    async fn put(&self, name: &str, chain: Option<&str>, plain: &[u8]) -> Result<i64, OrderError> {
        let sealed = self.seal.seal(name, plain)?;
        let (name, chain, at) = (
            name.to_owned(),
            chain.map(str::to_owned),
            crate::clock::unix_ms(),
        );
        self.pg
            .call(|c| async move {
                c.execute(
                    "INSERT INTO callgate_acme_state (name, chain, sealed, updated_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE SET chain = $2, sealed = $3, updated_ms = $4",
                    &[&name, &chain, &sealed, &at],
                )
                .await
            })
            .await?;
        Ok(at)
    }

    /// The answers of the order under way, if any.
    pub(super) async fn answers(&self) -> Result<Vec<ChallengeProof>, StoreError> {
        let now = crate::clock::unix_ms();
        self.pg
            .call(|c| async move {
                let rows = c
                    .query(
                        "SELECT kind, name, value FROM callgate_acme_challenges WHERE until_ms > $1 ORDER BY kind, name",
                        &[&now],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .filter_map(|r| {
                        let kind = match r.get::<_, &str>(0) {
                            "tls-alpn-01" => AcmeChallenge::TlsAlpn01,
                            "http-01" => AcmeChallenge::Http01,
                            _ => return None,
                        };
                        Some(ChallengeProof {
                            kind,
                            name: r.get(1),
                            value: r.get(2),
                        })
                    })
                    .collect())
            })
            .await
    }

    /// The ordering lock, unless another instance holds it.
    pub(super) async fn try_lock(&self) -> Result<Option<OrderLock>, StoreError> {
        let client = self.pg.detached().await?;
        let got: bool = tokio::time::timeout(
            CALL_TIMEOUT,
            client.query_one("SELECT pg_try_advisory_lock($1)", &[&self.lock]),
        )
        .await
        .map_err(|_| StoreError::Timeout(CALL_TIMEOUT))?
        .map_err(|e| pg_err(&e))?
        .get(0);
        Ok(got.then_some(OrderLock(client)))
    }
}

fn kind_name(kind: AcmeChallenge) -> &'static str {
    match kind {
        AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        AcmeChallenge::Http01 => "http-01",
    }
}

impl Keep for SharedState {
    async fn account(&self) -> Result<Option<Vec<u8>>, OrderError> {
        match self.row(&self.account).await? {
            Some((_, _, sealed)) => Ok(Some(self.seal.open(&self.account, &sealed)?)),
            None => Ok(None),
        }
    }

    async fn save_account(&self, json: &[u8]) -> Result<(), OrderError> {
        self.put(&self.account, None, json).await.map(|_| ())
    }

    async fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), OrderError> {
        let at = self
            .put(&self.certificate, Some(chain_pem), key_pem.as_bytes())
            .await?;
        *super::live::lock(&self.written) = Some(at);
        Ok(())
    }

    async fn publish(&self, answer: &ChallengeProof) -> Result<(), OrderError> {
        let a = answer.clone();
        let until = crate::clock::unix_ms() + ANSWER_LIFETIME_MS;
        super::live::lock(&self.published).push(a.name.clone());
        self.pg
            .call(|c| async move {
                c.execute(
                    "INSERT INTO callgate_acme_challenges (kind, name, value, until_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, name) DO UPDATE SET value = $3, until_ms = $4",
                    &[&kind_name(a.kind), &a.name, &a.value, &until],
                )
                .await
            })
            .await?;
        tracing::info!(
            kind = kind_name(answer.kind),
            "acme: challenge answer published for every instance"
        );
        tokio::time::sleep(PROPAGATION).await;
        Ok(())
    }

    async fn withdraw(&self) {
        let names = std::mem::take(&mut *super::live::lock(&self.published));
        let result = self
            .pg
            .call(|c| async move {
                c.execute(
                    "DELETE FROM callgate_acme_challenges WHERE name = ANY($1)",
                    &[&names],
                )
                .await
            })
            .await;
        if let Err(e) = result {
            tracing::warn!("acme: the published answers stay until they expire: {e}");
        }
    }
}
