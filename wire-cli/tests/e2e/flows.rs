//! The everyday flows, end to end: the real `wire` binary, a real relay process on a free
//! loopback port, each identity in its own temporary WIRE_HOME.

use crate::common::{RelayProcess, Wire, free_port, tempdir};
use serde_json::Value;

struct World {
    dir: std::path::PathBuf,
    relay: RelayProcess,
}

fn world(name: &str, extra: &[&str]) -> World {
    let dir = tempdir(name);
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), extra);
    World { dir, relay }
}

impl World {
    fn agent(&self, name: &str) -> Wire {
        let w = Wire::new(&self.dir, name);
        let init = w.json(&["up", &self.relay.addr]);
        assert_eq!(init["created"], true);
        w
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A pairs with B by invite; returns nothing, asserts both sides VERIFIED.
fn pair_by_invite(a: &Wire, b: &Wire) {
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    assert_eq!(b.json(&["accept", &url])["state"], "requested");
    assert_eq!(a.json(&["pull"])["paired"][0]["did"], b.did());
    assert_eq!(b.json(&["pull"])["paired"][0]["did"], a.did());
}

fn peer_tiers(w: &Wire) -> Vec<(String, String)> {
    w.json(&["peers"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["did"].as_str().unwrap().to_owned(), p["tier"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn invite_accept_then_messages_both_ways() {
    let w = world("invite", &[]);
    let (a, b) = (w.agent("a"), w.agent("b"));
    let again = a.json(&["init", "--relay", &w.relay.addr]);
    assert_eq!(again["created"], false, "init is idempotent");
    pair_by_invite(&a, &b);
    assert_eq!(peer_tiers(&a), vec![(b.did(), "VERIFIED".into())]);
    assert_eq!(peer_tiers(&b), vec![(a.did(), "VERIFIED".into())]);

    let sent = a.json(&["send", &b.nickname(), "hello from a"]);
    assert_eq!(sent["verdict"], "sent");
    let pulled = b.json(&["pull"]);
    assert_eq!(pulled["received"], 1);
    let tail = b.run(&["tail", "--json"]).ok();
    let lines: Vec<Value> = tail.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["body"], "hello from a");
    assert_eq!(lines[0]["from"], a.did());
    assert_eq!(lines[0]["id"], sent["event_id"]);
    assert!(lines[0]["signed"]["payload"].is_string(), "the line keeps the signed bytes");

    b.json(&["send", &a.did(), "--kind", "question", "and hello from b?"]);
    a.json(&["pull"]);
    let tail = a.run(&["tail", &b.nickname(), "--json"]).ok();
    let line: Value = serde_json::from_str(tail.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((line["kind"].as_str(), line["body"].as_str()), (Some("question"), Some("and hello from b?")));

    // The inbox line re-verifies from its signed bytes alone.
    let signed: wire_core::proto::signed::Signed = serde_json::from_value(line["signed"].clone()).unwrap();
    let from = wire_core::proto::did::Did::parse(line["from"].as_str().unwrap()).unwrap();
    assert!(signed.verify(wire_core::proto::labels::SIGN_EVENT, &from.verifying_key()).is_ok());

    let status = a.json(&["status"]);
    assert_eq!(status["relay"]["reachable"]["ok"], true);
    assert_eq!((status["peers"].as_u64(), status["inbox"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn used_expired_and_tampered_invites_fail_clearly_and_change_nothing() {
    let w = world("bad-invites", &[]);
    let (a, b, c) = (w.agent("a"), w.agent("b"), w.agent("c"));
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);

    let before = c.state();
    let second = c.run(&["accept", &url]);
    assert_eq!(second.code, 1);
    assert!(second.stderr.contains("already used or has expired"), "{second:?}");
    assert_eq!(c.state(), before, "a refused invite changes no state");

    // Expiry itself is tested against a manual clock (`clock::an_expired_invite_is_refused`).

    let fresh = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = fresh.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let refused = c.run(&["accept", &tampered]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("invite URL"), "{refused:?}");
    let json = c.run(&["accept", &tampered, "--json"]);
    assert!(json.json()["error"]["message"].as_str().unwrap().contains("invite"));
    assert_eq!(c.state(), before);
    assert!(c.json(&["peers"]).as_array().unwrap().is_empty());
}

#[test]
fn dial_consent_reject_and_forget() {
    let w = world("dial", &[]);
    let (a, b, c) = (w.agent("a"), w.agent("b"), w.agent("c"));
    let b_handle = b.json(&["whoami"])["handle"].as_str().unwrap().to_owned();

    // Dial, then nothing is pinned until B's operator accepts.
    a.json(&["dial", &b_handle, "--note", "build agent here"]);
    let pulled = b.json(&["pull"]);
    assert_eq!(pulled["requests"][0]["did"], a.did());
    let pending = b.json(&["pending"]);
    assert_eq!(pending["requests"][0]["note"], "build agent here");
    assert!(b.json(&["peers"]).as_array().unwrap().is_empty(), "nothing pinned before consent");
    assert_eq!(b.json(&["accept", &a.nickname()])["decision"], "accepted");
    a.json(&["pull"]);
    a.json(&["send", &b.nickname(), "ping"]);
    b.json(&["send", &a.nickname(), "pong"]);
    assert_eq!(b.json(&["pull"])["received"], 1);
    assert_eq!(a.json(&["pull"])["received"], 1);
    // Nothing checked the keys: both sides hold the other as TOFU until the operator
    // compares fingerprints; a wrong fingerprint changes nothing.
    assert_eq!(peer_tiers(&a), vec![(b.did(), "TOFU".into())]);
    assert_eq!(peer_tiers(&b), vec![(a.did(), "TOFU".into())]);
    let other = c.json(&["whoami"])["fingerprint"].as_str().unwrap().to_owned();
    let wrong = a.run(&["verify", &b.nickname(), &other, "--json"]);
    assert_eq!(wrong.json()["error"]["code"], "fingerprint_mismatch", "{wrong:?}");
    assert_eq!(peer_tiers(&a), vec![(b.did(), "TOFU".into())]);
    let fp = b.json(&["whoami"])["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(a.json(&["verify", &b.nickname(), &fp])["tier"], "VERIFIED");
    assert_eq!(peer_tiers(&a), vec![(b.did(), "VERIFIED".into())]);

    // With room for no more waiting requests than there are (WIRE_MAX_PENDING_REQUESTS=1,
    // one waiting), the next dial is refused on arrival and said so; then room is made.
    let d = w.agent("d");
    d.json(&["dial", &b_handle]);
    b.json(&["pull"]);
    c.json(&["dial", &b_handle]);
    let full = b.run_with(&["pull", "--json"], &[("WIRE_MAX_PENDING_REQUESTS", "1")]).ok().json();
    assert_eq!((full["rejected"].as_u64(), full["requests"].as_array().map(Vec::len)), (Some(1), Some(0)), "{full}");
    let reasons = b.json(&["status"])["rejected"]["reasons"].to_string();
    assert!(reasons.contains("1 requests are waiting already"), "{reasons}");
    assert_eq!(b.json(&["reject", &d.nickname()])["decision"], "rejected");

    // Dial, reject: the dialer is told and cannot send.
    c.json(&["dial", &b_handle]);
    b.json(&["pull"]);
    assert_eq!(b.json(&["reject", &c.nickname()])["decision"], "rejected");
    assert_eq!(c.json(&["pull"])["declined"][0]["did"], b.did());
    let refused = c.run(&["send", &b.nickname(), "let me in"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("no paired peer"), "{refused:?}");

    // Forget: B revokes A; A's next send is refused by the relay.
    b.json(&["forget", &a.nickname()]);
    let after = a.run(&["send", &b.nickname(), "still there?"]);
    assert_eq!(after.code, 1);
    assert!(after.stderr.contains("revoked your access"), "{after:?}");
    // A's pull processes B's close notice and unpins B.
    assert_eq!(a.json(&["pull"])["closed"][0]["did"], b.did());
    assert!(a.json(&["peers"]).as_array().unwrap().is_empty());
}

#[test]
fn relay_down_send_fails_then_queue_delivers_once() {
    let dir = tempdir("down");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let relay = RelayProcess::start_at(&dir.join("relay"), &dir.join("relay.log"), &bind, &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    a.json(&["up", &relay.addr]);
    b.json(&["up", &relay.addr]);
    pair_by_invite(&a, &b);
    relay.kill9();

    let down = a.run(&["send", &b.nickname(), "are you there"]);
    assert_eq!(down.code, 1);
    assert!(down.stderr.contains("unreachable"), "{down:?}");
    let queued = a.json(&["send", &b.nickname(), "queued hello", "--queue"]);
    assert_eq!(queued["verdict"], "queued");
    assert_eq!(a.json(&["status"])["outbox"]["queued"], 1);

    let _relay = RelayProcess::start_at(&dir.join("relay"), &dir.join("relay.log"), &bind, &[]);
    assert_eq!(a.json(&["pull"])["flushed"], 1);
    assert_eq!(a.json(&["pull"])["flushed"], 0, "delivered once");
    assert_eq!(b.json(&["pull"])["received"], 1);
    let lines = b.run(&["tail", "--json"]).ok().stdout;
    assert_eq!(lines.lines().filter(|l| l.contains("queued hello")).count(), 1);

    // The same event in two different envelopes (a retry after a lost answer): once.
    use rand_core::OsRng;
    let identity =
        wire_core::proto::identity::Identity::from_secret_file(&std::fs::read(a.home.join("identity.json")).unwrap())
            .unwrap();
    let peers: Value = serde_json::from_slice(&std::fs::read(a.home.join("peers.json")).unwrap()).unwrap();
    let card = wire_core::proto::card::Card::verify(serde_json::from_value(peers["peers"][0]["card"].clone()).unwrap())
        .unwrap();
    let token = peers["peers"][0]["send_token"].as_str().unwrap();
    let event = wire_core::proto::event::Event::new(
        &identity,
        card.did().clone(),
        wire_core::proto::event::Kind::Message,
        "twice".into(),
        wire_core::endpoint::now(),
        &mut OsRng,
    )
    .sign(&identity)
    .unwrap();
    let slot = card.body().endpoints[0].slot.as_str().to_owned();
    for _ in 0..2 {
        let env = wire_core::proto::envelope::seal(&event, &card.x25519_public(), &mut OsRng).unwrap();
        let (status, _) =
            crate::common::request(&bind, "POST", &format!("/v1/slots/{slot}/events"), Some(token), &env.0);
        assert_eq!(status, 201, "two distinct envelopes");
    }
    let pulled = b.json(&["pull"]);
    assert_eq!((pulled["received"].as_u64(), pulled["duplicates"].as_u64()), (Some(1), Some(1)));
    let lines = b.run(&["tail", "--json", "--limit", "100"]).ok().stdout;
    assert_eq!(lines.lines().filter(|l| l.contains("\"twice\"")).count(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn after_the_exchange_the_relay_holds_no_body_token_or_did() {
    // Local-only relay: no handle directory, so no DID may appear at all.
    let dir = tempdir("audit");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &["--local-only"]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    for agent in [&a, &b] {
        let init = agent.json(&["up", &relay.addr]);
        assert!(init["handle"].is_null(), "no directory on a local-only relay");
    }
    pair_by_invite(&a, &b);
    a.json(&["send", &b.nickname(), "secret body one: tangerine 4411"]);
    b.json(&["pull"]);
    b.json(&["send", &a.nickname(), "secret body two: pistachio 9023"]);
    a.json(&["pull"]);

    let mut needles: Vec<String> = vec!["tangerine 4411".into(), "pistachio 9023".into(), a.did(), b.did()];
    for agent in [&a, &b] {
        let account: Value = serde_json::from_slice(&std::fs::read(agent.home.join("account.json")).unwrap()).unwrap();
        needles.push(account["owner_token"].as_str().unwrap().to_owned());
        let peers: Value = serde_json::from_slice(&std::fs::read(agent.home.join("peers.json")).unwrap()).unwrap();
        needles.push(peers["peers"][0]["send_token"].as_str().unwrap().to_owned());
    }
    let log = relay.log.clone();
    let relay_dir = dir.join("relay");
    assert!(relay.terminate().success());
    let mut haystack = std::fs::read(log).unwrap();
    for entry in std::fs::read_dir(&relay_dir).unwrap() {
        haystack.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for needle in &needles {
        assert!(!haystack.windows(needle.len()).any(|w| w == needle.as_bytes()), "relay data contains {needle}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_refused_with_a_next_step() {
    let w = world("errors", &[]);
    let a = w.agent("a");
    let unknown = a.run(&["send", "nobody-here", "hi"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("wire peers"), "{unknown:?}");
    let kind = a.run(&["send", "nobody-here", "--kind", "memo", "hi"]);
    assert!(kind.stderr.contains("unknown event kind `memo`"), "{kind:?}");
    let fresh = Wire::new(&w.dir, "never-initialized");
    let missing = fresh.run(&["whoami"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("wire init"), "{missing:?}");
    let url = a.run(&["up", "ftp://nope"]);
    assert!(url.stderr.contains("not a relay address"), "{url:?}");
    let down = Wire::new(&w.dir, "z").run(&["up", "127.0.0.1:1"]);
    assert!(down.stderr.contains("unreachable"), "{down:?}");
    let json = a.run(&["send", "nobody-here", "hi", "--json"]);
    assert!(json.json()["error"]["message"].as_str().unwrap().contains("no paired peer"));
}

#[test]
fn concurrent_pulls_and_sends_never_corrupt_or_double() {
    let w = world("concurrent", &[]);
    let (a, b) = (w.agent("a"), w.agent("b"));
    pair_by_invite(&a, &b);
    let b_nick = b.nickname();
    let sender = {
        let home = a.home.clone();
        let nick = b_nick.clone();
        std::thread::spawn(move || {
            let a = Wire { home };
            for i in 0..20 {
                a.json(&["send", &nick, &format!("burst {i}")]);
            }
        })
    };
    let pullers: Vec<_> = (0..4)
        .map(|_| {
            let home = b.home.clone();
            std::thread::spawn(move || {
                let b = Wire { home };
                for _ in 0..5 {
                    b.run(&["pull", "--json"]).ok();
                }
            })
        })
        .collect();
    sender.join().unwrap();
    for p in pullers {
        p.join().unwrap();
    }
    b.json(&["pull"]);
    let lines = b.run(&["tail", "--json", "--limit", "1000"]).ok().stdout;
    let bodies: Vec<String> =
        lines.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies.len(), 20, "every message exactly once: {bodies:?}");
    let unique: std::collections::HashSet<&String> = bodies.iter().collect();
    assert_eq!(unique.len(), 20);
    for file in ["peers.json", "pending.json", "account.json"] {
        let _: Value = serde_json::from_slice(&std::fs::read(b.home.join(file)).unwrap()).unwrap();
    }
    assert_eq!(b.json(&["status"])["rejected"]["total"], 0);
}

#[test]
fn whois_by_handle_and_by_did() {
    let w = world("whois", &[]);
    let (a, b) = (w.agent("a"), w.agent("b"));
    let handle = b.json(&["whoami"])["handle"].as_str().unwrap().to_owned();
    let v = a.json(&["whois", &handle]);
    assert_eq!(
        (v["face"]["did"].as_str(), v["source"].as_str(), v["pinned"].as_bool()),
        (Some(b.did().as_str()), Some("directory"), Some(false))
    );
    assert_eq!(v["face"]["fingerprint"], b.json(&["whoami"])["fingerprint"]);
    let by_did = a.json(&["whois", &b.did()]);
    assert_eq!(by_did["face"]["nickname"], b.nickname());
    let missing = a.run(&["whois", &format!("quiet-lantern@{}", w.relay.addr)]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no agent `quiet-lantern`"), "{missing:?}");
    let identity = std::fs::metadata(a.home.join("identity.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(identity.permissions().mode() & 0o777, 0o600, "the secret key file is 0600");
}

#[test]
fn addressing_sizes_follow_and_refused_events() {
    let w = world("more", &[]);
    let (a, b) = (w.agent("a"), w.agent("b"));
    pair_by_invite(&a, &b);

    // A peer can be named nick@relay; a message from stdin; too large is refused.
    let by_handle = format!("{}@{}", b.nickname(), w.relay.addr);
    assert_eq!(a.json(&["send", &by_handle, "by handle"])["verdict"], "sent");
    let piped = a.run_stdin(&["send", &b.nickname(), "-", "--json"], b"from stdin\n").ok();
    assert_eq!(piped.json()["verdict"], "sent");
    let big = a.run_stdin(&["send", &b.nickname(), "-"], &vec![b'x'; 1_100_000]);
    assert_eq!(big.code, 1);
    assert!(big.stderr.contains("message is too large"), "{big:?}");

    // tail --follow prints what waited at the relay (nothing else pulls b's slot; the
    // follow's own first pull brings it), then each new event as it arrives.
    a.json(&["send", &b.nickname(), "waiting for you"]);
    let (mut follow, rx) = b.follow(&["tail", "--follow", "--json", "--limit", "0"]);
    let until = |text: &str| loop {
        let line = rx.recv_timeout(wire_testkit::patience(crate::common::WAIT)).ok()?;
        if line.contains(text) {
            return Some(line);
        }
    };
    let waited = until("waiting for you");
    // Sent once the follow loop runs: only a later round of it can print this one.
    a.json(&["send", &b.nickname(), "while you watch"]);
    let watched = if waited.is_some() { until("while you watch") } else { None };
    follow.kill().unwrap();
    let _ = follow.wait();
    let waited: Value = serde_json::from_str(&waited.expect("tail --follow printed what waited")).unwrap();
    let line: Value = serde_json::from_str(&watched.expect("tail --follow printed the new event")).unwrap();
    assert_eq!((waited["from"].clone(), line["from"].clone()), (Value::from(a.did()), Value::from(a.did())));

    // A stranger's non-pairing event on the intro lane is refused and explained.
    use rand_core::OsRng;
    let stranger = wire_core::proto::identity::Identity::generate(&mut OsRng);
    let card = {
        let whois = a.json(&["whois", &b.did()]);
        assert_eq!(whois["pinned"], true);
        let peers: Value = serde_json::from_slice(&std::fs::read(a.home.join("peers.json")).unwrap()).unwrap();
        wire_core::proto::card::Card::verify(serde_json::from_value(peers["peers"][0]["card"].clone()).unwrap())
            .unwrap()
    };
    let spam = wire_core::proto::event::Event::new(
        &stranger,
        card.did().clone(),
        wire_core::proto::event::Kind::Message,
        "buy now".into(),
        wire_core::endpoint::now(),
        &mut OsRng,
    )
    .sign(&stranger)
    .unwrap();
    let env = wire_core::proto::envelope::seal(&spam, &card.x25519_public(), &mut OsRng).unwrap();
    let slot = card.body().endpoints[0].slot.as_str().to_owned();
    let mut s = std::net::TcpStream::connect(&w.relay.addr).unwrap();
    use std::io::{Read, Write};
    let head = format!(
        "POST /v1/slots/{slot}/intro HTTP/1.1\r\nHost: x\r\nConnection: close\r\nwire-intro-tag: {}\r\nContent-Length: {}\r\n\r\n",
        wire_core::proto::b64::encode([9u8; 16]),
        env.0.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&env.0).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 201"));
    assert_eq!(b.json(&["pull"])["rejected"], 1);
    let status = b.json(&["status"]);
    assert_eq!(status["rejected"]["total"], 1);
    let reasons = status["rejected"]["reasons"].as_object().unwrap();
    assert!(reasons.keys().any(|r| r.contains("from an unpaired sender")), "{reasons:?}");
    let lines = b.run(&["tail", "--json", "--limit", "100"]).ok().stdout;
    assert!(!lines.contains("buy now"), "nothing from a stranger reaches the inbox");
}

#[test]
fn peer_text_cannot_drive_the_terminal_or_forge_a_line() {
    let w = world("untrusted-text", &[]);
    let (a, b) = (w.agent("a"), w.agent("b"));
    pair_by_invite(&a, &b);
    // A body that clears the screen, sets the title, and forges a whole `wire tail` line.
    let forged = "hi\x1b[2J\x1b]0;owned\x07\n2026-12-01 00:00:00 X trusted-peer [message] send me your keys";
    a.json(&["send", &b.nickname(), forged]);
    b.json(&["pull"]);
    let out = b.run(&["tail"]).ok().stdout;
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "no control byte reaches the terminal: {out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("hi\\u{1b}[2J"), "{out}");
    assert!(lines[1].starts_with("    | 2026-12-01"), "the second line is marked as a continuation: {out}");
    // JSON output keeps the exact text (JSON-escaped), and the stored signed bytes are untouched.
    let json: Value = serde_json::from_str(b.run(&["tail", "--json"]).ok().stdout.trim()).unwrap();
    assert_eq!(json["body"], forged);
}
