//! The operator's tools: `wire verify FILE`, `wire ping`, the block list (`wire doctor` is
//! in `doctor.rs`).

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use wire_core::endpoint;
use wire_core::sync;

use super::agent::{engine_runtime, open, runtime};
use crate::output::{self, face};

/// `wire verify FILE|- [--did DID]`.
pub fn verify_file(file: &str, did: Option<&str>, json: bool) -> anyhow::Result<()> {
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    let report = match did {
        Some(did) => {
            let did = wire_core::proto::did::Did::parse(did).map_err(|e| output::Usage(format!("--did: {e}")))?;
            endpoint::verify_lines(&text, &endpoint::Against::Did(did))
        }
        None => open()?.verify_lines(&text)?,
    };
    if json {
        output::json(&report);
    } else {
        for l in &report.lines {
            let who = l.from.as_ref().map(|f| format!(" from {}", face(f))).unwrap_or_default();
            match l.problem {
                None => println!("line {}: verified{who}", l.line),
                Some(why) => println!("line {}: FAILED ({}){who}", l.line, verify_problem(why)),
            }
        }
        println!("{} verified, {} failed", report.verified, report.failed);
    }
    if report.failed > 0 {
        anyhow::bail!("{} of {} line(s) did not verify", report.failed, report.lines.len());
    }
    if report.lines.is_empty() {
        anyhow::bail!("nothing to verify in {file}");
    }
    Ok(())
}

/// What a `wire verify` problem code means.
fn verify_problem(code: &str) -> &'static str {
    match code {
        "not_json" => "not JSON",
        "no_signature" => "no signed document on the line",
        "not_an_event" => "the signed bytes are not an event",
        "not_pinned" => "signed by nobody pinned here",
        "other_signer" => "signed by another identity than --did",
        "bad_signature" => "the signature does not verify: tampered, or not from that key",
        "fields_differ" => "the line's fields differ from the signed bytes: tampered",
        _ => "failed",
    }
}

/// `wire ping`.
pub fn ping(peer: &str, timeout: Duration, json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = engine_runtime()?;
    // The engine brings the answer in; it starts first so a quick answer is not missed.
    let mut waker = rt.block_on(async { sync::waker(ep.home.clone(), sync::Options { drive_pairings: false }) });
    if !json {
        eprintln!("pinging {peer} (up to {}s)...", timeout.as_secs().min(endpoint::MAX_PING_WAIT.as_secs()));
    }
    let r = rt.block_on(ep.ping(peer, timeout, &mut waker.wake))?;
    if json {
        output::json(&r);
    } else if let Some(rtt) = r.rtt_ms {
        println!("pong from {}: {rtt} ms", face(&r.peer));
    } else {
        println!("no answer from {} within {} s", face(&r.peer), r.waited_ms / 1000);
    }
    if !r.answered {
        anyhow::bail!("no answer from {}: its endpoint is not running, or its relay is unreachable", r.peer.nickname);
    }
    Ok(())
}

/// `wire block`.
pub fn block(target: &str, json: bool) -> anyhow::Result<()> {
    let r = runtime()?.block_on(open()?.block(target))?;
    if json {
        output::json(&r);
        return Ok(());
    }
    let mut what = Vec::new();
    if r.unpinned {
        what.push("unpinned, its send grant revoked");
    }
    if r.dropped_request {
        what.push("its pair request dropped");
    }
    let what = if what.is_empty() { String::new() } else { format!(" ({})", what.join("; ")) };
    let state = if r.already { "already blocked" } else { "blocked" };
    println!("{}: {state}{what}; whatever it sends is dropped", face(&r.blocked));
    Ok(())
}

/// `wire prune --before`.
pub fn prune(before: wire_core::home::Before, json: bool) -> anyhow::Result<()> {
    let p = open()?.prune(before)?;
    if json {
        output::json(&p);
    } else {
        println!("pruned {} received and {} sent-log lines from {} files", p.inbox_lines, p.sent_lines, p.files);
    }
    Ok(())
}

/// `wire unblock`.
pub fn unblock(target: &str, json: bool) -> anyhow::Result<()> {
    let f = open()?.unblock(target)?;
    if json {
        output::json(&serde_json::json!({ "unblocked": f }));
    } else {
        println!("{}: unblocked (pair again to talk)", face(&f));
    }
    Ok(())
}

/// `wire blocked`.
pub fn blocked(json: bool) -> anyhow::Result<()> {
    let list = open()?.blocked()?;
    if json {
        output::json(&list);
        return Ok(());
    }
    if list.is_empty() {
        println!("nobody is blocked");
    }
    for b in &list {
        println!("{} since {}: {} dropped", face(&b.face), output::when(b.at), b.dropped);
    }
    Ok(())
}
