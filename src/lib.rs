//! callgate: a TLS-terminating reverse proxy that verifies inbound webhooks
//! (source IP, HMAC of the raw body, URL token) before they reach a receiver.
//!
//! Dependencies point one way, from the edge inwards (cli → server →
//! proxy → state → queue, acme → upstream → verify → config); the exact
//! list is in `ARCHITECTURE.md`, kept true by `tests/capabilities/architecture.rs`.
//!
//! [`verify`] is the pure decision (no I/O, no clock); [`config`] turns the
//! TOML file into typed values once. `ARCHITECTURE.md` is the map.
#![forbid(unsafe_code)]

mod acme;
mod assertion;
mod budget;
pub mod cli;
pub mod config;
mod console;
pub mod crypto;
mod damping;
mod learned;
mod lists;
mod metrics;
mod paths;
mod php;
pub mod proxy;
mod queue;
mod recent;
pub mod server;
mod sessions;
mod shield;
mod slots;
mod state;
mod trusted;
mod upstream;
mod values;
pub mod verify;
