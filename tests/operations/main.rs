//! Integration tests: running it: reloads, signals, systemd, the queue on SQLite and PostgreSQL, ACME.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

mod acme;
mod acme_cluster;
mod operations;
mod queue;
mod queue_postgres;
