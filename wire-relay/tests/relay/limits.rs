//! What one client address can hold of a relay: connections, slow requests, slots,
//! nameplates; and how long dead grants are kept. Each limit is driven past, over real
//! sockets, and its metric read back.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use wire_core::clock::ManualClock;
use wire_relay::{Config, Rate};

use crate::common::{Resp, TestRelay, WAIT, config, eventually, tempdir, wait_until};

fn relay_with(tweak: impl FnOnce(&mut Config)) -> TestRelay {
    let dir = tempdir("limits");
    let mut cfg = config(false, &dir);
    tweak(&mut cfg);
    TestRelay::with_config(cfg, dir)
}

/// A keep-alive connection proven served.
fn served(r: &TestRelay) -> TcpStream {
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    s
}

/// Reads until the relay closes the connection; what it sent first, if anything.
fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the relay kept the connection open ({e})"),
        }
    }
}

/// A metric read over a connection already held (a new one would be refused).
fn metric_on(s: &mut TcpStream, name: &str) -> u64 {
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the relay closed a held connection");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap();
            if body.len() >= length {
                return body
                    .lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
                    .unwrap_or_else(|| panic!("no metric {name}"));
            }
        }
    }
}

#[test]
fn one_address_holds_a_bounded_share_of_connections() {
    let r = relay_with(|c| c.max_connections_per_ip = 3);
    let (slot, owner) = r.slot();
    let mut open: Vec<TcpStream> = (0..2).map(|_| served(&r)).collect();
    // Every other connection (the slot's, above) has given its place back.
    wait_until(WAIT, "only the two to be open", || metric_on(&mut open[0], "wire_relay_connections_open ") == 2);
    // An event stream on a slot of one's own (the lean path) takes a place like any other.
    let mut stream = TcpStream::connect(r.addr).unwrap();
    let head = format!("GET /v1/slots/{slot}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    wait_until(WAIT, "the stream to open", || metric_on(&mut open[0], "wire_relay_streams_open ") == 1);
    open.push(stream);
    let mut fourth = TcpStream::connect(r.addr).unwrap();
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(until_closed(&mut fourth).is_empty(), "refused unread, without an answer");
    assert_eq!(metric_on(&mut open[0], "wire_relay_connections_refused_total "), 1);
    // A place given back is a place to take (the stream's, here).
    drop(open.pop());
    wait_until(WAIT, "the closed connection to give its place back", || {
        metric_on(&mut open[0], "wire_relay_connections_open ") == 2
    });
    open.push(served(&r));
    assert_eq!(metric_on(&mut open[0], "wire_relay_connections_refused_total "), 1);
}

#[test]
fn slow_senders_are_cut_off_whatever_they_trickle() {
    let r = relay_with(|c| c.request_timeout = Duration::from_millis(400));
    let (slot, owner) = r.slot();

    // A head that never ends, one byte at a time: hyper's path.
    let mut head = TcpStream::connect(r.addr).unwrap();
    head.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut trickle = head.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        // Stops when the relay has closed the connection (a write fails).
        for _ in 0..2_000 {
            if trickle.write_all(b"x").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let _ = until_closed(&mut head);
    assert!(feeder.join().unwrap(), "the trickling sender was cut off");
    wait_until(WAIT, "the head timeout to be counted", || r.metric("wire_relay_request_timeouts_total") == 1);

    // A stream request whose head never ends: the lean path.
    let mut lean = TcpStream::connect(r.addr).unwrap();
    lean.write_all(format!("GET /v1/slots/{slot}/stream HTTP/1.1\r\nHost: x\r\n").as_bytes()).unwrap();
    assert!(until_closed(&mut lean).is_empty());
    wait_until(WAIT, "the lean head timeout to be counted", || r.metric("wire_relay_request_timeouts_total") == 2);

    // A body that never ends: an answer that says so, and the connection closed.
    let mut body = TcpStream::connect(r.addr).unwrap();
    let request = format!(
        "POST /v1/slots/{slot}/grants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\""
    );
    body.write_all(request.as_bytes()).unwrap();
    let answer = Resp::parse(&until_closed(&mut body));
    assert_eq!((answer.status, answer.code().as_str()), (408, "request_timeout"));
    assert_eq!(r.metric("wire_relay_request_timeouts_total"), 3);
    // Prompt clients are untouched.
    assert_eq!(r.req("GET", "/healthz", None, b"").status, 200);
}

#[test]
fn one_address_allocates_slots_at_a_bounded_rate() {
    let r = relay_with(|c| c.slot_rate = Rate { per_sec: 1.0 / 3600.0, burst: 3.0 });
    let codes: Vec<u16> = (0..3).map(|_| r.req("POST", "/v1/slots", None, b"").status).collect();
    assert_eq!(codes, vec![201, 201, 201]);
    let limited = r.req("POST", "/v1/slots", None, b"");
    assert_eq!((limited.status, limited.code().as_str()), (429, "rate_limited"));
    assert!(limited.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 60)));
    assert_eq!(r.metric("wire_relay_rate_limited_total"), 1);
    assert_eq!(r.metric("wire_relay_slots_total"), 3);
}

