//! `wire pair` and the detached `pair-*` commands (SPAKE2 code + SAS).

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::bail;
use wire_core::endpoint::{Endpoint, EndpointError, PairView};
use wire_core::proto::pairing::code::{ConfirmError, Status};

use crate::output;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

use super::agent::open;

/// A pairing view as `--json` prints it: without the code's words and the six digits
/// unless `reveal` (`--reveal`). Agents read `--json`; the spoken secret and the digits to
/// compare are the operators', who read them in human output or ask for them.
pub(crate) fn shown(view: &PairView, reveal: bool) -> serde_json::Value {
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

/// The operator's answer at the digits prompt, read on a thread of its own so the pairing
/// keeps being driven (the other side's cancel, the deadline) while the prompt waits.
fn ask_operator() -> tokio::sync::oneshot::Receiver<Option<String>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        let _ = tx.send(match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer),
        });
    });
    rx
}

/// Drives a pairing to its end here. Ctrl-C (or SIGTERM) cancels it on both sides.
fn drive(ep: &Endpoint, rt: &tokio::runtime::Runtime, key: &str, reveal: bool, json: bool) -> anyhow::Result<()> {
    rt.block_on(async {
        let stop = crate::signals::stop_requested();
        tokio::pin!(stop);
        tokio::select! {
            result = drive_until_done(ep, key, reveal, json) => result,
            () = &mut stop => {
                if !json {
                    eprintln!();
                }
                match ep.pair_cancel(key).await {
                    Ok(view) => {
                        if json {
                            event("aborted", &view, reveal);
                        }
                        bail!("pairing cancelled (interrupted); the other side was told and nothing was pinned")
                    }
                    Err(e) => bail!("interrupted, but the pairing could not be cancelled: {e}"),
                }
            }
        }
    })
}

async fn drive_until_done(ep: &Endpoint, key: &str, reveal: bool, json: bool) -> anyhow::Result<()> {
    let mut prompt: Option<(String, tokio::sync::oneshot::Receiver<Option<String>>)> = None;
    let mut answered = false;
    let mut said_waiting = false;
    loop {
        // While the operator looks at the digits, short polls: an abort from the other side
        // or the deadline ends the prompt too.
        let wait = if prompt.is_some() && !answered { Duration::from_secs(1) } else { Duration::from_secs(5) };
        let view = ep.pair_drive(key, wait).await?;
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
            Status::SasReady { sas } if prompt.is_none() => {
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
                prompt = Some((sas.clone(), ask_operator()));
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
        let Some((sas, answer)) = prompt.as_mut().filter(|_| !answered) else { continue };
        let Ok(answer) = tokio::time::timeout(Duration::from_millis(200), answer).await else { continue };
        answered = true;
        let view = match answer.ok().flatten() {
            None => ep.pair_cancel(key).await?,
            Some(a) if matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes") => {
                ep.pair_confirm(key, sas).await?
            }
            Some(_) => ep.pair_mismatch(key).await?,
        };
        if let Status::Confirmed { .. } = view.status
            && !json
        {
            eprint!("confirmed; waiting for the other operator");
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
        let role = serde_json::to_value(v.role).ok().and_then(|r| r.as_str().map(str::to_owned)).unwrap_or_default();
        println!("{}  {role}  {}", v.code, state_words(v));
    }
    Ok(())
}

/// Where a pairing stands, and the next step, in words.
pub(crate) fn state_words(v: &PairView) -> String {
    match &v.status {
        Status::Waiting => "waiting for the other side".to_owned(),
        Status::SasReady { sas } => format!(
            "compare digits {}, then `wire pair-confirm {} <digits on the other screen>`",
            spaced(sas),
            v.nameplate
        ),
        Status::Confirmed { sas } => format!("confirmed {}; waiting for the other operator", spaced(sas)),
        Status::Paired => format!("paired with {}", v.peer.as_ref().map(output::face).unwrap_or_default()),
        Status::Aborted { .. } => format!("aborted: {}", v.message.as_deref().unwrap_or_default()),
    }
}

/// `wire pair-confirm CODE DIGITS`.
pub fn confirm(code: &str, digits: &str, json: bool) -> anyhow::Result<()> {
    let view = match runtime()?.block_on(open()?.pair_confirm(code, digits)) {
        // A typo, not a mismatch: a usage error, and the pairing stays open.
        Err(e @ EndpointError::Confirm(ConfirmError::BadDigits)) => return Err(output::Usage(e.to_string()).into()),
        other => other?,
    };
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
