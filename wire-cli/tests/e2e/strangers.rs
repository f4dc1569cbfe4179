//! What strangers can make an agent keep: dial requests are bounded in number and size, and
//! one that cannot be answered is refused when it arrives. In-process against a real relay
//! (crate::clock::World), the strangers real endpoints or hand-built requests.

use rand_core::OsRng;
use wire_core::client::{Client, RelayUrl};
use wire_core::endpoint::Endpoint;
use wire_core::home::Account;
use wire_core::proto::card::Card;
use wire_core::proto::pairing::dial::{self, MAX_PENDING_REQUESTS};
use wire_core::proto::secret::Token;

use crate::clock::World;

fn last_rejection(ep: &Endpoint) -> String {
    ep.home.rejected().unwrap().last().map(|r| r.reason.clone()).unwrap_or_default()
}

fn handle(ep: &Endpoint) -> String {
    ep.home.load::<Account>().unwrap().unwrap().handle.expect("init claims a handle")
}

#[test]
fn strangers_cannot_grow_the_pending_requests_without_bound() {
    let w = World::new("strangers-flood");
    let victim = w.agent("victim");
    let target = handle(&victim);
    let long_note = "x".repeat(10_000);
    for i in 0..=MAX_PENDING_REQUESTS {
        let stranger = w.agent(&format!("s{i}"));
        w.rt.block_on(stranger.dial(&target, Some(long_note.clone()))).unwrap();
        // The relay keeps few unread intro envelopes per slot; the victim reads as it goes.
        if i % 16 == 15 {
            w.rt.block_on(victim.pull()).unwrap();
        }
    }
    let report = w.rt.block_on(victim.pull()).unwrap();
    assert_eq!(report.rejected, 1, "the request past the bound is refused");
    assert!(last_rejection(&victim).contains("requests are waiting already"), "{}", last_rejection(&victim));
    let pending = victim.pending().unwrap();
    assert_eq!(pending.requests.len(), MAX_PENDING_REQUESTS);
    assert!(pending.requests.iter().all(|r| r.note.as_ref().is_some_and(|n| n.chars().count() == 280)));
    let size = std::fs::metadata(victim.home.root().join("pending.json")).unwrap().len();
    assert!(size < 1_536 * 1024, "pending.json is {size} bytes");

    // Deciding one makes room for the next stranger.
    let first = pending.requests[0].from.did.clone();
    w.rt.block_on(victim.decide(&first, false)).unwrap();
    let late = w.agent("late");
    w.rt.block_on(late.dial(&target, None)).unwrap();
    let report = w.rt.block_on(victim.pull()).unwrap();
    assert_eq!((report.rejected, report.requests.len()), (0, 1));
    assert_eq!(victim.pending().unwrap().requests.len(), MAX_PENDING_REQUESTS);
}

/// Posts a dial request from `stranger`, carrying `card` as its card, to `victim`'s intro lane.
fn hand_built_dial(w: &World, stranger: &Endpoint, card: &Card, victim: &Endpoint) {
    let theirs = victim.home.load::<Account>().unwrap().unwrap();
    let (_, out) = dial::dial(
        &stranger.identity,
        card,
        &Default::default(),
        &theirs.card,
        Token::random("snd", &mut OsRng),
        Some("pick me".into()),
        stranger.home.now(),
        &mut OsRng,
    )
    .unwrap();
    let client = Client::new(RelayUrl::parse(&theirs.relay).unwrap());
    let tag: [u8; 16] = rand_core::RngCore::next_u64(&mut OsRng).to_be_bytes().repeat(2).try_into().unwrap();
    w.rt.block_on(client.intro(&theirs.slot, &tag, &out.envelope.0)).unwrap();
}

#[test]
fn a_request_that_cannot_be_answered_or_is_oversized_is_refused_on_arrival() {
    let w = World::new("strangers-odd");
    let victim = w.agent("victim");
    let stranger = w.agent("stranger");
    let now = stranger.home.now();

    // A card naming no address: it could be neither accepted nor told of a rejection.
    let nowhere = Card::issue(&stranger.identity, Vec::new(), Vec::new(), now);
    hand_built_dial(&w, &stranger, &nowhere, &victim);
    let report = w.rt.block_on(victim.pull()).unwrap();
    assert_eq!((report.rejected, report.requests.len()), (1, 0));
    assert!(last_rejection(&victim).contains("names no address"), "{}", last_rejection(&victim));

    // A card stuffed with capabilities past the bound.
    let account = stranger.home.load::<Account>().unwrap().unwrap();
    let stuffed = Card::issue(&stranger.identity, account.card.body().endpoints.clone(), vec!["c".repeat(20_000)], now);
    hand_built_dial(&w, &stranger, &stuffed, &victim);
    let report = w.rt.block_on(victim.pull()).unwrap();
    assert_eq!((report.rejected, report.requests.len()), (1, 0));
    assert!(last_rejection(&victim).contains("at most"), "{}", last_rejection(&victim));
    assert!(victim.pending().unwrap().requests.is_empty(), "nothing kept");

    // The same stranger's ordinary request still gets through.
    w.rt.block_on(stranger.dial(&handle(&victim), None)).unwrap();
    assert_eq!(w.rt.block_on(victim.pull()).unwrap().requests.len(), 1);
}
