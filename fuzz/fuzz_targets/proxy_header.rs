//! PROXY protocol parsing: any first bytes of a connection get a verdict,
//! and a complete header never claims more bytes than were given.
#![no_main]
use callgate::server::proxy_protocol::{parse, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Parsed::Complete { len, .. } = parse(data) {
        assert!(len <= data.len());
    }
});
