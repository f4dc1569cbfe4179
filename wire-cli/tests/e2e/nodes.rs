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
    (0..n).map(|i| RelayProcess::start_node(db, &root.join(format!("node{i}.log")), &["--sweep", "1s"], env)).collect()
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
    // Each node counts the three (its rate limits allow a third each).
    for node in &n {
        eventually(WAIT, "three nodes alive", || (metric(&node.addr, "wire_relay_nodes_live") == 3).then_some(()));
    }
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

#[test]
#[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
fn a_code_pairing_whose_host_is_on_one_node_and_guest_on_another_completes() {
    let root = tempdir("nodes-code");
    let db = fresh_database("nodes_code");
    let n = nodes(&root, &db, 2, &[]);
    let (a, b) = (Wire::new(&root, "a"), Wire::new(&root, "b"));
    a.json(&["up", &n[0].addr]);
    b.json(&["up", &n[1].addr]);
    let code = a.json(&["pair-host", "--detach", "--reveal"])["code"].as_str().unwrap().to_owned();
    b.json(&["pair-join", &code, "--detach"]);
    let sas = |w: &Wire, other: &Wire| {
        eventually(WAIT, "the six digits", || {
            other.run(&["pair-list", "--json", "--reveal"]);
            let list = w.json(&["pair-list", "--reveal"]);
            let last = list.as_array().unwrap().last().cloned().unwrap_or(Value::Null);
            (last["state"] == "sas_ready").then(|| last["sas"].as_str().unwrap().to_owned())
        })
    };
    let (a_sas, b_sas) = (sas(&a, &b), sas(&b, &a));
    assert_eq!(a_sas, b_sas, "both sides derived the same digits through two nodes");
    a.json(&["pair-confirm", &code, &b_sas]);
    b.json(&["pair-confirm", &code, &a_sas]);
    eventually(WAIT, "both pinned", || {
        a.run(&["pair-list", "--json"]);
        b.run(&["pair-list", "--json"]);
        let pinned = |w: &Wire| w.json(&["peers"]).as_array().unwrap().len();
        (pinned(&a) == 1 && pinned(&b) == 1).then_some(())
    });
    a.json(&["send", &b.nickname(), "paired across nodes"]);
    assert_eq!(b.json(&["pull"])["received"], 1);
    std::fs::remove_dir_all(&root).ok();
}

/// A PostgreSQL cluster of the test's own (this one is stopped and started), in `dir`.
struct Cluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl Cluster {
    /// initdb as the `postgres` user when running as root (initdb refuses root).
    fn pg(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let mut cmd = if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn new(root: &std::path::Path) -> Self {
        let bin = std::env::var_os("WIRE_TEST_PG_BIN").map(std::path::PathBuf::from).expect("WIRE_TEST_PG_BIN");
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::process::Command::new("chown").args(["-R", "postgres"]).arg(root).status();
        let c = Self { dir, bin };
        let data = c.dir.join("data");
        c.pg("initdb", &["-D", data.to_str().unwrap(), "--auth=trust", "-U", "postgres"]);
        c.start();
        c
    }

    fn start(&self) {
        let (data, log) = (self.dir.join("data"), self.dir.join("log"));
        let opts = format!("-k {} -c listen_addresses=''", self.dir.display());
        self.pg("pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-o", &opts, "start"]);
    }

    fn stop_immediate(&self) {
        self.pg("pg_ctl", &["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("host={} user=postgres dbname=postgres", self.dir.display())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ =
            std::panic::catch_unwind(|| self.pg("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]));
    }
}

#[test]
#[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG, WIRE_TEST_PG_BIN)"]
fn postgres_stopped_immediately_and_restarted_under_load_loses_nothing_acknowledged() {
    let root = tempdir("nodes-pg-restart");
    let cluster = Cluster::new(&root);
    let node = RelayProcess::start_node(&cluster.url(), &root.join("node.log"), &[], &[]);
    let (slot, owner) = slot(&node.addr);
    let events = format!("/v1/slots/{slot}/events");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (addr, events, owner, stop) = (node.addr.clone(), events.clone(), owner.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut acked, mut failed) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let resp = wire_testkit::http::request(&addr, "POST", &events, Some(&owner), &[], &envelope(256));
                match resp.status {
                    201 => acked.push(resp.json()["seq"].as_u64().unwrap()),
                    _ => failed += 1,
                }
            }
            (acked, failed)
        })
    };
    eventually(WAIT, "appends before the stop", || {
        (metric(&node.addr, "wire_relay_appends_total") >= 200).then_some(())
    });
    cluster.stop_immediate();
    cluster.start();
    let before = metric(&node.addr, "wire_relay_appends_total");
    eventually(WAIT, "appends after the restart", || {
        (metric(&node.addr, "wire_relay_appends_total") >= before + 200).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let (mut acked, failed) = sender.join().unwrap();
    acked.sort_unstable();
    let mut stored = Vec::new();
    loop {
        let after = stored.last().copied().unwrap_or(0);
        let (status, body) =
            request(&node.addr, "GET", &format!("{events}?after={after}&limit=1000"), Some(&owner), b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page: Value = serde_json::from_slice(&body).unwrap();
        stored.extend(page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        if page["more"] != true {
            break;
        }
    }
    assert!(acked.iter().all(|s| stored.binary_search(s).is_ok()), "every acknowledged append survived");
    assert_eq!(acked.windows(2).filter(|w| w[0] == w[1]).count(), 0, "no sequence number given twice");
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>(), "contiguous");
    eprintln!("{} acknowledged, {failed} refused while the database was down", acked.len());
    drop(node);
    drop(cluster);
    std::fs::remove_dir_all(&root).ok();
}
