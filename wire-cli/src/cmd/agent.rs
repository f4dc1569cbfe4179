//! The everyday commands: identity, pairing, messages. Each calls one
//! `wire_core::endpoint` operation and prints its result (JSON with --json).

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use wire_core::endpoint::{
    self, AnswerState, Compact, Decision, Endpoint, Face, Flow, Mailbox, ReintroState, RequestState, Verdict,
};
use wire_core::home::{Consumer, Home, ReceiptState, SentState};
use wire_core::proto::pairing::code::Status;
use wire_core::session::Chosen;
use wire_core::sync;

use crate::output::{self, face};

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// The runtime of a command that runs the sync engine beside its own work (`wait`, `send
/// --wait`, `room wait`): two workers, so when one task waits for the home lock that the
/// engine holds across a relay call, the engine goes on on the other (`Home::lock`).
pub(crate) fn engine_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The identity this command acts as: `WIRE_SESSION_ID`, `WIRE_HOME`, the session bound to
/// the current directory, or the default home.
pub(crate) fn chosen() -> anyhow::Result<Chosen> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok(wire_core::session::choose(&cwd)?)
}

pub(crate) fn home() -> anyhow::Result<Home> {
    Ok(chosen()?.home)
}

pub(crate) fn open() -> anyhow::Result<Endpoint> {
    Ok(Endpoint::open(home()?)?)
}

/// Before a look at the inbox or the pending requests: without a daemon keeping this home in
/// sync, pull first, so what is shown is what the relay holds now. A failed pull is said
/// and what arrived before is shown.
fn pull_unless_daemon(ep: &Endpoint) -> anyhow::Result<()> {
    if crate::daemon::serves(ep.home.root()) {
        return Ok(());
    }
    if let Err(e) = runtime()?.block_on(ep.pull()) {
        eprintln!("note: could not pull ({e:#}); showing what arrived by the last pull");
    }
    Ok(())
}

/// Where `wire init` looks for a relay when none is named: `wire relay-server`'s default.
const DEFAULT_RELAY: &str = "127.0.0.1:8771";

