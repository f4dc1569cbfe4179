//! Room slots over real sockets: member and admin grants and what each may do, eviction
//! by size and time with a "missed N" for readers behind it, stream caps per token, and a
//! removed member's stream ending at once. Each test runs against every store
//! (`common::every_store!`).

use std::time::Duration;

use crate::common::{Backend, TestRelay, WAIT, config, envelope, eventually, sse, sse_ids, tempdir, wait_until};
use serde_json::json;
use wire_core::clock::ManualClock;
use wire_relay::Config;

crate::common::every_store!(
    member_and_admin_grants_do_exactly_what_they_say,
    a_room_evicts_its_oldest_and_tells_readers_what_they_missed,
    a_room_caps_streams_per_token_not_per_slot,
    a_removed_members_stream_ends_at_once,
);

fn relay_with(sqlite: impl Into<Backend>, tweak: impl FnOnce(&mut Config)) -> TestRelay {
    let dir = tempdir("rooms");
    let mut cfg = config(sqlite, &dir);
    tweak(&mut cfg);
    TestRelay::with_config(cfg, dir)
}

/// A room slot: (id, owner token).
fn room(r: &TestRelay) -> (String, String) {
    let resp = r.json("POST", "/v1/slots", None, &json!({"room": true}));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let v = resp.json();
    (v["slot"].as_str().unwrap().to_owned(), v["owner_token"].as_str().unwrap().to_owned())
}

fn mint(r: &TestRelay, slot: &str, token: &str, kind: &str) -> wire_testkit::http::Resp {
    r.json("POST", &format!("/v1/slots/{slot}/grants"), Some(token), &json!({"kind": kind}))
}

fn member_and_admin_grants_do_exactly_what_they_say(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = room(&r);
    let (member_id, member) = r.grant(&slot, &owner, json!({"kind": "member"}));
    let (admin_id, admin) = r.grant(&slot, &owner, json!({"kind": "admin"}));
    assert!(member.starts_with("member.") && admin.starts_with("admin."), "{member} {admin}");
    // Members and admins append, list and stream the room.
    assert_eq!(r.append(&slot, &member, &envelope(256)).status, 201);
    assert_eq!(r.append(&slot, &admin, &envelope(256)).status, 201);
    assert_eq!(r.seqs(&slot, &member, 0), vec![1, 2]);
    assert_eq!(r.seqs(&slot, &admin, 1), vec![2]);
    let text = sse(r.addr, &format!("/v1/slots/{slot}/stream"), &member, Some(0), "id: 2\n");
    assert_eq!(sse_ids(&text), vec![1, 2]);
    // A member mints and revokes nothing; an admin mints and revokes members only.
    let code = |resp: wire_testkit::http::Resp| (resp.status, resp.code());
    assert_eq!(code(mint(&r, &slot, &member, "member")), (403, "forbidden".into()));
    let (other_id, other) = {
        let resp = mint(&r, &slot, &admin, "member");
        assert_eq!(resp.status, 201, "{}", resp.text());
        let v = resp.json();
        (v["grant_id"].as_str().unwrap().to_owned(), v["token"].as_str().unwrap().to_owned())
    };
    assert_eq!(code(mint(&r, &slot, &admin, "admin")), (403, "forbidden".into()));
    let revoke = |token: &str, id: &str| r.req("DELETE", &format!("/v1/slots/{slot}/grants/{id}"), Some(token), b"");
    assert_eq!(code(revoke(&member, &other_id)), (403, "forbidden".into()));
    assert_eq!(code(revoke(&admin, &admin_id)), (403, "forbidden".into()), "an admin cannot revoke an admin");
    assert_eq!(revoke(&admin, &other_id).status, 200);
    assert_eq!(code(r.append(&slot, &other, &envelope(256))), (403, "forbidden".into()));
    assert!(r.list(&slot, &other, 0).text().contains("removed from the room"));
    // Nobody acks a room (it would delete for everyone); it has no intro lane.
    let ack = |token: &str| r.json("POST", &format!("/v1/slots/{slot}/ack"), Some(token), &json!({"through": 1}));
    assert_eq!(code(ack(&owner)), (403, "forbidden".into()));
    assert_eq!(code(ack(&member)), (403, "forbidden".into()));
    let tag = wire_core::proto::b64::encode([1u8; 16]);
    let intro =
        r.req_with("POST", &format!("/v1/slots/{slot}/intro"), None, &[("wire-intro-tag", &tag)], &envelope(256));
    assert_eq!(intro.code(), "bad_request");
    // Grant kinds belong to slot kinds: no send grant on a room, no member on a mailbox.
    assert_eq!(code(mint(&r, &slot, &owner, "send")), (400, "bad_request".into()));
    let (mailbox, mailbox_owner) = r.slot();
    assert_eq!(code(mint(&r, &mailbox, &mailbox_owner, "member")), (400, "bad_request".into()));
    // A member token is for its room only; the owner revokes anyone.
    assert_eq!(code(r.list(&mailbox, &member, 0)), (403, "forbidden".into()));
    assert_eq!(revoke(&owner, &member_id).status, 200);
    assert_eq!(code(r.list(&slot, &member, 0)), (403, "forbidden".into()));
    assert_eq!(r.seqs(&slot, &owner, 0), vec![1, 2], "nothing refused above was stored");
}

