//! Store-and-forward: verified callbacks are stored durably, answered 202,
//! and delivered by a worker per route with retries. The store is SQLite
//! (one machine) or PostgreSQL (several instances, one queue).

mod handle;
mod lane;
pub(crate) mod ops;
mod pg_tls;
pub(crate) mod postgres;
pub(crate) mod replay;
mod rows;
mod sqlite;
pub(crate) mod store;
mod worker;

pub(crate) use handle::{Queue, Worker};
pub(crate) use sqlite::FILE_NAME;
pub(crate) use store::to_lines;
pub(crate) use store::{Claim, Enqueued, NewCallback, ReplayClaim, State, Store, StoreError};
pub(crate) use worker::reconcile;