/// `wire init` / `wire up`.
pub fn init(relay: Option<&str>, also: &[String], mailboxes: &[String], json: bool) -> anyhow::Result<()> {
    let home = home()?;
    // Not named: where this identity already is, else the local relay's default address.
    let current = home.load::<wire_core::home::Account>().ok().flatten().map(|a| a.relay);
    let relay = relay.map(str::to_owned).or(current).unwrap_or_else(|| DEFAULT_RELAY.to_owned());
    let report = runtime()?.block_on(endpoint::init_mailboxes(&home, &relay, also, mailboxes, true)).map_err(|e| {
        let unreachable =
            matches!(&e, endpoint::EndpointError::Client(wire_core::client::ClientError::Unreachable { .. }));
        let e = anyhow::Error::from(e);
        if unreachable {
            e.context(format!(
                "no relay at {relay}: start one with `wire relay-server`, or `wire up <relay>` for another"
            ))
        } else {
            e
        }
    })?;
    // The daemon (if any, now or later) serves every home that was set up.
    if let Err(e) = crate::daemon::register(home.root()) {
        eprintln!("note: could not register this home with the daemon: {e:#}");
    }
    if json {
        output::json(&report);
        return Ok(());
    }
    let verb = if report.created { "is ready" } else { "already exists" };
    println!("{} {verb}", face(&report.face));
    println!("  did          {}", report.face.did);
    println!("  fingerprint  {}", report.face.fingerprint);
    println!("  relay        {} (slot {})", report.relay, report.slot);
    if let Some(h) = &report.handle {
        println!("  handle       {h}");
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if report.created {
        eprintln!(
            "next: `wire invite` to pair with another agent, or `wire accept '<URL>'` with an invite you were given"
        );
    }
    Ok(())
}

/// `wire up --reregister`.
pub fn reregister(json: bool) -> anyhow::Result<()> {
    let report = runtime()?.block_on(open()?.reregister())?;
    if json {
        output::json(&report);
        return Ok(());
    }
    println!("{} has a new mailbox on {} (slot {})", face(&report.face), report.relay, report.slot);
    if let Some(h) = &report.handle {
        println!("  handle       {h} (published again)");
    }
    print_reintroductions(&report.peers);
    Ok(())
}

/// `wire move`.
pub fn move_to(relay: &str, json: bool) -> anyhow::Result<()> {
    let report = runtime()?.block_on(open()?.move_to(relay))?;
    if json {
        output::json(&report);
        return Ok(());
    }
    let (from, report) = (&report.from, &report.moved);
    println!("{} moved to {} (slot {})", face(&report.face), report.relay, report.slot);
    println!("  {from} is read until every peer confirmed (at most 14 days)");
    if let Some(h) = &report.handle {
        println!("  handle       {h}");
    }
    print_reintroductions(&report.peers);
    Ok(())
}

fn print_reintroductions(peers: &[wire_core::endpoint::Reintroduction]) {
    for r in peers {
        match r.state {
            ReintroState::Delivered => println!("  {}  re-introduced", face(&r.peer)),
            ReintroState::Waiting => println!(
                "  {}  waiting: {} (retried at every sync; it completes when that peer re-registers too)",
                face(&r.peer),
                r.last_error.as_deref().unwrap_or("not delivered yet")
            ),
            ReintroState::NeedsRepairing => {
                println!("  {}  NEEDS RE-PAIRING: its wire cannot read re-introductions", face(&r.peer))
            }
        }
    }
}

/// `wire whoami`.
pub fn whoami(json: bool) -> anyhow::Result<()> {
    let chosen = chosen()?;
    let me = Endpoint::open(chosen.home.clone())?.whoami()?;
    if json {
        let mut v = serde_json::to_value(&me)?;
        v["chosen_by"] = serde_json::to_value(chosen.rule)?;
        v["session"] = chosen.session.clone().into();
        output::json(&v);
    } else {
        println!("{}", face(&me.face));
        println!("  did          {}", me.face.did);
        println!("  fingerprint  {}", me.face.fingerprint);
        if me.lineage.seq > 0 {
            println!("  key          {} (rotation {})", me.lineage.key_fingerprint, me.lineage.seq);
        }
        println!("  relay        {} (slot {})", me.relay, me.slot);
        println!("  handle       {}", me.handle.as_deref().unwrap_or("(none)"));
        println!("  home         {}", me.home);
        match &chosen.session {
            Some(name) => println!("  session      {name} (chosen by {})", chosen.rule.describe()),
            None => println!("  chosen by    {}", chosen.rule.describe()),
        }
    }
    Ok(())
}

/// `wire rotate`.
pub fn rotate(json: bool) -> anyhow::Result<()> {
    let report = runtime()?.block_on(open()?.rotate())?;
    if json {
        output::json(&report);
        return Ok(());
    }
    println!("{} rotated to key {} (rotation {})", face(&report.face), report.key_fingerprint, report.seq);
    if !report.told.is_empty() {
        let told: Vec<String> = report.told.iter().map(face).collect();
        println!("told: {} (an offline peer gets it when it returns)", told.join(", "));
    }
    if !report.cannot_follow.is_empty() {
        let left: Vec<String> = report.cannot_follow.iter().map(face).collect();
        eprintln!("these peers run a wire that cannot follow a rotation; pair with them again: {}", left.join(", "));
    }
    Ok(())
}

/// `wire revoke --export FILE` / `--publish FILE`.
pub fn revoke(export: Option<&std::path::Path>, publish: Option<&std::path::Path>, json: bool) -> anyhow::Result<()> {
    if let Some(file) = export {
        let report = open()?.export_revocation(file)?;
        if json {
            output::json(&report);
        } else {
            println!("wrote a signed revocation for {} peer(s) to {}", report.peers, report.file);
            eprintln!(
                "keep it offline (it holds send tokens): if this home is lost, `wire revoke --publish {}` from any machine makes every peer stop trusting this identity",
                report.file
            );
        }
        return Ok(());
    }
    let file = publish.expect("clap requires --export or --publish");
    let report = runtime()?.block_on(endpoint::lineage::publish_revocation(file))?;
    let failed = report.peers.iter().filter(|p| p.verdict != "sent").count();
    if json {
        output::json(&report);
    } else {
        for p in &report.peers {
            match &p.error {
                None => println!("{}: revocation delivered", face(&p.peer)),
                Some(e) => println!("{}: failed: {}", face(&p.peer), output::untrusted(e)),
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} peer(s) did not get the revocation; run `wire revoke --publish` again later");
    }
    Ok(())
}

/// `wire whois`.
pub fn whois(target: &str, json: bool) -> anyhow::Result<()> {
    let w = runtime()?.block_on(open()?.whois(target))?;
    if json {
        output::json(&w);
        return Ok(());
    }
    println!("{}", face(&w.face));
    println!("  did          {}", w.face.did);
    println!("  fingerprint  {}", w.face.fingerprint);
    println!("  pinned       {}", if w.pinned { "yes" } else { "no" });
    if let Some(l) = &w.lineage {
        println!("  key          {} (rotation {}, {})", l.key_fingerprint, l.seq, l.standing);
    }
    if let Some(c) = w.nickname_collides_with.as_ref().filter(|c| !c.is_empty()) {
        eprintln!(
            "warning: this nickname is also worn by {} pinned peer(s); compare the fingerprint before trusting it",
            c.len()
        );
    }
    Ok(())
}

/// `wire peers`.
pub fn peers(json: bool) -> anyhow::Result<()> {
    let peers = open()?.peers()?;
    if json {
        output::json(&peers);
        return Ok(());
    }
    if peers.is_empty() {
        println!("no peers yet; pair with `wire invite`, `wire accept '<URL>'` or `wire dial <nick@relay>`");
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            let contact = p.last_contact.map(output::when).unwrap_or_else(|| "never".into());
            vec![
                face(&p.face),
                tier_name(p.tier).to_owned(),
                format!("paired {}", output::when(p.paired_at)),
                format!("last contact {contact}"),
                lineage_words(&p.lineage, &p.face.fingerprint),
            ]
        })
        .collect();
    output::table(&rows).iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// A peer's lineage in a few words: nothing while it keeps its first key; both
/// fingerprints once it rotated; FROZEN or REVOKED when it can no longer be trusted.
fn lineage_words(l: &endpoint::LineageView, first: &str) -> String {
    match l.standing {
        "frozen" => "FROZEN: two different key rotations seen; pair again".to_owned(),
        "revoked" => "REVOKED by its owner".to_owned(),
        _ if l.seq > 0 => format!("rotated {}x, now key {} (first key {first})", l.seq, l.key_fingerprint),
        _ => String::new(),
    }
}

/// How an item that waits for delivery has fared so far.
fn retries(attempts: u32, last_error: &Option<String>) -> String {
    format!("{attempts} attempt(s); last error: {}", last_error.as_deref().unwrap_or("none yet"))
}

/// `wire status`.
pub fn status(json: bool) -> anyhow::Result<()> {
    let v = runtime()?.block_on(open()?.status())?;
    if json {
        output::json(&v);
        return Ok(());
    }
    println!("{}", face(&v.identity.face));
    let reach = match (&v.relay.reachable.error, v.relay.mailbox) {
        (Some(e), _) => format!("UNREACHABLE: {e}"),
        (None, Mailbox::Gone) => {
            "reachable, but it NO LONGER KNOWS THIS MAILBOX (its data was lost or reset); run `wire up --reregister`"
                .to_owned()
        }
        (None, _) => "reachable".to_owned(),
    };
    println!("  relay     {} ({reach})", v.relay.url);
    for m in &v.mailboxes {
        let reach = match (&m.status.reachable.error, m.status.mailbox) {
            (Some(e), _) => format!("UNREACHABLE: {e}"),
            (None, Mailbox::Gone) => "reachable, but it no longer knows this mailbox".to_owned(),
            (None, _) => "reachable".to_owned(),
        };
        let role = if m.role == "spare" { "spare" } else { "moved from" };
        println!("  {role:<9} {} ({reach})", m.status.url);
    }
    println!("  peers     {}", v.peers);
    println!("  inbox     {} events", v.inbox);
    println!("  outbox    {} queued", v.outbox.queued);
    println!(
        "  pending   {} requests, {} outgoing, {} open invites",
        v.pending.requests, v.pending.outgoing, v.pending.invites_open
    );
    println!("  rejected  {} inbound events", v.rejected.total);
    for (reason, n) in &v.rejected.reasons {
        println!("    {n} x {}", output::untrusted(reason));
    }
    for r in &v.reintroductions {
        println!("  re-introduction to {} waiting ({})", face(&r.to), retries(r.attempts, &r.last_error));
    }
    for p in &v.needs_repair {
        println!("  {} NEEDS RE-PAIRING: its re-introduction never reached it", face(p));
    }
    let active: Vec<&wire_core::endpoint::RoomView> =
        v.rooms.iter().filter(|r| r.standing == wire_core::room::Standing::Active).collect();
    if !active.is_empty() {
        let names: Vec<String> = active.iter().map(|r| output::untrusted(&r.name)).collect();
        println!("  rooms     {} ({})", active.len(), names.join(", "));
    }
    for r in v.rooms.iter().filter(|r| r.missed > 0 || r.refused > 0) {
        println!("    {}: missed {}, refused {}", output::untrusted(&r.name), r.missed, r.refused);
    }
    Ok(())
}

/// `wire invite`.
pub fn invite(uses: u32, ttl: Duration, json: bool) -> anyhow::Result<()> {
    let v = runtime()?.block_on(open()?.invite(uses, ttl))?;
    if json {
        output::json(&v);
    } else {
        println!("{}", v.url);
        let when = output::time(v.expires_at);
        eprintln!("Give this URL to the other operator (it is a secret). It works {uses} time(s), until {when} UTC.");
        eprintln!(
            "They run `wire accept '<URL>'` (quoted: the URL holds `&`); your next `wire pull` completes the pairing."
        );
    }
    Ok(())
}

/// `wire accept <URL | nick>`.
pub fn accept(target: &str, json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = runtime()?;
    if target.starts_with("wire://") || target.contains("://pair") {
        let r = rt.block_on(ep.accept_invite(target))?;
        if json {
            output::json(&r);
        } else if r.state == RequestState::AlreadyPaired {
            println!("already paired with {}", face(&r.peer));
        } else {
            println!("asked {} to pair", face(&r.peer));
            eprintln!(
                "it answers when it next pulls; your next `wire pull` then pins it (VERIFIED: the invite was the secret)"
            );
        }
        return Ok(());
    }
    let d = rt.block_on(ep.decide(target, true))?;
    if json {
        output::json(&d);
        return Ok(());
    }
    println!("accepted {}: paired (TOFU: compare fingerprints with its operator, then `wire verify`)", face(&d.peer));
    if d.answer == Some(AnswerState::Queued) {
        eprintln!("its addresses did not answer yet; the answer is retried at every sync (`wire pending` shows it)");
    }
    Ok(())
}

/// `wire reject <nick>`.
pub fn reject(target: &str, json: bool) -> anyhow::Result<()> {
    let d = runtime()?.block_on(open()?.decide(target, false))?;
    if json {
        output::json(&d)
    } else if d.decision == Decision::Dropped {
        println!("gave up the answer to {}: unpinned, its access revoked", face(&d.peer))
    } else {
        println!("rejected {}; nothing was pinned", face(&d.peer))
    }
    Ok(())
}

/// `wire dial <nick@relay>`.
pub fn dial(handle: &str, note: Option<String>, json: bool) -> anyhow::Result<()> {
    let v = runtime()?.block_on(open()?.dial(handle, note))?;
    if json {
        output::json(&v);
    } else {
        println!("asked {} to pair", face(&v.peer));
        eprintln!("its operator must accept; your `wire pull` then pins it");
    }
    Ok(())
}

/// `wire pending`.
pub fn pending(json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    pull_unless_daemon(&ep)?;
    let p = ep.pending()?;
    if json {
        output::json(&p);
        return Ok(());
    }
    if p.requests.is_empty() {
        println!("no pair requests waiting");
    }
    for r in &p.requests {
        let note = r.note.as_deref().map(|n| format!("  \"{}\"", output::untrusted(n))).unwrap_or_default();
        println!("{}  fingerprint {}{note}", face(&r.from), r.from.fingerprint);
    }
    if !p.requests.is_empty() {
        eprintln!(
            "decide with `wire accept <nick>` or `wire reject <nick>`; check the fingerprint with its operator first"
        );
    }
    for o in &p.outgoing {
        let flow = if o.flow == Flow::Dial { "dial" } else { "invite" };
        println!("waiting for {} ({flow})", face(&o.to));
    }
    for a in &p.answers {
        println!("answer to {} not delivered yet ({})", face(&a.to), retries(a.attempts, &a.last_error));
    }
    if !p.answers.is_empty() {
        eprintln!("the answers are retried at every sync; `wire reject <nick>` gives one up (unpins and revokes)");
    }
    Ok(())
}

/// `wire verify`.
pub fn verify(peer: &str, fingerprint: &str, json: bool) -> anyhow::Result<()> {
    let p = open()?.verify(peer, fingerprint)?;
    if json {
        output::json(&p);
    } else {
        println!("{}: the fingerprint matches; tier {}", face(&p.face), tier_name(p.tier));
    }
    Ok(())
}

/// A tier as `wire peers` shows it.
fn tier_name(t: wire_core::proto::pairing::Tier) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `wire forget`.
pub fn forget(target: &str, json: bool) -> anyhow::Result<()> {
    let v = runtime()?.block_on(open()?.forget(target))?;
    if json {
        output::json(&v)
    } else {
        println!("forgot {}: its access is revoked and it is unpinned", face(&v.forgotten))
    }
    Ok(())
}

/// `wire send`, and with `wait` the wait for the peer's signed receipt.
/// `wire send PEER [KIND] WORDS...`: the anchor's form `send <peer> <kind> <body>` is read
/// when the first word is an agent kind and more words follow (so `wire send bob hello
/// world` stays a message); `--kind` wins over both.
pub fn kind_and_body(kind: Option<String>, words: Vec<String>) -> (String, String) {
    if let Some(kind) = kind {
        return (kind, words.join(" "));
    }
    let agent_kind = |w: &str| w.parse::<wire_core::proto::event::Kind>().is_ok_and(|k| !k.is_protocol());
    match words.split_first() {
        Some((first, rest)) if !rest.is_empty() && agent_kind(first) => (first.clone(), rest.join(" ")),
        _ => ("message".to_owned(), words.join(" ")),
    }
}

pub fn send(
    peer: &str,
    kind: &str,
    body: &str,
    queue: bool,
    wait: Option<ReceiptState>,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let text = if body == "-" {
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf).context("reading the message from stdin")?;
        if buf.trim().is_empty() {
            return Err(output::Usage(
                "stdin was empty: nothing to send (pipe the message in, or give it as words)".into(),
            )
            .into());
        }
        buf
    } else {
        body.to_owned()
    };
    let ep = open()?;
    let rt = engine_runtime()?;
    // The engine starts first, so a receipt that comes back at once is not missed.
    let mut waker =
        wait.map(|_| rt.block_on(async { sync::waker(ep.home.clone(), sync::Options { drive_pairings: false }) }));
    let report = rt.block_on(ep.send(peer, kind, Value::String(text), queue))?;
    if !json {
        if report.verdict == Verdict::Sent {
            println!(
                "sent to {} (seq {}, via {})",
                face(&report.to),
                report.seq.unwrap_or_default(),
                report.via.as_deref().unwrap_or("?")
            );
        } else {
            println!("queued for {}: {}", face(&report.to), report.reason.as_deref().unwrap_or(""));
            eprintln!("`wire pull` (or the daemon) delivers it when the relay is back");
        }
    }
    let (Some(state), Some(waker)) = (wait, waker.as_mut()) else {
        if json {
            output::json(&report);
        }
        return Ok(());
    };
    if !json {
        eprintln!(
            "waiting up to {}s for {}'s signed receipt ({})...",
            timeout.as_secs(),
            report.to.nickname,
            receipt_word(state)
        );
    }
    let did = wire_core::proto::did::Did::parse(&report.to.did)?;
    let id = report.event_id.parse().map_err(|_| anyhow::anyhow!("bad event id {}", report.event_id))?;
    let view = rt.block_on(ep.wait_sent(&did, id, state, timeout, &mut waker.wake))?;
    let reached = view.as_ref().map(|v| v.state);
    let wanted = match state {
        ReceiptState::Delivered => SentState::Delivered,
        ReceiptState::Read => SentState::Read,
    };
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["state"] = serde_json::to_value(reached)?;
        output::json(&v);
    } else if reached.is_some_and(|s| s >= wanted) {
        println!("{} by {} (signed receipt)", receipt_word(state), face(&report.to));
    }
    if reached.is_none_or(|s| s < wanted) {
        return Err(endpoint::EndpointError::ReceiptTimeout {
            peer: report.to.nickname.clone(),
            state: receipt_word(state),
            secs: timeout.as_secs(),
        }
        .into());
    }
    Ok(())
}

