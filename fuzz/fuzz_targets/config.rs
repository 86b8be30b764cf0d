//! Config loading must answer any text with a config or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // self_signed would spend the run generating keys; the rest is fair game.
    if text.contains("self_signed") {
        return;
    }
    if let Err(e) = callgate::config::Config::from_str(text, std::path::Path::new("fuzz.toml")) {
        let _ = e.to_string();
    }
});
