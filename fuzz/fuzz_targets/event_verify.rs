//! A signed event, parsed and verified against a pinned key and as a stranger's request.
#![no_main]
#[path = "common.rs"]
mod common;

use wire_core::proto::event::{Acceptance, SignedEvent};
use wire_core::proto::signed::Signed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (me, _) = common::agent(1);
    let (peer, _) = common::agent(2);
    let Ok(signed) = serde_json::from_slice::<Signed>(data) else { return };
    if let Ok(event) = SignedEvent::parse(signed.clone()) {
        let _ = event.clone().verify(&peer.did().verifying_key(), &Acceptance::new(me.did(), common::NOW));
        let _ = event.verify_from_stranger(&Acceptance::new(me.did(), common::NOW));
    }
    if let Ok(event) = SignedEvent::parse(signed) {
        let _ = wire_core::proto::pairing::receive_request(&me, event, common::NOW);
    }
});