fn receipt_word(state: ReceiptState) -> &'static str {
    match state {
        ReceiptState::Delivered => "delivered",
        ReceiptState::Read => "read",
    }
}

/// `wire sent`.
pub fn sent(peer: Option<&str>, limit: usize, json: bool) -> anyhow::Result<()> {
    let views = open()?.sent(peer, limit)?;
    if json {
        output::json(&serde_json::json!({ "sent": views }));
        return Ok(());
    }
    if views.is_empty() {
        eprintln!("nothing sent yet");
    }
    let mut rows = Vec::new();
    for v in &views {
        let state = serde_json::to_value(v.state)?;
        let body = match &v.body {
            Value::String(s) => output::untrusted(s),
            other => output::untrusted(&other.to_string()),
        };
        let why = v.reason.as_deref().map(|r| format!(" ({})", output::untrusted(r))).unwrap_or_default();
        rows.push(vec![
            output::when(v.created_at),
            format!("to {}", face(&Face::of(&v.to))),
            format!("[{}]", v.kind),
            format!("{}{why}", state.as_str().unwrap_or("?")),
            body,
        ]);
    }
    output::table(&rows).iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// `wire wait`: the agent's read. Waits for something unread, prints it, marks it read.
pub fn wait(peer: Option<&str>, limit: usize, timeout: Duration, full: bool, json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = engine_runtime()?;
    let mut waker = rt.block_on(async { sync::waker(ep.home.clone(), sync::Options { drive_pairings: false }) });
    let lines = rt.block_on(ep.wait_unread(Consumer::Agent, peer, limit, timeout, &mut waker.wake))?;
    drop(waker);
    if json {
        let events: Vec<Value> = if full {
            lines.iter().map(serde_json::to_value).collect::<Result<_, _>>()?
        } else {
            lines.iter().map(|l| serde_json::to_value(Compact::of(l))).collect::<Result<_, _>>()?
        };
        output::json(&serde_json::json!({ "events": events, "timed_out": lines.is_empty() }));
    } else if lines.is_empty() {
        eprintln!("nothing arrived in {}s", timeout.as_secs());
    } else {
        print_lines(&lines);
    }
    // The agent read them: `read` receipts (a failure stays queued for the next sync).
    rt.block_on(ep.send_read_receipts(&lines))?;
    Ok(())
}

/// An inbox line as columns: time, face, kind, body.
fn line_row(line: &wire_core::home::InboxLine) -> Vec<String> {
    // Peer-authored: escape sequences and control characters print inert.
    let body = match &line.event.body {
        Value::String(s) => output::untrusted_block(s),
        other => output::untrusted(&other.to_string()),
    };
    vec![output::when(line.event.created_at), face(&Face::of(&line.event.from)), format!("[{}]", line.event.kind), body]
}

fn print_line(line: &wire_core::home::InboxLine) {
    println!("{}", line_row(line).join("  "));
}

/// Inbox lines as an aligned table.
fn print_lines(lines: &[wire_core::home::InboxLine]) {
    let rows: Vec<Vec<String>> = lines.iter().map(line_row).collect();
    output::table(&rows).iter().for_each(|l| println!("{l}"));
}

/// `wire pull`.
pub fn pull(json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = runtime()?;
    let report = rt.block_on(ep.pull())?;
    // Detached code pairings move on at every pull too (the daemon drives them as well).
    let open_pairings: Vec<String> = ep
        .pair_list()?
        .into_iter()
        .filter(|v| !matches!(v.status, Status::Paired | Status::Aborted { .. }))
        .map(|v| v.nameplate)
        .collect();
    let mut pairings = Vec::new();
    for key in &open_pairings {
        pairings.push(rt.block_on(ep.pair_drive(key, Duration::ZERO))?);
    }
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["pairings"] =
            serde_json::to_value(pairings.iter().map(|p| crate::cmd::pair::shown(p, false)).collect::<Vec<_>>())?;
        output::json(&v);
        return Ok(());
    }
    println!("received {} new event(s)", report.received);
    for p in &pairings {
        println!("code pairing {}: {}", p.nameplate, crate::cmd::pair::state_words(p));
    }
    let list = |faces: &[Face]| faces.iter().map(face).collect::<Vec<_>>().join(", ");
    let pinned = ep.peers()?;
    for f in &report.paired {
        let tier = pinned.iter().find(|p| p.face.did == f.did).map(|p| tier_name(p.tier)).unwrap_or_default();
        println!("paired with {} ({tier})", face(f));
    }
    if !report.requests.is_empty() {
        println!("pair requests from {}: see `wire pending`", list(&report.requests));
    }
    if !report.declined.is_empty() {
        println!("{} declined to pair", list(&report.declined));
    }
    if !report.closed.is_empty() {
        println!("{} unpaired you", list(&report.closed));
    }
    if !report.rotated.is_empty() {
        println!("{} rotated its keys (same identity; followed)", list(&report.rotated));
    }
    if !report.frozen.is_empty() {
        println!("{}: two different key rotations seen; pinned identity FROZEN (pair again)", list(&report.frozen));
    }
    if !report.revoked.is_empty() {
        println!("{}: identity REVOKED by its owner; nothing more is taken from it", list(&report.revoked));
    }
    if report.flushed > 0 || report.still_queued > 0 {
        println!("outbox: {} delivered, {} still queued", report.flushed, report.still_queued);
    }
    if report.answers_waiting > 0 {
        println!("{} pairing answer(s) not delivered yet: see `wire pending`", report.answers_waiting);
    }
    if report.rejected > 0 {
        println!("{} inbound event(s) refused: see `wire status`", report.rejected);
    }
    Ok(())
}

