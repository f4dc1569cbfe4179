//! The relay as a real process: durability across `kill -9`, clean SIGTERM shutdown, and
//! an audit that after a full pairing and exchange the relay's files and logs hold no
//! plaintext, no token and no DID.

use std::time::Duration;

use crate::common::{RelayProcess, copy_dir, tempdir};
use rand_core::OsRng;
use serde_json::{Value, json};
use wire_core::proto::api::SlotId;
use wire_core::proto::b64;
use wire_core::proto::card::{Card, Endpoint};
use wire_core::proto::envelope;
use wire_core::proto::event::{Acceptance, Event, Kind};
use wire_core::proto::identity::Identity;
use wire_core::proto::invite::Invite;
use wire_core::proto::pairing::{IncomingRequest, invite, receive_request};
use wire_core::proto::secret::Token;
use wire_core::proto::time::UnixMillis;

fn random_envelope() -> Vec<u8> {
    let mut e = vec![0u8; 1 + 32 + 1024 + 16];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut e);
    e[0] = 1;
    e
}

#[test]
fn every_acknowledged_append_survives_kill_9_and_none_is_doubled() {
    let dir = tempdir("crash");
    let relay = RelayProcess::start(&dir.join("data"), &dir.join("relay.log"), &[]);
    let slot = relay.json("POST", "/v1/slots", None, b"");
    let (id, owner) = (slot["slot"].as_str().unwrap().to_owned(), slot["owner_token"].as_str().unwrap().to_owned());

    // Four writers append as fast as they can; each records what the relay acknowledged.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, Vec<u8>)>::new()));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, id, owner, acked) = (relay.addr.clone(), id.clone(), owner.clone(), acked.clone());
            std::thread::spawn(move || {
                loop {
                    let env = random_envelope();
                    let result = std::panic::catch_unwind(|| {
                        crate::common::request(&addr, "POST", &format!("/v1/slots/{id}/events"), Some(&owner), &env)
                    });
                    match result {
                        Ok((201, body)) => {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            acked.lock().unwrap().push((v["seq"].as_u64().unwrap(), env));
                        }
                        _ => return, // the relay is gone
                    }
                }
            })
        })
        .collect();
    crate::common::wait_until(crate::common::WAIT, "300 acknowledged appends", || acked.lock().unwrap().len() >= 300);
    relay.kill9();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let relay = RelayProcess::start(&dir.join("data"), &dir.join("relay.log"), &[]);
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page = relay.json("GET", &format!("/v1/slots/{id}/events?after={after}&limit=1000"), Some(&owner), b"");
        for e in page["events"].as_array().unwrap() {
            after = e["seq"].as_u64().unwrap();
            stored.push((after, b64::decode(e["envelope"].as_str().unwrap()).unwrap()));
        }
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    let seqs: std::collections::BTreeSet<u64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len(), stored.len(), "no sequence number twice");
    let bodies: std::collections::HashSet<&Vec<u8>> = stored.iter().map(|(_, e)| e).collect();
    assert_eq!(bodies.len(), stored.len(), "no envelope twice");
    for (seq, env) in &acked {
        assert!(stored.iter().any(|(s, e)| s == seq && e == env), "acknowledged seq {seq} lost after kill -9");
    }
    assert!(
        stored.len() >= acked.len() && stored.len() <= acked.len() + 4,
        "at most the in-flight appends beyond the acked ones"
    );
    // Appends continue from the right sequence number.
    let next = relay.json("POST", &format!("/v1/slots/{id}/events"), Some(&owner), &random_envelope());
    assert_eq!(next["seq"].as_u64().unwrap(), *seqs.iter().max().unwrap() + 1);
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_stops_cleanly() {
    let dir = tempdir("term");
    let relay = RelayProcess::start(&dir.join("data"), &dir.join("relay.log"), &[]);
    relay.json("POST", "/v1/slots", None, b"");
    let started = std::time::Instant::now();
    let log = relay.log.clone();
    let status = relay.terminate();
    assert!(status.success(), "{status:?}");
    // Not a timing check: a stop that waited out its streams would take minutes.
    assert!(started.elapsed() < Duration::from_secs(60));
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("stopped"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

/// One endpoint of the exchange: identity, card, slot and owner token.
struct Agent {
    id: Identity,
    card: Card,
    slot: String,
    owner: String,
}

fn now() -> UnixMillis {
    UnixMillis(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
}

fn agent(relay: &RelayProcess) -> Agent {
    let id = Identity::generate(&mut OsRng);
    let v = relay.json("POST", "/v1/slots", None, b"");
    let slot = v["slot"].as_str().unwrap().to_owned();
    let endpoint = Endpoint { relay: format!("http://{}", relay.addr), slot: SlotId::new(slot.clone()).unwrap() };
    let card = Card::issue(&id, vec![endpoint], vec!["message".into()], now());
    Agent { id, card, slot, owner: v["owner_token"].as_str().unwrap().to_owned() }
}

fn mint(relay: &RelayProcess, a: &Agent, body: Value) -> Token {
    let v = relay.json("POST", &format!("/v1/slots/{}/grants", a.slot), Some(&a.owner), body.to_string().as_bytes());
    Token::new(v["token"].as_str().unwrap()).unwrap()
}

fn post(relay: &RelayProcess, out: &wire_core::proto::pairing::Outgoing) {
    let token = out.token.as_ref().map(|t| t.expose().to_owned());
    relay.json("POST", &format!("/v1/slots/{}/events", out.endpoints[0].slot), token.as_deref(), &out.envelope.0);
}

/// Pulls, opens and acks everything waiting for `a`.
fn pull(relay: &RelayProcess, a: &Agent) -> Vec<wire_core::proto::event::SignedEvent> {
    let page = relay.json("GET", &format!("/v1/slots/{}/events", a.slot), Some(&a.owner), b"");
    let mut out = Vec::new();
    let mut last = 0;
    for e in page["events"].as_array().unwrap() {
        last = e["seq"].as_u64().unwrap();
        out.push(envelope::open(&a.id, &b64::decode(e["envelope"].as_str().unwrap()).unwrap()).unwrap());
    }
    if last > 0 {
        relay.json(
            "POST",
            &format!("/v1/slots/{}/ack", a.slot),
            Some(&a.owner),
            json!({"through": last}).to_string().as_bytes(),
        );
    }
    out
}

#[test]
fn the_relay_keeps_no_plaintext_no_token_and_no_did() {
    let dir = tempdir("audit");
    let relay = RelayProcess::start(&dir.join("data"), &dir.join("relay.log"), &[]);
    let (a, b) = (agent(&relay), agent(&relay));

    // Invite pairing through the relay.
    let intro = mint(&relay, &a, json!({"kind": "intro", "ttl_secs": 600}));
    let inv = Invite::issue(
        &a.id,
        &a.card,
        format!("http://{}", relay.addr),
        SlotId::new(a.slot.clone()).unwrap(),
        intro.clone(),
        UnixMillis(now().0 + 600_000),
        &mut OsRng,
    );
    let mut issued = invite::IssuedInvite::new(&inv, 1);
    let parsed = Invite::parse_url(&inv.to_url(), now()).unwrap();
    let b_token_for_a = mint(&relay, &b, json!({"kind": "send"}));
    let (waiting, request) =
        invite::join(&b.id, &b.card, &Default::default(), &parsed, b_token_for_a.clone(), now(), &mut OsRng).unwrap();
    post(&relay, &request);
    let IncomingRequest::Invite(claim) = receive_request(&a.id, pull(&relay, &a).remove(0), now()).unwrap() else {
        panic!("not an invite")
    };
    let redeemed = issued.redeem(&a.id, claim, now()).unwrap();
    let a_token_for_b = mint(&relay, &a, json!({"kind": "send"}));
    let (a_pins_b, accept) =
        redeemed.answer(&a.id, &a.card, &Default::default(), a_token_for_b.clone(), now(), &mut OsRng).unwrap();
    post(&relay, &accept);
    let b_pins_a = waiting.receive(&b.id, pull(&relay, &b).remove(0), now()).unwrap();

    // Messages both ways with the pinned tokens.
    let secret_a = "the plaintext body from A: 7f3c kumquat";
    let secret_b = "the plaintext body from B: 9a1d rhubarb";
    for (from, to, pin, body) in [(&a, &b, &a_pins_b, secret_a), (&b, &a, &b_pins_a, secret_b)] {
        let ev = Event::new(&from.id, to.id.did().clone(), Kind::Message, body.into(), now(), &mut OsRng)
            .sign(&from.id)
            .unwrap();
        let env = envelope::seal(&ev, &pin.card.x25519_public(), &mut OsRng).unwrap();
        relay.json("POST", &format!("/v1/slots/{}/events", to.slot), Some(pin.send_token.expose()), &env.0);
        let got =
            pull(&relay, to).remove(0).verify(&from.id.verifying_key(), &Acceptance::new(to.id.did(), now())).unwrap();
        assert_eq!(got.event().body, json!(body));
    }

    let log = relay.log.clone();
    assert!(relay.terminate().success());
    let mut haystack = std::fs::read(&log).unwrap();
    for entry in std::fs::read_dir(dir.join("data")).unwrap() {
        haystack.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(haystack.len() > 4096, "the audit read the database");
    let needles: Vec<(&str, String)> = vec![
        ("body A", secret_a.into()),
        ("body B", secret_b.into()),
        ("A's DID", a.id.did().to_string()),
        ("B's DID", b.id.did().to_string()),
        ("A's owner token", a.owner.clone()),
        ("B's owner token", b.owner.clone()),
        ("intro token", intro.expose().into()),
        ("send token A->B", a_token_for_b.expose().into()),
        ("send token B->A", b_token_for_a.expose().into()),
        ("A's nickname", a.card.character().nickname()),
        ("A's DID key (base64url)", b64::encode(a.id.verifying_key().as_bytes())),
    ];
    for (what, needle) in needles {
        let found = haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "the relay's files or log contain {what}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_relay_restored_from_a_backup_is_noticed_and_its_reused_sequence_numbers_are_read() {
    use crate::common::{Wire, free_port};
    let dir = tempdir("relay-restore");
    let bind = format!("127.0.0.1:{}", free_port());
    let data = dir.join("data");
    let start = || RelayProcess::start_at(&data, &dir.join("relay.log"), &bind, &[]);
    let mut relay = start();
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    a.run(&["up", &bind]).ok();
    b.run(&["up", &bind]).ok();
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.run(&["accept", &url]).ok();
    a.run(&["pull"]).ok();
    b.run(&["pull"]).ok();
    let a_nick = a.nickname();
    b.run(&["send", &a_nick, "m1"]).ok();
    assert_eq!(a.json(&["pull"])["received"], 1);

    // A backup of the store, taken with the relay stopped; then more traffic, all acked.
    assert!(relay.terminate().success());
    copy_dir(&data, &dir.join("backup"));
    relay = start();
    for m in ["m2", "m3"] {
        b.run(&["send", &a_nick, m]).ok();
    }
    let pulled = a.json(&["pull"]);
    assert_eq!((pulled["received"].as_u64(), pulled["reread"].as_bool()), (Some(2), Some(true)), "{pulled}");

    // The backup is restored: its sequence numbers run behind A's cursor, so the next
    // envelopes reuse numbers A has already passed. A notices the other incarnation and
    // reads them instead of skipping them.
    assert!(relay.terminate().success());
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&dir.join("backup"), &data);
    let _relay = start();
    for m in ["m4", "m5", "m6"] {
        b.run(&["send", &a_nick, m]).ok();
    }
    let pulled = a.json(&["pull"]);
    assert_eq!((pulled["received"].as_u64(), pulled["reread"].as_bool()), (Some(3), Some(true)), "{pulled}");
    let bodies: Vec<String> = a
        .run(&["tail", "--json", "--limit", "100"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["m1", "m2", "m3", "m4", "m5", "m6"], "every message once, none skipped");
    assert_eq!(a.json(&["pull"])["reread"], false, "the same incarnation is trusted again");
}
