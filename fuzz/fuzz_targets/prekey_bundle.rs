//! A peer's prekey bundle (docs/PROTOCOL.md 7.1): from a pairing message or a `prekeys`
//! control message. The input is signed with the fixture key first, so the parser behind
//! the signature check is reached.
#![no_main]

mod common;

use wire_core::proto::labels;
use wire_core::proto::prekey::Bundle;
use wire_core::proto::signed::Signed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (id, _) = common::agent(1);
    let signed = Signed::sign(&id, labels::SIGN_PREKEYS, data.to_vec());
    if let Ok(bundle) = Bundle::verify(&signed, &id.verifying_key(), id.did()) {
        let _ = bundle.seal_key(common::NOW);
        let _ = bundle.usable_until();
    }
    if let Ok(signed) = serde_json::from_slice::<Signed>(data) {
        let _ = Bundle::verify(&signed, &id.verifying_key(), id.did());
    }
});
