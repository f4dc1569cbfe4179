//! The sync daemon as a real process, with a real relay process and temporary homes:
//! delivery without `pull`, exactly-once across `kill -9`, reconnects, the outbox, one
//! daemon per user.

use std::path::PathBuf;

use crate::common::{RelayProcess, Run, Wire, free_port, tempdir};
use serde_json::Value;

struct Setup {
    dir: PathBuf,
    bind: String,
    relay: Option<RelayProcess>,
    a: Wire,
    b: Wire,
}

impl Setup {
    fn new(name: &str) -> Self {
        let dir = tempdir(name);
        let bind = format!("127.0.0.1:{}", free_port());
        let relay = RelayProcess::start_at(&dir.join("relay"), &dir.join("relay.log"), &bind, &[]);
        let s = Self { a: Wire::new(&dir, "a"), b: Wire::new(&dir, "b"), dir, bind, relay: Some(relay) };
        s.cli(&s.a, &["up", &s.bind]);
        s.cli(&s.b, &["up", &s.bind]);
        s
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("WIRE_DAEMON_DIR", self.dir.join("daemon").display().to_string())]
    }

    /// Runs `wire` for an agent with this setup's daemon directory.
    fn cli(&self, w: &Wire, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = args.to_vec();
        all.push("--json");
        w.run_with(&all, &env)
    }

    fn daemon(&self, args: &[&str]) -> Value {
        let mut all = vec!["daemon"];
        all.extend_from_slice(args);
        self.cli(&self.a, &all).ok().json()
    }

    fn pair(&self) {
        let url = self.cli(&self.a, &["invite"]).ok().json()["url"].as_str().unwrap().to_owned();
        self.cli(&self.b, &["accept", &url]).ok();
        wait(
            || self.cli(&self.b, &["peers"]).json().as_array().is_some_and(|p| !p.is_empty()),
            "the daemon completes the pairing",
        );
    }

    fn inbox(&self, w: &Wire) -> Vec<String> {
        let out = self.cli(w, &["tail", "--limit", "100000"]).ok().stdout;
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn restart_relay(&mut self) {
        self.relay.take().unwrap().kill9();
        self.relay =
            Some(RelayProcess::start_at(&self.dir.join("relay"), &self.dir.join("relay.log"), &self.bind, &[]));
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.cli(&self.a, &["daemon", "stop"]);
        drop(self.relay.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait(cond: impl FnMut() -> bool, what: &str) {
    crate::common::wait_until(crate::common::WAIT, what, cond);
}

impl Setup {
    /// `wire send --json`; the relay sequence number it was stored at.
    fn send(&self, from: &Wire, to: &str, body: &str) -> u64 {
        let report = self.cli(from, &["send", to, body]).ok().json();
        assert_eq!(report["verdict"], "sent", "{report}");
        report["seq"].as_u64().unwrap()
    }

    /// The home's receive cursor (account.json): everything through it has been appended.
    fn cursor(&self, w: &Wire) -> u64 {
        let account: Value = serde_json::from_slice(&std::fs::read(w.home.join("account.json")).unwrap()).unwrap();
        account["cursor"].as_u64().unwrap_or(0)
    }

    /// Waits until `w` has processed through relay sequence `seq`; a late duplicate would
    /// be in the inbox by then.
    fn caught_up(&self, w: &Wire, seq: u64) {
        wait(|| self.cursor(w) >= seq, &format!("the cursor to reach {seq}"));
    }
}

#[test]
fn a_message_appears_without_any_pull() {
    let s = Setup::new("daemon-deliver");
    let started = s.daemon(&["start", "--no-notify"]);
    assert_eq!(started["running"], true);
    s.pair();
    s.cli(&s.a, &["send", &s.b.nickname(), "no pull needed"]).ok();
    wait(|| s.inbox(&s.b) == vec!["no pull needed".to_owned()], "the message lands in B's inbox");
    let status = s.daemon(&["status"]);
    assert_eq!(status["running"], true);
    assert!(status["pid"].as_u64().is_some());
    wait(
        || {
            let homes = s.daemon(&["status"])["homes"].as_array().cloned().unwrap_or_default();
            homes.len() == 2 && homes.iter().all(|h| h["stream_connected"] == true && h["last_sync"].is_u64())
        },
        "status shows both identities connected",
    );
    let home = &s.daemon(&["status"])["homes"][0];
    for key in ["stream_connected", "cursor", "last_sync", "outbox", "rejected_total", "rejected_reasons"] {
        assert!(home.get(key).is_some(), "status lacks {key}");
    }
}

#[test]
fn kill_9_during_a_burst_then_restart_every_message_exactly_once() {
    let s = Setup::new("daemon-crash");
    s.daemon(&["start", "--no-notify"]);
    s.pair();
    let b_nick = s.b.nickname();
    let pid = s.daemon(&["status"])["pid"].as_u64().unwrap();
    let mut last = 0;
    for i in 0..40 {
        last = s.send(&s.a, &b_nick, &format!("burst {i}"));
        if i == 15 {
            std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        }
    }
    // A stale pidfile is left behind; start must still work.
    let restarted = s.daemon(&["start", "--no-notify"]);
    assert_eq!(restarted["started"], true);
    assert_ne!(restarted["pid"].as_u64().unwrap(), pid);
    s.caught_up(&s.b, last);
    let inbox = s.inbox(&s.b);
    let unique: std::collections::HashSet<&String> = inbox.iter().collect();
    assert_eq!((inbox.len(), unique.len()), (40, 40), "each exactly once: {inbox:?}");
}

#[test]
fn the_daemon_reconnects_after_a_relay_restart() {
    let mut s = Setup::new("daemon-relay-restart");
    s.daemon(&["start", "--no-notify"]);
    s.pair();
    s.cli(&s.a, &["send", &s.b.nickname(), "before"]).ok();
    wait(|| s.inbox(&s.b).len() == 1, "the first message arrives");
    s.restart_relay();
    s.cli(&s.a, &["send", &s.b.nickname(), "after"]).ok();
    wait(|| s.inbox(&s.b) == vec!["before".to_owned(), "after".to_owned()], "the daemon resumes and delivers");
}

#[test]
fn queued_while_the_relay_is_down_delivered_when_it_returns() {
    let mut s = Setup::new("daemon-queue");
    s.pair_without_daemon();
    s.daemon(&["start", "--no-notify"]);
    let port_holder = s.relay.take().unwrap();
    port_holder.kill9();
    let queued = s.cli(&s.a, &["send", &s.b.nickname(), "held for later", "--queue"]).ok().json();
    assert_eq!(queued["verdict"], "queued");
    s.relay = Some(RelayProcess::start_at(&s.dir.join("relay"), &s.dir.join("relay.log"), &s.bind, &[]));
    wait(|| s.inbox(&s.b) == vec!["held for later".to_owned()], "the daemon delivers the queued message");
    wait(|| s.cli(&s.a, &["status"]).ok().json()["outbox"]["queued"] == 0, "the outbox empties");
}

impl Setup {
    fn pair_without_daemon(&self) {
        let url = self.cli(&self.a, &["invite"]).ok().json()["url"].as_str().unwrap().to_owned();
        self.cli(&self.b, &["accept", &url]).ok();
        self.cli(&self.a, &["pull"]).ok();
        self.cli(&self.b, &["pull"]).ok();
    }
}

#[test]
fn one_daemon_per_user() {
    let s = Setup::new("daemon-one");
    let first = s.daemon(&["start", "--no-notify"]);
    let second = s.daemon(&["start", "--no-notify"]);
    assert_eq!(second["started"], false);
    assert_eq!(first["pid"], second["pid"]);
    // A second `run` refuses to start.
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = s.a.run_with(&["daemon", "run", "--no-notify"], &env);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("already running"), "{run:?}");
    let stopped = s.daemon(&["stop"]);
    assert_eq!(stopped["stopped"], true);
    assert_eq!(s.daemon(&["status"])["running"], false);
    // A stale pidfile from a daemon that died does not block a start.
    std::fs::write(s.dir.join("daemon").join("daemon.pid"), "999999").unwrap();
    assert_eq!(s.daemon(&["start", "--no-notify"])["started"], true);
}

#[test]
fn the_cli_and_the_daemon_never_double_append() {
    let s = Setup::new("daemon-and-cli");
    s.daemon(&["start", "--no-notify"]);
    s.pair();
    let b_nick = s.b.nickname();
    let last = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..20 {
                last.fetch_max(s.send(&s.a, &b_nick, &format!("m{i}")), std::sync::atomic::Ordering::SeqCst);
            }
        });
        scope.spawn(|| {
            for _ in 0..20 {
                s.cli(&s.b, &["pull"]).ok();
            }
        });
    });
    s.caught_up(&s.b, last.into_inner());
    let inbox = s.inbox(&s.b);
    let unique: std::collections::HashSet<&String> = inbox.iter().collect();
    assert_eq!((inbox.len(), unique.len()), (20, 20));
}

