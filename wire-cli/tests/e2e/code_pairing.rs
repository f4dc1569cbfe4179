//! SPAKE2 + SAS pairing with the real binary and a real relay process: interactive and
//! detached completion, and every way it must abort without pinning anything.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::common::{RelayProcess, Wire, free_port, tempdir};
use serde_json::Value;

struct Setup {
    dir: std::path::PathBuf,
    bind: String,
    relay: Option<RelayProcess>,
    a: Wire,
    b: Wire,
}

fn setup(name: &str) -> Setup {
    let dir = tempdir(name);
    let bind = format!("127.0.0.1:{}", free_port());
    let relay = RelayProcess::start_at(&dir.join("relay"), &dir.join("relay.log"), &bind, &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    a.json(&["up", &bind]);
    b.json(&["up", &bind]);
    Setup { dir, bind, relay: Some(relay), a, b }
}

impl Drop for Setup {
    fn drop(&mut self) {
        drop(self.relay.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn peers(w: &Wire) -> usize {
    w.json(&["peers"]).as_array().unwrap().len()
}

/// The latest `pair-list --json` entry of `w`, driving `w` and `also` (a detached pairing
/// advances only when each side is driven) until `pred` holds or 15 s pass.
fn wait_for(w: &Wire, also: Option<&Wire>, pred: impl Fn(&Value) -> bool) -> Value {
    crate::common::eventually(crate::common::WAIT, "the pairing to reach the expected state", || {
        if let Some(other) = also {
            other.run(&["pair-list", "--json", "--reveal"]);
        }
        let list = w.json(&["pair-list", "--reveal"]);
        let last = list.as_array().unwrap().last().cloned().unwrap_or(Value::Null);
        pred(&last).then_some(last)
    })
}

fn state_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["state"] == s
}

fn detached(s: &Setup) -> String {
    let code = s.a.json(&["pair-host", "--detach", "--reveal"])["code"].as_str().unwrap().to_owned();
    s.b.json(&["pair-join", &code, "--detach"]);
    code
}

fn exchange_messages(a: &Wire, b: &Wire) {
    a.json(&["send", &b.nickname(), "after code pairing"]);
    assert_eq!(b.json(&["pull"])["received"], 1);
    b.json(&["send", &a.nickname(), "reply"]);
    assert_eq!(a.json(&["pull"])["received"], 1);
}

struct Interactive {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<Value>,
}

fn interactive(w: &Wire, args: &[&str]) -> Interactive {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wire"))
        .args(args)
        .arg("--json")
        .env("WIRE_HOME", &w.home)
        .env("WIRE_DAEMON_DIR", w.daemon_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    Interactive { child, stdin, lines: rx }
}

impl Interactive {
    fn next(&self, event: &str) -> Value {
        loop {
            let v = self.lines.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no `{event}` event"));
            if v["event"] == event {
                return v;
            }
        }
    }
}

#[test]
fn interactive_host_and_guest_complete() {
    let s = setup("interactive");
    let mut host = interactive(&s.a, &["pair", "--reveal"]);
    let code = host.next("code")["code"].as_str().unwrap().to_owned();
    let mut guest = interactive(&s.b, &["pair", "--code", &code, "--reveal"]);
    let (hs, gs) = (host.next("sas"), guest.next("sas"));
    assert_eq!(hs["sas"], gs["sas"]);
    assert_eq!(hs["sas"].as_str().unwrap().len(), 6);
    assert_eq!(peers(&s.a) + peers(&s.b), 0, "nothing pinned before both confirm");
    host.stdin.write_all(b"y\n").unwrap();
    guest.stdin.write_all(b"yes\n").unwrap();
    assert_eq!(host.next("paired")["peer"]["did"], s.b.did());
    assert_eq!(guest.next("paired")["peer"]["did"], s.a.did());
    assert!(host.child.wait().unwrap().success());
    assert!(guest.child.wait().unwrap().success());
    assert_eq!(s.a.json(&["peers"])[0]["tier"], "VERIFIED");
    exchange_messages(&s.a, &s.b);
}

#[test]
fn detached_host_and_guest_complete_via_list_and_confirm() {
    let s = setup("detached");
    let code = detached(&s);
    let a_view = wait_for(&s.a, Some(&s.b), state_is("sas_ready"));
    let b_view = wait_for(&s.b, Some(&s.a), state_is("sas_ready"));
    assert_eq!(a_view["sas"], b_view["sas"]);
    assert_eq!(a_view["code"], code);
    // Without --reveal, --json (what agents read) carries neither the code nor the digits.
    let plain = s.a.json(&["pair-list"]);
    let plain = plain.as_array().unwrap().last().unwrap();
    assert_eq!(
        (plain["state"].as_str(), &plain["code"], &plain["sas"]),
        (Some("sas_ready"), &Value::Null, &Value::Null)
    );
    assert!(!plain.to_string().contains(a_view["sas"].as_str().unwrap()), "{plain}");
    // Each operator types the digits read from the other screen.
    let confirmed = s.a.json(&["pair-confirm", &code, b_view["sas"].as_str().unwrap()]);
    assert_eq!(confirmed["state"], "confirmed");
    assert_eq!(peers(&s.a), 0, "not paired before the other side confirms");
    s.b.json(&["pair-confirm", &code, a_view["sas"].as_str().unwrap()]);
    wait_for(&s.a, Some(&s.b), state_is("paired"));
    wait_for(&s.b, Some(&s.a), state_is("paired"));
    assert_eq!((peers(&s.a), peers(&s.b)), (1, 1));
    exchange_messages(&s.a, &s.b);
}

#[test]
fn a_wrong_code_aborts_both_and_burns_the_nameplate() {
    let s = setup("wrong-code");
    let code = s.a.json(&["pair-host", "--detach", "--reveal"])["code"].as_str().unwrap().to_owned();
    let nameplate = code.split('-').next().unwrap();
    let wrong =
        if code.ends_with("-acorn") { format!("{nameplate}-brave-anchor") } else { format!("{nameplate}-brave-acorn") };
    s.b.json(&["pair-join", &wrong, "--detach"]);
    let a_view = wait_for(&s.a, Some(&s.b), state_is("aborted"));
    let b_view = wait_for(&s.b, Some(&s.a), state_is("aborted"));
    assert_eq!(a_view["reason"], "wrong_code");
    assert!(a_view["message"].as_str().unwrap().contains("guessing"));
    assert_eq!(b_view["reason"], "wrong_code");
    // The real code no longer works: one guess per code.
    let c = Wire::new(&s.dir, "c");
    c.json(&["up", &s.bind]);
    let late = c.run(&["pair-join", &code, "--detach"]);
    assert_eq!(late.code, 1);
    assert!(late.stderr.contains("no open pairing"), "{late:?}");
    assert_eq!((peers(&s.a), peers(&s.b), peers(&c)), (0, 0, 0));
}

#[test]
fn wrong_digits_abort_both_sides() {
    let s = setup("wrong-digits");
    let code = detached(&s);
    let sas = wait_for(&s.a, Some(&s.b), state_is("sas_ready"))["sas"].as_str().unwrap().to_owned();
    wait_for(&s.b, Some(&s.a), state_is("sas_ready"));
    let wrong = if sas == "000000" { "111111" } else { "000000" };
    let refused = s.a.run(&["pair-confirm", &code, wrong]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("did not match"), "{refused:?}");
    let b_view = wait_for(&s.b, Some(&s.a), state_is("aborted"));
    assert_eq!(b_view["reason"], "sas_mismatch");
    assert_eq!((peers(&s.a), peers(&s.b)), (0, 0));
}

#[test]
fn cancel_from_either_side() {
    for canceller in ["host", "guest"] {
        let s = setup("cancel");
        let code = detached(&s);
        wait_for(&s.a, Some(&s.b), state_is("sas_ready"));
        let (who, other) = if canceller == "host" { (&s.a, &s.b) } else { (&s.b, &s.a) };
        assert_eq!(who.json(&["pair-cancel", &code])["state"], "aborted");
        let view = wait_for(other, Some(who), state_is("aborted"));
        assert_eq!(view["reason"], "cancelled", "{canceller} cancelled");
        assert_eq!((peers(&s.a), peers(&s.b)), (0, 0));
    }
}

#[test]
fn a_pairing_nobody_joins_times_out() {
    let s = setup("timeout");
    s.a.json(&["pair-host", "--detach", "--timeout", "1s"]);
    // Polls the observable state; the timeout itself is tested against a manual clock too
    // (`clock::a_code_pairing_times_out_by_the_clock`).
    let view = wait_for(&s.a, None, state_is("aborted"));
    assert_eq!(view["reason"], "timeout");
    assert!(view["message"].as_str().unwrap().contains("timed out"));
}

#[test]
fn a_relay_restart_mid_pairing_aborts_cleanly_on_both_sides() {
    let mut s = setup("restart");
    let code = detached(&s);
    let b_sas = wait_for(&s.b, Some(&s.a), state_is("sas_ready"))["sas"].as_str().unwrap().to_owned();
    wait_for(&s.a, Some(&s.b), state_is("sas_ready"));
    // The host has voted when the relay goes away.
    s.a.json(&["pair-confirm", &code, &b_sas]);
    s.relay.take().unwrap().kill9();
    s.relay = Some(RelayProcess::start_at(&s.dir.join("relay"), &s.dir.join("relay.log"), &s.bind, &[]));
    let a_view = wait_for(&s.a, Some(&s.b), state_is("aborted"));
    let b_view = wait_for(&s.b, Some(&s.a), state_is("aborted"));
    assert_eq!(a_view["reason"], "rendezvous_lost");
    assert!(a_view["message"].as_str().unwrap().contains("start a new pairing"));
    assert_eq!(b_view["reason"], "rendezvous_lost");
    s.a.json(&["pull"]);
    s.b.json(&["pull"]);
    assert_eq!((peers(&s.a), peers(&s.b)), (0, 0), "never half-paired");
}

/// The relay's log and every file in its data directory, lowercased.
fn relay_bytes(s: &Setup) -> (String, String) {
    let log = std::fs::read(s.dir.join("relay.log")).unwrap();
    let mut store = Vec::new();
    for entry in std::fs::read_dir(s.dir.join("relay")).unwrap() {
        store.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    (String::from_utf8_lossy(&log).to_lowercase(), String::from_utf8_lossy(&store).to_lowercase())
}

/// Runs of ASCII letters and digits: a word the way a log line or a JSON string holds it.
fn tokens(text: &str) -> std::collections::HashSet<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).collect()
}

#[test]
fn the_relay_never_stores_or_logs_the_code_words() {
    let mut s = setup("no-code");
    // What the relay holds before any code exists: its schema has words of its own ("kind",
    // "token", "envelope") that the word list shares, and those prove nothing either way.
    let (log_before, store_before) = relay_bytes(&s);
    let (log_before, store_before) = (tokens(&log_before), tokens(&store_before));
    let code = detached(&s);
    let sas_a = wait_for(&s.a, Some(&s.b), state_is("sas_ready"))["sas"].as_str().unwrap().to_owned();
    let sas_b = wait_for(&s.b, Some(&s.a), state_is("sas_ready"))["sas"].as_str().unwrap().to_owned();
    s.a.json(&["pair-confirm", &code, &sas_b]);
    s.b.json(&["pair-confirm", &code, &sas_a]);
    wait_for(&s.a, Some(&s.b), state_is("paired"));
    assert!(s.relay.take().unwrap().terminate().success());
    let words: Vec<&str> = code.split('-').skip(1).collect();
    let (log, store) = relay_bytes(&s);
    assert!(!log.contains(&words.join("-")), "the relay log holds the code");
    assert!(!store.contains(&words.join("-")), "the relay holds the code");
    // The store holds ciphertext, where a lone word turns up as a substring by chance now and
    // then; a word as a token of its own does not.
    let (log, store) = (tokens(&log), tokens(&store));
    let fresh: Vec<&str> = words.into_iter().filter(|w| !log_before.contains(w) && !store_before.contains(w)).collect();
    assert!(!fresh.is_empty(), "every word of {code} was in the idle relay's vocabulary");
    for word in fresh {
        assert!(!log.contains(word), "the relay log holds the code word {word}");
        assert!(!store.contains(word), "the relay holds the code word {word}");
    }
}

#[test]
fn a_driver_that_dies_before_saving_loses_no_step() {
    let s = setup("crash");
    let code = detached(&s);
    let nameplate = code.split('-').next().unwrap().to_owned();
    let session = s.a.home.join("pairings").join(format!("{nameplate}.json"));
    // Drive the guest so the host has messages waiting, then snapshot the host's state.
    s.b.json(&["pair-list", "--reveal"]);
    let before = std::fs::read(&session).unwrap();
    // The host applies them and posts its replies...
    s.a.json(&["pair-list", "--reveal"]);
    // ...and "crashes" before its save reached the disk: the old state comes back.
    std::fs::write(&session, &before).unwrap();
    let a_view = wait_for(&s.a, Some(&s.b), state_is("sas_ready"));
    let b_view = wait_for(&s.b, Some(&s.a), state_is("sas_ready"));
    assert_eq!(a_view["sas"], b_view["sas"], "the replayed step produced the same messages");
    s.a.json(&["pair-confirm", &code, b_view["sas"].as_str().unwrap()]);
    s.b.json(&["pair-confirm", &code, a_view["sas"].as_str().unwrap()]);
    wait_for(&s.a, Some(&s.b), state_is("paired"));
    wait_for(&s.b, Some(&s.a), state_is("paired"));
    assert_eq!((peers(&s.a), peers(&s.b)), (1, 1));
}
