//! The relay's JSON request bodies, and the client's view of its answers.
#![no_main]

use wire_core::proto::api::{
    AckRequest, ClaimHandleRequest, ErrorBody, GrantRequest, ListResponse, RendezvousPoll, StreamHello,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<GrantRequest>(data);
    let _ = serde_json::from_slice::<AckRequest>(data);
    if let Ok(claim) = serde_json::from_slice::<ClaimHandleRequest>(data) {
        let _ = wire_core::proto::card::Card::verify(claim.card);
    }
    let _ = serde_json::from_slice::<ListResponse>(data);
    let _ = serde_json::from_slice::<RendezvousPoll>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<StreamHello>(data);
});
