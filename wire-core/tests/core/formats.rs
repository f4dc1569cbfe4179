//! Each wire format accepts what it wrote and refuses every kind of bad input with its
//! own clear error.

use crate::common::{Agent, T0, token};
use core::time::Duration;
use rand_core::OsRng;
use wire_core::proto::b64;
use wire_core::proto::card::{Card, CardBody, CardError};
use wire_core::proto::envelope::{self, BUCKETS, OVERHEAD, OpenError, SealError};
use wire_core::proto::event::{Acceptance, Event, EventError, Kind, SignedEvent};
use wire_core::proto::invite::{Invite, InviteError};
use wire_core::proto::labels;
use wire_core::proto::signed::Signed;
use wire_core::proto::time::UnixMillis;

// ---------------------------------------------------------------- cards

#[test]
fn card_round_trips_through_json() {
    let a = Agent::new("a");
    let back = Card::from_json(&a.card.to_json()).unwrap();
    assert_eq!(back, a.card);
    assert_eq!(back.x25519_public().as_bytes(), a.id.x25519_public().as_bytes());
}

#[test]
fn tampered_card_is_refused() {
    let a = Agent::new("a");
    let mut signed = a.card.signed().clone();
    let text = String::from_utf8(signed.payload).unwrap().replace("8771", "8772");
    signed.payload = text.into_bytes();
    assert!(matches!(Card::verify(signed), Err(CardError::BadSignature)));
}

#[test]
fn card_claiming_another_did_is_refused() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    // A builds a card body naming B's DID and signs it with A's key.
    let mut body: CardBody = serde_json::from_slice(&a.card.signed().payload).unwrap();
    body.did = b.id.did().clone();
    let forged = Signed::sign(&a.id, labels::SIGN_CARD, serde_json::to_vec(&body).unwrap());
    assert!(matches!(Card::verify(forged), Err(CardError::BadSignature)));
}

#[test]
fn card_of_unknown_version_is_refused_as_such() {
    let a = Agent::new("a");
    let mut body: serde_json::Value = serde_json::from_slice(&a.card.signed().payload).unwrap();
    body["v"] = 2.into();
    let future = Signed::sign(&a.id, labels::SIGN_CARD, serde_json::to_vec(&body).unwrap());
    assert!(matches!(Card::verify(future), Err(CardError::UnsupportedVersion(2))));
    assert!(matches!(Card::from_json(b"{\"payload\":\"\""), Err(CardError::Malformed(_))));
}

#[test]
fn a_card_signature_is_not_an_event_signature() {
    // Domain separation: the same payload signed as a card does not verify as an event.
    let a = Agent::new("a");
    let signed = a.card.signed().clone();
    assert!(signed.verify(labels::SIGN_CARD, &a.id.verifying_key()).is_ok());
    assert!(signed.verify(labels::SIGN_EVENT, &a.id.verifying_key()).is_err());
}

// ---------------------------------------------------------------- invites

fn invite(issuer: &Agent, expires_in: u64) -> Invite {
    Invite::issue(
        &issuer.id,
        &issuer.card,
        "http://127.0.0.1:8771".into(),
        issuer.slot().clone(),
        token("intro"),
        T0.saturating_add(Duration::from_secs(expires_in)),
        &mut OsRng,
    )
}

#[test]
fn invite_url_round_trips() {
    let a = Agent::new("issuer");
    let inv = invite(&a, 600);
    let url = inv.to_url();
    assert!(url.starts_with("wire://pair?v=1&inv="));
    let back = Invite::parse_url(&format!("  {url}\n"), T0).unwrap();
    assert_eq!(back.issuer(), &a.card);
    assert_eq!(back.body().slot, *a.slot());
    assert_eq!(back.body().secret.expose(), inv.body().secret.expose());
}

