//! The newcomer's first hour, each stumble of a walkthrough from a fresh clone as a process
//! test: the real binary against a real relay process, one WIRE_HOME per identity.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::common::{RelayProcess, Wire, free_port, tempdir};

struct World {
    root: PathBuf,
    relay: Option<RelayProcess>,
    a: Wire,
    b: Wire,
}

impl World {
    /// Two identities on one relay; paired by invite when `paired`.
    fn new(name: &str, paired: bool) -> Self {
        let root = tempdir(name);
        let relay = RelayProcess::start(&root.join("relay"), &root.join("relay.log"), &[]);
        let (a, b) = (Wire::new(&root, "a"), Wire::new(&root, "b"));
        a.json(&["init", "--relay", &relay.addr]);
        b.json(&["init", "--relay", &relay.addr]);
        if paired {
            let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
            b.json(&["accept", &url]);
            a.json(&["pull"]);
            b.json(&["pull"]);
        }
        World { root, relay: Some(relay), a, b }
    }

    fn addr(&self) -> String {
        self.relay.as_ref().unwrap().addr.clone()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        drop(self.relay.take());
        std::fs::remove_dir_all(&self.root).ok();
    }
}

/// The events `wire tail --json` prints, one JSON line each.
fn tail(w: &Wire) -> Vec<Value> {
    let out = w.run(&["tail", "--json"]).ok();
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn invites_say_to_quote_the_url_and_a_url_cut_at_the_ampersand_says_so() {
    let w = World::new("first-invite", false);
    let human = w.a.run(&["invite"]).ok();
    assert!(human.stderr.contains("They run `wire accept '<URL>'`"), "{human:?}");
    let url = w.a.json(&["invite"])["url"].as_str().unwrap().to_owned();

    // An unquoted URL in a shell reaches wire cut at `&`.
    let before = w.b.state();
    let cut = w.b.run(&["accept", &url[..url.find('&').unwrap()]]);
    assert_eq!(cut.code, 1, "{cut:?}");
    assert!(cut.stderr.contains("the shell cut it at `&`. Quote the whole URL"), "{cut:?}");
    assert_eq!(w.b.state(), before, "a refused URL changes nothing");
    let cut = w.b.run(&["accept", &url[..url.find('&').unwrap()], "--json"]).json();
    assert_eq!(cut["error"]["code"], "bad_invite", "{cut}");

    // The relay's limits, said in the command's own flags, never `ttl_secs` or HTTP codes.
    for args in [["invite", "--ttl", "400d"], ["invite", "--uses", "1000"]] {
        let refused = w.a.run(&args);
        assert_eq!(refused.code, 1, "{refused:?}");
        assert!(refused.stderr.contains("(--uses)") && refused.stderr.contains("1s to 30d (--ttl)"), "{refused:?}");
        assert!(!refused.stderr.contains("ttl_secs") && !refused.stderr.contains("HTTP"), "{refused:?}");
    }

    // An expired invite names its time for people, not in milliseconds.
    let later = w.root.join("b-clock");
    std::fs::write(&later, (2 * 86_400_000u64).to_string()).unwrap();
    let expired = w.b.run_with(&["accept", &url], &[("WIRE_CLOCK_OFFSET_FILE", later.to_str().unwrap())]);
    assert_eq!(expired.code, 1, "{expired:?}");
    assert!(expired.stderr.contains(" UTC;") && !expired.stderr.contains("ms;"), "{expired:?}");
}

#[test]
fn nicknames_are_forgiven_and_every_body_is_text() {
    let w = World::new("first-send", true);
    let b_nick = w.b.nickname();
    // Two letters swapped: did you mean.
    let mut typo: Vec<char> = b_nick.chars().collect();
    let at = (0..typo.len() - 1).find(|&i| typo[i] != typo[i + 1]).unwrap();
    typo.swap(at, at + 1);
    let typo: String = typo.into_iter().collect();
    let missed = w.a.run(&["send", &typo, "hi"]);
    assert_eq!(missed.code, 1, "{missed:?}");
    assert!(missed.stderr.contains(&format!("did you mean `{b_nick}`?")), "{missed:?}");
    // whois takes a pinned peer's nickname.
    let who = w.a.json(&["whois", &b_nick]);
    assert_eq!(
        (who["source"].as_str(), who["face"]["did"].as_str()),
        (Some("pinned"), Some(w.b.did().as_str())),
        "{who}"
    );

    // A body that starts with `-`, several words, the kind-first form, and --json after them.
    w.a.json(&["send", &b_nick, "-1 is not a flag"]);
    // After `--` every word is text, as in other tools: options go before it.
    w.a.run(&["send", "--json", &b_nick, "--", "--also text"]).ok().json();
    w.a.json(&["send", &b_nick, "hello", "world"]);
    let q = w.a.json(&["send", &b_nick, "question", "ready", "to", "deploy?"]);
    assert_eq!(q["verdict"], "sent", "{q}");
    let got: Vec<(String, String)> = tail(&w.b)
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["body"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let want = [
        ("message", "-1 is not a flag"),
        ("message", "--also text"),
        ("message", "hello world"),
        ("question", "ready to deploy?"),
    ];
    assert_eq!(got, want.map(|(k, b)| (k.to_owned(), b.to_owned())));

    // Nothing on stdin: refused as a usage error, nothing sent.
    let empty = w.a.run_stdin(&["send", &b_nick, "-"], b"");
    assert_eq!(empty.code, 2, "{empty:?}");
    assert!(empty.stderr.contains("stdin was empty"), "{empty:?}");
    let empty = w.a.run_stdin(&["send", &b_nick, "-", "--json"], b"  \n");
    assert_eq!(empty.json()["error"]["code"], "usage");
    assert_eq!(tail(&w.b).len(), 4, "the refused sends sent nothing");
}

#[test]
fn without_a_daemon_tail_and_pending_pull_first_and_an_empty_inbox_says_so() {
    let w = World::new("first-tail", true);
    let empty = w.b.run(&["tail"]).ok();
    assert!(empty.stdout.is_empty() && empty.stderr.contains("no messages yet"), "{empty:?}");
    w.a.json(&["send", &w.b.nickname(), "fresh news"]);
    // No `wire pull` in between: tail pulls first.
    let shown = w.b.run(&["tail"]).ok();
    assert!(shown.stdout.contains("fresh news"), "{shown:?}");

    // A dial waits in `wire pending`, seen without a pull.
    let c = Wire::new(&w.root, "c");
    c.json(&["init", "--relay", &w.addr()]);
    c.json(&["dial", &format!("{}@{}", w.a.nickname(), w.addr())]);
    let pending = w.a.run(&["pending"]).ok();
    assert!(pending.stdout.contains(&c.nickname()), "{pending:?}");

    // The relay gone: what arrived before is shown, and the failed pull is said.
    let mut w = w;
    drop(w.relay.take());
    let offline = w.b.run(&["tail"]).ok();
    assert!(offline.stdout.contains("fresh news"), "{offline:?}");
    assert!(offline.stderr.contains("could not pull") && offline.stderr.contains("by the last pull"), "{offline:?}");
}

#[test]
fn human_tables_align_times_say_utc_and_errors_are_red_on_a_terminal() {
    let w = World::new("first-tables", true);
    let c = Wire::new(&w.root, "c");
    c.json(&["init", "--relay", &w.addr()]);
    let url = w.a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    c.json(&["accept", &url]);
    w.a.json(&["pull"]);
    let peers = w.a.run(&["peers"]).ok().stdout;
    let lines: Vec<&str> = peers.lines().collect();
    assert_eq!(lines.len(), 2, "{peers}");
    // One emoji (two columns, one char) leads each line: char offsets compare columns.
    let col = |l: &str, word: &str| l.find(word).map(|i| l[..i].chars().count());
    assert_eq!(col(lines[0], "VERIFIED"), col(lines[1], "VERIFIED"), "{peers}");
    assert_eq!(col(lines[0], "paired "), col(lines[1], "paired "), "{peers}");
    assert!(lines.iter().all(|l| l.matches(" UTC").count() == 2), "times are labelled: {peers}");

    // `error:` in red where stderr is a terminal (`script` gives the command one).
    let line = format!("{} send nobody hi", env!("CARGO_BIN_EXE_wire"));
    let run = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]).env("WIRE_HOME", &w.a.home).env("WIRE_DAEMON_DIR", w.a.daemon_dir());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&cmd.output().expect("`script` (util-linux) runs commands on a terminal").stdout)
            .into_owned()
    };
    assert!(run(false).contains("\x1b[1;31merror:\x1b[0m no paired peer"), "{:?}", run(false));
    assert!(run(true).contains("error: no paired peer"), "{:?}", run(true));
}

