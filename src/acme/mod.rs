//! Certificates from an ACME server (RFC 8555), obtained and renewed by
//! callgate itself. `live.rs` is what the serving side reads (issued
//! certificates, challenge answers); `manager.rs` decides when to order,
//! `order.rs` talks to the server, `files.rs` keeps the account and
//! certificates on disk. With several instances on one PostgreSQL database,
//! `cluster.rs` runs instead of the manager's loop, over `shared.rs` (the
//! state in the database, keys sealed by `seal.rs`). Which of the two runs
//! is decided here, so neither calls the other (cluster.rs uses the
//! manager's issue and install).

use tokio_util::sync::CancellationToken;

use crate::config;

mod client;
mod cluster;
mod files;
pub(crate) mod live;
pub(crate) mod manager;
mod order;
mod seal;
mod shared;

pub(crate) use files::stored;
pub(crate) use live::ACME_TLS_ALPN;
pub(crate) use manager::renewal_due;
use manager::Manager;

/// Start, restart or stop the certificate manager to match the running config.
pub(crate) fn reconcile(manager: &Manager) {
    let wanted = manager
        .config
        .load()
        .tls
        .as_ref()
        .and_then(|t| t.acme.clone());
    let mut running = live::lock(&manager.acme.running);
    if running.as_ref().map(|(s, _)| s) == wanted.as_ref() {
        return;
    }
    if let Some((_, stop)) = running.take() {
        stop.cancel();
    }
    manager
        .acme
        .keep_only(wanted.as_ref().map_or(&[][..], |s| &s.domains));
    if let Some(settings) = wanted {
        let stop = manager.stopping.child_token();
        tokio::spawn(run(manager.clone(), settings.clone(), stop.clone()));
        *running = Some((settings, stop));
    }
}

/// One instance alone (files in the state directory), or one of several
/// sharing the PostgreSQL store.
async fn run(manager: Manager, settings: config::Acme, stop: CancellationToken) {
    match &settings.store {
        config::AcmeStore::Postgres { key } => {
            let key = key.expose().to_vec();
            cluster::run(manager, settings, key, stop).await;
        }
        config::AcmeStore::Files => manager::run(manager, settings, stop).await,
    }
}
