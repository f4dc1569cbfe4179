//! Property tests: round trips hold for arbitrary inputs, any corruption is refused, and
//! no parser panics on arbitrary bytes.

use crate::common::{Agent, T0, token};
use core::time::Duration;
use proptest::prelude::*;
use rand_core::OsRng;
use std::sync::LazyLock;
use wire_core::proto::api::SlotId;
use wire_core::proto::card::{Card, Endpoint};
use wire_core::proto::did::Did;
use wire_core::proto::envelope::{self, BUCKETS, OVERHEAD};
use wire_core::proto::event::{Event, Kind};
use wire_core::proto::identity::Identity;
use wire_core::proto::invite::Invite;
use wire_core::proto::pairing::code::{Code, CodePairing, Role};
use wire_core::proto::secret::Secret32;

static ALICE: LazyLock<Agent> = LazyLock::new(|| Agent::new("alice"));
static BOB: LazyLock<Agent> = LazyLock::new(|| Agent::new("bob"));

fn sealed_message(body_len: usize) -> (Vec<u8>, Event) {
    let event = Event::new(&ALICE.id, BOB.id.did().clone(), Kind::Message, "a".repeat(body_len).into(), T0, &mut OsRng);
    let signed = event.clone().sign(&ALICE.id).unwrap();
    (envelope::seal(&signed, &BOB.id.x25519_public(), &mut OsRng).unwrap().0, event)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn seal_open_round_trip(len in prop_oneof![0usize..2_000, 2_000usize..300_000]) {
        let (sealed, event) = sealed_message(len);
        prop_assert!(BUCKETS.iter().any(|b| sealed.len() == b + OVERHEAD), "length is a bucket: {}", sealed.len());
        let opened = envelope::open(&BOB.id, &sealed).unwrap();
        let verified = opened.verify(&ALICE.id.verifying_key(), &wire_core::proto::event::Acceptance::new(BOB.id.did(), T0)).unwrap();
        prop_assert_eq!(verified.event(), &event);
    }

    #[test]
    fn any_flipped_bit_fails_to_open(len in 0usize..5_000, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (mut sealed, _) = sealed_message(len);
        let i = pos.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(envelope::open(&BOB.id, &sealed).is_err(), "flipping bit {} of byte {} went unnoticed", bit, i);
    }

    #[test]
    fn card_round_trip(relays in prop::collection::vec("[a-z]{1,12}\\.[a-z]{2,5}", 0..4), caps in prop::collection::vec("[a-z_]{1,16}", 0..6), at in any::<u64>()) {
        let endpoints = relays.iter().enumerate().map(|(i, r)| Endpoint { relay: format!("https://{r}"), slot: SlotId::new(format!("slot{i:0>16}")).unwrap() }).collect();
        let card = Card::issue(&ALICE.id, endpoints, caps, wire_core::proto::time::UnixMillis(at));
        prop_assert_eq!(Card::from_json(&card.to_json()).unwrap(), card);
    }

    #[test]
    fn corrupted_card_never_verifies_as_something_else(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut json = ALICE.card.to_json();
        let i = pos.index(json.len());
        prop_assume!(json[i] != byte);
        json[i] = byte;
        if let Ok(card) = Card::from_json(&json) {
            prop_assert_eq!(card, ALICE.card.clone());
        }
    }

    #[test]
    fn invite_round_trip(relay in "https?://[a-z]{1,20}(:[0-9]{2,5})?", ttl in 1u64..10_000_000) {
        let inv = Invite::issue(&ALICE.id, &ALICE.card, relay.clone(), ALICE.slot().clone(), token("intro"), T0.saturating_add(Duration::from_secs(ttl)), &mut OsRng);
        let back = Invite::parse_url(&inv.to_url(), T0).unwrap();
        prop_assert_eq!(&back.body().relay, &relay);
        prop_assert_eq!(back.body().expires_at, inv.body().expires_at);
        prop_assert_eq!(back.body().id, inv.body().id);
    }

    #[test]
    fn truncated_or_mangled_invite_is_refused(cut in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), c in "[A-Za-z0-9_%-]") {
        let url = Invite::issue(&ALICE.id, &ALICE.card, "http://127.0.0.1:1".into(), ALICE.slot().clone(), token("intro"), T0.saturating_add(Duration::from_secs(60)), &mut OsRng).to_url();
        let n = cut.index(url.len());
        prop_assert!(Invite::parse_url(&url[..n], T0).is_err());
        let mut chars: Vec<char> = url.chars().collect();
        let i = 20 + pos.index(chars.len() - 20); // inside the payload
        let replacement = c.chars().next().unwrap();
        prop_assume!(chars[i] != replacement);
        chars[i] = replacement;
        let mangled: String = chars.into_iter().collect();
        prop_assert!(Invite::parse_url(&mangled, T0).is_err());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2_048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = envelope::open(&BOB.id, &bytes);
        let _ = Invite::parse_url(&text, T0);
        let _ = Invite::parse_url(&format!("wire://pair?v=1&inv={text}"), T0);
        let _ = Card::from_json(&bytes);
        let _ = Did::parse(&text);
        let _ = Did::parse(&format!("did:key:z{text}"));
        let _ = Code::parse(&text);
        let _ = Identity::from_secret_file(&bytes);
        let _ = serde_json::from_slice::<wire_core::proto::signed::Signed>(&bytes).map(wire_core::proto::event::SignedEvent::parse);
        let (mut pairing, _) = CodePairing::start(Role::Host, Code::parse("1-brave-otter").unwrap(), ALICE.card.clone(), Default::default(), token("send"), Secret32::from_bytes([1; 32]), T0, Duration::from_secs(60));
        let _ = pairing.receive(&bytes, T0);
    }

    #[test]
    fn parsers_never_panic_on_near_valid_json(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        // Mutations of valid documents reach deeper than random bytes.
        let (sealed, _) = sealed_message(10);
        let inner = envelope::open(&BOB.id, &sealed).unwrap();
        let mut doc = serde_json::to_vec(inner.signed()).unwrap();
        let i = pos.index(doc.len());
        doc[i] = byte;
        let _ = serde_json::from_slice::<wire_core::proto::signed::Signed>(&doc).map(wire_core::proto::event::SignedEvent::parse);
        let mut card = ALICE.card.to_json();
        let j = pos.index(card.len());
        card[j] = byte;
        let _ = Card::from_json(&card);
    }
}
