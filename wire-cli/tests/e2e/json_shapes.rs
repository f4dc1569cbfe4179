//! The `--json` output of every command keeps the keys documented in docs/CLI.md. Adding
//! a key is fine (update the doc and this list); removing or renaming one breaks agents.

use crate::common::{RelayProcess, Wire, tempdir};
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

fn has(v: &Value, expected: &[&str]) {
    let actual = keys(v);
    for key in expected {
        assert!(actual.iter().any(|k| k == key), "missing `{key}` in {actual:?}");
    }
}

const FACE: &[&str] = &["did", "nickname", "emoji", "color", "ansi256", "fingerprint"];

#[test]
fn json_shapes_are_stable() {
    let dir = tempdir("shapes");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    let init = a.json(&["up", &relay.addr]);
    has(&init, &[FACE, &["created", "relay", "slot", "handle", "notes"]].concat());
    b.json(&["up", &relay.addr]);
    has(&a.json(&["whoami"]), &[FACE, &["relay", "slot", "handle", "home", "chosen_by", "session"]].concat());
    let invite = a.json(&["invite", "--uses", "2", "--ttl", "1h"]);
    has(&invite, &["url", "uses", "expires_at"]);
    let accept = b.json(&["accept", invite["url"].as_str().unwrap()]);
    has(&accept, &["state", "peer"]);
    has(&accept["peer"], FACE);
    let pull = a.json(&["pull"]);
    has(
        &pull,
        &[
            "received",
            "duplicates",
            "paired",
            "requests",
            "declined",
            "closed",
            "rejected",
            "unsupported",
            "flushed",
            "still_queued",
            "answers_waiting",
            "cursor",
        ],
    );
    b.json(&["pull"]);
    let peers = a.json(&["peers"]);
    has(&peers[0], &[FACE, &["tier", "paired_at", "last_contact", "relay"]].concat());
    let send = a.json(&["send", &b.nickname(), "shape"]);
    has(&send, &["verdict", "event_id", "to", "seq", "via", "reason"]);
    b.json(&["pull"]);
    let line: Value = serde_json::from_str(b.run(&["tail", "--json"]).ok().stdout.lines().next().unwrap()).unwrap();
    has(&line, &["v", "id", "from", "to", "kind", "body", "created_at", "received_at", "signed"]);
    has(&a.json(&["pending"]), &["requests", "outgoing", "invites_open"]);
    let status = a.json(&["status"]);
    has(&status, &["identity", "relay", "peers", "inbox", "outbox", "pending", "rejected"]);
    has(&status["relay"], &["url", "reachable", "cursor"]);
    has(&status["outbox"], &["queued", "failing"]);
    has(&status["rejected"], &["total", "reasons"]);
    has(&a.json(&["whois", &b.did()]), &["face", "source", "pinned"]);
    has(&a.json(&["forget", &b.nickname()]), &["forgotten", "told"]);
    let error = a.run(&["send", "nobody", "x", "--json"]);
    assert_eq!(error.code, 1);
    has(&error.json()["error"], &["message"]);
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn session_mesh_service_and_setup_shapes_are_stable() {
    let dir = tempdir("shapes-mesh");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &["--local-only"]);
    let m = crate::common::Machine::new(&dir);
    let (api, web) = (dir.join("api"), dir.join("web"));
    for d in [&api, &web] {
        std::fs::create_dir_all(d).unwrap();
        let new = m.json(d, &["session", "new", "--relay", &relay.addr, "--local-only"]);
        has(&new, &["session", "created", "home", "bound", "identity"]);
    }
    has(&m.json(&api, &["session", "list"])[0], &["name", "home", "initialized", "bound", "role", "uds"]);
    has(&m.json(&api, &["session", "current"]), &["session", "home", "chosen_by", "initialized"]);
    has(&m.json(&api, &["session", "bind", "api"]), &["session", "bound"]);
    has(&m.json(&api, &["session", "pair-all-local"]), &["sessions", "paired", "already_paired", "skipped"]);
    has(&m.json(&web, &["mesh", "role", "set", "reviewer"]), &["role"]);
    let sent = m.json(&api, &["mesh", "broadcast", "hi"]);
    has(&sent, &["deliveries", "sent", "failed"]);
    has(&sent["deliveries"][0], &["to", "verdict", "via", "error"]);
    has(&m.json(&api, &["mesh", "route", "reviewer", "hi"]), &["deliveries", "sent", "failed"]);
    let status = m.json(&api, &["mesh", "status"]);
    has(&status[0], &["session", "face", "role", "paired_with", "not_paired_with", "last_heard", "silent"]);
    let dry = m.json(&api, &["service", "install", "--platform", "systemd", "--dry-run"]);
    has(&dry, &["dry_run", "platform", "files", "commands"]);
    has(&dry["files"][0], &["path", "content", "changed"]);
    let installed = m.json(&api, &["service", "install", "--platform", "systemd"]);
    has(&installed, &["platform", "files", "commands", "relay"]);
    has(&m.json(&api, &["service", "status"]), &["installed", "platform", "units"]);
    has(&m.json(&api, &["service", "uninstall"]), &["removed", "commands", "warnings"]);
    let setup = m.json(&api, &["setup"]);
    has(&setup, &["applied", "entry", "targets"]);
    has(&setup["targets"][0], &["host", "path", "action"]);
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}
