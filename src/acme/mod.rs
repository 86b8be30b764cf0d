//! Certificates from an ACME server (RFC 8555), obtained and renewed by
//! callgate itself. `live.rs` is what the serving side reads (issued
//! certificates, challenge answers); `manager.rs` decides when to order,
//! `order.rs` talks to the server, `files.rs` keeps the account and
//! certificates on disk. With several instances on one PostgreSQL database,
//! `cluster.rs` runs instead of the manager's loop, over `shared.rs` (the
//! state in the database, keys sealed by `seal.rs`).

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
