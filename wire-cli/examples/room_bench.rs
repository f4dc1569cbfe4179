//! Benchmark of rooms against fan-out by 1:1 messages, through a real relay process: one
//! message to a room of N members (one append; every member reads it from its own stream of
//! the room slot and decrypts it with MLS) against the same message sealed and appended
//! once per member to each member's mailbox (each reads its own stream and opens it).
//! Also the cost of an add and of a remove commit in the largest room.
//!
//! ```sh
//! cargo build --release -p wire-cli --example room_bench
//! ./target/release/wire relay-server --bind 127.0.0.1:9311 --data /tmp/rbench --ip-rate 0 --token-rate 0 &
//! ./target/release/examples/room_bench --relay 127.0.0.1:9311 --sizes 2,10,50,200 --messages 30
//! ```
//!
//! Latency is from just before the sender encrypts to the moment a member holds the
//! plaintext (one process, one monotonic clock): send -> every member's inbox, less the
//! inbox write. Appends and bytes per member come from the relay's /metrics. Figures:
//! docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::OsRng;
use tokio::sync::mpsc;
use wire_core::client::{Client, RelayUrl, StreamItem};
use wire_core::proto::api::{GrantKind, GrantRequest, SlotId};
use wire_core::proto::envelope;
use wire_core::proto::event::{Event, Kind};
use wire_core::proto::identity::Identity;
use wire_core::proto::secret::Token;
use wire_core::room::{self, mls};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn metric(relay: &str, name: &str) -> u64 {
    wire_testkit::http::metric(relay, name)
}

/// Appends and response bytes from one scrape, and that scrape's own size (the relay counts
/// it in the bytes it sends next).
fn counters(relay: &str) -> (u64, u64, u64) {
    let text = wire_testkit::http::request(relay, "GET", "/metrics", None, &[], b"").text();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse::<f64>().ok())
            })
            .map_or(0, |v| v as u64)
    };
    (value("wire_relay_appends_total"), value("wire_relay_response_bytes_total"), text.len() as u64)
}

/// A message body carrying the time it was sent (micros since `base`).
fn stamp(base: Instant) -> Vec<u8> {
    let me = Identity::generate(&mut OsRng);
    let body = serde_json::json!({ "body": format!("{:020}", base.elapsed().as_micros()), "mentions": [] });
    let event = Event::new(&me, me.did().clone(), Kind::Message, body, wire_core::endpoint::now(), &mut OsRng);
    serde_json::to_vec(event.sign(&me).unwrap().signed()).unwrap()
}

fn sent_at(plaintext: &[u8]) -> u64 {
    let signed: wire_core::proto::signed::Signed = serde_json::from_slice(plaintext).unwrap();
    let event: serde_json::Value = serde_json::from_slice(&signed.payload).unwrap();
    event["body"]["body"].as_str().unwrap().parse().unwrap()
}

struct Member {
    id: Identity,
    provider: mls::Provider,
    group: Option<mls::MlsGroup>,
    token: Token,
}

/// Room: one owner, `n - 1` members added in one commit. Returns the members (owner first).
async fn room_of(client: &Client, n: usize) -> (SlotId, [u8; 32], Vec<Member>) {
    let slot = client.allocate_room().await.unwrap();
    let wrap_key = [7u8; 32];
    let mut members: Vec<Member> = (0..n)
        .map(|_| Member {
            id: Identity::generate(&mut OsRng),
            provider: mls::Provider::new(),
            group: None,
            token: slot.owner_token.clone(),
        })
        .collect();
    let group_id = format!("bench-room-{n}");
    let owner = &members[0];
    let mut group = mls::create(&owner.provider, &owner.id, &[], group_id.as_bytes()).unwrap();
    let kps: Vec<_> = members[1..]
        .iter()
        .map(|m| {
            let bytes = mls::key_package(&m.provider, &m.id, &[]).unwrap();
            mls::read_key_package(&owner.provider, &bytes).unwrap().0
        })
        .collect();
    if !kps.is_empty() {
        let out = mls::add(&mut group, &owner.provider, &owner.id, &kps).unwrap();
        mls::merge_own(&mut group, &owner.provider).unwrap();
        let welcome = out.welcome.unwrap();
        for m in &mut members[1..] {
            m.group = Some(mls::join(&m.provider, &welcome).unwrap().0);
            let grant = GrantRequest { kind: GrantKind::Member, ttl_secs: None, uses: None };
            m.token = client.grant(&slot.slot, &slot.owner_token, &grant).await.unwrap().token;
        }
    }
    members[0].group = Some(group);
    (slot.slot, wrap_key, members)
}

