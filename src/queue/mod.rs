//! Store-and-forward: verified callbacks are stored durably, answered 202,
//! and delivered by a worker per route with retries.

pub mod store;
pub mod worker;

pub use store::{NewCallback, State, Store, StoreError, Stored};
