//! Store-and-forward: verified callbacks are stored durably, answered 202,
//! and delivered by a worker per route with retries.

pub(crate) mod store;
mod worker;

pub(crate) use store::{blocking, now_ms, to_lines, FILE_NAME};
pub(crate) use store::{NewCallback, State, Store, StoreError};
pub(crate) use worker::reconcile;
