//! Committed vectors of wire's own formats (`tests/vectors/wire-v1.json`), so another
//! implementation can check itself against this one byte for byte.
//!
//! Every random input is drawn from `SeededRng` (docs/PROTOCOL.md, "Deterministic RNG")
//! with the seeds recorded in the file, so the vectors regenerate identically. After an
//! intentional format change, regenerate with `WIRE_WRITE_VECTORS=1 cargo test -p wire-core
//! --test core vectors` and review the diff: a change here is a protocol change.

use core::time::Duration;
use rand_core::RngCore;
use serde_json::{Value, json};
use wire_core::proto::api::SlotId;
use wire_core::proto::card::{Card, Endpoint};
use wire_core::proto::envelope;
use wire_core::proto::event::{Acceptance, Event, Kind};
use wire_core::proto::identity::Identity;
use wire_core::proto::invite::Invite;
use wire_core::proto::lineage::{Change, Keys, Pin, SignedStatement};
use wire_core::proto::pairing::code::{Code, CodePairing, Role, Status};
use wire_core::proto::rng::SeededRng;
use wire_core::proto::secret::{Secret32, Token};
use wire_core::proto::time::UnixMillis;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/wire-v1.json");
const NOW: UnixMillis = UnixMillis(1_790_000_000_000);

fn rng(label: &'static [u8]) -> SeededRng {
    SeededRng::new(&Secret32::from_bytes([0x42; 32]), label)
}

fn agent(seed: u8, slot: &str) -> (Identity, Card) {
    let id = Identity::from_secret_bytes(&[seed; 32], [seed ^ 0xff; 32]);
    let endpoint = Endpoint { relay: "https://relay.example".into(), slot: SlotId::new(slot).unwrap() };
    let card = Card::issue(&id, vec![endpoint], vec!["message".into(), "question".into()], NOW);
    (id, card)
}

use wire_core::proto::prekey::{Bundle, OurPrekeys};
use wire_core::proto::signed::Signed;

