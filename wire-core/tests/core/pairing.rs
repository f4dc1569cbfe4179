//! Every pairing flow run to completion between two in-memory peers, and every way each
//! one must abort cleanly. No sockets: the flows are sans-io.

use crate::common::{Agent, T0, token};
use core::time::Duration;
use wire_core::proto::envelope;
use wire_core::proto::event::{Event, EventError, Kind};
use wire_core::proto::invite::Invite;
use wire_core::proto::pairing::code::{
    AbortReason, CancelError, Code, CodePairing, ConfirmError, Progress, Role, Status,
};
use wire_core::proto::pairing::dial::{self, DialAnswer};
use wire_core::proto::pairing::invite::{self, IssuedInvite};
use wire_core::proto::pairing::{IncomingRequest, Lane, PairingError, Tier, receive_request};
use wire_core::proto::secret::Secret32;
use wire_core::proto::time::UnixMillis;

fn later(secs: u64) -> UnixMillis {
    T0.saturating_add(Duration::from_secs(secs))
}

// ---------------------------------------------------------------- invite flow

struct InviteSetup {
    issuer: Agent,
    guest: Agent,
    invite: Invite,
    issued: IssuedInvite,
}

fn issue_invite(uses: u32) -> InviteSetup {
    let issuer = Agent::new("issuer");
    let guest = Agent::new("guest");
    let invite = Invite::issue(
        &issuer.id,
        &issuer.card,
        "http://127.0.0.1:8771".into(),
        issuer.slot().clone(),
        token("intro"),
        later(3600),
        &mut crate::common::rng(),
    );
    let issued = IssuedInvite::new(&invite, uses);
    InviteSetup { issuer, guest, invite, issued }
}

fn claim_of(setup: &InviteSetup, envelope: &[u8]) -> invite::InviteClaim {
    let opened = envelope::open(&setup.issuer.id, envelope).unwrap();
    match receive_request(&setup.issuer.id, opened, later(1)).unwrap() {
        IncomingRequest::Invite(claim) => claim,
        IncomingRequest::Dial(_) => panic!("an invite request was classified as a dial"),
    }
}