/// One reader per member on the room slot: each decrypts what arrives and reports the
/// latency of each message.
fn room_readers(
    url: &RelayUrl,
    slot: &SlotId,
    wrap_key: [u8; 32],
    members: Vec<Member>,
    after: u64,
    base: Instant,
    tx: mpsc::UnboundedSender<u64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    members
        .into_iter()
        .map(|mut m| {
            let (url, slot, tx) = (url.clone(), slot.clone(), tx.clone());
            tokio::spawn(async move {
                let client = Client::new(url);
                let mut stream = client.stream(&slot, &m.token, after).await.unwrap();
                let group = m.group.as_mut().unwrap();
                while let Some(item) = stream.next().await {
                    if let StreamItem::Envelope(e) = item {
                        let bytes = room::unwrap(&wrap_key, &e.envelope).unwrap();
                        if let mls::Incoming::Application { bytes, .. } =
                            mls::process(group, &m.provider, &bytes).unwrap()
                        {
                            let _ = tx.send(base.elapsed().as_micros() as u64 - sent_at(&bytes));
                        }
                    }
                }
            })
        })
        .collect()
}

struct Row {
    appends_per_message: f64,
    envelope_bytes: usize,
    frame_bytes_per_member: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn bench_room(relay: &str, n: usize, messages: usize) -> Row {
    let url = RelayUrl::parse(relay).unwrap();
    let client = Client::new(url.clone());
    let (slot, wrap_key, mut members) = room_of(&client, n).await;
    let sender = members.remove(0);
    let readers_n = members.len();
    let base = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tasks = room_readers(&url, &slot, wrap_key, members, 0, base, tx);
    // Every reader's stream is open before the first message.
    while metric(relay, "wire_relay_streams_open") < readers_n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (appends0, bytes0, scrape) = counters(relay);
    let mut group = sender.group.unwrap();
    let mut samples = Vec::new();
    let mut envelope_bytes = 0;
    for _ in 0..messages {
        let plaintext = stamp(base);
        let ciphertext = mls::encrypt(&mut group, &sender.provider, &sender.id, &plaintext).unwrap();
        let env = room::wrap(&wrap_key, &ciphertext, &mut OsRng).unwrap();
        envelope_bytes = env.len();
        client.append(&slot, &sender.token, &env).await.unwrap();
        // The next message once every member has this one.
        for _ in 0..readers_n {
            samples.push(rx.recv().await.unwrap());
        }
    }
    let (appends1, bytes1, _) = counters(relay);
    let (appends, frames) = (appends1 - appends0, bytes1 - bytes0 - scrape);
    for t in tasks {
        t.abort();
    }
    samples.sort_unstable();
    Row {
        appends_per_message: appends as f64 / messages as f64,
        envelope_bytes,
        frame_bytes_per_member: frames as f64 / (messages * readers_n) as f64,
        p50_us: percentile(&samples, 0.5),
        p99_us: percentile(&samples, 0.99),
    }
}

/// The same message sent 1:1 to each of `n - 1` peers: sealed and appended once each.
async fn bench_one_to_one(relay: &str, n: usize, messages: usize) -> Row {
    let url = RelayUrl::parse(relay).unwrap();
    let client = Arc::new(Client::new(url.clone()));
    let base = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut peers = Vec::new();
    let mut tasks = Vec::new();
    for _ in 1..n {
        let id = Identity::generate(&mut OsRng);
        let slot = client.allocate_slot().await.unwrap();
        let grant = GrantRequest { kind: GrantKind::Send, ttl_secs: None, uses: None };
        let send = client.grant(&slot.slot, &slot.owner_token, &grant).await.unwrap().token;
        peers.push((id.x25519_public(), slot.slot.clone(), send));
        let (url, tx) = (url.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::new(url);
            let mut stream = client.stream(&slot.slot, &slot.owner_token, 0).await.unwrap();
            while let Some(item) = stream.next().await {
                if let StreamItem::Envelope(e) = item {
                    let signed = envelope::open_signed(&id, &e.envelope).unwrap();
                    let _ = tx.send(base.elapsed().as_micros() as u64 - sent_at(&serde_json::to_vec(&signed).unwrap()));
                }
            }
        }));
    }
    while metric(relay, "wire_relay_streams_open") < peers.len() as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (appends0, bytes0, scrape) = counters(relay);
    let mut samples = Vec::new();
    let mut envelope_bytes = 0;
    for _ in 0..messages {
        let plaintext = stamp(base);
        let signed: wire_core::proto::signed::Signed = serde_json::from_slice(&plaintext).unwrap();
        for (key, slot, token) in &peers {
            let env = envelope::seal_signed(&signed, key, &mut OsRng).unwrap();
            envelope_bytes = env.0.len();
            client.append(slot, token, &env.0).await.unwrap();
        }
        for _ in 0..peers.len() {
            samples.push(rx.recv().await.unwrap());
        }
    }
    let (appends1, bytes1, _) = counters(relay);
    let (appends, frames) = (appends1 - appends0, bytes1 - bytes0 - scrape);
    for t in tasks {
        t.abort();
    }
    samples.sort_unstable();
    Row {
        appends_per_message: appends as f64 / messages as f64,
        envelope_bytes,
        frame_bytes_per_member: frames as f64 / (messages * peers.len()) as f64,
        p50_us: percentile(&samples, 0.5),
        p99_us: percentile(&samples, 0.99),
    }
}

