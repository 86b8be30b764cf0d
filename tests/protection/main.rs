//! Integration tests: the site behind callgate: protected scripts against real engines, streams, parking.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

#![allow(
    clippy::too_many_lines,
    clippy::too_many_arguments,
    reason = "the size rules are src/'s: a test is one scenario read top to bottom, and its fixture helpers take the knobs it turns"
)]

mod engines;
mod parking;
mod passthrough;
mod passthrough_streams;