fn a_room_evicts_its_oldest_and_tells_readers_what_they_missed(sqlite: Backend) {
    let clock = ManualClock::starting_now();
    let r = relay_with(sqlite, |c| {
        c.room_max_events = 3;
        c.slot_max_events = 3;
        c.retention = Duration::from_secs(3_600);
        c.clock = clock.shared();
        c.maintenance_interval = Duration::from_millis(10);
    });
    let (slot, owner) = room(&r);
    let (_, member) = r.grant(&slot, &owner, json!({"kind": "member"}));
    // Five appends into a room of three: never refused.
    for _ in 0..5 {
        assert_eq!(r.append(&slot, &member, &envelope(256)).status, 201);
    }
    assert_eq!(r.metric("wire_relay_room_evicted_total"), 2);
    let behind = r.list(&slot, &member, 0).json();
    assert_eq!(behind["missed"], 2, "{behind}");
    let seqs: Vec<u64> = behind["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert!(r.list(&slot, &member, 2).json().get("missed").is_none(), "a reader at the floor missed nothing");
    // The stream says the same before the envelopes.
    let text = sse(r.addr, &format!("/v1/slots/{slot}/stream"), &member, Some(1), "id: 5\n");
    let missed = text.find("event: missed").expect("a missed frame");
    assert!(text[missed..].contains(r#""missed":1"#) && text[missed..].contains(r#""floor":2"#), "{text}");
    assert!(missed < text.find("id: 3").expect("envelope 3"), "{text}");
    assert_eq!(sse_ids(&text), vec![3, 4, 5]);
    // By time: past retention everything goes, and a reader is told, not refused.
    clock.advance(Duration::from_secs(3_601));
    let after = eventually(WAIT, "the room to expire", || {
        let all = r.list(&slot, &member, 0).json();
        (all["missed"] == 5).then_some(all)
    });
    assert!(after["events"].as_array().unwrap().is_empty(), "{after}");
    assert_eq!(r.append(&slot, &member, &envelope(256)).json()["seq"], 6, "sequence numbers never repeat");
    // A mailbox with the same quota still refuses: eviction is for rooms only.
    let (mailbox, mailbox_owner) = r.slot();
    for _ in 0..3 {
        r.append(&mailbox, &mailbox_owner, &envelope(256));
    }
    assert_eq!(r.append(&mailbox, &mailbox_owner, &envelope(256)).code(), "quota_exceeded");
}

fn a_room_caps_streams_per_token_not_per_slot(sqlite: Backend) {
    let r = relay_with(sqlite, |c| {
        c.max_streams_per_grant = 1;
        c.max_streams_per_slot = 1;
    });
    let (slot, owner) = room(&r);
    let (_, alice) = r.grant(&slot, &owner, json!({"kind": "member"}));
    let (_, bob) = r.grant(&slot, &owner, json!({"kind": "member"}));
    let path = format!("/v1/slots/{slot}/stream");
    let addr = r.addr;
    let (p, a) = (path.clone(), alice.clone());
    let first = std::thread::spawn(move || sse(addr, &p, &a, None, "id: 1\n"));
    wait_until(WAIT, "alice's stream to open", || r.metric("wire_relay_streams_open") == 1);
    let second = r.req("GET", &path, Some(&alice), b"");
    assert_eq!((second.status, second.code().as_str()), (429, "rate_limited"));
    // Bob's share is his own, though the slot cap of mailboxes is one.
    let (p, b) = (path.clone(), bob.clone());
    let bobs = std::thread::spawn(move || sse(addr, &p, &b, None, "id: 1\n"));
    wait_until(WAIT, "bob's stream to open", || r.metric("wire_relay_streams_open") == 2);
    assert_eq!(r.append(&slot, &owner, &envelope(256)).status, 201);
    assert_eq!(sse_ids(&first.join().unwrap()), vec![1]);
    assert_eq!(sse_ids(&bobs.join().unwrap()), vec![1]);
}

fn a_removed_members_stream_ends_at_once(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = room(&r);
    let (grant_id, member) = r.grant(&slot, &owner, json!({"kind": "member"}));
    let (addr, p, m) = (r.addr, format!("/v1/slots/{slot}/stream"), member.clone());
    let stream = std::thread::spawn(move || sse(addr, &p, &m, None, "never"));
    wait_until(WAIT, "the member's stream to open", || r.metric("wire_relay_streams_open") == 1);
    assert_eq!(r.req("DELETE", &format!("/v1/slots/{slot}/grants/{grant_id}"), Some(&owner), b"").status, 200);
    wait_until(WAIT, "the removed member's stream to end", || r.metric("wire_relay_streams_open") == 0);
    r.append(&slot, &owner, &envelope(256));
    assert!(sse_ids(&stream.join().unwrap()).is_empty(), "nothing after the removal reached it");
}
