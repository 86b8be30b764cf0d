//! Integration tests: the operator's console in a real browser.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

#![allow(
    clippy::too_many_lines,
    clippy::too_many_arguments,
    reason = "the size rules are src/'s: a test is one scenario read top to bottom, and its fixture helpers take the knobs it turns"
)]

mod console;
mod limits;
mod markup;
