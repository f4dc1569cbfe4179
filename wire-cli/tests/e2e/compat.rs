//! Formats that evolve: a peer on release 0.1 (this binary with `WIRE_COMPAT_RELEASE=0.1`,
//! whose card lists exactly what 0.1's did) and a peer on this release stay paired and talk
//! both ways; an event of a kind from a newer peer is reported as such and blocks nothing;
//! the 0.1 peer's home migrates in place when it upgrades, and its peers learn its new card.
//! A home written by the real 0.1 binary (`tests/data/home-0.1`) migrates too.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wire_core::home::{Home, Peers};
use wire_core::proto::{envelope, labels, signed::Signed};

use crate::common::{RelayProcess, Run, Wire, copy_dir, request, tempdir};

const OLD: &[(&str, &str)] = &[("WIRE_COMPAT_RELEASE", "0.1")];

fn old(w: &Wire, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    w.run_with(&all, OLD).ok().json()
}

fn bodies(run: Run) -> Vec<String> {
    run.ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn peer_caps(home: &Path) -> Vec<String> {
    let peers: Peers = Home::at(home).load().unwrap().unwrap();
    peers.peers[0].card.body().capabilities.clone()
}

/// Signs and seals an event of kind `kind` from `from` to its one peer and posts it with
/// `from`'s send token: what a peer on a newer release would send.
fn post_from_the_future(relay: &RelayProcess, from: &Path, kind: &str) {
    let home = Home::at(from);
    let me = home.identity().unwrap();
    let peers: Peers = home.load().unwrap().unwrap();
    let peer = &peers.peers[0];
    let event = json!({
        "v": 1, "id": "0123456789abcdef0123456789abcdef", "from": me.did().to_string(),
        "to": peer.card.did().to_string(), "kind": kind, "body": {"new": "field"},
        "created_at": wire_core::endpoint::now(), "reply_to": null, "extra": true,
    });
    let signed = Signed::sign(&me, labels::SIGN_EVENT, serde_json::to_vec(&event).unwrap());
    let sealed = envelope::seal_signed(&signed, &peer.card.x25519_public(), &mut rand_core::OsRng).unwrap();
    let slot = &peer.card.body().endpoints[0].slot;
    let (status, body) =
        request(&relay.addr, "POST", &format!("/v1/slots/{slot}/events"), Some(peer.send_token.expose()), &sealed.0);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn a_release_0_1_peer_and_this_release_talk_both_ways_and_newer_kinds_are_reported() {
    let dir = tempdir("compat");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    old(&a, &["up", &relay.addr]);
    b.json(&["up", &relay.addr]);
    let url = old(&a, &["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);
    old(&a, &["pull"]);
    b.json(&["pull"]);
    assert!(!peer_caps(&b.home).contains(&"control".to_owned()), "b holds a's 0.1 card");
    assert!(peer_caps(&a.home).contains(&"control".to_owned()), "a holds b's new card");

    old(&a, &["send", &b.did(), "from 0.1"]);
    b.json(&["send", &a.did(), "from this release"]);
    b.json(&["pull"]);
    old(&a, &["pull"]);
    assert_eq!(bodies(b.run(&["tail", "--json"])), ["from 0.1"]);
    assert_eq!(bodies(a.run_with(&["tail", "--json"], OLD)), ["from this release"]);

    // A kind from a newer release: reported as such, counted, and the next message passes.
    post_from_the_future(&relay, &b.home, "future_kind");
    b.json(&["send", &a.did(), "after the unknown one"]);
    let pulled = old(&a, &["pull"]);
    assert_eq!((pulled["received"].as_u64(), pulled["unsupported"].as_u64()), (Some(1), Some(1)), "{pulled}");
    let status = old(&a, &["status"]);
    assert_eq!(status["rejected"]["reasons"]["unsupported kind `future_kind` from a newer peer"], 1, "{status}");
    assert_eq!(bodies(a.run_with(&["tail", "--json"], OLD)), ["from this release", "after the unknown one"]);

    // a upgrades: its card is re-issued in place and b learns it at the next sync.
    let before: Value = serde_json::from_slice(&std::fs::read(a.home.join("peers.json")).unwrap()).unwrap();
    let whoami = a.json(&["whoami"]);
    assert_eq!(whoami["did"], b.json(&["peers"])[0]["did"], "same identity after the upgrade");
    a.json(&["pull"]);
    b.json(&["pull"]);
    assert!(peer_caps(&b.home).contains(&"control".to_owned()), "b now holds a's upgraded card");
    let after: Value = serde_json::from_slice(&std::fs::read(a.home.join("peers.json")).unwrap()).unwrap();
    assert_eq!(before, after, "the upgrade keeps every pin");
    a.json(&["send", &b.did(), "upgraded"]);
    b.json(&["pull"]);
    assert_eq!(bodies(b.run(&["tail", "--json"])), ["from 0.1", "upgraded"]);
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/home-0.1")
}

#[test]
fn a_home_written_by_release_0_1_migrates_in_place() {
    let dir = tempdir("migrate");
    copy_dir(&fixture().join("a"), &dir.join("a"));
    let a = Wire::new(&dir, "a");
    let peers_before = std::fs::read(a.home.join("peers.json")).unwrap();
    let account: Value = serde_json::from_slice(&std::fs::read(a.home.join("account.json")).unwrap()).unwrap();
    let card_before = account["card"].clone();
    let identity_before: Value = serde_json::from_slice(&std::fs::read(a.home.join("identity.json")).unwrap()).unwrap();
    assert!(identity_before.get("lineage").is_none(), "a 0.1 home has no lineage");
    let inbox_before: Vec<String> = std::fs::read_dir(a.home.join("inbox"))
        .unwrap()
        .flat_map(|e| {
            std::fs::read_to_string(e.unwrap().path()).unwrap().lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str::<Value>(&l).unwrap()["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(inbox_before, ["hello from b on 0.1"], "the fixture holds b's message");

    // Any command opens (and migrates) the home; no relay is needed.
    let status = a.json(&["status"]);
    assert_eq!(status["outbox"]["queued"], 1, "one card update queued for the one peer: {status}");
    let account: Value = serde_json::from_slice(&std::fs::read(a.home.join("account.json")).unwrap()).unwrap();
    assert_ne!(account["card"], card_before, "the card was re-issued");
    let card = wire_core::proto::card::Card::verify(serde_json::from_value(account["card"].clone()).unwrap()).unwrap();
    assert!(card.speaks("control"));
    assert_eq!(std::fs::read(a.home.join("peers.json")).unwrap(), peers_before, "pins untouched");
    // Its identity became its own lineage: the same keys and DID, a committed next key,
    // still a version 1 file (0.1 reads it as before).
    let identity: Value = serde_json::from_slice(&std::fs::read(a.home.join("identity.json")).unwrap()).unwrap();
    assert_eq!((identity["v"].as_u64(), &identity["ed25519_seed"]), (Some(1), &identity_before["ed25519_seed"]));
    assert_eq!(identity["lineage"]["seq"], 0);
    assert_eq!(identity["lineage"]["statements"].as_array().unwrap().len(), 1, "the inception statement");
    assert_eq!(identity["lineage"]["did"].as_str(), Some(a.did().as_str()));
    assert_eq!(bodies(a.run(&["tail", "--json"])), inbox_before, "the inbox reads as before");
    // A second open changes nothing more.
    a.json(&["status"]);
    assert_eq!(a.json(&["status"])["outbox"]["queued"], 1);
    std::fs::remove_dir_all(&dir).ok();
}
