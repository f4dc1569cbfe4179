//! `wire verify FILE|-`: a third party re-checks signed events offline, against the pins of
//! a home or a given DID; tampered lines are named by number.

use serde_json::Value;

use crate::common::{RelayProcess, WAIT, Wire, eventually, pair_by_invite, tempdir};

fn lines(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write(file: &std::path::Path, lines: &[Value]) {
    std::fs::write(file, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

#[test]
fn signed_events_are_checked_again_offline_and_tampered_lines_named() {
    let dir = tempdir("verify");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let bind = relay.addr.clone();
    let (a, b, c) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"), Wire::new(&dir, "c"));
    for w in [&a, &b, &c] {
        w.json(&["up", &bind]);
    }
    pair_by_invite(&a, &b);
    for text in ["pay 10", "ship it"] {
        b.run(&["send", &a.did(), text]).ok();
    }
    let b_did = b.did();
    let inbox = a.home.join("inbox").join(format!("{}.jsonl", b_did.trim_start_matches("did:key:")));
    eventually(WAIT, "both messages in A's inbox", || {
        a.run(&["pull"]);
        (std::fs::read_to_string(&inbox).unwrap_or_default().matches("signed").count() >= 2).then_some(())
    });
    let file = inbox.to_str().unwrap();

    // As A: every line verifies under B's pinned key.
    let ok = a.json(&["verify", file]);
    assert_eq!(ok["failed"], 0, "{ok}");
    assert!(ok["verified"].as_u64().unwrap() >= 2, "{ok}");

    // Tampered copies: a changed body (line 2), a signature from another line (line 1).
    let mut copy = lines(&inbox);
    let at = copy.iter().position(|l| l["body"] == "ship it").unwrap();
    let first = copy.iter().position(|l| l["body"] == "pay 10").unwrap();
    let other_sig = copy[at]["signed"]["sig"].clone();
    copy[at]["body"] = "ship it to me".into();
    copy[first]["signed"]["sig"] = other_sig;
    let tampered = dir.join("tampered.jsonl");
    write(&tampered, &copy);
    let run = a.run(&["verify", tampered.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    let failed: Vec<(u64, &str)> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["ok"] == false)
        .map(|l| (l["line"].as_u64().unwrap(), l["problem"].as_str().unwrap()))
        .collect();
    let mut want = vec![(first as u64 + 1, "bad_signature"), (at as u64 + 1, "fields_differ")];
    want.sort();
    assert_eq!(failed, want, "{report}");
    let human = a.run(&["verify", tampered.to_str().unwrap()]);
    assert!(human.stdout.contains(&format!("line {}: FAILED", at + 1)), "{human:?}");

    // C pins nobody: the same file is refused line by line.
    let run = c.run(&["verify", file, "--json"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.lines().next().unwrap().contains("not_pinned"), "{run:?}");

    // A third party without any home checks against B's DID; A's DID is not the signer.
    let nobody = Wire::new(&dir, "nobody");
    assert_eq!(nobody.json(&["verify", file, "--did", &b_did])["failed"], 0);
    assert!(!nobody.home.exists(), "verifying against a DID made no home");
    let run = nobody.run(&["verify", file, "--did", &a.did(), "--json"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("other_signer"));

    // An agent checks the same through MCP: the tampered lines are named.
    let mut mcp = crate::common::McpSession::start(&a.home, &a.daemon_dir(), &a.sessions_dir(), None);
    mcp.handshake();
    let text = std::fs::read_to_string(&tampered).unwrap();
    mcp.send(serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "wire_verify", "arguments": {"lines": text}}}));
    let reply = mcp.until(|v| v["id"] == 2);
    assert_eq!(reply["result"]["structuredContent"]["failed"], 2, "{reply}");
    drop(mcp);

    // One line on stdin.
    let one = std::fs::read_to_string(&inbox).unwrap().lines().next().unwrap().to_owned();
    let run = nobody.run_stdin(&["verify", "-", "--did", &b_did, "--json"], one.as_bytes());
    assert_eq!(run.code, 0, "{run:?}");
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
