//! Integration tests: the operator's console in a real browser.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

mod console;
mod limits;
mod markup;
