//! Forward secrecy for 1:1 (docs/PROTOCOL.md 7.1): envelopes are sealed to the recipient's
//! rotating prekeys; after a prekey's secret is deleted and the history pruned, a full copy
//! of the recipient's home opens neither the relay's copy nor shows the line. A sender with
//! a stale bundle keeps working within the staleness bound and queues beyond it, never
//! sealing to the long-term key. Both agents read one offset clock (`WIRE_CLOCK_OFFSET_FILE`).

use std::path::Path;

use serde_json::Value;
use wire_core::home::Home;
use wire_core::proto::envelope;
use wire_core::proto::prekey::OurPrekeys;

use crate::common::{RelayProcess, Run, WAIT, Wire, copy_dir, eventually, tempdir};

const DAY_MS: i64 = 86_400_000;

struct World {
    relay: RelayProcess,
    clock: std::path::PathBuf,
    a: Wire,
    b: Wire,
}

impl World {
    fn new(name: &str) -> (Self, std::path::PathBuf) {
        let dir = tempdir(name);
        let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
        let clock = dir.join("clock");
        std::fs::write(&clock, "0").unwrap();
        let w = World { relay, clock, a: Wire::new(&dir, "a"), b: Wire::new(&dir, "b") };
        for agent in [&w.a, &w.b] {
            w.run(agent, &["up", &w.relay.addr.clone()]).ok();
        }
        let url = w.run(&w.a, &["invite", "--json"]).ok().json()["url"].as_str().unwrap().to_owned();
        w.run(&w.b, &["accept", &url]).ok();
        eventually(WAIT, "the pairing to complete", || {
            w.run(&w.a, &["pull"]);
            w.run(&w.b, &["pull"]);
            (w.run(&w.b, &["peers", "--json"]).json().as_array()?.len() == 1).then_some(())
        });
        (w, dir)
    }

    /// `wire ARGS` as `agent` on the shared clock.
    fn run(&self, agent: &Wire, args: &[&str]) -> Run {
        agent.run_with(args, &[("WIRE_CLOCK_OFFSET_FILE", self.clock.to_str().unwrap())])
    }

    fn advance_to_day(&self, days: f64) {
        std::fs::write(&self.clock, ((days * DAY_MS as f64) as i64).to_string()).unwrap();
    }

    /// The envelopes waiting in B's mailbox (not yet pulled), as the relay keeps them.
    fn b_waiting(&self) -> Vec<Vec<u8>> {
        let account: Value = serde_json::from_slice(&std::fs::read(self.b.home.join("account.json")).unwrap()).unwrap();
        let (slot, token, cursor) = (
            account["slot"].as_str().unwrap(),
            account["owner_token"].as_str().unwrap(),
            account["cursor"].as_u64().unwrap(),
        );
        let page = self.relay.json("GET", &format!("/v1/slots/{slot}/events?after={cursor}"), Some(token), b"");
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| wire_core::proto::b64::decode(e["envelope"].as_str().unwrap()).unwrap())
            .collect()
    }
}

