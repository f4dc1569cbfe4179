//! Load generator for the relay (and the `hello` ceiling). Modes:
//!
//! `--urls A,B,..` in place of `--url` spreads the work over relay nodes that share one
//! PostgreSQL store: appends sender i talks to node i mod n; in latency mode slot k's
//! appends go to node k mod n and its stream is held on node k+1 mod n.
//!
//! - `appends --url U --concurrency C --seconds S [--hello] [--slots N] [--hot F]`: C
//!   senders, one keep-alive connection each, appending 1 KiB envelopes back to back. By
//!   default each sender has its own slot; `--slots N` shares N slots round-robin, and
//!   `--hot F` sends the fraction F of requests to the first slot (the others' latency is
//!   reported apart as `cold_p99_us`). With `--hello` the same requests go to the hello
//!   server. Prints requests/s and latency p50/p99.
//! - `latency --url U --rate R --slots N --seconds S [--in-step]`: N slots each with an
//!   SSE stream; 8 paced senders append at R/s in all, evenly spaced (`--in-step`: the
//!   eight together, bursts of 8 at R/8 per second), spread over the slots; measures
//!   append-to-SSE delivery p50/p99.
//! - `streams --url U --count N --pid P [--uds PATH | --tls-ca PEM]`: opens N idle SSE
//!   streams (one slot each) over plain TCP, the relay's Unix socket, or TLS (server name
//!   `localhost`), and reports the relay's resident memory per stream (/proc/P/status).
//! - `fsync --file F --seconds S`: writes 4 KiB to F and `fdatasync`s it, over and over,
//!   and reports the fsync latency p50/p99/max: the disk's reference for the relay's tail
//!   (`pg_test_fsync` gives the same disk's mean).
//! - `fill --data DIR --count N`: writes N envelopes into a relay's SQLite store directly.
//! - `startup --bin WIRE --data DIR | --store URL`: starts `WIRE relay-server` on DIR (or
//!   as a node of the PostgreSQL store URL) and times until `/healthz` answers.
//!
//! Exact commands and figures: docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

type Args = HashMap<String, String>;

fn parse_args() -> (String, Args) {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_default();
    let mut args = HashMap::new();
    while let Some(k) = it.next() {
        let key = k.trim_start_matches("--").to_owned();
        if key == "hello" || key == "in-step" {
            args.insert(key, "1".into());
        } else {
            args.insert(key, it.next().unwrap_or_default());
        }
    }
    (mode, args)
}

