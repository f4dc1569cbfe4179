//! Opening an envelope: what any relay or stranger can hand us.
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (me, _) = common::agent(1);
    let _ = wire_core::proto::envelope::open_signed(&me, data);
    let _ = wire_core::proto::envelope::open(&me, data);
});
