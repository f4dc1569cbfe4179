//! Benchmark of the sync daemon, end to end: send -> peer inbox through a real relay and
//! one daemon serving 10 identities. Setup uses the real `wire` binary; sending uses the
//! same `wire_core::endpoint` operation as `wire send` (without a process per message).
//!
//! ```sh
//! cargo build --release -p wire-cli --example daemon_bench
//! ./target/release/wire relay-server --bind 127.0.0.1:9301 --data /tmp/dbench/relay --ip-rate 0 --token-rate 0 &
//! ./target/release/examples/daemon_bench --bin ./target/release/wire --relay 127.0.0.1:9301 --dir /tmp/dbench
//! ```
//!
//! Latency is each inbox line's `received_at` minus the event's `created_at` (both from
//! this machine's clock, millisecond resolution). Traffic per message is read from the
//! relay's /metrics (requests, request and response body bytes: every leg, the metrics
//! scrapes included). Figures: docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wire_core::endpoint::Endpoint;
use wire_core::home::Home;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

fn wire(bin: &str, home: &Path, daemon: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin)
        .args(args)
        .arg("--json")
        .env("WIRE_HOME", home)
        .env("WIRE_DAEMON_DIR", daemon)
        .output()
        .unwrap();
    assert!(out.status.success(), "wire {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn proc_field(pid: u64, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap()
}

fn cpu_ticks(pid: u64) -> u64 {
    let stat = proc_field(pid, "stat");
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u64) -> u64 {
    proc_field(pid, "status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `(created_at, received_at)` of every inbox line of every home.
fn inbox_lines(homes: &[PathBuf]) -> Vec<(u64, u64)> {
    homes
        .iter()
        .flat_map(|h| Home::at(h).read_inbox().unwrap())
        .map(|l| (l.event.created_at.0, l.received_at.0))
        .collect()
}

/// The relay's request count and body bytes in both directions so far (its /metrics).
fn relay_traffic(relay: &str) -> (u64, u64) {
    let m = |name| wire_testkit::http::metric(relay, name);
    (m("wire_relay_requests_total"), m("wire_relay_request_bytes_total") + m("wire_relay_response_bytes_total"))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = arg("--bin", "./target/release/wire");
    let relay = arg("--relay", "127.0.0.1:9301");
    let dir = PathBuf::from(arg("--dir", "/tmp/dbench"));
    let n: usize = arg("--identities", "10").parse().unwrap();
    let burst: usize = arg("--burst", "200").parse().unwrap();
    let daemon = dir.join("daemon");
    let homes: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("agent{i}"))).collect();
    for h in &homes {
        wire(&bin, h, &daemon, &["up", &relay]);
    }
    // Pair in a ring: i with i+1.
    for i in 0..n {
        let (a, b) = (&homes[i], &homes[(i + 1) % n]);
        let url = wire(&bin, a, &daemon, &["invite"])["url"].as_str().unwrap().to_owned();
        wire(&bin, b, &daemon, &["accept", &url]);
        wire(&bin, a, &daemon, &["pull"]);
        wire(&bin, b, &daemon, &["pull"]);
    }
    let started = wire(&bin, &homes[0], &daemon, &["daemon", "start", "--no-notify"]);
    let pid = started["pid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peer_of: Vec<String> =
        (0..n).map(|i| Endpoint::open(Home::at(&homes[(i + 1) % n])).unwrap().identity.did().to_string()).collect();

    // Throughput: every identity sends `burst` messages to its ring neighbour at once.
    let before = inbox_lines(&homes).len();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, h) in homes.iter().enumerate() {
        let (h, to) = (h.clone(), peer_of[i].clone());
        tasks.push(tokio::spawn(async move {
            let ep = Endpoint::open(Home::at(&h)).unwrap();
            for k in 0..burst {
                ep.send(&to, "message", format!("burst {k}").into(), false).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sent_in = t0.elapsed();
    while inbox_lines(&homes).len() < before + n * burst {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_in = t0.elapsed();
    println!(
        "{{\"phase\":\"throughput\",\"identities\":{n},\"messages\":{},\"send_seconds\":{:.2},\"to_inbox_seconds\":{:.2},\"per_sec\":{:.0}}}",
        n * burst,
        sent_in.as_secs_f64(),
        all_in.as_secs_f64(),
        (n * burst) as f64 / all_in.as_secs_f64()
    );

    // Latency at a low rate: 20 messages/s spread over the identities for 10 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let endpoints: Vec<Endpoint> = homes.iter().map(|h| Endpoint::open(Home::at(h)).unwrap()).collect();
    let before = inbox_lines(&homes).len();
    let (requests0, bytes0) = relay_traffic(&relay);
    let start = tokio::time::Instant::now();
    for k in 0..200usize {
        tokio::time::sleep_until(start + Duration::from_millis(50) * k as u32).await;
        let i = k % n;
        endpoints[i].send(&peer_of[i], "message", format!("paced {k}").into(), false).await.unwrap();
    }
    while inbox_lines(&homes).len() < before + 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (requests1, bytes1) = relay_traffic(&relay);
    let mut lines = inbox_lines(&homes);
    lines.sort();
    let mut lat: Vec<u64> = lines.iter().rev().take(200).map(|(c, r)| r.saturating_sub(*c)).collect();
    lat.sort();
    println!(
        "{{\"phase\":\"latency\",\"messages\":200,\"rate_per_sec\":20,\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"relay_requests_per_msg\":{:.2},\"relay_bytes_per_msg\":{}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().unwrap(),
        (requests1 - requests0) as f64 / 200.0,
        (bytes1 - bytes0) / 200
    );

    // Large messages: what one 512 KiB message costs on the wire, all legs together.
    let big = "x".repeat(512 * 1024);
    let before = inbox_lines(&homes).len();
    let (requests0, bytes0) = relay_traffic(&relay);
    for k in 0..20usize {
        let i = k % n;
        endpoints[i].send(&peer_of[i], "message", big.clone().into(), false).await.unwrap();
        while inbox_lines(&homes).len() < before + k + 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (requests1, bytes1) = relay_traffic(&relay);
    println!(
        "{{\"phase\":\"large\",\"messages\":20,\"body_bytes\":{},\"relay_requests_per_msg\":{:.2},\"relay_bytes_per_msg\":{}}}",
        big.len(),
        (requests1 - requests0) as f64 / 20.0,
        (bytes1 - bytes0) / 20
    );

    // Idle: CPU time over 10 s and resident memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, t) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ticks = cpu_ticks(pid) - c0;
    let cpu_pct = ticks as f64 / 100.0 / t.elapsed().as_secs_f64() * 100.0;
    println!("{{\"phase\":\"idle\",\"identities\":{n},\"cpu_percent\":{cpu_pct:.2},\"rss_kib\":{}}}", rss_kib(pid));
    wire(&bin, &homes[0], &daemon, &["daemon", "stop"]);
}