fn get<T: std::str::FromStr>(args: &Args, key: &str, default: T) -> T {
    args.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn host(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// `--urls a,b,c` (relay nodes sharing one store), else `--url`.
fn hosts(args: &Args) -> Vec<String> {
    match args.get("urls") {
        Some(list) => list.split(',').map(host).collect(),
        None => vec![host(args.get("url").expect("--url or --urls"))],
    }
}

async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let mut req = Request::builder().method(method).uri(path).header("host", "relay");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = sender.send_request(req.body(Full::new(body)).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn slot(sender: &mut SendRequest<Full<Bytes>>) -> (String, String) {
    let (status, body) = call(sender, "POST", "/v1/slots", None, Bytes::new()).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    (v["slot"].as_str().unwrap().to_owned(), v["owner_token"].as_str().unwrap().to_owned())
}

fn envelope(stamp: Option<u64>) -> Bytes {
    let mut e = vec![0u8; 1 + 32 + 1024 + 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut e);
    e[0] = 1;
    if let Some(ns) = stamp {
        e[1..9].copy_from_slice(&ns.to_be_bytes());
    }
    Bytes::from(e)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn appends(args: &Args) {
    // Sender i talks to node i mod n; slots are allocated on the first.
    let nodes = hosts(args);
    let addr = nodes[0].clone();
    let concurrency = get(args, "concurrency", 16usize);
    let seconds = get(args, "seconds", 10u64);
    let hello = args.contains_key("hello");
    let hot = get(args, "hot", 0.0f64);
    let shared = get(args, "slots", 0usize);
    // The slots, allocated before the clock starts: shared, or one per sender.
    let mut setup = connect(&addr).await;
    let mut targets = Vec::new();
    if !hello {
        for _ in 0..if shared > 0 { shared } else { concurrency } {
            let (slot, owner) = slot(&mut setup).await;
            targets.push((format!("/v1/slots/{slot}/events"), Some(owner)));
        }
    } else {
        targets.push(("/".to_owned(), None));
    }
    let targets = Arc::new(targets);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for sender_index in 0..concurrency {
        let (addr, stop, targets) = (nodes[sender_index % nodes.len()].clone(), stop.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(&addr).await;
            let (mut hot_lat, mut cold_lat) = (Vec::new(), Vec::new());
            let mut turn = sender_index;
            while !stop.load(Ordering::Relaxed) {
                let pick_hot =
                    hot > 0.0 && (rand_core::RngCore::next_u32(&mut rand_core::OsRng) as f64) < hot * 4294967296.0;
                let index = if pick_hot || targets.len() == 1 {
                    0
                } else if hot > 0.0 {
                    1 + turn % (targets.len() - 1)
                } else {
                    turn % targets.len()
                };
                turn += concurrency;
                let (path, token) = &targets[index];
                let body = envelope(None);
                let t = Instant::now();
                let (status, resp) = call(&mut sender, "POST", path, token.as_deref(), body).await;
                assert!(status < 300, "{status} {}", String::from_utf8_lossy(&resp));
                if index == 0 && hot > 0.0 { hot_lat.push(t.elapsed()) } else { cold_lat.push(t.elapsed()) }
            }
            (hot_lat, cold_lat)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut cold) = (Vec::new(), Vec::new());
    for t in tasks {
        let (h, c) = t.await.unwrap();
        all.extend(h);
        all.extend(c.iter().copied());
        cold.extend(c);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    cold.sort();
    println!(
        "{{\"mode\":\"appends\",\"target\":\"{}\",\"concurrency\":{concurrency},\"slots\":{},\"hot\":{hot},\"requests\":{},\"per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{},\"cold_p99_us\":{}}}",
        if hello { "hello" } else { "relay" },
        targets.len(),
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.5).as_micros(),
        percentile(&all, 0.99).as_micros(),
        percentile(&cold, 0.99).as_micros()
    );
}

/// Opens an SSE stream on a dedicated connection; calls `on_data` with each `data:` line.
async fn open_stream(addr: &str, slot: &str, owner: &str, mut on_data: impl FnMut(&str) + Send + 'static) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("/v1/slots/{slot}/stream"))
        .header("host", "relay")
        .header("authorization", format!("Bearer {owner}"))
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let _keep = sender;
        let mut pending = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                pending.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    for line in event.lines() {
                        if let Some(d) = line.strip_prefix("data: ") {
                            on_data(d);
                        }
                    }
                }
            }
        }
    });
}