/// The cost of one add and one remove commit in a room of `n`: time to make it, its size,
/// and the time one member takes to process it.
fn commits(n: usize) {
    let rt_members: Vec<Member> = (0..n + 1)
        .map(|_| Member {
            id: Identity::generate(&mut OsRng),
            provider: mls::Provider::new(),
            group: None,
            token: Token::random("own", &mut OsRng),
        })
        .collect();
    let (owner, rest) = rt_members.split_first().unwrap();
    let (newcomer, rest) = rest.split_last().unwrap();
    let mut group = mls::create(&owner.provider, &owner.id, &[], b"bench-commits").unwrap();
    let kps: Vec<_> = rest
        .iter()
        .map(|m| mls::read_key_package(&owner.provider, &mls::key_package(&m.provider, &m.id, &[]).unwrap()).unwrap().0)
        .collect();
    let out = mls::add(&mut group, &owner.provider, &owner.id, &kps).unwrap();
    mls::merge_own(&mut group, &owner.provider).unwrap();
    let (mut witness, _) = mls::join(&rest[0].provider, &out.welcome.unwrap()).unwrap();
    let kp = mls::read_key_package(&owner.provider, &mls::key_package(&newcomer.provider, &newcomer.id, &[]).unwrap())
        .unwrap()
        .0;
    let t = Instant::now();
    let add = mls::add(&mut group, &owner.provider, &owner.id, &[kp]).unwrap();
    let make_add = t.elapsed();
    mls::merge_own(&mut group, &owner.provider).unwrap();
    let t = Instant::now();
    let mls::Incoming::Commit { staged, .. } = mls::process(&mut witness, &rest[0].provider, &add.commit).unwrap()
    else {
        panic!("a commit")
    };
    mls::merge(&mut witness, &rest[0].provider, *staged).unwrap();
    let take_add = t.elapsed();
    let leaf = mls::members(&group).into_iter().find(|l| &l.did == rest[1].id.did()).unwrap();
    let t = Instant::now();
    let remove = mls::remove(&mut group, &owner.provider, &owner.id, &[mls::LeafNodeIndex::new(leaf.index)]).unwrap();
    let make_remove = t.elapsed();
    mls::merge_own(&mut group, &owner.provider).unwrap();
    let t = Instant::now();
    let mls::Incoming::Commit { staged, .. } = mls::process(&mut witness, &rest[0].provider, &remove.commit).unwrap()
    else {
        panic!("a commit")
    };
    mls::merge(&mut witness, &rest[0].provider, *staged).unwrap();
    let take_remove = t.elapsed();
    println!(
        "commits at {n} members: add 1 = {:.1} ms to make, {} B commit + {} B welcome, {:.1} ms for a member to take; remove 1 = {:.1} ms to make, {} B, {:.1} ms to take",
        make_add.as_secs_f64() * 1e3,
        add.commit.len(),
        add.welcome.as_ref().map_or(0, Vec::len),
        take_add.as_secs_f64() * 1e3,
        make_remove.as_secs_f64() * 1e3,
        remove.commit.len(),
        take_remove.as_secs_f64() * 1e3,
    );
}

fn main() {
    let relay = arg("--relay", "127.0.0.1:9311");
    let messages: usize = arg("--messages", "30").parse().unwrap();
    let sizes: Vec<usize> = arg("--sizes", "2,10,50,200").split(',').map(|s| s.parse().unwrap()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("| members | way | appends/message | envelope B | bytes/member (SSE) | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for &n in &sizes {
        for (way, row) in [
            ("room", rt.block_on(bench_room(&relay, n, messages))),
            ("1:1 to each", rt.block_on(bench_one_to_one(&relay, n, messages))),
        ] {
            println!(
                "| {n} | {way} | {:.2} | {} | {:.0} | {:.2} | {:.2} |",
                row.appends_per_message,
                row.envelope_bytes,
                row.frame_bytes_per_member,
                row.p50_us as f64 / 1e3,
                row.p99_us as f64 / 1e3
            );
        }
    }
    if let Some(&largest) = sizes.iter().max() {
        commits(largest);
    }
}
