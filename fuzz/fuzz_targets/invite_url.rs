//! An invite URL, as pasted by an operator.
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = wire_core::proto::invite::Invite::parse_url(text, common::NOW);
    }
});
