//! Each pairing state machine fed arbitrary messages: both sides of the code flow (from
//! the start, and after a valid PAKE exchange), a guest waiting for an invite's answer, and
//! a dialer waiting for a stranger's answer. (The issuer's side, a `pair_request` from
//! anyone, is `event_verify`.)
#![no_main]
#[path = "common.rs"]
mod common;

use std::time::Duration;

use wire_core::proto::api::SlotId;
use wire_core::proto::event::SignedEvent;
use wire_core::proto::invite::Invite;
use wire_core::proto::pairing::code::{Code, CodePairing, Role};
use wire_core::proto::pairing::{dial, invite};
use wire_core::proto::rng::SeededRng;
use wire_core::proto::secret::{Secret32, Token};
use wire_core::proto::signed::Signed;

fn side(role: Role, seed: u8) -> (CodePairing, Vec<Vec<u8>>) {
    let (_, card) = common::agent(seed);
    let code = Code::parse("7-brave-otter").expect("valid");
    let token = Token::new("send.fuzz-token-0000").expect("valid");
    let (p, out) = CodePairing::start(
        role,
        code,
        card,
        Default::default(),
        token,
        Secret32::from_bytes([seed; 32]),
        common::NOW,
        Duration::from_secs(600),
    );
    (p, out.send)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let later = common::NOW.saturating_add(Duration::from_secs(1));
    // Fresh sides.
    for role in [Role::Host, Role::Guest] {
        let (mut p, _) = side(role, 3);
        for m in common::messages(data) {
            let _ = p.receive(m, later);
            let _ = p.confirm("123456", later);
        }
    }
    // A host past the PAKE with an honest guest, then fed the input.
    let (mut host, host_out) = side(Role::Host, 3);
    let (mut guest, _) = side(Role::Guest, 4);
    for m in &host_out {
        for reply in guest.receive(m, later).send {
            let _ = host.receive(&reply, later);
        }
    }
    for m in common::messages(data) {
        let _ = host.receive(m, later);
    }
    // A guest that redeemed an invite, waiting for the issuer's answer.
    let (issuer, issuer_card) = common::agent(8);
    let (guest_id, guest_card) = common::agent(9);
    let mut rng = SeededRng::new(&Secret32::from_bytes([10; 32]), b"fuzz-invite");
    let slot = SlotId::new("aaaaaaaaaaaaaaaaaaaaaa").expect("valid");
    let intro = Token::new("intro.fuzz-token-0000").expect("valid");
    let expires = common::NOW.saturating_add(Duration::from_secs(3600));
    let url = Invite::issue(&issuer, &issuer_card, "https://relay.example".into(), slot, intro, expires, &mut rng);
    let token = Token::new("send.fuzz-token-0002").expect("valid");
    if let Ok((waiting, _)) = invite::join(&guest_id, &guest_card, &Default::default(), &url, token, common::NOW, &mut rng) {
        for m in common::messages(data) {
            if let Ok(Ok(event)) = serde_json::from_slice::<Signed>(m).map(SignedEvent::parse) {
                let _ = waiting.receive(&guest_id, event, later);
            }
        }
    }
    // A dialer waiting for the stranger's answer.
    let (me, my_card) = common::agent(5);
    let (_, their_card) = common::agent(6);
    let token = Token::new("send.fuzz-token-0001").expect("valid");
    let mut rng = SeededRng::new(&Secret32::from_bytes([7; 32]), b"fuzz-dial");
    if let Ok((waiting, _)) = dial::dial(&me, &my_card, &Default::default(), &their_card, token, None, common::NOW, &mut rng) {
        for m in common::messages(data) {
            if let Ok(event) = serde_json::from_slice::<Signed>(m).map(SignedEvent::parse) {
                if let Ok(event) = event {
                    let _ = waiting.receive(&me, event, later);
                }
            }
        }
    }
});
