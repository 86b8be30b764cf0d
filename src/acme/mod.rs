//! Certificates from an ACME server (RFC 8555), obtained and renewed by
//! callgate itself. `live.rs` is what the serving side reads (issued
//! certificates, challenge answers); `manager.rs` decides when to order,
//! `order.rs` talks to the server, `files.rs` keeps the account and
//! certificates on disk.

mod client;
mod files;
pub(crate) mod live;
pub(crate) mod manager;
mod order;

pub(crate) use files::stored;
pub(crate) use live::ACME_TLS_ALPN;
pub(crate) use manager::renewal_due;