/// `wire tail`: the newest events, or with `unread` the operator's unread ones (marked
/// read only with `mark_read`; the operator's reads send no receipts).
pub fn tail(
    peer: Option<&str>,
    limit: usize,
    follow: bool,
    unread: bool,
    mark_read: bool,
    json: bool,
) -> anyhow::Result<()> {
    let ep = open()?;
    if follow && !(unread || mark_read) {
        return follow_inbox(&ep, peer, limit, json);
    }
    pull_unless_daemon(&ep)?;
    let print = |line: &wire_core::home::InboxLine| emit(line, json);
    if unread || mark_read {
        let rt = runtime()?;
        rt.block_on(ep.read_unread(Consumer::Operator, peer, limit, mark_read))?.iter().for_each(print);
        return Ok(());
    }
    // Read from the end of the inbox: the cost follows `limit`, not the history.
    let lines = ep.tail(peer, limit)?;
    if lines.is_empty() && !json {
        eprintln!("no messages yet{}", peer.map(|p| format!(" from {p}")).unwrap_or_default());
    }
    if json {
        lines.iter().for_each(print);
    } else {
        print_lines(&lines);
    }
    Ok(())
}

/// One inbox line on stdout: JSON, or the escaped human line.
fn emit(line: &wire_core::home::InboxLine, json: bool) {
    if json {
        output::json(line);
    } else {
        print_line(line);
    }
}

/// `wire tail --follow`: the last `limit` lines of the inbox as it is, then every event that
/// reaches it from then on, those this command pulls first included (what waited at the
/// relay is new to whoever follows).
fn follow_inbox(ep: &Endpoint, peer: Option<&str>, limit: usize, json: bool) -> anyhow::Result<()> {
    let print = |line: &wire_core::home::InboxLine| emit(line, json);
    // Following remembers the ids of a window at the end of the inbox; events arrive at the
    // end, so a bounded window sees each new one.
    const WINDOW: usize = 1_000;
    let lines = ep.tail(peer, WINDOW.max(limit))?;
    let mut seen: std::collections::HashSet<_> = lines.iter().map(|l| l.event.id).collect();
    lines.iter().skip(lines.len().saturating_sub(limit)).for_each(print);
    let rt = runtime()?;
    loop {
        // Without a daemon, following pulls; with one, the pull finds nothing new.
        if let Err(e) = rt.block_on(ep.pull()) {
            eprintln!("pull failed: {e:#}; retrying");
        }
        for line in ep.tail(peer, WINDOW)? {
            if seen.insert(line.event.id) {
                print(&line);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
