//! The relay's HTTP API over real sockets: every route, every auth failure, idempotency,
//! cursors and resume, retention, quotas and rate limits. Most run against every store
//! (`memory::*`, `sqlite::*`, `postgres::*`: `common::every_store!`).

use std::time::Duration;

use crate::common::{Backend, TestRelay, WAIT, config, envelope, eventually, sse, sse_ids, tempdir, wait_until};
use serde_json::json;
use wire_core::clock::ManualClock;
use wire_relay::{Config, Rate};

crate::common::every_store!(
    slots_grants_appends_and_idempotency,
    every_auth_failure_is_refused_with_the_right_code,
    revoked_token_fails_at_once,
    intro_tokens_work_once_and_not_after_expiry,
    ack_moves_the_floor_and_stale_cursors_are_explicit_errors,
    sse_resume_delivers_exactly_the_missed_envelopes_in_order,
    retention_expires_unacked_envelopes,
    quotas_answer_as_documented,
    intro_lane_one_pending_request_per_sender,
    rendezvous_relays_between_two_sides_and_burns_on_close,
);

fn relay_with(sqlite: impl Into<Backend>, tweak: impl FnOnce(&mut Config)) -> TestRelay {
    let dir = tempdir("api");
    let mut cfg = config(sqlite, &dir);
    tweak(&mut cfg);
    TestRelay::with_config(cfg, dir)
}

fn slots_grants_appends_and_idempotency(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = r.slot();
    let (_, send) = r.grant(&slot, &owner, json!({"kind": "send"}));
    let env = envelope(256);
    let first = r.append(&slot, &send, &env);
    assert_eq!(
        (first.status, first.json()["seq"].as_u64(), first.json()["duplicate"].as_bool()),
        (201, Some(1), Some(false))
    );
    let again = r.append(&slot, &send, &env);
    assert_eq!(
        (again.status, again.json()["seq"].as_u64(), again.json()["duplicate"].as_bool()),
        (200, Some(1), Some(true))
    );
    let second = r.append(&slot, &send, &envelope(1024));
    assert_eq!(second.json()["seq"].as_u64(), Some(2));
    // The owner may append to its own slot too.
    assert_eq!(r.append(&slot, &owner, &envelope(256)).json()["seq"].as_u64(), Some(3));
    let listed = r.list(&slot, &owner, 0).json();
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["envelope"].as_str().unwrap(), wire_core::proto::b64::encode(&env));
    assert_eq!(events[0]["lane"], "inbox");
    assert_eq!(listed["more"], false);
    let page = r.req("GET", &format!("/v1/slots/{slot}/events?after=0&limit=2"), Some(&owner), b"").json();
    assert_eq!((page["events"].as_array().unwrap().len(), page["more"].as_bool()), (2, Some(true)));
    // A byte budget cuts the page (envelopes of 305, 1073 and 305 bytes), never below one.
    let bytes = |b: usize| {
        let page = r.req("GET", &format!("/v1/slots/{slot}/events?max_bytes={b}"), Some(&owner), b"").json();
        (page["events"].as_array().unwrap().len(), page["more"].as_bool().unwrap())
    };
    assert_eq!(bytes(1_400), (2, true));
    assert_eq!(bytes(10), (1, true), "at least one envelope");
    assert_eq!(bytes(1 << 20), (3, false));
    assert_eq!(r.req("GET", "/healthz", None, b"").json()["status"], "ok");
    let metrics = r.req("GET", "/metrics", None, b"").text();
    assert!(metrics.contains("wire_relay_appends_total 3"), "{metrics}");
    assert!(metrics.contains("wire_relay_duplicate_appends_total 1"), "{metrics}");
}

