//! Integration tests: load, slow clients and memory.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

mod load;