async fn latency(args: &Args) {
    // With several nodes, slot k's appends go to node k mod n and its stream is held on
    // node k+1 mod n: every delivery crosses nodes.
    let nodes = hosts(args);
    let addr = nodes[0].clone();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let repeated = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rate = get(args, "rate", 1000u64);
    let slots = get(args, "slots", 100usize);
    let seconds = get(args, "seconds", 10u64);
    let epoch = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut sender = connect(&addr).await;
    let mut targets = Vec::new();
    for k in 0..slots {
        let (slot, owner) = slot(&mut sender).await;
        let (samples, seen, repeated) = (samples.clone(), seen.clone(), repeated.clone());
        open_stream(&nodes[(k + 1) % nodes.len()], &slot, &owner, move |data| {
            let v: Value = serde_json::from_str(data).unwrap();
            // The stream's `hello` frame carries no envelope.
            let Some(env) = v["envelope"].as_str() else { return };
            let env = wire_core::proto::b64::decode(env).unwrap();
            let sent = u64::from_be_bytes(env[1..9].try_into().unwrap());
            // Repeats are told by the envelope's random bytes (two stamps may be equal).
            let id: [u8; 16] = env[9..25].try_into().unwrap();
            if !seen.lock().unwrap().insert(id) {
                repeated.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let now = epoch.elapsed().as_nanos() as u64;
            samples.lock().unwrap().push(Duration::from_nanos(now.saturating_sub(sent)));
        })
        .await;
        targets.push((slot, owner));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 8 senders share the rate; each paces itself on a fixed schedule, sender i offset by
    // i/8 of the interval so that together they send evenly. `--in-step` starts them
    // together, as before 2026-12-02: bursts of 8, which measure how a burst queues.
    let senders = 8usize;
    let in_step = args.contains_key("in-step");
    let per_sender = rate as f64 / senders as f64;
    let targets = Arc::new(targets);
    let mut tasks = Vec::new();
    // One schedule for all senders (after they connect: 50 ms is ample on loopback).
    let epoch_tokio = tokio::time::Instant::now() + Duration::from_millis(50);
    for i in 0..senders {
        let (nodes, targets) = (nodes.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            let mut senders_by_node = Vec::new();
            for node in &nodes {
                senders_by_node.push(connect(node).await);
            }
            let interval = Duration::from_secs_f64(1.0 / per_sender);
            let offset = if in_step { 0.0 } else { i as f64 / senders as f64 };
            let start = epoch_tokio + interval.mul_f64(offset);
            let total = (per_sender * seconds as f64) as usize;
            for n in 0..total {
                tokio::time::sleep_until(start + interval * n as u32).await;
                let k = (i + n * senders) % targets.len();
                let (slot, owner) = &targets[k];
                let sender = &mut senders_by_node[k % nodes.len()];
                let stamp = epoch.elapsed().as_nanos() as u64;
                let (status, _) =
                    call(sender, "POST", &format!("/v1/slots/{slot}/events"), Some(owner), envelope(Some(stamp))).await;
                assert_eq!(status, 201);
            }
            total
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut all = samples.lock().unwrap().clone();
    all.sort();
    println!(
        "{{\"mode\":\"latency\",\"nodes\":{},\"rate\":{rate},\"slots\":{slots},\"sent\":{sent},\"delivered\":{},\"repeated\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        nodes.len(),
        all.len(),
        repeated.load(Ordering::Relaxed),
        percentile(&all, 0.5).as_micros(),
        percentile(&all, 0.99).as_micros(),
        all.last().copied().unwrap_or_default().as_micros()
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Any connection the streams mode can hold open.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// Opens a connection to the relay over TCP, its Unix socket, or TLS.
async fn dial(addr: &str, args: &Args) -> Box<dyn Conn> {
    if let Some(path) = args.get("uds") {
        return Box::new(tokio::net::UnixStream::connect(path).await.unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let Some(ca) = args.get("tls-ca") else { return Box::new(tcp) };
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    Box::new(tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap())
}

/// Sends one request on a fresh connection and returns the whole answer (`Connection: close`).
async fn once(addr: &str, args: &Args, request: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = dial(addr, args).await;
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out).await;
    out
}

async fn streams(args: &Args) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = host(args.get("url").unwrap());
    let count = get(args, "count", 1000usize);
    let pid: u32 = get(args, "pid", 0);
    let mut slots = Vec::with_capacity(count);
    for _ in 0..count {
        let answer = once(
            &addr,
            args,
            "POST /v1/slots HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body.trim()).unwrap();
        slots.push((v["slot"].as_str().unwrap().to_owned(), v["owner_token"].as_str().unwrap().to_owned()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let mut open = Vec::with_capacity(count);
    for (slot, owner) in &slots {
        let mut conn = dial(&addr, args).await;
        let head =
            format!("GET /v1/slots/{slot}/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {owner}\r\n\r\n");
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("event: hello") {
            let mut buf = [0u8; 512];
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        open.push(conn);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let transport = if args.contains_key("uds") {
        "unix"
    } else if args.contains_key("tls-ca") {
        "tls"
    } else {
        "tcp"
    };
    println!(
        "{{\"mode\":\"streams\",\"transport\":\"{transport}\",\"count\":{count},\"rss_before_kib\":{before},\"rss_after_kib\":{after},\"per_stream_bytes\":{:.0}}}",
        (after.saturating_sub(before) * 1024) as f64 / count as f64
    );
    drop(open);
}

fn fsync(args: &Args) {
    use std::io::{Seek, Write};
    let path = args.get("file").expect("--file");
    let seconds = get(args, "seconds", 10u64);
    let mut file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(path).unwrap();
    let block = vec![7u8; 4096];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        // A WAL-like pattern: append within a small file, wrapping around.
        if file.stream_position().unwrap() >= 4 << 20 {
            file.rewind().unwrap();
        }
        file.write_all(&block).unwrap();
        let t = Instant::now();
        file.sync_data().unwrap();
        latencies.push(t.elapsed());
    }
    std::fs::remove_file(path).ok();
    latencies.sort();
    println!(
        "{{\"mode\":\"fsync\",\"syncs\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        latencies.len(),
        percentile(&latencies, 0.5).as_micros(),
        percentile(&latencies, 0.99).as_micros(),
        latencies.last().copied().unwrap_or_default().as_micros()
    );
}

fn fill(args: &Args) {
    use wire_relay::store::{Op, Quota, Store};
    let dir = std::path::PathBuf::from(args.get("data").unwrap());
    let count = get(args, "count", 1_000_000u64);
    let mut store = wire_relay::store::sqlite::SqliteStore::open(&dir).unwrap();
    let slots = 1000u64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    store
        .apply(
            &(0..slots)
                .map(|i| Op::CreateSlot { id: format!("fill-slot-{i:0>12}"), owner_hash: [0; 32], now, room: false })
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let quota = Quota { max_events: u64::MAX, max_bytes: u64::MAX, max_intro: 0 };
    let started = Instant::now();
    for batch in 0..count.div_ceil(10_000) {
        let ops: Vec<Op> = (0..10_000u64.min(count - batch * 10_000))
            .map(|i| {
                let env = envelope(None);
                Op::Append {
                    slot: format!("fill-slot-{:0>12}", (batch * 10_000 + i) % slots),
                    lane: wire_core::proto::api::Lane::Inbox,
                    hash: wire_core_hash(&env),
                    tag: None,
                    envelope: env,
                    now,
                    consume_grant: None,
                    authorised_by: None,
                    quota,
                }
            })
            .collect();
        store.apply(&ops).unwrap();
    }
    println!("{{\"mode\":\"fill\",\"count\":{count},\"seconds\":{:.1}}}", started.elapsed().as_secs_f64());
}

fn wire_core_hash(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

async fn startup(args: &Args) {
    let bin = args.get("bin").unwrap();
    // `--data DIR` (SQLite) or `--store URL` (a PostgreSQL node).
    let store = match (args.get("data"), args.get("store")) {
        (Some(dir), _) => ["--data", dir.as_str()],
        (None, Some(url)) => ["--store", url.as_str()],
        (None, None) => panic!("--data DIR or --store URL"),
    };
    let port = get(args, "port", 9199u16);
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["relay-server", "--bind", &format!("127.0.0.1:{port}")])
        .args(store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    loop {
        if let Ok(tcp) = tokio::net::TcpStream::connect(&addr).await
            && let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await
        {
            tokio::spawn(conn);
            let req = Request::get("/healthz").header("host", "relay").body(Full::new(Bytes::new())).unwrap();
            if let Ok(resp) = sender.send_request(req).await
                && resp.status() == 200
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let rss = rss_kib(child.id());
    child.kill().unwrap();
    let _ = child.wait();
    println!("{{\"mode\":\"startup\",\"ms_to_healthy\":{},\"rss_kib\":{rss}}}", elapsed.as_millis());
}

#[tokio::main]
async fn main() {
    let (mode, args) = parse_args();
    match mode.as_str() {
        "appends" => appends(&args).await,
        "latency" => latency(&args).await,
        "streams" => streams(&args).await,
        "fsync" => fsync(&args),
        "fill" => fill(&args),
        "startup" => startup(&args).await,
        _ => eprintln!("usage: loadgen appends|latency|streams|fsync|fill|startup [--flags] (see the file's docs)"),
    }
}