fn every_auth_failure_is_refused_with_the_right_code(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = r.slot();
    let (other_slot, other_owner) = r.slot();
    let (grant_id, send) = r.grant(&slot, &owner, json!({"kind": "send"}));
    let (_, other_send) = r.grant(&other_slot, &other_owner, json!({"kind": "send"}));
    let bogus = "send.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let env = envelope(256);

    // Missing and unknown tokens.
    assert_eq!(r.append(&slot, "", &env).status, 401);
    assert_eq!(r.req("POST", &format!("/v1/slots/{slot}/events"), None, &env).code(), "unauthorized");
    assert_eq!(r.append(&slot, bogus, &env).code(), "unauthorized");
    assert_eq!(r.list(&slot, bogus, 0).code(), "unauthorized");
    // A send token of another slot: wrong slot.
    let wrong = r.append(&slot, &other_send, &env);
    assert_eq!((wrong.status, wrong.code().as_str()), (403, "forbidden"));
    // Another slot's owner token is not this slot's owner.
    assert_eq!(r.list(&slot, &other_owner, 0).code(), "unauthorized");
    // A send token can only append: no list, stream, ack, mint or revoke.
    let reading = r.list(&slot, &send, 0);
    assert_eq!((reading.status, reading.code().as_str()), (403, "forbidden"));
    assert!(reading.json()["error"]["message"].as_str().unwrap().contains("can only append"));
    assert_eq!(r.req("GET", &format!("/v1/slots/{slot}/stream"), Some(&send), b"").status, 403);
    assert_eq!(r.json("POST", &format!("/v1/slots/{slot}/ack"), Some(&send), &json!({"through": 0})).status, 403);
    assert_eq!(r.json("POST", &format!("/v1/slots/{slot}/grants"), Some(&send), &json!({"kind": "send"})).status, 403);
    assert_eq!(r.req("DELETE", &format!("/v1/slots/{slot}/grants/{grant_id}"), Some(&send), b"").status, 403);
    // Unknown slot.
    let missing = r.list("AAAAAAAAAAAAAAAAAAAAAA", &owner, 0);
    assert_eq!((missing.status, missing.code().as_str()), (404, "not_found"));
    // Nothing above stored anything.
    assert!(r.seqs(&slot, &owner, 0).is_empty());
}

fn revoked_token_fails_at_once(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = r.slot();
    let (grant_id, send) = r.grant(&slot, &owner, json!({"kind": "send"}));
    assert_eq!(r.append(&slot, &send, &envelope(256)).status, 201);
    let revoked = r.req("DELETE", &format!("/v1/slots/{slot}/grants/{grant_id}"), Some(&owner), b"");
    assert_eq!((revoked.status, revoked.json()["revoked"].as_str()), (200, Some(grant_id.as_str())));
    let after = r.append(&slot, &send, &envelope(256));
    assert_eq!((after.status, after.code().as_str()), (403, "forbidden"));
    assert!(after.text().contains("revoked"));
    assert_eq!(r.req("DELETE", &format!("/v1/slots/{slot}/grants/nope"), Some(&owner), b"").code(), "not_found");
}

/// A relay reading `clock`, running maintenance every 10 ms so a clock step takes effect
/// at once.
fn relay_on_clock(sqlite: impl Into<Backend>, clock: &ManualClock, tweak: impl FnOnce(&mut Config)) -> TestRelay {
    relay_with(sqlite, |c| {
        c.clock = clock.shared();
        c.maintenance_interval = Duration::from_millis(10);
        tweak(c);
    })
}

fn intro_tokens_work_once_and_not_after_expiry(sqlite: Backend) {
    let clock = ManualClock::starting_now();
    let r = relay_on_clock(sqlite, &clock, |_| {});
    let (slot, owner) = r.slot();
    let (_, intro) = r.grant(&slot, &owner, json!({"kind": "intro", "ttl_secs": 60}));
    assert_eq!(r.append(&slot, &intro, &envelope(256)).status, 201);
    let twice = r.append(&slot, &intro, &envelope(256));
    assert_eq!((twice.status, twice.code().as_str()), (410, "gone"));
    assert_eq!(r.list(&slot, &intro, 0).status, 403, "an intro token cannot read");
    let (_, short) = r.grant(&slot, &owner, json!({"kind": "intro", "ttl_secs": 60}));
    clock.advance(Duration::from_secs(59));
    let (_, other) = r.grant(&slot, &owner, json!({"kind": "intro", "ttl_secs": 60}));
    clock.advance(Duration::from_secs(1));
    assert_eq!(r.append(&slot, &other, &envelope(256)).status, 201, "one second before its expiry it works");
    let late = r.append(&slot, &short, &envelope(256));
    assert_eq!((late.status, late.code().as_str()), (410, "gone"));
    let bad = r.json("POST", &format!("/v1/slots/{slot}/grants"), Some(&owner), &json!({"kind": "intro"}));
    assert_eq!(bad.code(), "bad_request", "intro grants need a ttl");
    let bad = r.json("POST", &format!("/v1/slots/{slot}/grants"), Some(&owner), &json!({"kind": "send", "uses": 2}));
    assert_eq!(bad.code(), "bad_request");
    assert_eq!(r.seqs(&slot, &owner, 0), vec![1, 2]);
}

