//! Query handling: lookup, strip and redact on arbitrary query strings.
#![no_main]
use callgate::verify::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|q: &str| {
    let _ = query::lookup(q, "token");
    let stripped = query::strip(q, "token");
    assert!(!matches!(query::lookup(&stripped, "token"), query::Lookup::One(_) | query::Lookup::Repeated));
    let _ = query::redact(q, &["token".to_owned()]);
});