#[test]
fn invite_flow_pairs_both_sides() {
    let mut s = issue_invite(1);
    let url = s.invite.to_url();
    let parsed = Invite::parse_url(&url, later(1)).unwrap();

    let guest_token = token("send");
    let (waiting, request) = invite::join(
        &s.guest.id,
        &s.guest.card,
        &Default::default(),
        &parsed,
        guest_token.clone(),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    assert_eq!(request.endpoints[0].slot, *s.issuer.slot(), "request goes to the slot named in the invite");
    assert_eq!(request.lane, Lane::Inbox);
    assert_eq!(request.token.as_ref(), Some(&s.invite.body().intro_token), "posted with the intro token");

    let claim = claim_of(&s, &request.envelope.0);
    let redeemed = s.issued.redeem(&s.issuer.id, claim, later(2)).unwrap();
    assert_eq!(redeemed.guest().did(), s.guest.id.did());
    let issuer_token = token("send");
    let (issuer_pins, accept) = redeemed
        .answer(
            &s.issuer.id,
            &s.issuer.card,
            &Default::default(),
            issuer_token.clone(),
            later(2),
            &mut crate::common::rng(),
        )
        .unwrap();
    assert_eq!(accept.endpoints[0].slot, *s.guest.slot());
    assert_eq!(accept.token.as_ref(), Some(&guest_token));

    let opened = envelope::open(&s.guest.id, &accept.envelope.0).unwrap();
    let guest_pins = waiting.receive(&s.guest.id, opened, later(3)).unwrap();

    assert_eq!(issuer_pins.card.did(), s.guest.id.did());
    assert_eq!(issuer_pins.send_token, guest_token);
    assert_eq!(guest_pins.card.did(), s.issuer.id.did());
    assert_eq!(guest_pins.send_token, issuer_token);
    assert_eq!((issuer_pins.tier, guest_pins.tier), (Tier::Verified, Tier::Verified));
}

#[test]
fn invite_second_use_is_refused_and_changes_nothing() {
    let mut s = issue_invite(1);
    let (_, request) = invite::join(
        &s.guest.id,
        &s.guest.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    s.issued.redeem(&s.issuer.id, claim_of(&s, &request.envelope.0), later(2)).unwrap();
    // The same envelope replayed, and a second guest with the same URL.
    let replay = s.issued.redeem(&s.issuer.id, claim_of(&s, &request.envelope.0), later(3));
    assert!(matches!(replay, Err(PairingError::InviteUsedUp)), "{replay:?}");
    let other = Agent::new("other");
    let (_, second) = invite::join(
        &other.id,
        &other.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    let second = s.issued.redeem(&s.issuer.id, claim_of(&s, &second.envelope.0), later(3));
    assert!(matches!(second, Err(PairingError::InviteUsedUp)), "{second:?}");
    assert_eq!(s.issued.uses_left, 0);
}

#[test]
fn an_invite_for_one_identity_is_refused_to_any_other() {
    let mut s = issue_invite(1);
    s.issued.only = Some(s.guest.id.did().clone());
    let other = Agent::new("other");
    let (_, theirs) = invite::join(
        &other.id,
        &other.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    let refused = s.issued.redeem(&s.issuer.id, claim_of(&s, &theirs.envelope.0), later(2));
    assert!(matches!(refused, Err(PairingError::InviteForAnother)), "{refused:?}");
    assert_eq!(s.issued.uses_left, 1, "a refused claim consumes nothing");
    let (_, ours) = invite::join(
        &s.guest.id,
        &s.guest.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    s.issued.redeem(&s.issuer.id, claim_of(&s, &ours.envelope.0), later(2)).unwrap();
}

#[test]
fn invite_with_several_uses_counts_down() {
    let mut s = issue_invite(2);
    for (i, left) in [(0, 1), (1, 0)] {
        let g = Agent::new(&format!("guest{i}"));
        let (_, req) = invite::join(
            &g.id,
            &g.card,
            &Default::default(),
            &s.invite,
            token("send"),
            later(1),
            &mut crate::common::rng(),
        )
        .unwrap();
        s.issued.redeem(&s.issuer.id, claim_of(&s, &req.envelope.0), later(2)).unwrap();
        assert_eq!(s.issued.uses_left, left);
    }
}

#[test]
fn invite_redeemed_after_expiry_is_refused() {
    let mut s = issue_invite(1);
    let (_, request) = invite::join(
        &s.guest.id,
        &s.guest.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    let claim = claim_of(&s, &request.envelope.0);
    let late = s.issued.redeem(&s.issuer.id, claim, later(3601));
    assert!(matches!(late, Err(PairingError::InviteExpired(_))), "{late:?}");
    assert_eq!(s.issued.uses_left, 1, "a refused claim consumes nothing");
}

#[test]
fn invite_request_without_the_secret_is_refused() {
    let s = issue_invite(1);
    let (_, request) = invite::join(
        &s.guest.id,
        &s.guest.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    // The issuer's record holds a different secret than the one the guest proved.
    let mut wrong = IssuedInvite { secret: Secret32::from_bytes([9; 32]), ..s.issued.clone() };
    let result = wrong.redeem(&s.issuer.id, claim_of(&s, &request.envelope.0), later(2));
    assert!(matches!(result, Err(PairingError::BadProof)), "{result:?}");
    // And a claim for another invite id.
    let mut other = IssuedInvite { id: [1; 16], ..s.issued.clone() };
    let result = other.redeem(&s.issuer.id, claim_of(&s, &request.envelope.0), later(2));
    assert!(matches!(result, Err(PairingError::UnknownInvite)), "{result:?}");
}

#[test]
fn guest_refuses_an_accept_from_anyone_but_the_issuer_or_not_replying() {
    let mut s = issue_invite(1);
    let (waiting, request) = invite::join(
        &s.guest.id,
        &s.guest.card,
        &Default::default(),
        &s.invite,
        token("send"),
        later(1),
        &mut crate::common::rng(),
    )
    .unwrap();
    // A third party forges a pair_accept to the guest.
    let mallory = Agent::new("mallory");
    let forged = Event::new(
        &mallory.id,
        s.guest.id.did().clone(),
        Kind::PairAccept,
        serde_json::json!({}),
        later(2),
        &mut crate::common::rng(),
    )
    .replying_to(waiting.request_id)
    .sign(&mallory.id)
    .unwrap();
    let result = waiting.receive(&s.guest.id, forged, later(2));
    assert!(matches!(result, Err(PairingError::Event(EventError::UnexpectedSender { .. }))), "{result:?}");
    // The issuer's accept for some other request.
    let redeemed = s.issued.redeem(&s.issuer.id, claim_of(&s, &request.envelope.0), later(2)).unwrap();
    let (_, accept) = redeemed
        .answer(&s.issuer.id, &s.issuer.card, &Default::default(), token("send"), later(2), &mut crate::common::rng())
        .unwrap();
    let stale =
        invite::AwaitingInviteAccept { request_id: wire_core::proto::event::EventId([7; 16]), ..waiting.clone() };
    let result = stale.receive(&s.guest.id, envelope::open(&s.guest.id, &accept.envelope.0).unwrap(), later(3));
    assert!(matches!(result, Err(PairingError::NotAReply)), "{result:?}");
    // The real one still works afterwards: refusals changed nothing.
    assert!(waiting.receive(&s.guest.id, envelope::open(&s.guest.id, &accept.envelope.0).unwrap(), later(3)).is_ok());
}

// ---------------------------------------------------------------- dial flow

fn dial_to_pending(
    a: &Agent,
    b: &Agent,
) -> (dial::AwaitingDialAnswer, dial::PendingDial, wire_core::proto::secret::Token) {
    let a_token = token("send");
    let (waiting, out) = dial::dial(
        &a.id,
        &a.card,
        &Default::default(),
        &b.card,
        a_token.clone(),
        Some("hi, it's the build agent".into()),
        T0,
        &mut crate::common::rng(),
    )
    .unwrap();
    assert_eq!(out.lane, Lane::Intro);
    assert!(out.token.is_none(), "the intro lane needs no token");
    let opened = envelope::open(&b.id, &out.envelope.0).unwrap();
    let IncomingRequest::Dial(pending) = receive_request(&b.id, opened, T0).unwrap() else {
        panic!("dial classified as invite")
    };
    assert_eq!(pending.from.did(), a.id.did());
    assert_eq!(pending.note.as_deref(), Some("hi, it's the build agent"));
    (waiting, pending, a_token)
}

#[test]
fn dial_accepted_pairs_both_sides() {
    let (a, b) = (Agent::new("dialer"), Agent::new("stranger"));
    let (waiting, pending, a_token) = dial_to_pending(&a, &b);
    // The pending request survives persistence (it waits for the operator).
    let pending: dial::PendingDial = serde_json::from_slice(&serde_json::to_vec(&pending).unwrap()).unwrap();
    let b_token = token("send");
    let (b_pins, accept) =
        pending.accept(&b.id, &b.card, &Default::default(), b_token.clone(), T0, &mut crate::common::rng()).unwrap();
    assert_eq!(accept.token.as_ref(), Some(&a_token));
    let answer = waiting.receive(&a.id, envelope::open(&a.id, &accept.envelope.0).unwrap(), T0).unwrap();
    let DialAnswer::Accepted(a_pins) = answer else { panic!("expected accepted") };
    assert_eq!(a_pins.card.did(), b.id.did());
    assert_eq!(a_pins.send_token, b_token);
    assert_eq!(b_pins.card.did(), a.id.did());
    assert_eq!(b_pins.send_token, a_token);
}

#[test]
fn dial_rejected_pins_nothing() {
    let (a, b) = (Agent::new("dialer"), Agent::new("stranger"));
    let (waiting, pending, _) = dial_to_pending(&a, &b);
    let reject = pending.reject(&b.id, Some("not now".into()), T0, &mut crate::common::rng()).unwrap();
    let answer = waiting.receive(&a.id, envelope::open(&a.id, &reject.envelope.0).unwrap(), T0).unwrap();
    assert!(matches!(answer, DialAnswer::Rejected { reason: Some(ref r) } if r == "not now"), "{answer:?}");
}

#[test]
fn a_stranger_can_only_send_pair_requests() {
    let (a, b) = (Agent::new("a"), Agent::new("b"));
    let msg = Event::new(&a.id, b.id.did().clone(), Kind::Message, "hello".into(), T0, &mut crate::common::rng())
        .sign(&a.id)
        .unwrap();
    let result = receive_request(&b.id, msg, T0);
    assert!(matches!(result, Err(PairingError::Event(EventError::NotFromStranger(Kind::Message)))), "{result:?}");
}

#[test]
fn pair_request_carrying_someone_elses_card_is_refused() {
    let (a, b, c) = (Agent::new("a"), Agent::new("b"), Agent::new("c"));
    let body = serde_json::json!({"flow": "dial", "card": c.card.signed(), "send_token": token("send")});
    let msg = Event::new(&a.id, b.id.did().clone(), Kind::PairRequest, body, T0, &mut crate::common::rng())
        .sign(&a.id)
        .unwrap();
    let result = receive_request(&b.id, msg, T0);
    assert!(matches!(result, Err(PairingError::CardMismatch)), "{result:?}");
}

// ---------------------------------------------------------------- code flow

struct Pair {
    host: CodePairing,
    guest: CodePairing,
    to_host: Vec<Vec<u8>>,
    to_guest: Vec<Vec<u8>>,
    host_agent: Agent,
    guest_agent: Agent,
}

fn start_pair(host_code: &str, guest_code: &str) -> Pair {
    let (ha, ga) = (Agent::new("host"), Agent::new("guest"));
    let (host, p1) = CodePairing::start(
        Role::Host,
        Code::parse(host_code).unwrap(),
        ha.card.clone(),
        Default::default(),
        token("send"),
        Secret32::random(&mut crate::common::rng()),
        T0,
        Duration::from_secs(600),
    );
    let (guest, p2) = CodePairing::start(
        Role::Guest,
        Code::parse(guest_code).unwrap(),
        ga.card.clone(),
        Default::default(),
        token("send"),
        Secret32::random(&mut crate::common::rng()),
        T0,
        Duration::from_secs(600),
    );
    Pair { host, guest, to_guest: p1.send, to_host: p2.send, host_agent: ha, guest_agent: ga }
}

impl Pair {
    /// Delivers queued messages, alternating sides, until both queues are empty.
    fn pump(&mut self) {
        while !self.to_host.is_empty() || !self.to_guest.is_empty() {
            for m in std::mem::take(&mut self.to_host) {
                let Progress { send } = self.host.receive(&m, later(1));
                self.to_guest.extend(send);
            }
            for m in std::mem::take(&mut self.to_guest) {
                let Progress { send } = self.guest.receive(&m, later(1));
                self.to_host.extend(send);
            }
        }
    }

    fn sas(&self) -> (String, String) {
        match (self.host.status(), self.guest.status()) {
            (Status::SasReady { sas: h }, Status::SasReady { sas: g }) => (h, g),
            other => panic!("SAS not ready on both sides: {other:?}"),
        }
    }
}

#[test]
fn code_flow_pairs_after_both_operators_confirm() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let (host_sas, guest_sas) = p.sas();
    assert_eq!(host_sas, guest_sas);
    assert_eq!(host_sas.len(), 6);
    assert!(host_sas.chars().all(|c| c.is_ascii_digit()));

    // Host operator confirms first: host has voted but is not paired yet.
    let out = p.host.confirm(&guest_sas, later(2)).unwrap();
    p.to_guest.extend(out.send);
    assert_eq!(p.host.status(), Status::Confirmed { sas: host_sas.clone() });
    assert!(p.host.paired().is_none(), "not paired before the peer confirmed");
    p.pump();
    assert!(matches!(p.guest.status(), Status::SasReady { .. }), "guest is still waiting for its operator");
    assert!(p.guest.paired().is_none());
    assert!(p.host.paired().is_none(), "still not paired: the guest has not voted");

    let out = p.guest.confirm(&format!("{} {}", &host_sas[..3], &host_sas[3..]), later(3)).unwrap();
    p.to_host.extend(out.send);
    p.pump();
    let (h, g) = (p.host.paired().unwrap(), p.guest.paired().unwrap());
    assert_eq!(h.card.did(), p.guest_agent.id.did());
    assert_eq!(g.card.did(), p.host_agent.id.did());
    assert_eq!((p.host.status(), p.guest.status()), (Status::Paired, Status::Paired));
}

#[test]
fn code_flow_survives_persistence_at_every_step() {
    let mut p = start_pair("31-quiet-lantern", "31-quiet-lantern");
    let roundtrip =
        |c: &CodePairing| -> CodePairing { serde_json::from_slice(&serde_json::to_vec(c).unwrap()).unwrap() };
    // Restart both sides before the PAKE messages are delivered, and after each step.
    p.host = roundtrip(&p.host);
    p.guest = roundtrip(&p.guest);
    while !p.to_host.is_empty() || !p.to_guest.is_empty() {
        for m in std::mem::take(&mut p.to_host) {
            p.to_guest.extend(p.host.receive(&m, later(1)).send);
            p.host = roundtrip(&p.host);
        }
        for m in std::mem::take(&mut p.to_guest) {
            p.to_host.extend(p.guest.receive(&m, later(1)).send);
            p.guest = roundtrip(&p.guest);
        }
    }
    let (hs, gs) = p.sas();
    p.to_guest.extend(p.host.confirm(&gs, later(2)).unwrap().send);
    p.host = roundtrip(&p.host);
    p.to_host.extend(p.guest.confirm(&hs, later(2)).unwrap().send);
    p.pump();
    assert!(roundtrip(&p.host).paired().is_some());
    assert!(roundtrip(&p.guest).paired().is_some());
}

#[test]
fn wrong_code_is_detected_by_both_sides_independently() {
    let mut p = start_pair("7-brave-otter", "7-brave-walrus");
    // Deliver only the PAKE and confirm messages, dropping any abort notice, so each
    // side must detect the mismatch on its own.
    let pake_for_host = p.to_host.remove(0);
    let pake_for_guest = p.to_guest.remove(0);
    let host_out = p.host.receive(&pake_for_host, later(1)).send;
    let guest_out = p.guest.receive(&pake_for_guest, later(1)).send;
    p.host.receive(&guest_out[0], later(1)); // guest's confirm
    p.guest.receive(&host_out[0], later(1)); // host's confirm
    let wrong = Status::Aborted { reason: AbortReason::WrongCode, by_peer: false };
    assert_eq!(p.host.status(), wrong);
    assert_eq!(p.guest.status(), wrong);
    assert!(p.host.paired().is_none() && p.guest.paired().is_none());
}

#[test]
fn sas_mismatch_aborts_both_sides_and_pins_nothing() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let (hs, _) = p.sas();
    // The guest operator confirms correctly first; then the host operator types other digits.
    p.to_host.extend(p.guest.confirm(&hs, later(2)).unwrap().send);
    p.pump();
    let wrong = if hs == "000000" { "111111" } else { "000000" };
    p.to_guest.extend(p.host.confirm(wrong, later(2)).unwrap().send);
    p.pump();
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::SasMismatch, by_peer: false });
    assert_eq!(p.guest.status(), Status::Aborted { reason: AbortReason::SasMismatch, by_peer: true });
    assert!(p.host.paired().is_none() && p.guest.paired().is_none());
}

#[test]
fn replayed_message_aborts() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    let host_out = p.host.receive(&p.to_host.remove(0), later(1)).send; // [confirm, commit]
    let guest_out = p.guest.receive(&p.to_guest.remove(0), later(1)).send; // [confirm, commit]
    let host_hello: Vec<Vec<u8>> = guest_out.iter().flat_map(|m| p.host.receive(m, later(1)).send).collect();
    for m in &host_out {
        p.guest.receive(m, later(1));
    }
    assert_eq!(host_hello.len(), 1, "the host reveals once it holds the guest's commitment");
    p.guest.receive(&host_hello[0], later(1));
    assert!(matches!(p.guest.status(), Status::SasReady { .. }));
    let abort = p.guest.receive(&host_hello[0], later(1)); // the hello again
    assert_eq!(p.guest.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });
    assert_eq!(abort.send.len(), 1, "the peer is told");
    p.host.receive(&abort.send[0], later(1));
    assert!(matches!(p.host.status(), Status::Aborted { by_peer: true, .. }));
}

#[test]
fn reordered_message_aborts() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    let out = p.host.receive(&p.to_host.remove(0), later(1)).send; // [confirm, commit]
    p.guest.receive(&p.to_guest.remove(0), later(1));
    p.guest.receive(&out[1], later(1)); // the commitment before the confirmation
    assert_eq!(p.guest.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });
}

