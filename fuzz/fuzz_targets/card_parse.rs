//! An agent card from a directory or a pairing message.
#![no_main]

use wire_core::proto::card::Card;
use wire_core::proto::signed::Signed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = serde_json::from_slice::<Signed>(data) {
        if let Ok(card) = Card::verify(signed) {
            let _ = card.character().nickname();
            let _ = card.machine();
            let _ = card.x25519_public();
        }
    }
    let _ = serde_json::from_slice::<Card>(data);
});
