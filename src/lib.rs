//! callgate: a TLS-terminating reverse proxy that verifies inbound webhooks
//! (source IP, HMAC of the raw body, URL token) before they reach a receiver.
//!
//! The decision lives in pure modules ([`verify`], [`client_ip`],
//! [`headers`], [`query`], [`signature`]); the I/O shell ([`server`],
//! [`service`], [`forward`], [`tls`]) only calls them.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod client_ip;
pub mod commands;
pub mod config;
pub mod conn;
pub mod damping;
pub mod forward;
pub mod headers;
pub mod metrics;
pub mod presets;
pub mod proxy_protocol;
pub mod query;
pub mod queue;
pub mod secret;
pub mod server;
pub mod service;
pub mod signature;
pub mod tls;
pub mod verify;
