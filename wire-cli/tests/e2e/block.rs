//! The block list: a blocked peer's message, a blocked stranger's dial and re-dial are
//! dropped at receive and counted, never shown; the peer's send grant is revoked at the relay.

use serde_json::{Value, json};

use crate::common::{RelayProcess, WAIT, Wire, eventually, pair_by_invite, tempdir};

fn dropped(w: &Wire, did: &str) -> u64 {
    let list = w.json(&["blocked"]);
    list.as_array().unwrap().iter().find(|b| b["face"]["did"] == did).map_or(0, |b| b["dropped"].as_u64().unwrap())
}

#[test]
fn a_blocked_identity_is_dropped_counted_and_never_shown() {
    let dir = tempdir("block");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let bind = relay.addr.clone();
    let (a, b, c) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"), Wire::new(&dir, "c"));
    for w in [&a, &b, &c] {
        w.json(&["up", &bind]);
    }
    pair_by_invite(&a, &b);
    let (a_did, b_did, c_did) = (a.did(), b.did(), c.did());

    // B's message is on A's relay; A blocks B before reading it.
    assert_eq!(b.json(&["send", &a_did, "before the block"])["verdict"], "sent");
    let r = a.json(&["block", &b.nickname()]);
    assert_eq!((r["unpinned"].clone(), r["already"].clone()), (json!(true), json!(false)), "{r}");
    let pulled = a.json(&["pull"]);
    let count = pulled["blocked"].as_u64().unwrap();
    assert!(count >= 1, "the message (and B's control events) dropped: {pulled}");
    assert_eq!(pulled["received"], 0, "{pulled}");
    assert_eq!(dropped(&a, &b_did), count, "counted per identity");
    assert!(!a.run(&["tail", "--json"]).stdout.contains("before the block"), "never in the inbox");
    assert_eq!(a.json(&["peers"]), json!([]));
    // Its grant is revoked at the relay: B cannot put anything in A's mailbox any more.
    let sent = b.run(&["send", &a_did, "after the block", "--json"]);
    let v: Value = serde_json::from_str(sent.stdout.lines().next().unwrap()).unwrap();
    assert!(sent.code != 0 || v["verdict"] != "sent", "the relay refused B: {sent:?}");

    // C dials; A blocks C while its request waits; C dials again: never in `wire pending`.
    let handle = format!("{}@{bind}", a.nickname());
    c.json(&["dial", &handle]);
    eventually(WAIT, "C's request to wait for A", || {
        (a.json(&["pending"])["requests"].as_array().unwrap().len() == 1).then_some(())
    });
    let r = a.json(&["block", &c_did]);
    assert_eq!(r["dropped_request"], true, "{r}");
    assert_eq!(a.json(&["pending"])["requests"], json!([]));
    c.run(&["dial", &handle]);
    eventually(WAIT, "C's re-dial to be dropped", || {
        a.run(&["pull"]);
        (dropped(&a, &c_did) >= 1).then_some(())
    });
    assert_eq!(a.json(&["pending"])["requests"], json!([]), "the re-dial never reaches pending");

    // The block follows C's identity across a key rotation: its dial after rotating is dropped too.
    let before = dropped(&a, &c_did);
    c.json(&["rotate"]);
    c.run(&["dial", &handle]);
    eventually(WAIT, "C's dial after its rotation to be dropped", || {
        a.run(&["pull"]);
        (dropped(&a, &c_did) > before).then_some(())
    });
    assert_eq!(a.json(&["pending"])["requests"], json!([]));

    // A stranger blocked before it ever wrote: its first dial is dropped.
    let d = Wire::new(&dir, "d");
    d.json(&["up", &bind]);
    a.json(&["block", &d.did()]);
    d.json(&["dial", &handle]);
    eventually(WAIT, "D's first dial to be dropped", || {
        a.run(&["pull"]);
        (dropped(&a, &d.did()) >= 1).then_some(())
    });
    assert_eq!(a.json(&["pending"])["requests"], json!([]));

    // The list, and unblocking.
    let list = a.json(&["blocked"]);
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    assert_eq!(a.json(&["unblock", &c_did])["unblocked"]["did"], json!(c_did));
    assert_eq!(a.run(&["unblock", &c_did, "--json"]).code, 1, "not blocked any more");
    let me = a.run(&["block", &a_did, "--json"]);
    assert!(me.stdout.contains("block_self"), "{me:?}");
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
