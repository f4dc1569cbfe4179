//! A pairing code, as typed by an operator.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(code) = wire_core::proto::pairing::code::Code::parse(text) {
            let _ = code.nameplate();
        }
    }
});
