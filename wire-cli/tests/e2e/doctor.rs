//! `wire doctor`: each finding class built for real and found, exit 1; a healthy home
//! (a daemon serving it) gives exit 0 and no findings.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::{RelayProcess, WAIT, Wire, eventually, free_port, tempdir};

/// This test's own HOME (host configs, service units), never the user's.
fn isolated(w: &Wire) -> Vec<(String, String)> {
    let home = w.home.parent().unwrap().join("os-home");
    std::fs::create_dir_all(&home).unwrap();
    let at = |p: &str| home.join(p).display().to_string();
    vec![
        ("HOME".into(), at("")),
        ("XDG_CONFIG_HOME".into(), at(".config")),
        ("XDG_DATA_HOME".into(), at(".local/share")),
        ("XDG_STATE_HOME".into(), at(".local/state")),
        ("WIRE_SERVICE_RECORD".into(), at("service-commands")),
    ]
}

/// `wire ARGS` as `w` with an isolated HOME and `extra` env.
fn run(w: &Wire, args: &[&str], extra: &[(&str, &str)]) -> crate::common::Run {
    let env = isolated(w);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    w.run_with(args, &all)
}

/// The finding codes of `wire doctor --json` and its exit code.
fn doctor(w: &Wire) -> (i32, BTreeSet<String>, Value) {
    doctor_with(w, &[])
}

fn doctor_with(w: &Wire, extra: &[(&str, &str)]) -> (i32, BTreeSet<String>, Value) {
    let run = run(w, &["doctor", "--json"], extra);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    let codes = report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect();
    assert_eq!(report["healthy"], run.code == 0, "{report}");
    (run.code, codes, report)
}

/// A daemon started for a test, stopped when the test ends (passed or not).
struct Daemon<'a>(&'a Wire);

impl<'a> Daemon<'a> {
    fn start(w: &'a Wire) -> Self {
        w.run(&["daemon", "start", "--no-notify", "--json"]).ok();
        Self(w)
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        self.0.run(&["daemon", "stop"]);
    }
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

struct Place {
    dir: PathBuf,
    relays: Vec<Option<RelayProcess>>,
    binds: Vec<String>,
}

impl Place {
    fn new(name: &str, relays: usize) -> Self {
        let dir = tempdir(name);
        let mut place = Self { dir, relays: Vec::new(), binds: Vec::new() };
        for i in 0..relays {
            let bind = format!("127.0.0.1:{}", free_port());
            place.relays.push(Some(place.start(i, &bind)));
            place.binds.push(bind);
        }
        place
    }

    fn start(&self, i: usize, bind: &str) -> RelayProcess {
        RelayProcess::start_at(
            &self.dir.join(format!("relay-{i}")),
            &self.dir.join(format!("relay-{i}.log")),
            bind,
            &[],
        )
    }

    fn agent(&self, name: &str, relay: usize) -> Wire {
        let w = Wire::new(&self.dir, name);
        w.json(&["up", &self.binds[relay]]);
        w
    }

