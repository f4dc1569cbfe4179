//! The relay's lean stream path: a request head read straight off a TCP socket.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wire_relay::fuzz_stream_head(data);
});
