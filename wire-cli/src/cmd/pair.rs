//! `wire pair` and the detached `pair-*` commands (SPAKE2 code + SAS).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use wire_core::endpoint::{Endpoint, PairView};
use wire_core::proto::pairing::code::Status;

use crate::output;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

use super::agent::open;

/// A pairing view as `--json` prints it: without the code's words and the six digits
/// unless `reveal` (`--reveal`). Agents read `--json`; the spoken secret and the digits to
/// compare are the operators', who read them in human output or ask for them.
fn shown(view: &PairView, reveal: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(view).expect("views serialize");
    if !reveal {
        v["code"] = serde_json::Value::Null;
        v["sas"] = serde_json::Value::Null;
    }
    v
}

fn event(name: &str, view: &PairView, reveal: bool) {
    let mut v = shown(view, reveal);
    v["event"] = name.into();
    output::json(&v);
}

fn spaced(sas: &str) -> String {
    if sas.len() == 6 { format!("{} {}", &sas[..3], &sas[3..]) } else { sas.to_owned() }
}

/// `wire pair [--code CODE]`, `wire pair-host`, `wire pair-join CODE`: start, and unless
/// `detach`, drive to the end here, asking the operator to compare the digits.
pub fn start(
    code: Option<&str>,
    relay: Option<&str>,
    timeout: Duration,
    detach: bool,
    reveal: bool,
    json: bool,
) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = runtime()?;
    let view = match code {
        None => rt.block_on(ep.pair_host(relay, timeout))?,
        Some(code) => rt.block_on(ep.pair_join(code, relay, timeout))?,
    };
    if json {
        event(if code.is_none() { "code" } else { "joined" }, &view, reveal);
    } else if code.is_none() {
        println!("{}", view.code);
        eprintln!("Read this code to the other operator. They run: wire pair --code {}", view.code);
    } else {
        eprintln!("joined pairing {}", view.nameplate);
    }
    if detach {
        if !json {
            eprintln!(
                "detached: `wire pair-list` shows progress and the digits; confirm with `wire pair-confirm {} <digits from the other screen>`",
                view.nameplate
            );
        }
        return Ok(());
    }
    drive(&ep, &rt, &view.nameplate, reveal, json)
}

fn drive(ep: &Endpoint, rt: &tokio::runtime::Runtime, key: &str, reveal: bool, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut asked = false;
    let mut said_waiting = false;
    loop {
        let view = rt.block_on(ep.pair_drive(key, Duration::from_secs(5)))?;
        match &view.status {
            Status::Waiting => {
                if !json {
                    if said_waiting {
                        eprint!(".");
                    } else {
                        eprint!("waiting for the other side");
                        said_waiting = true;
                    }
                    let _ = std::io::stderr().flush();
                }
            }
            Status::SasReady { sas } if !asked => {
                asked = true;
                if json {
                    event("sas", &view, reveal);
                }
                // The operator compares on their terminal (under --json too, where stdout
                // does not carry the digits).
                if !json || reveal || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    eprintln!();
                    eprintln!("Compare with the other screen. Both must show:  {}", spaced(sas));
                }
                eprint!("Do both screens show these digits? [y/N] ");
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                let read = std::io::stdin().lock().read_line(&mut answer)?;
                let view = if read == 0 {
                    rt.block_on(ep.pair_cancel(key))?
                } else if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    rt.block_on(ep.pair_confirm(key, sas))?
                } else {
                    rt.block_on(ep.pair_confirm(key, "mismatch"))?
                };
                if let Status::Confirmed { .. } = view.status
                    && !json
                {
                    eprint!("confirmed; waiting for the other operator");
                }
            }
            Status::SasReady { .. } | Status::Confirmed { .. } => {}
            Status::Paired => {
                if json {
                    event("paired", &view, reveal);
                } else {
                    eprintln!();
                    let peer = view.peer.as_ref().map(output::face).unwrap_or_default();
                    println!("paired with {peer} (VERIFIED)");
                }
                return Ok(());
            }
            Status::Aborted { .. } => {
                if json {
                    event("aborted", &view, reveal);
                } else {
                    eprintln!();
                }
                bail!("pairing aborted: {}", view.message.unwrap_or_default());
            }
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("gave up after an hour");
        }
    }
}

/// `wire pair-list`: drives every pairing one step, then lists them.
pub fn list(reveal: bool, json: bool) -> anyhow::Result<()> {
    let views = runtime()?.block_on(open()?.pair_drive_all(Duration::from_secs(1)))?;
    if json {
        output::json(&views.iter().map(|v| shown(v, reveal)).collect::<Vec<_>>());
        return Ok(());
    }
    if views.is_empty() {
        println!("no code pairings; start one with `wire pair` or `wire pair-host --detach`");
    }
    for v in &views {
        let state = match &v.status {
            Status::Waiting => "waiting for the other side".to_owned(),
            Status::SasReady { sas } => format!(
                "compare digits {}, then `wire pair-confirm {} <digits on the other screen>`",
                spaced(sas),
                v.nameplate
            ),
            Status::Confirmed { sas } => format!("confirmed {}; waiting for the other operator", spaced(sas)),
            Status::Paired => format!("paired with {}", v.peer.as_ref().map(output::face).unwrap_or_default()),
            Status::Aborted { .. } => format!("aborted: {}", v.message.as_deref().unwrap_or_default()),
        };
        let role = serde_json::to_value(v.role).ok().and_then(|r| r.as_str().map(str::to_owned)).unwrap_or_default();
        println!("{}  {role}  {state}", v.code);
    }
    Ok(())
}

/// `wire pair-confirm CODE DIGITS`.
pub fn confirm(code: &str, digits: &str, json: bool) -> anyhow::Result<()> {
    let view = runtime()?.block_on(open()?.pair_confirm(code, digits))?;
    if json {
        output::json(&shown(&view, false));
    }
    match view.status {
        Status::Aborted { .. } => bail!("pairing aborted: {}", view.message.unwrap_or_default()),
        Status::Paired if !json => {
            println!("paired with {} (VERIFIED)", view.peer.as_ref().map(output::face).unwrap_or_default())
        }
        _ if !json => {
            println!("confirmed; the pairing completes when the other operator confirms (see `wire pair-list`)")
        }
        _ => {}
    }
    Ok(())
}

/// `wire pair-cancel CODE`.
pub fn cancel(code: &str, json: bool) -> anyhow::Result<()> {
    let view = runtime()?.block_on(open()?.pair_cancel(code))?;
    if json {
        output::json(&shown(&view, false))
    } else {
        println!("cancelled pairing {}; nothing was pinned", view.nameplate)
    }
    Ok(())
}