#[test]
fn init_without_a_relay_up_to_another_relay_and_a_second_relay_on_one_data_dir() {
    let root = tempdir("first-init");
    let nowhere = format!("127.0.0.1:{}", free_port());
    let x = Wire::new(&root, "x");
    let refused = x.run(&["init", "--relay", &nowhere]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("no relay at {nowhere}: start one with `wire relay-server`, or `wire up <relay>`")),
        "{refused:?}"
    );

    let relay = RelayProcess::start(&root.join("relay"), &root.join("relay.log"), &[]);
    x.json(&["init", "--relay", &relay.addr]);
    // `wire init` with no relay named reports the identity where it is.
    assert_eq!(x.json(&["init"])["created"], false);
    let before = x.state();
    let elsewhere = x.run(&["up", &nowhere, "--json"]);
    assert_eq!(elsewhere.code, 1, "{elsewhere:?}");
    assert_eq!(elsewhere.json()["error"]["code"], "other_relay");
    assert_eq!(x.state(), before);

    // A second relay on the same data directory is refused before it announces anything.
    let second = Command::new(env!("CARGO_BIN_EXE_wire"))
        .args(["relay-server", "--json", "--bind", "127.0.0.1:0", "--data"])
        .arg(root.join("relay"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(!said.contains("listening") && said.contains("another relay is running on"), "{said}");
    drop(relay);
    std::fs::remove_dir_all(&root).ok();
}

/// `wire pair ... --json` running, its events read as they come.
struct Pairing {
    child: Child,
    stdin: ChildStdin,
    events: std::sync::mpsc::Receiver<Value>,
}

impl Pairing {
    fn start(w: &Wire, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wire"))
            .args(args)
            .args(["--json", "--reveal"])
            .env("WIRE_HOME", &w.home)
            .env("WIRE_DAEMON_DIR", w.daemon_dir())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Pairing { child, stdin, events }
    }

    fn next(&self, event: &str) -> Value {
        let deadline = std::time::Instant::now() + wire_testkit::patience(crate::common::WAIT);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let v = self.events.recv_timeout(left).unwrap_or_else(|_| panic!("no `{event}` event"));
            if v["event"] == event {
                return v;
            }
        }
    }

    fn exit_code(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

#[test]
fn ctrl_c_in_wire_pair_cancels_both_sides() {
    let w = World::new("first-ctrl-c", false);
    let mut host = Pairing::start(&w.a, &["pair"], &[]);
    let code = host.next("code")["code"].as_str().unwrap().to_owned();
    let mut guest = Pairing::start(&w.b, &["pair", "--code", &code], &[]);
    host.next("sas");
    guest.next("sas");
    // The host's operator presses Ctrl-C at the digits prompt.
    let kill = Command::new("kill").args(["-INT", &host.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    assert_eq!(host.next("aborted")["reason"], "cancelled");
    assert_eq!(host.exit_code(), Some(1));
    let seen = guest.next("aborted");
    assert_eq!(seen["reason"], "cancelled", "{seen}");
    assert_eq!(guest.exit_code(), Some(1));
    assert_eq!(w.a.json(&["peers"]).as_array().unwrap().len() + w.b.json(&["peers"]).as_array().unwrap().len(), 0);
    drop(host.stdin);
    drop(guest.stdin);
}

#[test]
fn a_guest_with_a_wrong_code_learns_it() {
    let w = World::new("first-wrong-code", false);
    let mut host = Pairing::start(&w.a, &["pair"], &[]);
    let code = host.next("code")["code"].as_str().unwrap().to_owned();
    let nameplate = code.split('-').next().unwrap();
    let wrong =
        if code.ends_with("-acorn") { format!("{nameplate}-brave-anchor") } else { format!("{nameplate}-brave-acorn") };
    let mut guest = Pairing::start(&w.b, &["pair", "--code", &wrong], &[]);
    assert_eq!(guest.next("aborted")["reason"], "wrong_code");
    assert_eq!(guest.exit_code(), Some(1));
    assert_eq!(host.next("aborted")["reason"], "wrong_code");
    assert_eq!(host.exit_code(), Some(1));
    drop((host.stdin, guest.stdin));
}

#[test]
fn the_prompt_ends_at_the_timeout_by_the_injected_clock() {
    let w = World::new("first-timeout", false);
    let clock = w.root.join("a-clock");
    std::fs::write(&clock, "0").unwrap();
    let env = [("WIRE_CLOCK_OFFSET_FILE", clock.to_str().unwrap())];
    let mut host = Pairing::start(&w.a, &["pair", "--timeout", "10m"], &env);
    let code = host.next("code")["code"].as_str().unwrap().to_owned();
    let mut guest = Pairing::start(&w.b, &["pair", "--code", &code], &[]);
    host.next("sas");
    // Nobody answers the host's prompt; its clock passes the timeout.
    std::fs::write(&clock, (10 * 60_000 + 1_000).to_string()).unwrap();
    assert_eq!(host.next("aborted")["reason"], "timeout");
    assert_eq!(host.exit_code(), Some(1));
    guest.child.kill().ok();
    guest.exit_code();
    drop((host.stdin, guest.stdin));
}

fn last_pairing(w: &Wire) -> Value {
    w.json(&["pair-list", "--reveal"]).as_array().unwrap().last().cloned().unwrap()
}

#[test]
fn malformed_digits_are_a_usage_error_and_wire_pull_moves_detached_pairings() {
    let w = World::new("first-digits", false);
    let code = w.a.json(&["pair-host", "--detach", "--reveal"])["code"].as_str().unwrap().to_owned();
    w.b.json(&["pair-join", &code, "--detach"]);
    // `wire pull` drives them (no pair-list in between).
    crate::common::eventually(crate::common::WAIT, "both sides to see the digits through `wire pull`", || {
        let (pa, pb) = (w.a.json(&["pull"]), w.b.json(&["pull"]));
        (pa["pairings"][0]["state"] == "sas_ready" && pb["pairings"][0]["state"] == "sas_ready").then_some(())
    });
    let sas = last_pairing(&w.a)["sas"].as_str().unwrap().to_owned();
    for typo in ["12ab56", "12345", "1234567"] {
        let refused = w.b.run(&["pair-confirm", &code, typo]);
        assert_eq!(refused.code, 2, "{refused:?}");
        assert!(refused.stderr.contains("type the 6 digits") && !refused.stderr.contains("intercepted"), "{refused:?}");
    }
    let refused = w.b.run(&["pair-confirm", &code, "12ab56", "--json"]).json();
    assert_eq!(refused["error"]["code"], "usage", "{refused}");
    assert_eq!(last_pairing(&w.b)["state"], "sas_ready", "a typo keeps the pairing");
    // Then the right digits, spaced as they are shown, pair them.
    let spaced = format!("{} {}", &sas[..3], &sas[3..]);
    w.b.json(&["pair-confirm", &code, &spaced]);
    let b_sas = last_pairing(&w.b)["sas"].as_str().unwrap().to_owned();
    w.a.json(&["pair-confirm", &code, &b_sas]);
    crate::common::eventually(crate::common::WAIT, "both to pair through `wire pull`", || {
        let (pa, pb) = (w.a.json(&["pull"]), w.b.json(&["pull"]));
        let done = |v: &Value| v["pairings"].as_array().unwrap().is_empty();
        (done(&pa) && done(&pb)).then_some(())
    });
    assert_eq!(w.a.json(&["peers"]).as_array().unwrap().len(), 1);
    assert_eq!(w.b.json(&["peers"]).as_array().unwrap().len(), 1);
}

#[test]
fn readme_install_lines_make_their_directories_and_the_man_page_stands_alone() {
    let readme = std::fs::read_to_string(crate::common::workspace().join("README.md")).unwrap();
    for (i, line) in readme.lines().enumerate() {
        if let Some(target) = line.split("> ").nth(1).filter(|_| line.starts_with("wire ")) {
            let dir =
                Path::new(target.split_whitespace().next().unwrap()).parent().unwrap().to_str().unwrap().to_owned();
            let made = readme.lines().take(i).any(|l| l.starts_with("mkdir -p") && l.contains(&dir));
            assert!(made, "README line {} writes into {dir} without a `mkdir -p` before it", i + 1);
        }
    }
    assert!(readme.contains("wire relay-server --local-only --uds") && readme.contains("wire daemon start"));

    let man = Command::new(env!("CARGO_BIN_EXE_wire")).arg("man").output().unwrap();
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(!man.contains('`'), "literal backticks in the man page");
    let refs: Vec<&str> = man.split_whitespace().filter(|w| w.ends_with("(1)") && !w.starts_with("wire")).collect();
    assert!(refs.is_empty() && !man.contains("wire\\-demo(1)"), "links to pages that do not exist: {refs:?}");
    assert!(man.contains(".SS wire demo") && man.contains(".SS wire pair\\-confirm"), "every command has its section");
    let written = Command::new(env!("CARGO_BIN_EXE_wire")).args(["send", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&written.stdout).contains("names a kind"));
}

#[test]
fn a_new_session_is_new_not_silent() {
    let root = tempdir("first-mesh");
    let relay = RelayProcess::start(&root.join("relay"), &root.join("relay.log"), &[]);
    let w = Wire::new(&root, "x");
    let project = root.join("projects/api");
    std::fs::create_dir_all(&project).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wire"))
            .args(args)
            .current_dir(&project)
            .env("WIRE_SESSIONS_DIR", w.sessions_dir())
            .env("WIRE_DAEMON_DIR", w.daemon_dir())
            .env("WIRE_RELAY", &relay.addr)
            .env("NO_COLOR", "1")
            .env_remove("WIRE_HOME")
            .env_remove("WIRE_SESSION_ID")
            .output()
            .unwrap();
        crate::common::Run::from(out).ok()
    };
    run(&["session", "new", "api"]);
    let status = run(&["mesh", "status", "--json"]).json();
    assert_eq!((status[0]["new"].as_bool(), status[0]["silent"].as_bool()), (Some(true), Some(false)), "{status}");
    let human = run(&["mesh", "status"]).stdout;
    assert!(human.contains("new, nothing heard yet") && !human.contains("SILENT"), "{human}");
    // Past the window (a day later, by the injected clock), never heard is silent.
    let clock = root.join("clock");
    std::fs::write(&clock, "86400000").unwrap();
    let late = Command::new(env!("CARGO_BIN_EXE_wire"))
        .args(["mesh", "status", "--json"])
        .current_dir(&project)
        .env("WIRE_SESSIONS_DIR", w.sessions_dir())
        .env("WIRE_CLOCK_OFFSET_FILE", &clock)
        .output()
        .unwrap();
    let late: Value = serde_json::from_slice(&late.stdout).unwrap();
    assert_eq!((late[0]["new"].as_bool(), late[0]["silent"].as_bool()), (Some(false), Some(true)), "{late}");
    drop(relay);
    std::fs::remove_dir_all(&root).ok();
}