fn open(r: &TestRelay) -> Resp {
    r.req("POST", "/v1/rendezvous", None, b"")
}

#[test]
fn one_address_holds_a_bounded_share_of_pairings() {
    let r = relay_with(|c| c.rendezvous_per_ip = 2);
    let first = open(&r).json();
    let (n, side) = (first["nameplate"].as_str().unwrap().to_owned(), first["side_token"].as_str().unwrap().to_owned());
    assert_eq!(open(&r).status, 201);
    let third = open(&r);
    assert_eq!((third.status, third.code().as_str()), (507, "quota_exceeded"));
    assert!(third.text().contains("pairings in progress"), "{}", third.text());
    // Joining takes a side too: the address cannot grab the nameplates others print.
    assert_eq!(r.req("POST", &format!("/v1/rendezvous/{n}/join"), None, b"").code(), "quota_exceeded");
    assert_eq!(r.metric("wire_relay_rendezvous_refused_total"), 2);
    // A closed pairing gives its place back at once.
    assert_eq!(r.req("DELETE", &format!("/v1/rendezvous/{n}"), Some(&side), b"").status, 200);
    assert_eq!(open(&r).status, 201);
}

#[test]
fn nameplates_are_drawn_at_random_so_numbers_in_use_cannot_be_guessed() {
    let r = TestRelay::start(false);
    let numbers: Vec<u32> = (0..30).map(|_| open(&r).json()["nameplate"].as_str().unwrap().parse().unwrap()).collect();
    let mut distinct = numbers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 30, "{numbers:?}");
    assert!(numbers.iter().all(|n| (1..=1_000).contains(n)), "short codes: {numbers:?}");
    // Counted from 1 they would be 1..=30; drawn from a thousand, almost surely not.
    assert!(distinct.last().is_some_and(|max| *max > 30), "{numbers:?}");
}

#[test]
fn dead_grants_are_forgotten_a_retention_period_after_expiry() {
    let clock = ManualClock::starting_now();
    let r = relay_with(|c| {
        c.clock = clock.shared();
        c.maintenance_interval = Duration::from_millis(10);
        c.retention = Duration::from_secs(3_600);
    });
    let (slot, owner) = r.slot();
    let (_, short) = r.grant(&slot, &owner, json!({"kind": "intro", "ttl_secs": 60}));
    let (_, lasting) = r.grant(&slot, &owner, json!({"kind": "send"}));
    let intro = |token: &str| r.append(&slot, token, &crate::common::envelope(256));
    clock.advance(Duration::from_secs(120));
    assert_eq!(intro(&short).code(), "gone", "within retention an expired token says so");
    clock.advance(Duration::from_secs(3_600));
    wait_until(WAIT, "the expired grant to be purged", || r.metric("wire_relay_grants_purged_total") == 1);
    let forgotten = eventually(WAIT, "the purged token to be unknown", || {
        let resp = intro(&short);
        (resp.status == 401).then_some(resp)
    });
    assert_eq!(forgotten.code(), "unauthorized");
    assert_eq!(r.append(&slot, &lasting, &crate::common::envelope(256)).status, 201, "live grants stay");
    assert_eq!(r.metric("wire_relay_grants_purged_total"), 1);
}