fn generate() -> Value {
    let (alice, alice_card) = agent(0x01, "aaaaaaaaaaaaaaaaaaaaaa");
    let (bob, bob_card) = agent(0x02, "bbbbbbbbbbbbbbbbbbbbbb");
    let character = alice_card.character();

    let mut event_rng = rng(b"event");
    let event = Event::new(&alice, bob.did().clone(), Kind::Message, "hello, bob".into(), NOW, &mut event_rng)
        .sign(&alice)
        .unwrap();

    let mut esk = [0u8; 32];
    rng(b"envelope").fill_bytes(&mut esk);
    let sealed = envelope::seal(&event, &bob.x25519_public(), &mut rng(b"envelope")).unwrap();

    // Bob's prekeys: one made at NOW from SeededRng("prekey"); the event sealed to it.
    let mut bob_prekeys = OurPrekeys { v: 1, keys: Vec::new() };
    bob_prekeys.maintain(NOW, &mut rng(b"prekey"));
    let bundle = bob_prekeys.bundle(&bob, NOW).unwrap();
    let prekey = Bundle::verify(&bundle, &bob.verifying_key(), bob.did()).unwrap().seal_key(NOW).unwrap();
    let to_prekey = envelope::seal(&event, &prekey, &mut rng(b"envelope-prekey")).unwrap();

    let invite = Invite::issue(
        &alice,
        &alice_card,
        "https://relay.example".into(),
        SlotId::new("aaaaaaaaaaaaaaaaaaaaaa").unwrap(),
        Token::new("intro.0123456789abcdef").unwrap(),
        NOW.saturating_add(Duration::from_secs(3600)),
        &mut rng(b"invite"),
    );

    let code = "7-brave-otter";
    let (host_seed, guest_seed) = ([0x11; 32], [0x22; 32]);
    let sas = run_code_pairing(code, (&alice_card, host_seed), (&bob_card, guest_seed));

    // A lineage: alice incepts committing to key 0x03, rotates to it committing to 0x04,
    // and signs a revocation under the new key.
    let keyed = |seed: u8| Identity::from_secret_bytes(&[seed; 32], [seed ^ 0xff; 32]);
    let (keys, inception) = Keys::incept(keyed(0x01), keyed(0x03), NOW);
    let (keys, rotation) = keys.rotate(keyed(0x04), NOW.saturating_add(Duration::from_secs(60)));
    let revocation = keys.revocation(NOW.saturating_add(Duration::from_secs(120)));
    let endpoint =
        Endpoint { relay: "https://relay.example".into(), slot: SlotId::new("aaaaaaaaaaaaaaaaaaaaaa").unwrap() };
    let rotated_card = Card::issue_in_lineage(
        &keys.current,
        vec![endpoint],
        vec!["message".into(), "lineage".into()],
        NOW.saturating_add(Duration::from_secs(60)),
        vec![inception.clone(), rotation.clone()],
    );

    json!({
        "lineage": {
            "comment": "identities by their ed25519 seed byte (x25519 secret = seed ^ 0xff): inception 0x01 -> 0x03 -> next 0x04",
            "inception": inception,
            "rotation": rotation,
            "revocation": revocation,
            "rotated_card": rotated_card.signed(),
        },
        "comment": "wire v1 format vectors; see docs/PROTOCOL.md. Random inputs come from SeededRng(seed = 0x42 * 32, label).",
        "now": NOW.0,
        "identities": [identity_json(&alice, &alice_card, 0x01), identity_json(&bob, &bob_card, 0x02)],
        "character": { "did": alice.did(), "emoji": character.emoji, "nickname": character.nickname(), "primary": character.palette.primary.hex() },
        "event": { "rng_label": "event", "signed": event.signed() },
        "envelope": {
            "rng_label": "envelope",
            "recipient": bob.did(),
            "ephemeral_secret": hex::encode(esk),
            "plaintext_signed_event": event.signed(),
            "envelope_hex": hex::encode(&sealed.0),
        },
        "prekeys": {
            "comment": "bob's prekey secret from SeededRng(label \"prekey\"); the event sealed to it (label \"envelope-prekey\")",
            "prekey_secret": hex::encode(bob_prekeys.keys[0].secret.expose()),
            "bundle": bundle,
            "envelope_hex": hex::encode(&to_prekey.0),
        },
        "invite": { "rng_label": "invite", "url": invite.to_url() },
        "code_pairing": {
            "code": code,
            "host": alice.did(), "host_seed": hex::encode(host_seed),
            "guest": bob.did(), "guest_seed": hex::encode(guest_seed),
            "sas": sas,
        },
    })
}

fn identity_json(id: &Identity, card: &Card, seed: u8) -> Value {
    json!({
        "ed25519_seed": hex::encode([seed; 32]),
        "x25519_secret": hex::encode([seed ^ 0xff; 32]),
        "did": id.did(),
        "x25519_public": hex::encode(id.x25519_public().as_bytes()),
        "fingerprint": id.did().fingerprint(),
        "card": card.signed(),
    })
}

fn run_code_pairing(code: &str, host: (&Card, [u8; 32]), guest: (&Card, [u8; 32])) -> String {
    let token = |t: &str| Token::new(t).unwrap();
    let (mut h, hp) = CodePairing::start(
        Role::Host,
        Code::parse(code).unwrap(),
        host.0.clone(),
        Default::default(),
        token("send.host-token-000"),
        Secret32::from_bytes(host.1),
        NOW,
        Duration::from_secs(60),
    );
    let (mut g, gp) = CodePairing::start(
        Role::Guest,
        Code::parse(code).unwrap(),
        guest.0.clone(),
        Default::default(),
        token("send.guest-token-00"),
        Secret32::from_bytes(guest.1),
        NOW,
        Duration::from_secs(60),
    );
    let (mut to_g, mut to_h) = (hp.send, gp.send);
    while !to_g.is_empty() || !to_h.is_empty() {
        for m in std::mem::take(&mut to_h) {
            to_g.extend(h.receive(&m, NOW).send);
        }
        for m in std::mem::take(&mut to_g) {
            to_h.extend(g.receive(&m, NOW).send);
        }
    }
    match (h.status(), g.status()) {
        (Status::SasReady { sas: a }, Status::SasReady { sas: b }) if a == b => a,
        other => panic!("code pairing did not reach matching SAS: {other:?}"),
    }
}

