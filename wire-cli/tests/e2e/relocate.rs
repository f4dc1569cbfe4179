//! `wire move <relay>`: a mailbox moves to another relay without re-pairing. One peer is
//! offline during the move and posts to the old mailbox before it hears of it; the old
//! mailbox is read until both peers confirmed, then released, and the old relay is killed:
//! nothing is lost, rooms and jobs keep working.

use serde_json::Value;

use crate::common::{RelayProcess, WAIT, Wire, eventually, pair_by_invite, tempdir};

fn tail(w: &Wire) -> String {
    w.run(&["tail", "--json", "--limit", "100"]).ok().stdout
}

fn room_bodies(w: &Wire) -> String {
    w.run(&["room", "tail", "lab", "--json", "--limit", "50"]).ok().stdout
}

#[test]
fn a_move_with_a_peer_offline_then_the_old_relay_killed_loses_nothing() {
    let dir = tempdir("move");
    let old = RelayProcess::start(&dir.join("r1"), &dir.join("r1.log"), &[]);
    let new = RelayProcess::start(&dir.join("r2"), &dir.join("r2.log"), &[]);
    let theirs = RelayProcess::start(&dir.join("r3"), &dir.join("r3.log"), &[]);
    let (a, b, c) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"), Wire::new(&dir, "c"));
    a.json(&["up", &old.addr]);
    b.json(&["up", &theirs.addr]);
    c.json(&["up", &theirs.addr]);
    pair_by_invite(&a, &b);
    pair_by_invite(&a, &c);
    let (a_nick, b_nick, c_nick) = (a.nickname(), b.nickname(), c.nickname());
    // A room on B's relay with A in it, from before the move.
    b.json(&["room", "create", "lab"]);
    b.json(&["room", "add", "lab", &a_nick]);
    a.json(&["pull"]);
    b.json(&["pull"]);
    assert_eq!(a.json(&["pull"])["rooms"]["joined"], serde_json::json!(["lab"]));

    // A moves while C is away.
    let moved = a.json(&["move", &new.addr]);
    assert_eq!(moved["from"].as_str().unwrap().trim_end_matches('/'), format!("http://{}", old.addr));
    let states: Vec<&str> = moved["peers"].as_array().unwrap().iter().map(|p| p["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["delivered", "delivered"], "{moved}");
    let card = a.json(&["whoami"]);
    assert!(card.to_string().contains(&new.addr), "the card names the new relay: {card}");

    // B hears of it at once and posts to the new mailbox.
    b.json(&["pull"]);
    b.json(&["send", &a_nick, "from b after the move"]);
    // C, still holding A's old card, posts to the old mailbox; then it comes back online.
    c.json(&["send", &a_nick, "from c before it heard"]);
    c.json(&["pull"]);
    c.json(&["send", &a_nick, "from c after it heard"]);

    // A reads both mailboxes; both peers confirmed the move, so the old one is released.
    eventually(WAIT, "A to read everything and release the old mailbox", || {
        a.json(&["pull"]);
        let account: Value = serde_json::from_slice(&std::fs::read(a.home.join("account.json")).ok()?).ok()?;
        let all = tail(&a);
        let read = ["from b after the move", "from c before it heard", "from c after it heard"]
            .iter()
            .all(|m| all.contains(m));
        (read && account.get("moved_from").is_none()).then_some(())
    });

    // The old relay goes away: nothing depends on it any more.
    old.kill9();
    b.json(&["send", &a_nick, "from b with the old relay gone"]);
    a.json(&["send", &b_nick, "from a with the old relay gone"]);
    a.json(&["send", &c_nick, "to c with the old relay gone"]);
    let pulled = a.json(&["pull"]);
    assert!(pulled.get("mailbox_errors").is_none(), "{pulled}");
    assert!(tail(&a).contains("from b with the old relay gone"));
    b.json(&["pull"]);
    c.json(&["pull"]);
    assert!(tail(&b).contains("from a with the old relay gone"));
    assert!(tail(&c).contains("to c with the old relay gone"));
    let all = tail(&a);
    for m in ["from b after the move", "from c before it heard", "from c after it heard"] {
        assert_eq!(all.matches(m).count(), 1, "{m} once: {all}");
    }

    // The room (on B's relay) keeps working both ways.
    b.json(&["room", "send", "lab", "room post after the move"]);
    a.json(&["pull"]);
    assert!(room_bodies(&a).contains("room post after the move"));
    a.json(&["room", "send", "lab", "a answers in the room"]);
    b.json(&["pull"]);
    assert!(room_bodies(&b).contains("a answers in the room"));

    // A job from B to A runs to its end across the move.
    let offered = b.json(&["job", "offer", &a_nick, "--task", "sha256", "--input", "hello"]);
    let id = offered["id"].as_str().unwrap().to_owned();
    a.json(&["pull"]);
    a.json(&["job", "accept", &id]);
    a.json(&["job", "deliver", &id, "2cf24dba"]);
    b.json(&["pull"]);
    assert_eq!(b.json(&["job", "show", &id])["phase"], "delivered");
}

#[test]
fn a_move_to_the_same_relay_is_refused_and_changes_nothing() {
    let dir = tempdir("move-same");
    let relay = RelayProcess::start(&dir.join("r"), &dir.join("r.log"), &[]);
    let a = Wire::new(&dir, "a");
    a.json(&["up", &relay.addr]);
    let before = a.state();
    let refused = a.run(&["move", &relay.addr, "--json"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("same_relay"), "{refused:?}");
    assert_eq!(a.state(), before);
}

#[test]
fn a_card_with_two_relays_one_killed_mid_conversation_loses_and_repeats_nothing() {
    let dir = tempdir("mailboxes");
    let first = RelayProcess::start(&dir.join("r1"), &dir.join("r1.log"), &[]);
    let spare = RelayProcess::start(&dir.join("r2"), &dir.join("r2.log"), &[]);
    let theirs = RelayProcess::start(&dir.join("r3"), &dir.join("r3.log"), &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    a.json(&["up", &first.addr, "--mailbox", &spare.addr]);
    b.json(&["up", &theirs.addr]);
    // Two mailboxes, the first relay's first.
    let status = a.json(&["status"]);
    assert!(status["relay"]["url"].as_str().unwrap().contains(&first.addr), "{status}");
    assert_eq!(status["mailboxes"][0]["role"], "spare", "{status}");
    assert!(status["mailboxes"][0]["url"].as_str().unwrap().contains(&spare.addr), "{status}");
    pair_by_invite(&a, &b);
    let a_nick = a.nickname();
    let peers = std::fs::read_to_string(b.home.join("peers.json")).unwrap();
    assert!(peers.contains("\"tokens\""), "the pairing carried a token for the spare: {peers}");

    let said: Vec<String> = (1..=6).map(|i| format!("message {i} of six")).collect();
    for m in &said[..3] {
        assert_eq!(
            b.json(&["send", &a_nick, m])["via"].as_str().unwrap().trim_end_matches('/'),
            format!("http://{}", first.addr)
        );
    }
    a.json(&["pull"]);
    // The first relay dies mid-conversation: B falls over to the spare.
    let first_addr = first.addr.clone();
    first.kill9();
    for m in &said[3..] {
        let sent = b.json(&["send", &a_nick, m]);
        assert_eq!(sent["via"].as_str().unwrap().trim_end_matches('/'), format!("http://{}", spare.addr), "{sent}");
    }
    let pulled = a.json(&["pull"]);
    assert_eq!(pulled["received"], 3, "{pulled}");
    assert!(pulled["mailbox_errors"].to_string().contains(&first_addr), "{pulled}");
    let status = a.json(&["status"]);
    assert_eq!(status["relay"]["reachable"]["ok"], false, "the first relay is down: {status}");
    assert_eq!(status["mailboxes"][0]["reachable"]["ok"], true, "the spare answers: {status}");
    let all = tail(&a);
    for m in &said {
        assert_eq!(all.matches(m.as_str()).count(), 1, "{m} once: {all}");
    }
    // And back the other way, unaffected.
    a.json(&["send", &b.nickname(), "a still talks"]);
    b.json(&["pull"]);
    assert!(tail(&b).contains("a still talks"));
}
