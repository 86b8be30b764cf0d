//! Integration tests: the hostile corpus.
//!
//! One binary per group (the crate and the testkit link once per group);
//! one module per file.

mod hostile;
