//! Identity lineages with the real binary and a real relay: a rotation followed by a peer
//! that was offline at the time, a rotation from a stolen current key refused, two
//! successors freezing the pin, and a revocation published from the exported file after
//! the home was deleted (docs/PROTOCOL.md, "Identity lineage").

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::{RelayProcess, Wire, copy_dir, tempdir};

struct World {
    root: PathBuf,
    _relay: RelayProcess,
    a: Wire,
    b: Wire,
    c: Wire,
}

/// a paired with b and with c, each having heard the other's commitment.
fn world(name: &str) -> World {
    let root = tempdir(name);
    let relay = RelayProcess::start(&root.join("relay"), &root.join("relay.log"), &[]);
    let (a, b, c) = (Wire::new(&root, "a"), Wire::new(&root, "b"), Wire::new(&root, "c"));
    for w in [&a, &b, &c] {
        w.json(&["init", "--relay", &relay.addr]);
    }
    for guest in [&b, &c] {
        let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
        guest.json(&["accept", &url]);
    }
    // Pairing, then the statements that follow it (one pull each way after the pins).
    for w in [&a, &b, &c, &a, &b, &c] {
        w.json(&["pull"]);
    }
    for w in [&b, &c] {
        let lineage = &w.json(&["peers"])[0]["lineage"];
        assert_eq!((lineage["committed"].as_bool(), lineage["seq"].as_u64()), (Some(true), Some(0)), "{lineage}");
    }
    World { root, _relay: relay, a, b, c }
}