/// What every key kept in the home at `dir` opens `sealed` to (the signed payload), if any:
/// the identity's long-term key and every prekey secret on disk.
fn opens(dir: &Path, sealed: &[u8]) -> Option<String> {
    let home = Home::at(dir);
    let identity = home.identity().unwrap();
    let prekeys = home.load::<OurPrekeys>().unwrap().unwrap_or_default();
    prekeys
        .secrets()
        .find_map(|k| envelope::open_signed_with(&k, sealed).ok())
        .or_else(|| envelope::open_signed(&identity, sealed).ok())
        .map(|s| String::from_utf8_lossy(&s.payload).into_owned())
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn after_prekey_expiry_and_prune_a_copy_of_the_home_reads_neither_the_envelope_nor_the_line() {
    let (w, dir) = World::new("prekeys-fs");
    let b_nick = w.run(&w.b, &["whoami", "--json"]).ok().json()["nickname"].as_str().unwrap().to_owned();
    let secret = "the launch code is 7-7-4";
    let sent = w.run(&w.a, &["send", &b_nick, secret, "--json"]).ok().json();
    assert_eq!(sent["verdict"], "sent", "{sent}");
    let captured = w.b_waiting().pop().expect("A's message waits at B's relay");
    // Sealed to a prekey, never to the long-term key.
    let long_term = Home::at(&w.b.home).identity().unwrap();
    assert!(envelope::open_signed(&long_term, &captured).is_err(), "sealed to B's long-term key");
    w.run(&w.b, &["pull"]).ok();
    let inbox = w.run(&w.b, &["tail", "--json"]).ok().stdout;
    assert!(inbox.contains(secret), "{inbox}");

    // Control: today a copy of B's home opens the relay's copy (the check below can fail).
    let today = dir.join("copy-today");
    copy_dir(&w.b.home, &today);
    assert!(opens(&today, &captured).is_some_and(|p| p.contains(secret)), "a copy opens it while the prekey lives");
    assert!(!files_containing(&today, secret).is_empty());

    // Three weeks later: the prekey's send window (7 days) and the longest wait after it
    // (14 days) have passed. B's next pull deletes its secret; the operator prunes.
    w.advance_to_day(22.0);
    w.run(&w.b, &["pull"]).ok();
    let pruned = w.run(&w.b, &["prune", "--before", "1d", "--json"]).ok().json();
    assert!(pruned["inbox_lines"].as_u64().unwrap() >= 1, "{pruned}");

    let later = dir.join("copy-later");
    copy_dir(&w.b.home, &later);
    assert_eq!(opens(&later, &captured), None, "a copy of the home still opens the relay's envelope");
    assert_eq!(files_containing(&later, secret), Vec::<String>::new(), "the line is still in the home");
    // And B still works: a new message, sealed to a new prekey, reads.
    let again = w.run(&w.a, &["send", "--queue", &b_nick, "after the prune", "--json"]).ok().json();
    assert!(again["verdict"] == "sent" || again["verdict"] == "queued", "{again}");
    eventually(WAIT, "the new message to reach B", || {
        w.run(&w.a, &["pull"]);
        w.run(&w.b, &["pull"]);
        w.run(&w.b, &["tail", "--json"]).stdout.contains("after the prune").then_some(())
    });
}

#[test]
fn a_sender_with_a_stale_bundle_sends_within_the_bound_and_queues_beyond_it() {
    let (w, _dir) = World::new("prekeys-stale");
    let b_nick = w.run(&w.b, &["whoami", "--json"]).ok().json()["nickname"].as_str().unwrap().to_owned();

    // B stays away. Six days on, A's bundle from the pairing is still within its bound.
    w.advance_to_day(6.0);
    let within = w.run(&w.a, &["send", &b_nick, "within the bound", "--json"]).ok().json();
    assert_eq!(within["verdict"], "sent", "{within}");

    // Eight days on it is stale: a plain send is refused with a next step; with `--queue`
    // the message waits, and A asks B for a fresh bundle.
    w.advance_to_day(8.0);
    let refused = w.run(&w.a, &["send", &b_nick, "refused", "--json"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("prekeys_stale") && refused.stdout.contains("--queue"), "{refused:?}");
    let beyond = w.run(&w.a, &["send", "--queue", &b_nick, "beyond the bound", "--json"]).ok().json();
    assert_eq!(beyond["verdict"], "queued", "{beyond}");
    assert!(beyond["reason"].as_str().unwrap().contains("prekey"), "{beyond}");
    let status = w.run(&w.a, &["status", "--json"]).ok().json();
    assert!(status.to_string().contains("prekey"), "the waiting item says why: {status}");
    // Nothing sealed to B's long-term key reached its relay: only the ask, which carries
    // nothing secret, and the message from within the bound.
    let long_term = Home::at(&w.b.home).identity().unwrap();
    for sealed in w.b_waiting() {
        if let Ok(signed) = envelope::open_signed(&long_term, &sealed) {
            let text = String::from_utf8_lossy(&signed.payload).into_owned();
            assert!(text.contains("prekeys_request") && !text.contains("beyond the bound"), "{text}");
        }
    }

    // B comes back: it reads what was sealed within the bound, answers the ask with a new
    // bundle; A's outbox seals the waiting message to it.
    eventually(WAIT, "both messages to reach B", || {
        w.run(&w.b, &["pull"]);
        w.run(&w.a, &["pull"]);
        let tail = w.run(&w.b, &["tail", "--json"]).stdout;
        (tail.contains("within the bound") && tail.contains("beyond the bound")).then_some(())
    });
    let tail = w.run(&w.b, &["tail", "--json"]).ok().stdout;
    assert_eq!(tail.lines().filter(|l| l.contains("the bound")).count(), 2, "each once: {tail}");
    assert!(!tail.contains("refused"), "a refused send is not sent: {tail}");
}
