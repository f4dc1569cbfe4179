//! What a room member takes from others: room envelopes (the wrap), MLS messages read from
//! the room slot, key packages and Welcomes from the 1:1 channel, room invite URLs.
#![no_main]
#[path = "common.rs"]
mod common;

use std::sync::{Mutex, OnceLock};

use wire_core::proto::identity::Identity;
use wire_core::room::{self, mls};

/// A member of a one-member room, made once: every input is tried against its state.
fn member() -> &'static Mutex<(mls::Provider, mls::MlsGroup)> {
    static MEMBER: OnceLock<Mutex<(mls::Provider, mls::MlsGroup)>> = OnceLock::new();
    MEMBER.get_or_init(|| {
        let id = Identity::from_secret_bytes(&[1; 32], [2; 32]);
        let provider = mls::Provider::new();
        let group = mls::create(&provider, &id, &[], b"fuzz-room").expect("a group");
        Mutex::new((provider, group))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = room::unwrap(&[7; 32], data);
    let mut guard = member().lock().unwrap_or_else(|p| p.into_inner());
    let (provider, group) = &mut *guard;
    let _ = mls::process(group, provider, data);
    let _ = mls::read_key_package(provider, data);
    let _ = mls::join(provider, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = room::RoomInvite::parse(text, common::NOW);
    }
});
