//! What the UI's forms do. Each act calls one endpoint operation, leaves a notice for the
//! next page, tells open pages what changed, and redirects (post, redirect, get). Bad input
//! gets the endpoint's error (code, message, next step) and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wire_core::endpoint::EndpointError;

use super::html::esc;
use super::server::{Reply, encode};
use super::views::problem;

/// An enum's name for a notice.
fn label(value: &impl serde::Serialize) -> String {
    esc(&super::views::label(value))
}
use super::{Acting, Ui, gate::lock};

/// How long a code pairing started here waits for the other side.
const PAIR_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How long an invite made here is valid.
const INVITE_TTL: Duration = Duration::from_secs(60 * 60);

/// The notice for an empty message.
const EMPTY: &str = "<code>empty_message</code>: write something first.";

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

pub async fn post(ui: &Arc<Ui>, segments: &[&str], form: &[(String, String)]) -> Reply {
    let (back, outcome) = match segments {
        ["switch"] => (String::new(), switch(ui, field(form, "session")).map_err(|e| problem(&e))),
        _ => {
            let ep = match ui.endpoint() {
                Ok(ep) => ep,
                Err(e) => return note(ui, String::new(), Err(problem(&e))),
            };
            match segments {
                ["peers", did, "send"] => {
                    let body = field(form, "body").trim_end();
                    let sent = match body.is_empty() {
                        true => Err(EMPTY.to_owned()),
                        false => {
                            ep.send(did, "message", Value::String(body.to_owned()), true).await.map_err(|e| problem(&e))
                        }
                    };
                    (
                        format!("peers/{}", encode(did)),
                        sent.map(|r| format!("sent to {} ({})", esc(&r.to.nickname), label(&r.verdict))),
                    )
                }
                ["rooms", id, "send"] => {
                    let body = field(form, "body").trim_end();
                    let sent = match body.is_empty() {
                        true => Err(EMPTY.to_owned()),
                        false => ep
                            .room_send(id, "message", Value::String(body.to_owned()), &[], None)
                            .await
                            .map_err(|e| problem(&e)),
                    };
                    (format!("rooms/{}", encode(id)), sent.map(|_| "sent to the room".to_owned()))
                }
                ["pairing", "invite"] => {
                    let uses = field(form, "uses").trim().parse::<u32>().unwrap_or(0);
                    let made = ep.invite(uses, INVITE_TTL).await.map(|r| {
                        *lock(&ui.invite) = Some((r.url, r.uses, r.expires_at));
                        "invite made; give the URL (or the QR code) to the other operator".to_owned()
                    });
                    ("pairing".to_owned(), made.map_err(|e| problem(&e)))
                }
                ["pairing", "accept"] => {
                    let accepted = ep.accept_invite(field(form, "url").trim()).await;
                    (
                        "pairing".to_owned(),
                        accepted
                            .map(|r| format!("{}: {}", label(&r.state), esc(&r.peer.nickname)))
                            .map_err(|e| problem(&e)),
                    )
                }
                ["pairing", "code", "start"] => {
                    let started = ep.pair_host(None, PAIR_TIMEOUT).await.map(|v| {
                        ui.drive(v.nameplate.clone());
                        "code pairing started: read the code to the other operator".to_owned()
                    });
                    ("pairing".to_owned(), started.map_err(|e| problem(&e)))
                }
                ["pairing", "code", "join"] => {
                    let joined = ep.pair_join(field(form, "code").trim(), None, PAIR_TIMEOUT).await.map(|v| {
                        ui.drive(v.nameplate.clone());
                        format!("joined pairing {}; compare the digits when they appear", esc(&v.nameplate))
                    });
                    ("pairing".to_owned(), joined.map_err(|e| problem(&e)))
                }
                ["pairing", "code", np, step @ ("confirm" | "mismatch" | "cancel")] => {
                    let done = match *step {
                        "confirm" => ep.pair_confirm(np, field(form, "digits").trim()).await,
                        "mismatch" => ep.pair_mismatch(np).await,
                        _ => ep.pair_cancel(np).await,
                    };
                    if done.is_ok() {
                        ui.drive((*np).to_owned());
                    }
                    (
                        "pairing".to_owned(),
                        done.map(|v| format!("pairing {}: {}", esc(&v.nameplate), esc(v.state)))
                            .map_err(|e| problem(&e)),
                    )
                }
                ["pending", did, decision @ ("accept" | "reject")] => {
                    let decided = ep.decide(did, *decision == "accept").await;
                    (
                        "pairing".to_owned(),
                        decided
                            .map(|r| format!("{}: {}", label(&r.decision), esc(&r.peer.nickname)))
                            .map_err(|e| problem(&e)),
                    )
                }
                _ => return Reply::NotFound,
            }
        }
    };
    note(ui, back, outcome)
}

/// Leaves the outcome for the next page, tells open pages, and redirects to `back`.
fn note(ui: &Ui, back: String, outcome: Result<String, String>) -> Reply {
    let notice = match outcome {
        Ok(text) => (false, text),
        Err(text) => (true, text),
    };
    *lock(&ui.notice) = Some(notice);
    ui.changed("act");
    Reply::SeeOther(back)
}

fn switch(ui: &Arc<Ui>, name: &str) -> Result<String, EndpointError> {
    let acting = match (&ui.sessions, name) {
        (_, "") => ui.started_as.clone(),
        (Some(sessions), _) => Acting { home: sessions.existing(name)?, session: Some(name.to_owned()) },
        (None, _) => return Err(wire_core::session::SessionError::Unknown(name.to_owned()).into()),
    };
    let name = acting.session.clone().unwrap_or_else(|| "the home wire ui started in".to_owned());
    *lock(&ui.acting) = acting;
    *lock(&ui.invite) = None;
    ui.start_engine();
    Ok(format!("acting as {}", esc(&name)))
}