impl Drop for World {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

fn bodies(w: &Wire) -> Vec<String> {
    let out = w.run(&["tail", "--json", "--limit", "100"]).ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn peer_lineage(w: &Wire) -> Value {
    w.json(&["peers"])[0]["lineage"].clone()
}

#[test]
fn a_rotation_mid_conversation_is_followed_by_a_peer_that_was_offline() {
    let w = world("lineage-rotate");
    let (a_nick, a_did) = (w.a.nickname(), w.a.did());
    let a_face = w.b.json(&["peers"])[0]["fingerprint"].as_str().unwrap().to_owned();
    w.b.json(&["send", &a_nick, "before the rotation"]);

    let rotated = w.a.json(&["rotate"]);
    assert_eq!(rotated["seq"], 1, "{rotated}");
    assert_eq!(rotated["told"].as_array().unwrap().len(), 2, "{rotated}");
    assert_eq!(w.a.did(), a_did, "the DID stays the inception DID");
    let me = w.a.json(&["whoami"]);
    assert_eq!(
        (me["lineage"]["seq"].as_u64(), &me["lineage"]["key_fingerprint"]),
        (Some(1), &rotated["key_fingerprint"])
    );

    // c is offline: it has not pulled, and sends under what it knows (sealed to a's old key).
    w.c.json(&["send", &a_nick, "from c, not knowing"]);
    // b follows at once.
    let pulled = w.b.json(&["pull"]);
    assert_eq!(pulled["rotated"][0]["did"], a_did.as_str(), "{pulled}");
    let lineage = peer_lineage(&w.b);
    assert_eq!(lineage["seq"], 1);
    assert_eq!(lineage["key_fingerprint"], rotated["key_fingerprint"]);
    assert_ne!(lineage["key_fingerprint"].as_str(), Some(a_face.as_str()), "a new key");
    assert_eq!(w.b.json(&["peers"])[0]["fingerprint"].as_str(), Some(a_face.as_str()), "the face stays");

    // The conversation goes on, both ways, under the new key.
    w.a.json(&["send", &w.b.nickname(), "after the rotation"]);
    w.a.json(&["send", &w.c.nickname(), "to c after the rotation"]);
    assert_eq!(bodies(&w.b), ["after the rotation"]);
    w.b.json(&["send", &a_nick, "reply under the new keys"]);
    let at_a = bodies(&w.a);
    for body in ["before the rotation", "from c, not knowing", "reply under the new keys"] {
        assert!(at_a.contains(&body.to_owned()), "{body}: {at_a:?}");
    }

    // c comes back: it catches up, moves its pin, and a's events land in the same inbox file.
    let inbox = w.c.home.join("inbox").join(format!("{}.jsonl", a_did.trim_start_matches("did:key:")));
    assert!(!inbox.exists() || std::fs::read_to_string(&inbox).unwrap().is_empty());
    let pulled = w.c.json(&["pull"]);
    assert_eq!(pulled["rotated"][0]["did"], a_did.as_str(), "{pulled}");
    assert_eq!(peer_lineage(&w.c)["seq"], 1);
    assert_eq!(bodies(&w.c), ["to c after the rotation"]);
    assert!(
        std::fs::read_to_string(&inbox).unwrap().contains("to c after the rotation"),
        "inbox file by inception DID"
    );
    let human = w.c.run(&["peers"]).ok().stdout;
    assert!(human.contains("rotated 1x, now key"), "{human}");
    assert_eq!(w.a.json(&["status"])["rejected"]["total"], 0);

    // Strangers meet the rotated identity as it is now: by invite (signed by the new key),
    // and by dialing its handle (the directory hands out the new card).
    let relay = w.a.json(&["whoami"])["relay"].as_str().unwrap().to_owned();
    let d = Wire::new(&w.root, "d");
    d.json(&["init", "--relay", &relay]);
    let url = w.a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    d.json(&["accept", &url]);
    w.a.json(&["pull"]);
    d.json(&["pull"]);
    let seen = &d.json(&["peers"])[0];
    assert_eq!((seen["did"].as_str(), seen["lineage"]["seq"].as_u64()), (Some(a_did.as_str()), Some(1)), "{seen}");
    let e = Wire::new(&w.root, "e");
    e.json(&["init", "--relay", &relay]);
    let handle = w.a.json(&["whoami"])["handle"].as_str().unwrap().to_owned();
    let who = e.json(&["whois", &handle]);
    assert_eq!(who["lineage"]["seq"], 1, "the directory has the rotated card: {who}");
    e.json(&["dial", &handle]);
    w.a.json(&["pull"]);
    w.a.json(&["accept", &e.nickname()]);
    e.json(&["pull"]);
    assert_eq!(e.json(&["peers"])[0]["lineage"]["seq"], 1);
    w.a.json(&["send", &e.nickname(), "hello, dialer"]);
    assert_eq!(bodies(&e), ["hello, dialer"]);
}

#[test]
fn a_rotation_signed_by_a_stolen_current_key_alone_is_refused() {
    let w = world("lineage-thief");
    // The thief copied a's home but not the next key: its file names one of its own.
    let thief = Wire::new(&w.root, "thief");
    copy_dir(&w.a.home, &thief.home);
    let path = thief.home.join("identity.json");
    let mut file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let other: Value = serde_json::from_slice(&std::fs::read(w.b.home.join("identity.json")).unwrap()).unwrap();
    file["lineage"]["next_ed25519_seed"] = other["ed25519_seed"].clone();
    file["lineage"]["next_x25519_secret"] = other["x25519_secret"].clone();
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

    // Its own wire refuses the card it made (it cannot verify), but the update went out.
    let forged = thief.run(&["rotate", "--json"]);
    assert_eq!(forged.json()["seq"], 1, "{forged:?}");
    let pulled = w.b.json(&["pull"]);
    assert!(pulled["rotated"].as_array().unwrap().is_empty(), "{pulled}");
    assert!(pulled["rejected"].as_u64().unwrap() >= 1, "{pulled}");
    let reasons = w.b.json(&["status"])["rejected"]["reasons"].clone();
    assert!(reasons.to_string().contains("never committed"), "{reasons}");
    assert_eq!(peer_lineage(&w.b)["seq"], 0, "the pin did not move");
    // The real a is still a.
    w.a.json(&["send", &w.b.nickname(), "still me"]);
    assert!(bodies(&w.b).contains(&"still me".to_owned()));
}

#[test]
fn two_different_successions_freeze_the_pin() {
    let w = world("lineage-freeze");
    // Whoever stole the whole home rotates too.
    let twin = Wire::new(&w.root, "twin");
    copy_dir(&w.a.home, &twin.home);
    w.a.json(&["rotate"]);
    twin.json(&["rotate"]);
    let pulled = w.b.json(&["pull"]);
    assert_eq!(pulled["frozen"][0]["did"], w.a.did().as_str(), "{pulled}");
    assert_eq!(peer_lineage(&w.b)["standing"], "frozen");
    assert!(w.b.run(&["peers"]).ok().stdout.contains("FROZEN"));
    // Nothing goes to it, nothing from it is taken.
    let refused = w.b.run(&["send", &w.a.nickname(), "hello?", "--json"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.json()["error"]["code"], "peer_lineage_closed");
    w.a.json(&["send", &w.b.nickname(), "trust me"]);
    assert!(!bodies(&w.b).contains(&"trust me".to_owned()));
}

#[test]
fn a_revocation_published_after_the_home_is_gone_makes_peers_refuse_the_identity() {
    let w = world("lineage-revoke");
    let file = w.root.join("offline/revocation.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let exported = w.a.json(&["revoke", "--export", file.to_str().unwrap()]);
    assert_eq!(exported["peers"], 2, "{exported}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // It still counts after a rotation (signed by a key the lineage held).
    w.a.json(&["rotate"]);
    w.b.json(&["pull"]);
    let a_nick = w.a.nickname();
    std::fs::remove_dir_all(&w.a.home).unwrap();

    // From a machine with no wire home at all.
    let nowhere = Wire::new(&w.root, "nowhere");
    let published = nowhere.json(&["revoke", "--publish", file.to_str().unwrap()]);
    let verdicts: Vec<&str> =
        published["peers"].as_array().unwrap().iter().map(|p| p["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["sent", "sent"], "{published}");
    assert!(!nowhere.home.exists(), "publishing needs no home");

    for peer in [&w.b, &w.c] {
        let pulled = peer.json(&["pull"]);
        assert_eq!(pulled["revoked"].as_array().unwrap().len(), 1, "{pulled}");
        assert_eq!(peer_lineage(peer)["standing"], "revoked");
        let refused = peer.run(&["send", &a_nick, "are you there?", "--json"]);
        assert_eq!(refused.json()["error"]["code"], "peer_lineage_closed");
    }
    // A damaged file is refused with its own code.
    std::fs::write(&file, "{}").unwrap();
    let bad = nowhere.run(&["revoke", "--publish", file.to_str().unwrap(), "--json"]);
    assert_eq!(bad.json()["error"]["code"], "bad_revocation_file");
}
