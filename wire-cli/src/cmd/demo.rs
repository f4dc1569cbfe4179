//! `wire demo`: the whole product in one command, nothing to set up. An embedded relay on
//! a free loopback port with its data in a temporary directory, three agents, pairing by
//! invite URL and, between two that never met, by spoken code (both SAS screens side by side), an encrypted message
//! each way, and what the relay stored next to what each agent read. Everything is removed
//! at the end unless `--keep`. Exits non-zero if any step fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use wire_core::client::{Client, RelayUrl};
use wire_core::endpoint::{self, Endpoint, Face};
use wire_core::home::{Account, Home};
use wire_core::proto::pairing::code::Status;

use crate::output;

struct Demo {
    json: bool,
    steps: Vec<serde_json::Value>,
}

impl Demo {
    fn say(&self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }

    fn step(&mut self, name: &str, detail: serde_json::Value) {
        self.steps.push(json!({ "step": name, "detail": detail }));
    }
}

fn temp_root() -> anyhow::Result<PathBuf> {
    let mut b = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let root =
        std::env::temp_dir().join(format!("wire-demo-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()));
    std::fs::create_dir_all(&root)?;
    Ok(root)
}

/// Runs the demo.
pub fn run(keep: bool, json: bool) -> anyhow::Result<()> {
    let root = temp_root()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(demo(&root, keep, json));
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

async fn demo(root: &Path, keep: bool, json: bool) -> anyhow::Result<()> {
    let mut d = Demo { json, steps: Vec::new() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = wire_relay::Config {
        store: wire_relay::StoreConfig::Sqlite { dir: root.join("relay") },
        ip_rate: wire_relay::Rate::OFF,
        token_rate: wire_relay::Rate::OFF,
        // The story is the demo's; the relay's own lifecycle lines stay out of it.
        quiet: true,
        ..wire_relay::Config::default()
    };
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(wire_relay::serve(wire_relay::Listener::Tcp(listener), config, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let relay_addr = addr.to_string();
    d.say(&format!("1. a relay on http://{relay_addr} (data in {})", root.join("relay").display()));
    d.step("relay", json!({ "url": format!("http://{relay_addr}") }));

    let mut agents = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let home = Home::at(root.join(name));
        let report = endpoint::init(&home, &relay_addr).await.with_context(|| format!("creating {name}"))?;
        d.say(&format!("   {name}: {}  ({})", output::face(&report.face), report.face.did));
        agents.push(Endpoint::open(home)?);
    }
    let (alice, bob, carol) = (&agents[0], &agents[1], &agents[2]);
    let (alice_face, bob_face) = (Face::of(alice.identity.did()), Face::of(bob.identity.did()));
    d.step("agents", json!({ "alice": alice_face, "bob": bob_face, "carol": Face::of(carol.identity.did()) }));

    // Invite URL.
    let invite = alice.invite(1, Duration::from_secs(600)).await?;
    let url = invite.url.clone();
    d.say(&format!(
        "2. pairing by invite: alice prints {}...{}",
        &url[..32.min(url.len())],
        &url[url.len().saturating_sub(8)..]
    ));
    bob.accept_invite(&url).await?;
    let a = alice.pull().await?;
    let b = bob.pull().await?;
    if a.paired.len() != 1 || b.paired.len() != 1 {
        bail!("invite pairing did not complete");
    }
    d.say("   bob accepts it; each side pins the other: VERIFIED");
    d.step("invite_pairing", json!({ "alice_pinned": a.paired, "bob_pinned": b.paired }));

    // Spoken code with SAS, between two agents that have never met: bob and carol.
    {
        let host = bob.pair_host(None, Duration::from_secs(60)).await?;
        d.say(&format!("3. pairing by code: bob reads out `{}` to carol's operator, who types it", host.code));
        carol.pair_join(&host.code, None, Duration::from_secs(60)).await?;
        let (mut bv, mut cv) = (host.clone(), carol.pair_list()?.pop().context("carol's pairing")?);
        for _ in 0..100 {
            bv = bob.pair_drive(&host.nameplate, Duration::ZERO).await?;
            cv = carol.pair_drive(&host.nameplate, Duration::ZERO).await?;
            if bv.sas.is_some() && cv.sas.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (b_sas, c_sas) =
            (bv.sas.clone().context("bob never saw digits")?, cv.sas.clone().context("carol never saw digits")?);
        d.say(&format!(
            "   bob's screen: {}    carol's screen: {}   (each operator compares, then confirms)",
            spaced(&b_sas),
            spaced(&c_sas)
        ));
        bob.pair_confirm(&host.nameplate, &c_sas).await?;
        carol.pair_confirm(&host.nameplate, &b_sas).await?;
        for _ in 0..100 {
            bv = bob.pair_drive(&host.nameplate, Duration::ZERO).await?;
            cv = carol.pair_drive(&host.nameplate, Duration::ZERO).await?;
            if bv.status == Status::Paired && cv.status == Status::Paired {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if bv.status != Status::Paired || cv.status != Status::Paired {
            bail!("code pairing did not complete: bob {}, carol {}", bv.state, cv.state);
        }
        d.say("   both confirmed: paired (the relay saw only the number, never the words)");
        d.step("code_pairing", json!({ "nameplate": host.nameplate, "bob_sas": b_sas, "carol_sas": c_sas }));
    }

    // A message each way, showing the relay's view before the recipient pulls.
    let client = Client::new(RelayUrl::parse(&relay_addr)?);
    d.say("4. messages, end-to-end encrypted:");
    let mut exchange = Vec::new();
    for (from, to, to_name, text) in
        [(alice, bob, "bob", "hello bob: the build is green"), (bob, alice, "alice", "thanks alice: deploying now")]
    {
        let sent = from.send(to.identity.did().as_str(), "message", text.into(), false).await?;
        let account: Account = to.home.load()?.context("account")?;
        let stored = client.list(&account.slot, &account.owner_token, Some(account.cursor), 10).await?;
        let envelope = stored.events.last().context("the relay holds the envelope")?;
        let hex: String = envelope.envelope.iter().take(16).map(|b| format!("{b:02x}")).collect();
        to.pull().await?;
        let read = to.tail(None, 1)?.pop().context("the message reached the inbox")?;
        let body = read.event.body.as_str().unwrap_or_default().to_owned();
        d.say(&format!(
            "   relay stored: seq {}, {} bytes, {hex}... (no sender, no recipient, no kind)",
            envelope.seq,
            envelope.envelope.len()
        ));
        d.say(&format!(
            "   {to_name} read:   \"{body}\" from {} (signature verified)",
            output::face(&Face::of(&read.event.from))
        ));
        if body != text {
            bail!("{to_name} read something else than was sent");
        }
        exchange.push(json!({
            "event_id": sent.event_id,
            "relay_stored": { "seq": envelope.seq, "bytes": envelope.envelope.len(), "head_hex": hex },
            "recipient_read": body,
        }));
    }
    d.step("messages", json!(exchange));

    if keep {
        // This very binary: `wire` may not be on PATH (a fresh clone runs target/.../wire).
        let wire = crate::setup::stable_binary()?;
        let wire = wire.display();
        d.say(&format!(
            "\n--keep: the relay runs until Ctrl-C; the agents live in {}. Try:\n  WIRE_HOME={} {wire} send {} \"hi\"\n  WIRE_HOME={} {wire} tail",
            root.display(),
            root.join("alice").display(),
            bob_face.nickname,
            root.join("bob").display(),
        ));
        if json {
            output::json(
                &json!({ "ok": true, "kept": root.display().to_string(), "relay": format!("http://{relay_addr}"), "steps": d.steps }),
            );
        }
        let _ = tokio::signal::ctrl_c().await;
    } else {
        d.say("5. done: relay stopped, everything removed");
        if json {
            output::json(&json!({ "ok": true, "steps": d.steps }));
        }
    }
    let _ = stop_tx.send(true);
    relay.await.context("relay task")??;
    Ok(())
}

fn spaced(sas: &str) -> String {
    if sas.len() == 6 { format!("{} {}", &sas[..3], &sas[3..]) } else { sas.to_owned() }
}
