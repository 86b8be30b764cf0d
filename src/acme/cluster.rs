//! Certificates for several instances at once (`[tls.acme]` on the shared
//! PostgreSQL store): every instance reads the shared state every second,
//! serves the newest certificate and answers the challenges of the order
//! under way; when the certificate is missing or due, the instance that
//! takes the ordering lock orders (after looking again: another may just
//! have finished), and the rest see the result at their next read. A copy
//! in the state directory serves while the database cannot be reached.

use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::files::Files;
use super::manager::{install, issue, renewal_due, retry_after, Manager};
use super::order::ChallengeProof;
use super::shared::{SharedState, SYNC_EVERY};
use crate::config;

/// What this instance serves and knows.
struct Instance {
    m: Manager,
    settings: config::Acme,
    key: Vec<u8>,
    files: Files,
    state: Option<SharedState>,
    /// The shared certificate served, by when it was written, and when it is due.
    serving: Option<(i64, SystemTime)>,
    /// The answers published here from the shared state.
    answers: Vec<ChallengeProof>,
    failures: u32,
    /// No order before this (after a failure).
    not_before: Instant,
    /// Whether the last read failed (logged once, not every second).
    unreachable: bool,
    /// A shared certificate (by when it was written) that could not be
    /// served: not tried again, and not logged again, until another is written.
    unusable: Option<i64>,
}

pub(super) async fn run(m: Manager, settings: config::Acme, key: Vec<u8>, stop: CancellationToken) {
    let files = Files::new(&settings);
    let mut me = Instance {
        m,
        settings,
        key,
        files,
        state: None,
        serving: None,
        answers: Vec::new(),
        failures: 0,
        not_before: Instant::now(),
        unreachable: false,
        unusable: None,
    };
    if let Some(copy) = me.files.certificate(&me.settings.domains) {
        tracing::info!(file = %me.files.certificate_path().display(), "acme: serving the local copy of the shared certificate until the database answers");
        install(&me.m, &me.settings, &copy);
        me.serving = Some((0, renewal_due(&copy, me.settings.renew_before)));
    }
    loop {
        let pass = me.pass();
        tokio::select! {
            () = pass => {}
            _ = stop.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(SYNC_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

impl Instance {
    /// One read of the shared state, and an order if one is due.
    async fn pass(&mut self) {
        let Some(state) = self.state() else { return };
        let read = async {
            let updated = state.updated_ms().await?;
            let answers = state.answers().await?;
            Ok::<_, crate::queue::StoreError>((updated, answers))
        };
        let (updated, answers) = match read.await {
            Ok(read) => read,
            Err(e) => return self.unreachable(&e.to_string()),
        };
        if std::mem::take(&mut self.unreachable) {
            tracing::info!("acme: the shared database answers again");
        }
        self.answer(answers);
        let new = updated.is_some() && updated != self.serving.map(|(at, _)| at);
        if new && updated != self.unusable && !self.take_shared().await {
            self.unusable = updated;
        }
        let due = self
            .serving
            .is_none_or(|(_, due)| crate::clock::now() >= due);
        if due && Instant::now() >= self.not_before {
            self.order().await;
        }
    }

    /// The shared state on the queue's database (again, if `[queue]` changed).
    fn state(&mut self) -> Option<&SharedState> {
        let config = self.m.config.load();
        let pg = match self.m.queue.store(&config.queue).map(|s| s.postgres()) {
            Ok(Some(pg)) => pg,
            Ok(None) => {
                self.unreachable("[queue] is not on PostgreSQL");
                return None;
            }
            Err(e) => {
                self.unreachable(&e.to_string());
                return None;
            }
        };
        if !self.state.as_ref().is_some_and(|s| s.on(&pg)) {
            self.state = Some(SharedState::new(pg, &self.settings, &self.key));
        }
        self.state.as_ref()
    }

    fn unreachable(&mut self, why: &str) {
        if !std::mem::replace(&mut self.unreachable, true) {
            tracing::warn!("acme: cannot read the shared ACME state, the certificate this instance has keeps serving: {why}");
        }
    }

    /// Serve the answers of the order under way (another instance's, or none).
    fn answer(&mut self, answers: Vec<ChallengeProof>) {
        if answers == self.answers {
            return;
        }
        self.m.acme.withdraw_challenges();
        for a in &answers {
            if let Err(e) = a.publish_here(&self.m.acme) {
                tracing::warn!("acme: cannot serve a published challenge answer: {e}");
            }
        }
        self.answers = answers;
    }

    /// Serve the certificate in the database (written by another instance, or an earlier run).
    /// Whether it serves it now.
    async fn take_shared(&mut self) -> bool {
        let Some(state) = self.state.as_ref() else {
            return false;
        };
        let stored = match state.certificate().await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::warn!(domains = ?self.settings.domains, "acme: the shared certificate does not name every domain; this instance keeps what it serves");
                return false;
            }
            Err(e) => {
                tracing::error!("acme: the shared certificate cannot be served: {e}");
                return false;
            }
        };
        // This instance's own order is served already.
        if !state.wrote(stored.updated_ms) {
            let age = crate::clock::unix_ms() - stored.updated_ms;
            tracing::info!(
                written_ms_ago = age,
                not_after = stored.loaded.not_after,
                "acme: serving the shared certificate"
            );
            install(&self.m, &self.settings, &stored.loaded);
        }
        if let Err(e) = self
            .files
            .save_certificate(&stored.chain_pem, &stored.key_pem)
        {
            tracing::warn!("acme: no local copy of the shared certificate: {e}");
        }
        let due = renewal_due(&stored.loaded, self.settings.renew_before);
        self.serving = Some((stored.updated_ms, due));
        true
    }

    /// Order, if this instance gets the lock and the certificate is still due.
    async fn order(&mut self) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let lock = match state.try_lock().await {
            Ok(Some(lock)) => lock,
            Ok(None) => return tracing::debug!("acme: another instance is ordering"),
            Err(e) => return self.unreachable(&e.to_string()),
        };
        // Another instance may have finished between our read and the lock.
        match state.updated_ms().await {
            Ok(u) if u.is_some() && u != self.serving.map(|(at, _)| at) => return,
            Ok(_) => {}
            Err(e) => return self.unreachable(&e.to_string()),
        }
        tracing::info!(domains = ?self.settings.domains, directory = %self.settings.directory, "acme: ordering a certificate for every instance");
        let outcome = issue(&self.m, &self.settings, state).await;
        drop(lock);
        match outcome {
            Ok(_) => {
                self.failures = 0;
                // Read back: the local copy, and what is served now.
                self.take_shared().await;
            }
            Err(e) => {
                self.failures += 1;
                self.not_before = Instant::now() + retry_after(&self.settings, self.failures, &e);
            }
        }
    }
}
