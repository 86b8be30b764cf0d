//! Integration tests: the site behind callgate: protected scripts against real engines, streams, parking.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

mod engines;
mod parking;
mod passthrough;
mod passthrough_streams;