#[test]
fn notifications_one_per_batch_and_none_with_no_notify() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("daemon-notify");
    let bin = s.dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = s.dir.join("notifications.log");
    let script = bin.join("notify-send");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$2\" >> '{}'\n", log.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut env = s.env();
    env.push(("PATH", path));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = s.a.run_with(&["daemon", "start", "--json"], &env).ok();
    assert_eq!(started.json()["started"], true);
    s.pair();
    let seq = s.send(&s.a, &s.b.nickname(), "ding");
    wait(|| std::fs::read_to_string(&log).is_ok_and(|t| t.contains("1 new message")), "a notification for the message");
    s.caught_up(&s.b, seq);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("new message")).count(), 1, "{text}");
    assert!(!text.contains("ding"), "notifications carry no message content: {text}");

    // With --no-notify, nothing.
    s.daemon(&["stop"]);
    std::fs::remove_file(&log).ok();
    let quiet = s.a.run_with(&["daemon", "start", "--no-notify", "--json"], &env).ok();
    assert_eq!(quiet.json()["started"], true);
    let seq = s.send(&s.a, &s.b.nickname(), "quiet");
    wait(|| s.inbox(&s.b).len() == 2, "the second message arrives");
    s.caught_up(&s.b, seq);
    assert!(!log.exists(), "no notification with --no-notify");
}