    fn kill(&mut self, i: usize) {
        self.relays[i].take().unwrap().kill9();
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        for r in self.relays.iter_mut() {
            drop(r.take());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_healthy_home_has_no_findings_and_each_missing_part_is_named() {
    let place = Place::new("doctor-healthy", 1);
    // No identity, then an identity without a relay mailbox.
    let nobody = Wire::new(&place.dir, "nobody");
    assert_eq!(doctor(&nobody).0, 1);
    assert_eq!(doctor(&nobody).1, set(&["no_identity"]));
    assert_ne!(nobody.run(&["up", "127.0.0.1:1"]).code, 0);
    assert_eq!(doctor(&nobody).1, set(&["no_relay"]));

    // Up, but nothing keeps it in sync: exactly that.
    let a = place.agent("a", 0);
    assert_eq!(doctor(&a).1, set(&["daemon_not_running"]));
    // An agent asks through MCP: the same report.
    let mut mcp = crate::common::McpSession::start(&a.home, &a.daemon_dir(), &a.sessions_dir(), None);
    mcp.handshake();
    mcp.send(serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "wire_doctor", "arguments": {}}}));
    let reply = mcp.until(|v| v["id"] == 2);
    let report = &reply["result"]["structuredContent"];
    assert_eq!(report["healthy"], false, "{reply}");
    assert_eq!(report["findings"][0]["code"], "daemon_not_running", "{reply}");
    drop(mcp);
    // With the daemon serving it: healthy, exit 0.
    let daemon = Daemon::start(&a);
    let (code, codes, report) = doctor(&a);
    assert_eq!((code, codes), (0, set(&[])), "{report}");
    drop(daemon);
    let human = run(&a, &["doctor"], &[]);
    assert!(
        human.stdout.contains("daemon_not_running") && human.stdout.contains("fix: wire daemon start"),
        "{human:?}"
    );
}

#[test]
fn an_unreachable_relay_a_lost_mailbox_and_a_failing_daemon_are_found() {
    let mut place = Place::new("doctor-relay", 2);
    // The relay dies under a home no daemon syncs (another daemon directory's lock held).
    let quiet = place.agent("quiet", 1);
    let held = served_elsewhere(&quiet);
    place.kill(1);
    let (code, codes, report) = doctor(&quiet);
    assert_eq!((code, codes), (1, set(&["relay_unreachable"])), "{report}");
    drop(held);

    // The relay dies under a home a daemon serves: the daemon's failure is its own finding.
    let a = place.agent("a", 0);
    let daemon = Daemon::start(&a);
    eventually(WAIT, "the daemon to serve A", || (doctor(&a).0 == 0).then_some(()));
    place.kill(0);
    let found = eventually(WAIT, "the daemon's failure to show", || {
        let (_, codes, _) = doctor(&a);
        codes.contains("daemon_failing").then_some(codes)
    });
    assert_eq!(found, set(&["relay_unreachable", "daemon_failing"]));
    drop(daemon);

    // The relay comes back with empty data at the same address: our mailbox is gone.
    let _held = served_elsewhere(&a);
    let bind = place.binds[0].clone();
    let fresh = RelayProcess::start_at(&place.dir.join("relay-fresh"), &place.dir.join("relay-fresh.log"), &bind, &[]);
    let (code, codes, report) = doctor(&a);
    assert_eq!((code, codes), (1, set(&["slot_gone"])), "{report}");
    assert!(report.to_string().contains("wire up --reregister"), "{report}");
    drop(fresh);
}

/// Holds `w`'s serving lock as a daemon of another daemon directory would: the home counts
/// as served (no `daemon_not_running`) while nothing syncs it, so a state stays as built.
fn served_elsewhere(w: &Wire) -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.home.join("daemon.serving"))
        .unwrap();
    file.try_lock().unwrap();
    file
}

#[test]
fn failing_outbox_items_parked_answers_requests_and_refused_events_are_found_one_by_one() {
    let mut place = Place::new("doctor-queues", 2);
    let (a, b, c, d) = (place.agent("a", 0), place.agent("b", 1), place.agent("c", 0), place.agent("d", 0));
    let (e, f) = (place.agent("e", 0), place.agent("f", 1));
    crate::common::pair_by_invite(&a, &b);
    let _held: Vec<std::fs::File> = [&a, &c, &d, &e].iter().map(|w| served_elsewhere(w)).collect();
    for w in [&a, &c, &d, &e] {
        assert_eq!(doctor(w), (0, set(&[]), doctor(w).2), "healthy before");
    }

    // C: a junk envelope in its intro lane, refused at the next pull.
    let slot = c.json(&["whoami"])["slot"].as_str().unwrap().to_owned();
    let junk = wire_testkit::relay::envelope(wire_core::proto::envelope::BUCKETS[0]);
    let head = format!(
        "POST /v1/slots/{slot}/intro HTTP/1.1\r\nHost: x\r\nConnection: close\r\nwire-intro-tag: {}\r\nContent-Length: {}\r\n\r\n",
        wire_core::proto::b64::encode([7u8; 16]),
        junk.len()
    );
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&junk);
    let posted = wire_testkit::http::raw_request(place.binds[0].as_str(), &raw);
    assert_eq!(posted.status, 201, "{}", posted.text());
    c.run(&["pull"]).ok();
    assert_eq!(doctor(&c).1, set(&["events_rejected"]));

    // D: a stranger's request waits.
    e.json(&["dial", &format!("{}@{}", d.nickname(), place.binds[0])]);
    d.run(&["pull"]).ok();
    let (code, codes, report) = doctor(&d);
    assert_eq!((code, codes), (1, set(&["requests_waiting"])), "{report}");
    assert!(report.to_string().contains(&e.nickname()), "the stranger is named: {report}");

    // E: F (on the second relay) dials E; the second relay dies; E's accept stays parked.
    f.json(&["dial", &format!("{}@{}", e.nickname(), place.binds[0])]);
    e.run(&["pull"]).ok();
    place.kill(1);
    e.run(&["accept", &f.nickname()]);
    e.run(&["pull"]);
    let (_, codes, report) = doctor(&e);
    assert_eq!(codes, set(&["answers_parked"]), "{report}");

    // A: a message to B, whose relay is gone, fails in the outbox.
    a.run(&["send", &b.did(), "are you there?", "--queue"]).ok();
    a.run(&["pull"]);
    let (code, codes, report) = doctor(&a);
    assert_eq!((code, codes), (1, set(&["outbox_failing"])), "{report}");
}