#[test]
fn reflected_or_tampered_messages_abort() {
    // The relay reflects the host's own PAKE message back to it.
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    let own = p.to_guest[0].clone();
    p.host.receive(&own, later(1));
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });

    // One flipped byte in the sealed commitment.
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    let out = p.host.receive(&p.to_host.remove(0), later(1)).send;
    p.guest.receive(&p.to_guest.remove(0), later(1));
    p.guest.receive(&out[0], later(1));
    let mut hello: serde_json::Value = serde_json::from_slice(&out[1]).unwrap();
    let ct = hello["ct"].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", if ct.starts_with('A') { 'B' } else { 'A' }, &ct[1..]);
    hello["ct"] = flipped.into();
    p.guest.receive(&serde_json::to_vec(&hello).unwrap(), later(1));
    assert_eq!(p.guest.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });

    // Garbage.
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.host.receive(b"\xff\x00not json", later(1));
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::ProtocolViolation, by_peer: false });
}

#[test]
fn timeout_aborts_cleanly_and_tells_the_peer() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let out = p.host.tick(later(601));
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::Timeout, by_peer: false });
    p.guest.receive(&out.send[0], later(2));
    assert_eq!(p.guest.status(), Status::Aborted { reason: AbortReason::Timeout, by_peer: true });
    // A message arriving after the deadline also ends it.
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.host.receive(&p.to_host.remove(0), later(601));
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::Timeout, by_peer: false });
    assert!(p.host.tick(later(700)).send.is_empty(), "a finished pairing sends nothing more");
}