#[test]
fn the_daemon_drives_detached_code_pairings() {
    let s = Setup::new("daemon-pairing");
    s.daemon(&["start", "--no-notify"]);
    let code = s.cli(&s.a, &["pair-host", "--detach", "--reveal"]).ok().json()["code"].as_str().unwrap().to_owned();
    s.cli(&s.b, &["pair-join", &code, "--detach"]).ok();
    let nameplate = code.split('-').next().unwrap().to_owned();
    // No `pair-list` here: only the daemon moves the pairings forward.
    let sas_of = |w: &Wire| -> Option<String> {
        let file = w.home.join("pairings").join(format!("{nameplate}.json"));
        let v: Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        v["pairing"]["state"]["sas"].as_str().map(str::to_owned)
    };
    wait(|| sas_of(&s.a).is_some() && sas_of(&s.b).is_some(), "the daemon brings both sides to the SAS");
    let (sa, sb) = (sas_of(&s.a).unwrap(), sas_of(&s.b).unwrap());
    assert_eq!(sa, sb);
    s.cli(&s.a, &["pair-confirm", &code, &sb]).ok();
    s.cli(&s.b, &["pair-confirm", &code, &sa]).ok();
    let pinned = |w: &Wire| {
        std::fs::read(w.home.join("peers.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["peers"].as_array().is_some_and(|p| p.len() == 1))
    };
    wait(|| pinned(&s.a) && pinned(&s.b), "both sides pinned");
}

/// How many lines of the daemon's log say `needle`.
fn log_count(s: &Setup, needle: &str) -> usize {
    let log = std::fs::read_to_string(s.dir.join("daemon").join("daemon.log")).unwrap_or_default();
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn the_relay_loses_its_data_and_both_agents_recover_with_reregister_keeping_their_pins() {
    let mut s = Setup::new("daemon-relay-loss");
    s.daemon(&["start", "--no-notify"]);
    s.pair();
    let (a_nick, b_nick) = (s.a.nickname(), s.b.nickname());
    s.send(&s.a, &b_nick, "before the loss");
    wait(|| s.inbox(&s.b) == ["before the loss"], "the first message arrives");
    let pins_before: Vec<Value> = [&s.a, &s.b].iter().map(|w| s.cli(w, &["peers"]).ok().json()).collect();

    // The relay's data directory is deleted while both agents (and the daemon) run.
    s.relay.take().unwrap().kill9();
    std::fs::remove_dir_all(s.dir.join("relay")).unwrap();
    s.relay = Some(RelayProcess::start_at(&s.dir.join("relay"), &s.dir.join("relay.log"), &s.bind, &[]));

    // Both sides say so: `wire status` in words and JSON, the daemon once per home.
    wait(|| s.cli(&s.a, &["status"]).json()["relay"]["mailbox"] == "gone", "status says the mailbox is gone");
    let words = s.a.run(&["status"]).ok().stdout;
    assert!(words.contains("NO LONGER KNOWS THIS MAILBOX") && words.contains("wire up --reregister"), "{words}");
    wait(|| log_count(&s, "no longer knows this agent's mailbox") >= 2, "the daemon reports the loss for each home");
    let sends = s.cli(&s.a, &["send", &b_nick, "into the void"]);
    assert_eq!(sends.json()["error"]["code"], "peer_slot_gone", "a send to the lost slot fails: {sends:?}");
    let queued = s.cli(&s.a, &["send", "--queue", &b_nick, "queued in the void"]).ok().json();
    assert_eq!(queued["verdict"], "queued", "{queued}");

    // A recovers first: B's mailbox is gone too and B has not re-registered, so it waits.
    let a_report = s.cli(&s.a, &["up", "--reregister"]).ok().json();
    assert_eq!(a_report["peers"][0]["state"], "waiting", "{a_report}");
    assert_eq!(s.cli(&s.a, &["status"]).ok().json()["reintroductions"].as_array().unwrap().len(), 1);
    // B recovers: it finds A by handle and re-introduces itself on A's intro lane; A's
    // daemon accepts it and A's waiting re-introduction then reaches B.
    let b_report = s.cli(&s.b, &["up", "--reregister"]).ok().json();
    assert_eq!(b_report["peers"][0]["state"], "delivered", "{b_report}");
    wait(
        || s.cli(&s.a, &["status"]).json()["reintroductions"].as_array().is_some_and(|r| r.is_empty()),
        "A's re-introduction is delivered",
    );
    let again = s.cli(&s.a, &["up", "--reregister"]);
    assert_ne!(again.code, 0, "a live mailbox is never replaced: {again:?}");

    // Messages flow both ways again, and the pins are the same pins.
    wait(|| s.inbox(&s.b) == ["before the loss", "queued in the void"], "the queued message follows B's new card");
    s.send(&s.a, &b_nick, "after the loss");
    wait(|| s.inbox(&s.b) == ["before the loss", "queued in the void", "after the loss"], "A reaches B again");
    s.send(&s.b, &a_nick, "and back");
    wait(|| s.inbox(&s.a) == ["and back"], "B reaches A again");
    for (w, before) in [&s.a, &s.b].iter().zip(&pins_before) {
        let now = s.cli(w, &["peers"]).ok().json();
        for key in ["did", "tier", "paired_at"] {
            assert_eq!(now[0][key], before[0][key], "{key} of the pin is kept");
        }
    }
    assert_eq!(log_count(&s, "no longer knows this agent's mailbox"), 2, "said once per home, not in a loop");
}

#[test]
fn a_rotation_under_a_running_daemon_loses_nothing_and_the_daemon_takes_the_new_keys() {
    let s = Setup::new("daemon-rotate");
    s.daemon(&["start", "--no-notify"]);
    s.pair();
    let (a_nick, b_nick) = (s.a.nickname(), s.b.nickname());
    // Both daemons' first syncs told each side the other's commitment.
    wait(
        || s.cli(&s.b, &["peers"]).json()[0]["lineage"]["committed"] == true,
        "B to hold A's commitment to its next key",
    );
    let rotated = s.cli(&s.a, &["rotate"]).ok().json();
    assert_eq!(rotated["seq"], 1, "{rotated}");
    wait(|| s.cli(&s.b, &["peers"]).json()[0]["lineage"]["seq"] == 1, "B's daemon to follow the rotation");
    // B seals to A's new key; A's daemon, opened before the rotation, must use the new keys.
    let seq = s.send(&s.b, &a_nick, "sealed to the new key");
    s.caught_up(&s.a, seq);
    assert_eq!(s.inbox(&s.a), ["sealed to the new key"]);
    // And what A signs now, B takes.
    s.send(&s.a, &b_nick, "signed by the new key");
    wait(|| s.inbox(&s.b).contains(&"signed by the new key".to_owned()), "A's message under the new key at B");
    assert_eq!(s.cli(&s.a, &["status"]).ok().json()["rejected"]["total"], 0);
    assert_eq!(s.cli(&s.b, &["status"]).ok().json()["rejected"]["total"], 0);
}

/// The lines of a home's room inboxes, read from the files (`wire room tail` would sync).
fn room_inbox(w: &Wire) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(w.home.join("inbox")) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("room-") && name.ends_with(".jsonl") {
            for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                out.push(v["body"]["body"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    out
}

#[test]
fn the_daemon_adds_joins_and_reads_rooms_without_any_pull() {
    let s = Setup::new("daemon-rooms");
    s.daemon(&["start", "--no-notify"]);
    s.pair();
    s.cli(&s.a, &["room", "create", "lab"]).ok();
    s.cli(&s.a, &["room", "add", "lab", &s.b.nickname()]).ok();
    // Key package, commit, Welcome: each side's daemon takes its step.
    wait(
        || {
            let rooms = s.cli(&s.b, &["rooms"]).ok().json();
            rooms.as_array().is_some_and(|r| r.iter().any(|r| r["name"] == "lab" && r["members"] == 2))
        },
        "b's daemon joins the room",
    );
    s.cli(&s.a, &["room", "send", "lab", "read by the daemon"]).ok();
    wait(|| room_inbox(&s.b) == vec!["read by the daemon".to_owned()], "b's daemon reads the room");
    s.cli(&s.b, &["room", "send", "lab", "and back"]).ok();
    wait(|| room_inbox(&s.a).contains(&"and back".to_owned()), "a's daemon reads the room");
}
