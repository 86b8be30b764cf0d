//! What an operator does to stored callbacks: the one code path behind
//! `callgate queue retry|drop` and the console's buttons.

use super::store::{Acted, Store, StoreError};

/// An operator's action on the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Deliver this (dead or pending) callback again, now.
    Retry(i64),
    /// Deliver every dead callback again, now.
    RetryAllDead,
    /// Delete this callback undelivered.
    Drop(i64),
}

/// Why an action did nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActError {
    #[error("no callback {0}")]
    NotFound(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Carry out `action`; the sentence that says what was done.
pub(crate) async fn act(store: &Store, action: Action) -> Result<String, ActError> {
    match action {
        Action::Retry(id) => match store.retry(id, crate::clock::unix_ms()).await? {
            Acted::Done => Ok(format!("callback {id} will be delivered again")),
            Acted::WhenClaimEnds => Ok(format!(
                "callback {id} is being delivered now; it will be delivered again if this delivery fails"
            )),
            Acted::NotFound => Err(ActError::NotFound(id)),
        },
        Action::RetryAllDead => {
            let n = store.retry_all_dead(crate::clock::unix_ms()).await?;
            Ok(format!("{n} dead callback(s) will be delivered again"))
        }
        Action::Drop(id) => match store.drop_callback(id).await? {
            Acted::Done => Ok(format!("callback {id} dropped")),
            Acted::WhenClaimEnds => Ok(format!(
                "callback {id} is being delivered now; it is dropped when this delivery ends, unless delivered"
            )),
            Acted::NotFound => Err(ActError::NotFound(id)),
        },
    }
}
