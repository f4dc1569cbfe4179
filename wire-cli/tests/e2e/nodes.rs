//! Several relay nodes on one PostgreSQL database (docs/ARCHITECTURE.md, "Many relay
//! nodes"): real `wire relay-server` processes on loopback sharing a fresh database on the
//! private cluster `.ci/test` starts. Every test here needs that cluster (`WIRE_TEST_PG`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use wire_testkit::http::{sse, sse_ids};
use wire_testkit::relay::{envelope, fresh_database};

use crate::common::{RelayProcess, WAIT, Wire, eventually, metric, request, tempdir};

fn nodes(root: &std::path::Path, db: &str, n: usize, env: &[(&str, &str)]) -> Vec<RelayProcess> {
    (0..n).map(|i| RelayProcess::start_node(db, &root.join(format!("node{i}.log")), &[], env)).collect()
}

fn post(addr: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let (status, body) = request(addr, "POST", path, token, body);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn slot(addr: &str) -> (String, String) {
    let (status, v) = post(addr, "/v1/slots", None, b"");
    assert_eq!(status, 201, "{v}");
    (v["slot"].as_str().unwrap().to_owned(), v["owner_token"].as_str().unwrap().to_owned())
}

fn grant(addr: &str, slot: &str, owner: &str) -> (String, String) {
    let (status, v) = post(addr, &format!("/v1/slots/{slot}/grants"), Some(owner), br#"{"kind":"send"}"#);
    assert_eq!(status, 201, "{v}");
    (v["grant_id"].as_str().unwrap().to_owned(), v["token"].as_str().unwrap().to_owned())
}

fn addr(node: &RelayProcess) -> std::net::SocketAddr {
    node.addr.parse().unwrap()
}

#[test]
#[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
fn three_nodes_serve_one_slot_its_stream_its_grants_and_revocations() {
    let root = tempdir("nodes-three");
    let db = fresh_database("nodes_three");
    let n = nodes(&root, &db, 3, &[]);
    let (slot, owner) = slot(&n[0].addr);
    // A grant minted on node 2 works at once on node 3.
    let (grant_id, send) = grant(&n[1].addr, &slot, &owner);
    let events = format!("/v1/slots/{slot}/events");
    let (status, first) = post(&n[2].addr, &events, Some(&send), &envelope(256));
    assert_eq!((status, first["seq"].as_u64()), (201, Some(1)), "{first}");
    // A subscriber on node 3, live before the next appends, which go to node 1.
    let stream = format!("/v1/slots/{slot}/stream");
    let (at, path, token) = (addr(&n[2]), stream.clone(), owner.clone());
    let subscriber = std::thread::spawn(move || sse(at, &path, &token, Some(1), "id: 4\n"));
    eventually(WAIT, "the stream on node 3", || (metric(&n[2].addr, "wire_relay_streams_open") == 1).then_some(()));
    for _ in 0..3 {
        assert_eq!(post(&n[0].addr, &events, Some(&send), &envelope(256)).0, 201);
    }
    assert_eq!(sse_ids(&subscriber.join().unwrap()), vec![2, 3, 4], "what node 1 stored, streamed by node 3");
    // Resume on node 2 from Last-Event-ID 2: exactly what came after.
    let resumed = sse(addr(&n[1]), &stream, &owner, Some(2), "id: 4\n");
    assert_eq!(sse_ids(&resumed), vec![3, 4]);
    // Revoked on node 1: refused at once on node 2 (which had used the grant).
    let (status, _) = request(&n[0].addr, "DELETE", &format!("/v1/slots/{slot}/grants/{grant_id}"), Some(&owner), b"");
    assert_eq!(status, 200);
    let (status, refused) = post(&n[1].addr, &events, Some(&send), &envelope(256));
    assert_eq!(status, 403, "{refused}");
    // Acked on node 3: node 1 answers from the new floor.
    let (status, _) = post(&n[2].addr, &format!("/v1/slots/{slot}/ack"), Some(&owner), br#"{"through":3}"#);
    assert_eq!(status, 200);
    let (status, body) = request(&n[0].addr, "GET", &format!("{events}?after=3"), Some(&owner), b"");
    let listed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, listed["events"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");
    let (_, body) = request(&n[0].addr, "GET", &format!("{events}?after=1"), Some(&owner), b"");
    let stale: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(stale["error"]["code"], "cursor_expired", "a cursor below the floor another node moved: {stale}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
#[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
fn a_wake_up_lost_on_the_way_is_delivered_by_the_sweep() {
    let root = tempdir("nodes-sweep");
    let db = fresh_database("nodes_sweep");
    // Node 0 sends no append hints at all; node 1 sweeps every second.
    let quiet = RelayProcess::start_node(&db, &root.join("quiet.log"), &[], &[("WIRE_RELAY_FAILPOINT", "drop-hints")]);
    let sweeping = RelayProcess::start_node(&db, &root.join("sweeping.log"), &["--sweep", "1s"], &[]);
    let (slot, owner) = slot(&quiet.addr);
    let stream = format!("/v1/slots/{slot}/stream");
    let (at, token) = (addr(&sweeping), owner.clone());
    let subscriber = std::thread::spawn(move || sse(at, &stream, &token, None, "id: 1\n"));
    eventually(WAIT, "the stream", || (metric(&sweeping.addr, "wire_relay_streams_open") == 1).then_some(()));
    assert_eq!(post(&quiet.addr, &format!("/v1/slots/{slot}/events"), Some(&owner), &envelope(256)).0, 201);
    assert_eq!(sse_ids(&subscriber.join().unwrap()), vec![1]);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
#[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
fn a_node_killed_mid_stream_loses_no_acknowledged_append_and_repeats_no_sequence() {
    let root = tempdir("nodes-kill");
    let db = fresh_database("nodes_kill");
    let mut n = nodes(&root, &db, 2, &[]);
    let (slot, owner) = slot(&n[1].addr);
    let events = format!("/v1/slots/{slot}/events");
    // Four senders append to node 0 as fast as it answers, until it is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (addr, events, owner, stop) = (n[0].addr.clone(), events.clone(), owner.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let resp = wire_testkit::http::request(&addr, "POST", &events, Some(&owner), &[], &envelope(256));
                    if resp.status != 201 {
                        break;
                    }
                    acked.push(resp.json()["seq"].as_u64().unwrap());
                }
                acked
            })
        })
        .collect();
    eventually(WAIT, "a few hundred appends", || (metric(&n[0].addr, "wire_relay_appends_total") >= 300).then_some(()));
    n.remove(0).kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<u64> = senders.into_iter().flat_map(|s| s.join().unwrap()).collect();
    acked.sort_unstable();
    // Node 1 holds every acknowledged append, each sequence number once, with no gap.
    let mut stored = Vec::new();
    loop {
        let after = stored.last().copied().unwrap_or(0);
        let (status, body) =
            request(&n[0].addr, "GET", &format!("{events}?after={after}&limit=1000"), Some(&owner), b"");
        assert_eq!(status, 200);
        let page: Value = serde_json::from_slice(&body).unwrap();
        stored.extend(page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        if page["more"] != true {
            break;
        }
    }
    assert!(acked.len() >= 300, "{} appends acknowledged", acked.len());
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>(), "contiguous, each once");
    assert!(acked.iter().all(|s| stored.binary_search(s).is_ok()), "every acknowledged append is stored");
    assert_eq!(acked.windows(2).filter(|w| w[0] == w[1]).count(), 0, "no sequence number given twice");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
#[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
fn two_agents_whose_daemons_use_different_nodes_talk() {
    let root = tempdir("nodes-agents");
    let db = fresh_database("nodes_agents");
    let n = nodes(&root, &db, 2, &[]);
    let (a, b) = (Wire::new(&root, "a"), Wire::new(&root, "b"));
    a.json(&["init", "--relay", &n[0].addr]);
    // a reads on node 0, b on node 1; each delivers to the other's node.
    b.json(&["init", "--relay", &n[1].addr]);
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);
    a.json(&["pull"]);
    b.json(&["pull"]);
    a.json(&["daemon", "start"]);
    b.json(&["daemon", "start"]);
    a.json(&["send", &b.nickname(), "hello from node 0"]);
    b.json(&["send", &a.nickname(), "hello from node 1"]);
    for (w, want) in [(&a, "hello from node 1"), (&b, "hello from node 0")] {
        eventually(WAIT, want, || {
            let got = w.run(&["tail", "--json"]).ok().stdout;
            got.lines().any(|l| serde_json::from_str::<Value>(l).unwrap()["body"] == want).then_some(())
        });
    }
    a.json(&["daemon", "stop"]);
    b.json(&["daemon", "stop"]);
    std::fs::remove_dir_all(&root).ok();
}