#[test]
fn vectors_match_the_committed_file() {
    let fresh = generate();
    if std::env::var_os("WIRE_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, serde_json::to_string_pretty(&fresh).unwrap() + "\n").unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(fresh, committed, "format output changed; if intended, regenerate (see module docs)");
    committed_vectors_verify_independently();
}

/// Checks the committed file on its own terms, as another implementation would. Run from
/// the test above, after any regeneration, so the two never race on the file.
fn committed_vectors_verify_independently() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let bob_v = &v["identities"][1];
    let hex32 = |s: &Value| -> [u8; 32] { hex::decode(s.as_str().unwrap()).unwrap().try_into().unwrap() };
    let bob = Identity::from_secret_bytes(&hex32(&bob_v["ed25519_seed"]), hex32(&bob_v["x25519_secret"]));
    assert_eq!(bob.did().as_str(), bob_v["did"].as_str().unwrap());

    // Cards verify.
    for ident in v["identities"].as_array().unwrap() {
        let card: Card = serde_json::from_value(ident["card"].clone()).unwrap();
        assert_eq!(card.did().as_str(), ident["did"].as_str().unwrap());
    }
    // The envelope opens with Bob's key and holds the recorded signed event from Alice.
    let sealed = hex::decode(v["envelope"]["envelope_hex"].as_str().unwrap()).unwrap();
    let opened = envelope::open(&bob, &sealed).unwrap();
    assert_eq!(serde_json::to_value(opened.signed()).unwrap(), v["envelope"]["plaintext_signed_event"]);
    let alice_did: wire_core::proto::did::Did = serde_json::from_value(v["identities"][0]["did"].clone()).unwrap();
    let event = opened.verify(&alice_did.verifying_key(), &Acceptance::new(bob.did(), NOW)).unwrap();
    assert_eq!(event.event().body, json!("hello, bob"));
    // The epk in the envelope is X25519(ephemeral_secret, 9).
    let esk = x25519_dalek::StaticSecret::from(hex32(&v["envelope"]["ephemeral_secret"]));
    assert_eq!(&sealed[1..33], x25519_dalek::PublicKey::from(&esk).as_bytes());
    // The lineage statements apply in order to a pin of alice's DID.
    let mut pin = Pin::of(&alice_did);
    let statement = |k: &str| -> SignedStatement { serde_json::from_value(v["lineage"][k].clone()).unwrap() };
    assert_eq!(pin.apply(&statement("inception"), NOW).unwrap(), Change::Committed);
    assert_eq!(pin.apply(&statement("rotation"), NOW).unwrap(), Change::Rotated { seq: 1 });
    assert_eq!(pin.key, Identity::from_secret_bytes(&[3; 32], [3 ^ 0xff; 32]).verifying_key().to_bytes());
    assert_eq!(pin.apply(&statement("revocation"), NOW).unwrap(), Change::Revoked);
    // The rotated card verifies on its own, under the new key, for alice's DID.
    let card: Card = serde_json::from_value(v["lineage"]["rotated_card"].clone()).unwrap();
    assert_eq!((card.did(), card.lineage().len()), (&alice_did, 2));
    // The bundle verifies under bob's key; the envelope sealed to its prekey opens with the
    // prekey's secret (not bob's long-term key) to the same signed event.
    let bundle: Signed = serde_json::from_value(v["prekeys"]["bundle"].clone()).unwrap();
    let listed = Bundle::verify(&bundle, &bob.verifying_key(), bob.did()).unwrap();
    let secret = x25519_dalek::StaticSecret::from(hex32(&v["prekeys"]["prekey_secret"]));
    assert_eq!(listed.prekeys[0].key, x25519_dalek::PublicKey::from(&secret).to_bytes());
    let sealed = hex::decode(v["prekeys"]["envelope_hex"].as_str().unwrap()).unwrap();
    assert!(envelope::open(&bob, &sealed).is_err());
    let opened = envelope::open_signed_with(&secret, &sealed).unwrap();
    assert_eq!(serde_json::to_value(&opened).unwrap(), v["envelope"]["plaintext_signed_event"]);
    // The invite parses at `now`.
    let invite = Invite::parse_url(v["invite"]["url"].as_str().unwrap(), NOW).unwrap();
    assert_eq!(invite.issuer().did(), &alice_did);
}