fn ack_moves_the_floor_and_stale_cursors_are_explicit_errors(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = r.slot();
    for _ in 0..3 {
        r.append(&slot, &owner, &envelope(256));
    }
    let ack = r.json("POST", &format!("/v1/slots/{slot}/ack"), Some(&owner), &json!({"through": 2}));
    assert_eq!(
        (ack.status, ack.json()["removed"].as_u64(), ack.json()["acked_through"].as_u64()),
        (200, Some(2), Some(2))
    );
    let stale = r.list(&slot, &owner, 0);
    assert_eq!((stale.status, stale.code().as_str()), (416, "cursor_expired"));
    assert!(stale.text().contains("after=2"), "the error says where to resume: {}", stale.text());
    let ahead = r.list(&slot, &owner, 9);
    assert_eq!(ahead.code(), "cursor_expired");
    assert_eq!(r.seqs(&slot, &owner, 2), vec![3]);
    // No cursor means "from the floor", never from zero.
    assert_eq!(r.req("GET", &format!("/v1/slots/{slot}/events"), Some(&owner), b"").json()["events"][0]["seq"], 3);
    let beyond = r.json("POST", &format!("/v1/slots/{slot}/ack"), Some(&owner), &json!({"through": 7}));
    assert_eq!(beyond.code(), "bad_request");
}

fn sse_resume_delivers_exactly_the_missed_envelopes_in_order(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = r.slot();
    for _ in 0..5 {
        r.append(&slot, &owner, &envelope(256));
    }
    let addr = r.addr;
    let path = format!("/v1/slots/{slot}/stream");
    let (p, o) = (path.clone(), owner.clone());
    let reader = std::thread::spawn(move || sse(addr, &p, &o, Some(2), "id: 7\n"));
    // Live means after the stream is open: wait for the relay to count it.
    wait_until(WAIT, "the stream to open", || r.metric("wire_relay_streams_open") == 1);
    let before_live = r.seqs(&slot, &owner, 0).len();
    assert_eq!(before_live, 5);
    r.append(&slot, &owner, &envelope(256));
    r.append(&slot, &owner, &envelope(1024));
    let text = reader.join().unwrap();
    assert!(text.contains("text/event-stream"), "{text}");
    assert_eq!(sse_ids(&text), vec![3, 4, 5, 6, 7], "exactly the missed ones, then live, in order");
    // ?after= works the same way; a stale Last-Event-ID is an explicit error.
    let text = sse(addr, &format!("{path}?after=6"), &owner, None, "id: 7\n");
    assert_eq!(sse_ids(&text), vec![7]);
    r.json("POST", &format!("/v1/slots/{slot}/ack"), Some(&owner), &json!({"through": 4}));
    let stale = r.req_with("GET", &path, Some(&owner), &[("Last-Event-ID", "1")], b"");
    assert_eq!((stale.status, stale.code().as_str()), (416, "cursor_expired"));
}

fn retention_expires_unacked_envelopes(sqlite: Backend) {
    let clock = ManualClock::starting_now();
    let r = relay_on_clock(sqlite, &clock, |c| c.retention = Duration::from_secs(3_600));
    let (slot, owner) = r.slot();
    r.append(&slot, &owner, &envelope(256));
    clock.advance(Duration::from_secs(1_800));
    r.append(&slot, &owner, &envelope(256));
    clock.advance(Duration::from_secs(1_801));
    // The first is past retention, the second is not.
    let resp = eventually(WAIT, "the first envelope to expire", || {
        let resp = r.list(&slot, &owner, 0);
        (resp.status == 416).then_some(resp)
    });
    assert!(resp.text().contains("after=1"), "{}", resp.text());
    assert_eq!(r.seqs(&slot, &owner, 1), vec![2], "the younger envelope stays");
    clock.advance(Duration::from_secs(1_800));
    let resp = eventually(WAIT, "the second envelope to expire", || {
        let resp = r.list(&slot, &owner, 1);
        (resp.status == 416).then_some(resp)
    });
    assert_eq!(resp.code(), "cursor_expired");
    assert!(resp.text().contains("after=2"), "{}", resp.text());
    assert!(r.seqs(&slot, &owner, 2).is_empty());
    assert_eq!(r.append(&slot, &owner, &envelope(256)).json()["seq"], 3, "sequence numbers never repeat");
}

