//! Integration tests: callbacks verified and forwarded: each check, each provider, the CLI, the map of the code.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

#![allow(
    clippy::too_many_lines,
    clippy::too_many_arguments,
    reason = "the size rules are src/'s: a test is one scenario read top to bottom, and its fixture helpers take the knobs it turns"
)]

mod architecture;
mod assertion;
mod body_presets;
mod certificates;
mod cli;
mod differentials;
mod explain;
mod forwarding;
mod handshakes;
mod ip_lists;
mod monitoring;
mod oracles;
mod pg_tls;
mod php_receivers;
mod properties;
mod provider_presets;
mod proxy_protocol;
mod public_keys;
mod refusals;
mod replay;
mod report_only;
mod secrets;
mod shield;
mod state;
mod tls_upstream;