#[test]
fn invite_errors_are_distinct() {
    let a = Agent::new("issuer");
    let url = invite(&a, 600).to_url();
    let now = T0;

    let err = |u: &str| Invite::parse_url(u, now).unwrap_err();
    assert!(matches!(err("https://example.com/pair?v=1"), InviteError::NotAnInvite));
    // An unquoted URL in a shell stops at `&`: the error says to quote it.
    let cut = err(&url[..url.find('&').unwrap()]);
    assert!(matches!(cut, InviteError::CutAtAmpersand) && cut.to_string().contains("Quote the whole URL"), "{cut}");
    assert!(matches!(err("wire://pair?v=1&x=2"), InviteError::MissingParameter("inv")));
    assert!(matches!(err(&url.replace("v=1", "v=2")), InviteError::WrongVersion(v) if v == "2"));
    assert!(matches!(err(&url[..url.len() * 2 / 3]), InviteError::Truncated));
    assert!(matches!(err(&url.replace("inv=", "inv=%%")), InviteError::Corrupted));
    assert!(matches!(
        Invite::parse_url(&url, T0.saturating_add(Duration::from_secs(601))),
        Err(InviteError::Expired { .. })
    ));
    assert!(matches!(err(&"x".repeat(20_000)), InviteError::TooLong(_)));

    // Tampered: change the relay inside the payload and keep the old signature.
    let raw = b64::decode(url.split("inv=").nth(1).unwrap()).unwrap();
    let (sig, payload) = raw.split_at(64);
    let text = String::from_utf8(payload.to_vec()).unwrap().replace("127.0.0.1:8771", "evil.example:8771");
    let forged = format!("wire://pair?v=1&inv={}", b64::encode([sig, text.as_bytes()].concat()));
    assert!(matches!(err(&forged), InviteError::Tampered));

    // Every error says what to do next.
    for e in [err("nope"), err(&url[..40]), err(&forged)] {
        let msg = e.to_string();
        assert!(msg.contains("invite"), "{msg}");
    }
}

// ---------------------------------------------------------------- events

fn message(from: &Agent, to: &Agent, at: UnixMillis) -> SignedEvent {
    Event::new(&from.id, to.id.did().clone(), Kind::Message, "hello".into(), at, &mut OsRng).sign(&from.id).unwrap()
}

#[test]
fn event_checks_sender_recipient_and_window() {
    let (a, b, c) = (Agent::new("a"), Agent::new("b"), Agent::new("c"));
    let rules = Acceptance::new(b.id.did(), T0);
    let ok = message(&a, &b, T0).verify(&a.id.verifying_key(), &rules).unwrap();
    assert_eq!(ok.event().body, serde_json::json!("hello"));

    let e = message(&a, &b, T0).verify(&c.id.verifying_key(), &rules).unwrap_err();
    assert!(matches!(e, EventError::UnexpectedSender { .. }), "{e}");
    let e = message(&a, &c, T0).verify(&a.id.verifying_key(), &rules).unwrap_err();
    assert!(matches!(e, EventError::WrongRecipient(_)), "{e}");
    let e =
        message(&a, &b, T0.saturating_add(Duration::from_secs(301))).verify(&a.id.verifying_key(), &rules).unwrap_err();
    assert!(matches!(e, EventError::FromTheFuture { .. }), "{e}");
    let e = message(&a, &b, T0.saturating_sub(Duration::from_secs(31 * 86_400)))
        .verify(&a.id.verifying_key(), &rules)
        .unwrap_err();
    assert!(matches!(e, EventError::TooOld { .. }), "{e}");
}

#[test]
fn event_with_forged_from_or_tampered_body_fails() {
    let (a, b, mallory) = (Agent::new("a"), Agent::new("b"), Agent::new("m"));
    // Mallory signs an event claiming to be from A.
    let mut event = Event::new(&mallory.id, b.id.did().clone(), Kind::Message, "hi".into(), T0, &mut OsRng);
    event.from = a.id.did().clone();
    assert!(matches!(event.clone().sign(&mallory.id), Err(EventError::NotFromSigner)));
    let forged = Signed::sign(&mallory.id, labels::SIGN_EVENT, serde_json::to_vec(&event).unwrap());
    let e = SignedEvent::parse(forged)
        .unwrap()
        .verify(&a.id.verifying_key(), &Acceptance::new(b.id.did(), T0))
        .unwrap_err();
    assert!(matches!(e, EventError::BadSignature), "{e}");
}