fn quotas_answer_as_documented(sqlite: Backend) {
    let r = relay_with(sqlite, |c| {
        c.slot_max_events = 2;
        c.max_envelope = 2_000;
        c.max_streams_per_slot = 1;
    });
    let (slot, owner) = r.slot();
    r.append(&slot, &owner, &envelope(256));
    r.append(&slot, &owner, &envelope(256));
    let full = r.append(&slot, &owner, &envelope(256));
    assert_eq!((full.status, full.code().as_str()), (507, "quota_exceeded"));
    assert!(full.text().contains("pull and ack"));
    let big = r.append(&slot, &owner, &envelope(4096));
    assert_eq!((big.status, big.code().as_str()), (413, "payload_too_large"));
    // A declared length over the limit is refused before any body byte is sent.
    let head = format!(
        "POST /v1/slots/{slot}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\nContent-Length: 50000000\r\n\r\n"
    );
    let early = r.raw(head.as_bytes());
    assert_eq!((early.status, early.code().as_str()), (413, "payload_too_large"));
    // One stream per slot here: the second is refused.
    let addr = r.addr;
    let (p, o) = (format!("/v1/slots/{slot}/stream"), owner.clone());
    let holder = std::thread::spawn(move || sse(addr, &p, &o, None, "never"));
    wait_until(WAIT, "the first stream to open", || r.metric("wire_relay_streams_open") == 1);
    let second = r.req("GET", &format!("/v1/slots/{slot}/stream"), Some(&owner), b"");
    assert_eq!((second.status, second.code().as_str()), (429, "rate_limited"));
    drop(r);
    holder.join().unwrap();
}

