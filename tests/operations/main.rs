//! Integration tests: running it: reloads, signals, systemd, the queue on SQLite and PostgreSQL, ACME.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

#![allow(
    clippy::too_many_lines,
    clippy::too_many_arguments,
    reason = "the size rules are src/'s: a test is one scenario read top to bottom, and its fixture helpers take the knobs it turns"
)]

mod acme;
mod acme_cluster;
mod operations;
mod queue;
mod queue_postgres;