#[test]
fn timeout_after_voting_names_the_peer_to_notify() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let (_, gs) = p.sas();
    p.host.confirm(&gs, later(2)).unwrap(); // vote is lost in transit
    p.host.tick(later(601));
    let (card, _) = p.host.peer_to_notify().expect("the peer may have paired; the caller must tell it");
    assert_eq!(card.did(), p.guest_agent.id.did());
}

#[test]
fn cancel_before_voting_aborts_both_and_after_voting_is_refused() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let out = p.guest.cancel().unwrap();
    p.host.receive(&out.send[0], later(2));
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::Cancelled, by_peer: true });
    assert_eq!(p.guest.cancel().unwrap_err(), CancelError::Finished);

    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let (hs, _) = p.sas();
    p.guest.confirm(&hs, later(2)).unwrap();
    assert_eq!(p.guest.cancel().unwrap_err(), CancelError::AlreadyVoted);
    assert_eq!(p.guest.confirm(&hs, later(2)).unwrap_err(), ConfirmError::AlreadyConfirmed);
}

#[test]
fn confirm_before_sas_is_refused() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    assert_eq!(p.host.confirm("123456", later(1)).unwrap_err(), ConfirmError::NotReady);
    assert_eq!(p.host.status(), Status::Waiting);
}

#[test]
fn a_relay_in_the_middle_that_knows_the_code_cannot_make_the_digits_match() {
    // Mallory runs one PAKE with the host and another with the guest, same code.
    let code = "7-brave-otter";
    let mut left = start_pair(code, code); // host <-> mallory-as-guest
    let mut right = start_pair(code, code); // mallory-as-host <-> guest
    left.pump();
    right.pump();
    let (host_sas, _) = left.sas();
    let (_, guest_sas) = right.sas();
    assert_ne!(host_sas, guest_sas, "the SAS commits to both cards, so the operators see different digits");
}

#[test]
fn a_lost_rendezvous_after_voting_names_the_peer_to_close() {
    let mut p = start_pair("7-brave-otter", "7-brave-otter");
    p.pump();
    let (_, gs) = p.sas();
    p.host.confirm(&gs, later(2)).unwrap();
    p.host.lost_rendezvous();
    assert_eq!(p.host.status(), Status::Aborted { reason: AbortReason::RendezvousLost, by_peer: false });
    assert!(p.host.peer_to_notify().is_some());
    // Before voting there is nobody to notify.
    p.guest.lost_rendezvous();
    assert!(p.guest.peer_to_notify().is_none());
    assert!(p.guest.paired().is_none());
}
