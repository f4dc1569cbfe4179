//! Benchmark of `wire mcp` notifications: how long from `send` on one agent until the other
//! agent's MCP host is told (a `notifications/claude/channel` with the message), against a
//! baseline measured in the same run: the relay's own wake-up of the recipient's event
//! stream, the earliest moment anything event-driven could know.
//!
//! ```sh
//! cargo build --release -p wire-cli && cargo build --release -p wire-cli --example mcp_bench
//! ./target/release/wire relay-server --bind 127.0.0.1:9302 --data /tmp/mbench/relay --ip-rate 0 --token-rate 0 &
//! ./target/release/examples/mcp_bench --bin ./target/release/wire --relay 127.0.0.1:9302 --dir /tmp/mbench [--n 300]
//! ```
//!
//! Sends use `wire_core::endpoint::Endpoint::send` in-process, paced 20 per second, and
//! each latency runs from just before the send to the moment the notification (or the
//! stream event) is read. Figures: docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wire_core::client::{Client, RelayUrl, StreamItem};
use wire_core::endpoint::Endpoint;
use wire_core::home::{Account, Home};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

fn wire(bin: &str, home: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin).args(args).arg("--json").env("WIRE_HOME", home).output().unwrap();
    assert!(out.status.success(), "wire {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut lat: Vec<f64>) -> f64 {
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!("{name:<44} n={:<4} p50 {p50:6.2} ms  p99 {p99:6.2} ms  max {:6.2} ms", lat.len(), lat[lat.len() - 1]);
    p50
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bin = arg("--bin", "./target/release/wire");
    let relay = arg("--relay", "127.0.0.1:9302");
    let dir = std::path::PathBuf::from(arg("--dir", "/tmp/mbench"));
    let n: usize = arg("--n", "300").parse().unwrap();
    let _ = std::fs::remove_dir_all(dir.join("a"));
    let _ = std::fs::remove_dir_all(dir.join("b"));
    let (ha, hb) = (dir.join("a"), dir.join("b"));
    wire(&bin, &ha, &["init", "--relay", &relay]);
    wire(&bin, &hb, &["init", "--relay", &relay]);
    let url = wire(&bin, &ha, &["invite"])["url"].as_str().unwrap().to_owned();
    wire(&bin, &hb, &["accept", &url]);
    wire(&bin, &ha, &["pull"]);
    wire(&bin, &hb, &["pull"]);
    let a = Endpoint::open(Home::at(&ha)).unwrap();
    let b_did = Endpoint::open(Home::at(&hb)).unwrap().identity.did().to_string();

    // Baseline: the recipient's own event stream, woken by the relay.
    let account = Home::at(&hb).load::<Account>().unwrap().unwrap();
    let client = Client::new(RelayUrl::parse(&account.relay).unwrap());
    let mut stream = client.stream(&account.slot, &account.owner_token, account.cursor).await.unwrap();
    let mut base = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        a.send(&b_did, "message", format!("base {i}").into(), false).await.unwrap();
        while !matches!(stream.next().await.unwrap(), StreamItem::Envelope(_)) {} // past the hello
        base.push(t0.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stream);
    wire(&bin, &hb, &["pull"]); // the baseline messages, out of the way

    // `wire mcp` for the recipient, as Claude Code starts it.
    let mut child = Command::new(&bin)
        .arg("mcp")
        .env("WIRE_HOME", &hb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, serde_json::Value)>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let at = Instant::now();
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send((at, v)).is_err()
            {
                break;
            }
        }
    });
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
    writeln!(stdin, "{init}").unwrap();
    writeln!(stdin, "{}", serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).unwrap();
    while rx.recv().unwrap().1["id"] != 1 {}
    tokio::time::sleep(Duration::from_millis(500)).await; // the watcher's stream opens

    let mut mcp = Vec::new();
    for i in 0..n {
        let body = format!("mcp {i}");
        let t0 = Instant::now();
        a.send(&b_did, "message", body.clone().into(), false).await.unwrap();
        let at = loop {
            let (at, v) = rx.recv_timeout(Duration::from_secs(10)).expect("no notification within 10 s");
            let content =
                v["params"]["content"].as_str().and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
            if v["method"] == "notifications/claude/channel"
                && content.is_some_and(|c| c["untrusted_peer_text"] == body.as_str())
            {
                break at;
            }
        };
        mcp.push(at.duration_since(t0).as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    let b50 = summary("baseline: send -> recipient's stream wakes", base);
    let m50 = summary("wire mcp: send -> channel notification", mcp);
    println!("ratio at p50: {:.2}x the baseline", m50 / b50);
}