#[test]
fn unknown_kind_is_flagged_not_remapped() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    let mut body: serde_json::Value = serde_json::from_slice(&message(&a, &b, T0).signed().payload).unwrap();
    body["kind"] = "memo".into();
    let signed = Signed::sign(&a.id, labels::SIGN_EVENT, serde_json::to_vec(&body).unwrap());
    let e = SignedEvent::parse(signed).unwrap_err();
    assert_eq!(e.to_string(), "unsupported kind `memo` from a newer peer");
    let EventError::UnsupportedKind(unknown) = e else { panic!("not an unsupported kind") };
    assert_eq!((&unknown.from, unknown.kind.as_str()), (a.id.did(), "memo"));
    unknown.verify(&a.id.verifying_key(), b.id.did()).unwrap();
    assert!(unknown.verify(&b.id.verifying_key(), b.id.did()).is_err(), "checked against the pinned key");
    assert!(unknown.verify(&a.id.verifying_key(), a.id.did()).is_err(), "addressed to b, not a");
}

#[test]
fn a_malformed_event_of_a_known_kind_stays_malformed() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    let mut body: serde_json::Value = serde_json::from_slice(&message(&a, &b, T0).signed().payload).unwrap();
    body["surprise"] = 1.into();
    let signed = Signed::sign(&a.id, labels::SIGN_EVENT, serde_json::to_vec(&body).unwrap());
    assert!(matches!(SignedEvent::parse(signed), Err(EventError::Malformed(_))));
}

#[test]
fn control_messages_have_one_shape_with_a_type_and_a_version() {
    let body: wire_core::proto::event::ControlBody =
        serde_json::from_value(serde_json::json!({"type": "receipt", "v": 1, "of": "abc"})).unwrap();
    assert_eq!((body.kind.as_str(), body.v, &body.fields["of"]), ("receipt", 1, &serde_json::json!("abc")));
    let caps = wire_core::proto::event::capabilities();
    assert!(caps.contains(&"control".to_owned()) && caps.contains(&"message".to_owned()));
}

// ---------------------------------------------------------------- envelopes

#[test]
fn envelope_hides_sender_recipient_and_kind() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    let ev = message(&a, &b, T0);
    let sealed = envelope::seal(&ev, &b.id.x25519_public(), &mut OsRng).unwrap();
    assert_eq!(sealed.0.len(), BUCKETS[1] + OVERHEAD, "a short message fills the 1 KiB bucket");
    let hay = &sealed.0;
    for needle in [
        a.id.did().as_str().as_bytes(),
        b.id.did().as_str().as_bytes(),
        b"message",
        b"hello",
        a.id.verifying_key().as_bytes(),
        b.id.x25519_public().as_bytes(),
    ] {
        assert!(
            !hay.windows(needle.len()).any(|w| w == needle),
            "envelope leaks {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    // Only B opens it.
    assert_eq!(envelope::open(&a.id, &sealed.0).unwrap_err(), OpenError);
    let opened = envelope::open(&b.id, &sealed.0).unwrap();
    assert_eq!(opened.claimed_sender(), a.id.did());
}

#[test]
fn oversized_event_and_low_order_key_are_refused() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    let big = Event::new(
        &a.id,
        b.id.did().clone(),
        Kind::Message,
        "x".repeat(envelope::MAX_PLAINTEXT).into(),
        T0,
        &mut OsRng,
    )
    .sign(&a.id)
    .unwrap();
    assert!(matches!(envelope::seal(&big, &b.id.x25519_public(), &mut OsRng), Err(SealError::TooLarge { .. })));
    let zero = x25519_dalek::PublicKey::from([0u8; 32]);
    assert_eq!(envelope::seal(&message(&a, &b, T0), &zero, &mut OsRng), Err(SealError::InvalidRecipientKey));
}

#[test]
fn envelope_of_wrong_length_or_version_is_opaque() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    let sealed = envelope::seal(&message(&a, &b, T0), &b.id.x25519_public(), &mut OsRng).unwrap().0;
    for bad in [
        vec![],
        vec![1],
        sealed[..sealed.len() - 1].to_vec(),
        [sealed.as_slice(), &[0]].concat(),
        [&[2u8][..], &sealed[1..]].concat(),
    ] {
        assert_eq!(envelope::open(&b.id, &bad).unwrap_err(), OpenError);
    }
}
