//! `wire doctor`: the silent failures, found in one pass, each with what to do. Exit 0 when
//! there is nothing to say, 1 with findings.

use serde::Serialize;
use wire_core::endpoint::{Endpoint, Mailbox};

use super::agent::{chosen, runtime};
use crate::output;

/// One thing wrong.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// Its class (stable): `no_identity`, `no_relay`, `relay_unreachable`, `slot_gone`,
    /// `daemon_not_running`, `daemon_failing`, `outbox_failing`, `answers_parked`,
    /// `requests_waiting`, `events_rejected`, `clock_skew`, `service_stale`, `service_inactive`,
    /// `mcp_entry_missing`, `mcp_entry_stale`, `daemon_twice`, `daemon_stuck`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub fix: String,
}

/// `wire doctor`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The home looked at.
    pub home: String,
    /// Nothing found.
    pub healthy: bool,
    /// What was found.
    pub findings: Vec<Finding>,
}

/// Clock skew against the relay worth a finding.
const CLOCK_SKEW_MS: u64 = 60_000;

fn finding(code: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { code, message: message.into(), fix: fix.into() }
}

/// Looks at the home the command acts as.
pub fn examine() -> anyhow::Result<Report> {
    examine_home(chosen()?.home)
}

/// Whether events wait at the relay past our cursor and the cursor does not move for a
/// few seconds (a connected daemon takes them within milliseconds).
async fn stuck(ep: &Endpoint) -> anyhow::Result<bool> {
    let start = ep.account()?.cursor;
    if !ep.waiting_at_relay().await? {
        return Ok(false);
    }
    for _ in 0..12 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if ep.account()?.cursor != start {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `wire_doctor` (the MCP server's): the report for the home it serves.
pub fn for_mcp(home: wire_core::home::Home) -> Result<serde_json::Value, String> {
    let report = examine_home(home).map_err(|e| format!("{e:#}"))?;
    serde_json::to_value(report).map_err(|e| e.to_string())
}

/// Looks at `home`.
fn examine_home(home: wire_core::home::Home) -> anyhow::Result<Report> {
    let mut findings = Vec::new();
    let report = |findings: Vec<Finding>| Report {
        home: home.root().display().to_string(),
        healthy: findings.is_empty(),
        findings,
    };
    let opened = Endpoint::open(home.clone());
    let missing = match &opened {
        Ok(ep) => ep.account().is_err(),
        Err(e) => e.code() == "not_initialized",
    };
    if missing {
        let (code, message) = match home.identity() {
            Ok(_) => ("no_relay", "the identity has no mailbox on a relay"),
            Err(_) => ("no_identity", "no identity in this home"),
        };
        findings.push(finding(code, message, "wire up <relay>"));
        return Ok(report(findings));
    }
    let ep = opened?;
    let status = runtime()?.block_on(ep.status())?;
    match (status.relay.reachable.ok, status.relay.mailbox) {
        (false, _) => findings.push(finding(
            "relay_unreachable",
            format!(
                "the relay {} does not answer: {}",
                status.relay.url,
                output::untrusted(status.relay.reachable.error.as_deref().unwrap_or("no answer"))
            ),
            "check the address, the network, and for https the certificate (WIRE_CA_FILE for a private CA); `wire status` again",
        )),
        (true, Mailbox::Gone) => findings.push(finding(
            "slot_gone",
            format!("the relay {} no longer knows our mailbox (its data was lost or reset)", status.relay.url),
            "wire up --reregister",
        )),
        _ => {}
    }
    if status.relay.reachable.ok
        && let Ok(Some(skew)) = runtime()?.block_on(ep.clock_skew())
        && skew.unsigned_abs() > CLOCK_SKEW_MS
    {
        let (secs, way) = (skew.unsigned_abs() / 1000, if skew > 0 { "behind" } else { "ahead of" });
        findings.push(finding(
            "clock_skew",
            format!("this machine's clock is {secs} s {way} the relay's: invites, pairings and events carry times and are refused outside their windows"),
            "set the system clock right (NTP: `timedatectl set-ntp true` on Linux)",
        ));
    }
    let served = crate::daemon::serves(home.root());
    let daemon = crate::daemon::home_view(home.root());
    if daemon.as_ref().is_some_and(|d| d.served_elsewhere) {
        findings.push(finding(
            "daemon_twice",
            "two wire daemons (started with different daemon directories) were started for this home: one serves it, the other waits",
            "stop the extra one: `wire daemon stop` with its WIRE_DAEMON_DIR (`wire daemon status` shows the directory)",
        ));
    } else if !served && crate::daemon::home_served(home.root()) {
        // Another daemon directory's daemon serves it: in sync, nothing to say.
    } else if !served {
        findings.push(finding(
            "daemon_not_running",
            "no wire daemon keeps this home in sync: messages arrive only when something pulls",
            "wire daemon start (or `wire service install` to start it at login)",
        ));
    } else if daemon.as_ref().is_some_and(|d| d.connected) && runtime()?.block_on(stuck(&ep))? {
        findings.push(finding(
            "daemon_stuck",
            "the daemon says it is connected, but what waits at the relay is not being taken",
            "wire daemon stop && wire daemon start (and `wire daemon status` for its last error)",
        ));
    } else if let Some(error) = daemon.filter(|d| !d.connected).and_then(|d| d.last_error) {
        findings.push(finding(
            "daemon_failing",
            format!("the daemon cannot sync this home: {}", output::untrusted(&error)),
            "wire daemon status; the cause above (relay, network) first, then `wire daemon stop && wire daemon start`",
        ));
    }
    // Service units and host entries are looked at when they can be (a HOME, a daemon dir).
    let units = crate::service::unit_states().ok().flatten().map(|(_, units)| units).unwrap_or_default();
    for unit in units {
        let file = unit.file.display();
        if !unit.present || !unit.runs_this_wire {
            let what = if unit.present { "names another wire binary" } else { "is missing" };
            findings.push(finding("service_stale", format!("the service unit {file} {what}"), "wire service install"));
        } else if !unit.running {
            findings.push(finding(
                "service_inactive",
                format!("the service unit {file} is installed but not running"),
                "wire service install (starts it again), or the service manager's log for why it stopped",
            ));
        }
    }
    for (host, file, state) in crate::setup::entry_states().unwrap_or_default() {
        let (code, what) = match state {
            crate::setup::EntryState::Missing => ("mcp_entry_missing", "has no wire entry"),
            crate::setup::EntryState::Stale => {
                ("mcp_entry_stale", "has a wire entry naming another wire binary or another identity")
            }
        };
        findings.push(finding(code, format!("{host} ({}) {what}", file.display()), "wire setup --apply"));
    }
    for item in &status.outbox.failing {
        findings.push(finding(
            "outbox_failing",
            format!(
                "a message to {} failed {} time(s): {}",
                item.to,
                item.attempts,
                output::untrusted(item.last_error.as_deref().unwrap_or("unknown"))
            ),
            "it is retried at every sync; if its relay is gone for good, `wire forget` the peer",
        ));
    }
    let pending = ep.pending()?;
    for answer in &pending.answers {
        findings.push(finding(
            "answers_parked",
            format!(
                "our pairing answer to {} is not delivered ({} attempt(s)): {}",
                answer.to.nickname,
                answer.attempts,
                output::untrusted(answer.last_error.as_deref().unwrap_or("waiting"))
            ),
            format!("it is retried at every sync; `wire reject {}` gives it up", answer.to.nickname),
        ));
    }
    if !pending.requests.is_empty() {
        let who: Vec<String> = pending.requests.iter().map(|r| r.from.nickname.clone()).collect();
        findings.push(finding(
            "requests_waiting",
            format!("{} pair request(s) wait for you: {}", who.len(), who.join(", ")),
            "wire pending, then `wire accept <nick>` or `wire reject <nick>`",
        ));
    }
    if status.rejected.total > 0 {
        let reasons: Vec<String> =
            status.rejected.reasons.iter().map(|(r, n)| format!("{n}x {}", output::untrusted(r))).collect();
        findings.push(finding(
            "events_rejected",
            format!("{} inbound event(s) were refused: {}", status.rejected.total, reasons.join("; ")),
            "read the reasons: a peer on a newer wire (upgrade), a stranger writing (ignore, or `wire block`)",
        ));
    }
    Ok(report(findings))
}

/// `wire doctor`: prints the report; exit 1 with findings.
pub fn doctor(json: bool) -> anyhow::Result<()> {
    let report = examine()?;
    if json {
        output::json(&report);
    } else if report.healthy {
        println!("nothing wrong found in {}", report.home);
    } else {
        for f in &report.findings {
            println!("{}: {}\n  fix: {}", f.code, f.message, f.fix);
        }
    }
    if report.healthy { Ok(()) } else { Err(output::Findings.into()) }
}