fn intro_lane_one_pending_request_per_sender(sqlite: Backend) {
    let r = TestRelay::start(sqlite);
    let (slot, owner) = r.slot();
    let tag_a = wire_core::proto::b64::encode([1u8; 16]);
    let tag_b = wire_core::proto::b64::encode([2u8; 16]);
    let post = |tag: Option<&str>, env: &[u8]| {
        let headers: Vec<(&str, &str)> = tag.map(|t| vec![("wire-intro-tag", t)]).unwrap_or_default();
        r.req_with("POST", &format!("/v1/slots/{slot}/intro"), None, &headers, env)
    };
    assert_eq!(post(Some(&tag_a), &envelope(256)).status, 201);
    let again = post(Some(&tag_a), &envelope(256));
    assert_eq!((again.status, again.code().as_str()), (409, "conflict"));
    assert_eq!(post(Some(&tag_b), &envelope(256)).status, 201);
    assert_eq!(post(None, &envelope(256)).code(), "bad_request");
    assert_eq!(post(Some("!!not-base64!!"), &envelope(256)).code(), "bad_request");
    let events = r.list(&slot, &owner, 0).json();
    assert_eq!(events["events"][0]["lane"], "intro");
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    let unknown = r.req_with(
        "POST",
        "/v1/slots/AAAAAAAAAAAAAAAAAAAAAA/intro",
        None,
        &[("wire-intro-tag", &tag_a)],
        &envelope(256),
    );
    assert_eq!(unknown.code(), "not_found");
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let r = relay_with(false, |c| {
        c.ip_rate = Rate { per_sec: 1.0, burst: 3.0 };
    });
    let codes: Vec<u16> = (0..6).map(|_| r.req("POST", "/v1/slots", None, b"").status).collect();
    assert_eq!(&codes[..3], &[201, 201, 201]);
    let limited = r.req("POST", "/v1/slots", None, b"");
    assert_eq!((limited.status, limited.code().as_str()), (429, "rate_limited"));
    assert!(limited.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert_eq!(r.req("GET", "/healthz", None, b"").status, 200, "health checks are never limited");

    let r = relay_with(false, |c| c.token_rate = Rate { per_sec: 1.0, burst: 2.0 });
    let (slot, owner) = r.slot();
    let (_, send) = r.grant(&slot, &owner, json!({"kind": "send"}));
    let codes: Vec<u16> = (0..4).map(|_| r.append(&slot, &send, &envelope(256)).status).collect();
    assert_eq!(codes, vec![201, 201, 429, 429]);
}

#[test]
fn pow_on_the_intro_lane() {
    use sha2::{Digest, Sha256};
    let r = relay_with(false, |c| c.intro_pow_bits = 8);
    let (slot, _) = r.slot();
    let tag = [3u8; 16];
    let env = envelope(256);
    let path = format!("/v1/slots/{slot}/intro");
    let tag_b64 = wire_core::proto::b64::encode(tag);
    let refused = r.req_with("POST", &path, None, &[("wire-intro-tag", &tag_b64)], &env);
    assert_eq!((refused.status, refused.header("wire-pow-bits")), (403, Some("8")));
    let nonce = (0u64..)
        .map(|n| n.to_be_bytes())
        .find(|n| {
            let d = Sha256::new()
                .chain_update(b"wire/v1/intro-pow")
                .chain_update(slot.as_bytes())
                .chain_update([0])
                .chain_update(tag)
                .chain_update(Sha256::digest(&env))
                .chain_update(n)
                .finalize();
            d[0] == 0
        })
        .unwrap();
    let nonce = wire_core::proto::b64::encode(nonce);
    let ok = r.req_with("POST", &path, None, &[("wire-intro-tag", &tag_b64), ("wire-pow", &nonce)], &env);
    assert_eq!(ok.status, 201, "{}", ok.text());
}

#[test]
fn malformed_input_gets_a_4xx_never_a_5xx() {
    let r = TestRelay::start(true);
    let (slot, owner) = r.slot();
    let grants = format!("/v1/slots/{slot}/grants");
    let json_cases: Vec<(&str, String, &[u8])> = vec![
        ("POST", grants.clone(), b"{"),
        ("POST", grants.clone(), br#"{"kind": 5}"#),
        ("POST", grants.clone(), br#"{"kind": "send", "extra": 1}"#),
        ("POST", grants.clone(), b"\xff\xfe\x00"),
        ("POST", format!("/v1/slots/{slot}/ack"), br#"{"through": "x"}"#),
        ("POST", format!("/v1/slots/{slot}/ack"), br#"{"through": -1}"#),
        ("POST", format!("/v1/slots/{slot}/events"), b"not an envelope"),
        ("POST", format!("/v1/slots/{slot}/events"), b""),
        ("GET", format!("/v1/slots/{slot}/events?after=abc"), b""),
        ("GET", format!("/v1/slots/{slot}/events?after=-4"), b""),
        ("GET", "/v1/slots/!!!/events".into(), b""),
        ("GET", "/v1/slots/short/events".into(), b""),
        ("GET", format!("/v1/slots/{}/events", "a".repeat(200)), b""),
        ("POST", "/v1/rendezvous/abc/join".into(), b""),
        ("POST", "/v1/rendezvous/0/join".into(), b""),
        ("POST", "/v1/rendezvous/123456789/join".into(), b""),
        ("POST", "/v1/handles".into(), br#"{"nick": "a", "card": {"payload": "%%%", "sig": "x"}}"#),
        ("POST", "/v1/handles".into(), br#"{"nick": 1}"#),
        ("GET", "/.well-known/wire/agent".into(), b""),
        ("GET", "/nothing/here".into(), b""),
        ("PATCH", "/v1/slots".into(), b""),
    ];
    for (method, path, body) in &json_cases {
        let resp = r.req(method, path, Some(&owner), body);
        assert!((400..500).contains(&resp.status), "{method} {path}: {} {}", resp.status, resp.text());
        let code = resp.code();
        assert!(!code.is_empty(), "{method} {path} answered a JSON error");
    }
    let bad_header =
        r.req_with("GET", &format!("/v1/slots/{slot}/stream"), Some(&owner), &[("Last-Event-ID", "soon")], b"");
    assert_eq!(bad_header.code(), "bad_request");
    // Errors from the HTTP parser itself (before routing) are 4xx too.
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000));
    let resp = r.raw(huge.as_bytes());
    assert!((400..500).contains(&resp.status), "huge headers: {}", resp.status);
    let resp = r.raw(b"HELLO WORLD\r\n\r\n");
    assert!((400..500).contains(&resp.status), "garbage request line: {}", resp.status);
    // A body cut short: the client declares 500 bytes, sends 10 and closes its side.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(r.addr).unwrap();
        let head = format!(
            "POST /v1/slots/{slot}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\nContent-Length: 500\r\n\r\n0123456789"
        );
        s.write_all(head.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let resp = crate::common::Resp::parse(&out);
        assert!(resp.status == 0 || (400..500).contains(&resp.status), "truncated body: {}", resp.status);
    }
    // Still healthy, nothing stored, no 5xx counted.
    assert_eq!(r.req("GET", "/healthz", None, b"").status, 200);
    assert!(r.seqs(&slot, &owner, 0).is_empty());
}

fn rendezvous_relays_between_two_sides_and_burns_on_close(store: Backend) {
    let r = TestRelay::start(store);
    let opened = r.req("POST", "/v1/rendezvous", None, b"");
    assert_eq!(opened.status, 201);
    let n = opened.json()["nameplate"].as_str().unwrap().to_owned();
    let host = opened.json()["side_token"].as_str().unwrap().to_owned();
    let joined = r.req("POST", &format!("/v1/rendezvous/{n}/join"), None, b"");
    assert_eq!(joined.status, 201);
    let guest = joined.json()["side_token"].as_str().unwrap().to_owned();
    let third = r.req("POST", &format!("/v1/rendezvous/{n}/join"), None, b"");
    assert_eq!((third.status, third.code().as_str()), (409, "conflict"));
    assert!(third.text().contains("guessing"));

    let msgs = format!("/v1/rendezvous/{n}/messages");
    assert_eq!(r.req("POST", &msgs, Some(&host), b"pake-from-host").status, 201);
    let retry = r.req("POST", &msgs, Some(&host), b"pake-from-host");
    assert_eq!((retry.status, retry.json()["seq"].as_u64()), (200, Some(1)), "a re-post is the same message");
    let got = r.req("GET", &format!("{msgs}?after=0"), Some(&guest), b"").json();
    assert_eq!(got["messages"][0]["body"], wire_core::proto::b64::encode(b"pake-from-host"));
    let own = r.req("GET", &format!("{msgs}?after=0"), Some(&host), b"").json();
    assert!(own["messages"].as_array().unwrap().is_empty(), "a side never sees its own messages");

    // A long poll returns as soon as the other side posts.
    let addr = r.addr;
    let (m, h) = (msgs.clone(), host.clone());
    let poll = std::thread::spawn(move || {
        let relay = crate::common::Resp::parse(&{
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let req = format!(
                "GET {m}?after=1&wait=10 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {h}\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            out
        });
        relay.json()
    });
    wait_until(WAIT, "the long poll to wait", || r.metric("wire_relay_rendezvous_waiting") == 1);
    assert_eq!(r.req("POST", &msgs, Some(&guest), b"pake-from-guest").status, 201);
    let polled = poll.join().unwrap();
    assert_eq!(polled["messages"][0]["body"], wire_core::proto::b64::encode(b"pake-from-guest"));

    assert_eq!(
        r.req("GET", &format!("{msgs}?after=0"), Some("side.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), b"").status,
        401
    );
    assert_eq!(r.req("DELETE", &format!("/v1/rendezvous/{n}"), Some(&host), b"").status, 200);
    assert_eq!(r.req("GET", &format!("{msgs}?after=9"), Some(&guest), b"").json()["closed"], true);
    let after_close = r.req("POST", &msgs, Some(&guest), b"late");
    assert_eq!(after_close.code(), "gone");
    assert_eq!(r.req("POST", "/v1/rendezvous/99999999/join", None, b"").code(), "not_found");

    // A closed nameplate cannot be joined: the code is burned.
    let fresh = r.req("POST", "/v1/rendezvous", None, b"").json();
    let (n2, host2) =
        (fresh["nameplate"].as_str().unwrap().to_owned(), fresh["side_token"].as_str().unwrap().to_owned());
    r.req("DELETE", &format!("/v1/rendezvous/{n2}"), Some(&host2), b"");
    assert_eq!(r.req("POST", &format!("/v1/rendezvous/{n2}/join"), None, b"").code(), "gone");
}

#[test]
fn keepalive_comments_flow_on_idle_streams() {
    let r = relay_with(false, |c| c.keepalive = Duration::from_millis(300));
    let (slot, owner) = r.slot();
    let text = sse(r.addr, &format!("/v1/slots/{slot}/stream"), &owner, None, ": keep-alive");
    assert!(text.contains(": keep-alive"), "{text}");
}

#[test]
fn a_stream_on_a_reused_connection_is_served_too() {
    // The first request on this connection is not a stream, so the stream that follows
    // goes through the general HTTP path rather than the lean one; both must behave alike.
    use std::io::{Read, Write};
    let r = TestRelay::start(false);
    let (slot, owner) = r.slot();
    r.append(&slot, &owner, &envelope(256));
    let mut s = std::net::TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/slots/{slot}/stream?after=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    let deadline = std::time::Instant::now() + wire_testkit::patience(crate::common::WAIT);
    let mut buf = [0u8; 4096];
    while !text.contains("id: 1\n") && std::time::Instant::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(text.contains("\"status\":\"ok\""), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "served by the general path: {text}");
    assert_eq!(sse_ids(&text), vec![1]);
}

#[test]
fn an_unused_nameplate_closes_on_timeout() {
    let clock = ManualClock::starting_now();
    let r = relay_on_clock(false, &clock, |c| c.rendezvous_ttl = Duration::from_secs(600));
    let opened = r.req("POST", "/v1/rendezvous", None, b"").json();
    let n = opened["nameplate"].as_str().unwrap().to_owned();
    clock.advance(Duration::from_secs(599));
    assert_eq!(r.req("POST", &format!("/v1/rendezvous/{n}/join"), None, b"").status, 201, "open until its ttl");
    clock.advance(Duration::from_secs(1));
    // Joining succeeded once (second side); later attempts see 409 until the sweep closes it.
    wait_until(WAIT, "the nameplate to expire", || {
        r.req("POST", &format!("/v1/rendezvous/{n}/join"), None, b"").status == 404
    });
    let metrics = r.req("GET", "/metrics", None, b"").text();
    assert!(metrics.contains("wire_relay_nameplates_open 0"), "{metrics}");
}

#[test]
fn rendezvous_memory_is_bounded_across_nameplates() {
    // Room for three 40 KiB messages: the fourth, on whichever nameplate, is refused.
    let r = relay_with(false, |c| c.rendezvous_max_bytes = 3 * 40 * 1024);
    let body = vec![7u8; 40 * 1024];
    let mut stored = 0;
    let mut refused = None;
    for _ in 0..4 {
        let opened = r.req("POST", "/v1/rendezvous", None, b"");
        let (n, side) = (
            opened.json()["nameplate"].as_str().unwrap().to_owned(),
            opened.json()["side_token"].as_str().unwrap().to_owned(),
        );
        let posted = r.req("POST", &format!("/v1/rendezvous/{n}/messages"), Some(&side), &body);
        if posted.status == 201 {
            stored += 1;
        } else {
            refused = Some(posted);
        }
    }
    let refused = refused.expect("the cap was reached");
    assert_eq!((stored, refused.status, refused.code().as_str()), (3, 507, "quota_exceeded"));
    let metrics = r.req("GET", "/metrics", None, b"").text();
    assert!(metrics.contains(&format!("wire_relay_rendezvous_bytes {}", 3 * 40 * 1024)), "{metrics}");
}

#[test]
fn latency_histograms_count_every_request_per_route_and_name_no_slot() {
    let r = TestRelay::start(false);
    let (slot, owner) = r.slot();
    for _ in 0..5 {
        assert_eq!(r.append(&slot, &owner, &envelope(256)).status, 201);
    }
    r.list(&slot, &owner, 0);
    let text = r.req("GET", "/metrics", None, b"").text();
    let value = |line: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    };
    let name = "wire_relay_request_duration_seconds";
    assert_eq!(value(&format!("{name}_count{{route=\"append\"}}")), 5);
    assert_eq!(value(&format!("{name}_bucket{{route=\"append\",le=\"+Inf\"}}")), 5);
    assert_eq!(value(&format!("{name}_count{{route=\"list\"}}")), 1);
    assert_eq!(value(&format!("{name}_count{{route=\"allocate\"}}")), 1);
    // Buckets are cumulative: never decreasing, ending at the count.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{route=\"append\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]) && buckets.last() == Some(&5), "{buckets:?}");
    assert!(!text.contains(&slot), "no label carries a slot id");
    // Commits and their batches: the slot and five appends at least (the maintenance
    // task's expiry sweeps commit too), never more commits than writes.
    let (commits, writes) = (value("wire_relay_commits_total "), value("wire_relay_committed_writes_total "));
    assert!(commits >= 1 && writes >= 6 && commits <= writes, "{commits} commits of {writes} writes");
    assert!(value("wire_relay_commit_duration_seconds_count ") >= 1, "{text}");
}