#[test]
fn clock_skew_service_units_and_host_entries_are_found() {
    let place = Place::new("doctor-host", 1);
    let a = place.agent("a", 0);
    assert_eq!(doctor(&a).1, set(&["daemon_not_running"]));
    let _held = served_elsewhere(&a);
    assert_eq!(doctor(&a).1, set(&[]));

    // This machine's clock ten minutes ahead of the relay's.
    let offset = place.dir.join("clock-offset");
    std::fs::write(&offset, "600000").unwrap();
    let (_, codes, report) = doctor_with(&a, &[("WIRE_CLOCK_OFFSET_FILE", offset.to_str().unwrap())]);
    assert_eq!(codes, set(&["clock_skew"]), "{report}");
    assert!(report.to_string().contains("ahead of the relay"), "{report}");

    // Service units installed (the service manager's commands recorded, not run); then the
    // manager says they are not running; then the unit names another binary.
    run(&a, &["service", "install", "--json"], &[]).ok();
    assert_eq!(doctor(&a).1, set(&[]), "installed and (as recorded) running");
    let record = a.home.parent().unwrap().join("os-home/service-commands");
    std::fs::write(format!("{}.stopped", record.display()), "").unwrap();
    assert_eq!(doctor(&a).1, set(&["service_inactive"]));
    let unit = a.home.parent().unwrap().join("os-home/.config/systemd/user/wire-daemon.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let bin = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap().trim_start_matches("ExecStart=");
    let bin = bin.split_whitespace().next().unwrap().to_owned();
    std::fs::write(&unit, text.replace(&bin, "/opt/old/wire")).unwrap();
    assert_eq!(doctor(&a).1, set(&["service_stale"]));
    run(&a, &["service", "uninstall", "--json"], &[]).ok();

    // An agent host installed without a wire entry; then with one; then the entry pins
    // another identity than this one.
    std::fs::create_dir_all(a.home.parent().unwrap().join("os-home/.claude")).unwrap();
    let (_, codes, report) = doctor(&a);
    assert_eq!(codes, set(&["mcp_entry_missing"]), "{report}");
    run(&a, &["setup", "--apply", "--host", "claude", "--json"], &[]).ok();
    assert_eq!(doctor(&a).1, set(&[]));
    let b = place.agent("b", 0);
    let _held_b = served_elsewhere(&b);
    let (_, codes, report) = doctor(&b);
    assert_eq!(codes, set(&["mcp_entry_stale"]), "the entry pins A's home, not B's: {report}");
}

#[test]
fn a_second_daemon_and_a_stuck_daemon_are_found() {
    let place = Place::new("doctor-daemons", 1);
    let (a, b) = (place.agent("a", 0), place.agent("b", 0));
    crate::common::pair_by_invite(&a, &b);
    let first = Daemon::start(&a);
    eventually(WAIT, "the daemon to serve A", || (doctor(&a).0 == 0).then_some(()));

    // A second daemon, with another daemon directory, for the same home: it waits, and says so.
    let other = place.dir.join("daemon-2");
    let env2 = [("WIRE_DAEMON_DIR", other.to_str().unwrap())];
    a.run_with(&["up", &place.binds[0]], &env2).ok();
    a.run_with(&["daemon", "start", "--no-notify", "--json"], &env2).ok();
    let found = eventually(WAIT, "the second daemon to say it waits", || {
        let (_, codes, _) = doctor_with(&a, &env2);
        codes.contains("daemon_twice").then_some(codes)
    });
    a.run_with(&["daemon", "stop"], &env2);
    assert_eq!(found, set(&["daemon_twice"]));
    assert_eq!(doctor(&a).1, set(&[]), "the first daemon's view: healthy");

    // The first daemon frozen: it still says it is connected, but takes nothing.
    let a_home = std::fs::canonicalize(&a.home).unwrap().display().to_string();
    let status = eventually(WAIT, "the daemon's status to show A's stream up", || {
        let status = a.json(&["daemon", "status"]);
        let homes = status["homes"].as_array()?;
        homes.iter().any(|h| h["home"] == a_home.as_str() && h["stream_connected"] == true).then_some(status)
    });
    let pid = status["pid"].as_u64().unwrap().to_string();
    let signal = |sig: &str| assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    signal("-STOP");
    b.run(&["send", &a.did(), "are you awake?"]).ok();
    let (_, codes, report) = doctor(&a);
    signal("-CONT");
    drop(first);
    assert_eq!(codes, set(&["daemon_stuck"]), "{report}");
}
