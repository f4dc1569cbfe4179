//! The UI's pages. Each view renders two parts: `live` (re-fetched by the page's script
//! when the event stream says something changed) and `forms` (left alone, so what the
//! operator is typing survives updates). Peer-authored text goes through `html::peer`.

use std::fmt::Write as _;
use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;
use wire_core::endpoint::{Endpoint, EndpointError, Face, Mailbox};

use super::html::{self, Frame, ago, body_text, esc, face, peer};
use super::server::{Reply, encode};
use super::{Sample, Ui, gate::lock};

/// A view's parts.
pub struct View {
    section: &'static str,
    title: String,
    live: String,
    forms: String,
}

/// An enum's serialized name, in lower case, for display.
pub fn label(value: &impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_lowercase)).unwrap_or_default()
}

/// An endpoint error as a notice: its code, its message and the next step.
pub fn problem(e: &EndpointError) -> String {
    let next = e.next_step().map(|n| format!(" Next: <code>{}</code>", esc(n.command()))).unwrap_or_default();
    format!("<code>{}</code>: {}.{next}", e.code(), esc(&e.to_string()))
}

/// The views a sign-in link may land on.
pub const VIEW_PATHS: &[&str] = &["", "peers", "pairing", "rooms", "jobs", "mesh", "relay"];

pub async fn get(ui: &Arc<Ui>, segments: &[&str], _query: &[(String, String)], live: bool) -> Reply {
    match segments {
        ["static", "ui.js"] => return Reply::Asset("text/javascript; charset=utf-8", include_str!("assets/ui.js")),
        ["static", "ui.css"] => return Reply::Asset("text/css; charset=utf-8", include_str!("assets/ui.css")),
        _ => {}
    }
    let ep = ui.endpoint();
    let view = match (segments, &ep) {
        ([], Ok(ep)) => me(ui, ep).await,
        (["peers"], Ok(ep)) => peers(ui, ep),
        (["peers", name], Ok(ep)) => conversation(ui, ep, name),
        (["pairing"], Ok(ep)) => pairing(ui, ep),
        (["rooms"], Ok(ep)) => rooms(ui, ep),
        (["rooms", name], Ok(ep)) => room(ui, ep, name),
        (["jobs"], Ok(ep)) => jobs(ui, ep),
        (["mesh"], _) => mesh(ui),
        (["relay"], _) => relay(ui),
        ([] | ["peers" | "pairing" | "rooms" | "jobs"] | ["peers" | "rooms", _], Err(e)) => Ok(View {
            section: "",
            title: "No identity".into(),
            live: format!("<p>{}</p>", problem(e)),
            forms: String::new(),
        }),
        _ => return Reply::NotFound,
    };
    let (status, view) = match view {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (
            StatusCode::NOT_FOUND,
            View {
                section: "",
                title: "Not found".into(),
                live: format!("<p>{}</p>", problem(&e)),
                forms: String::new(),
            },
        ),
    };
    if live {
        return Reply::Html(status, view.live);
    }
    let me = ep.as_ref().ok().and_then(|ep| ep.whoami().ok()).map(|w| w.face);
    let sessions = session_choices(ui);
    let notice = lock(&ui.notice).take();
    let frame = Frame {
        prefix: &ui.gate.prefix,
        section: view.section,
        title: &view.title,
        me: me.as_ref(),
        sessions: &sessions,
        notice,
    };
    Reply::Html(status, html::page(&frame, &view.live, &view.forms))
}

/// This machine's sessions, the acting one marked; first, with an empty name, the home
/// `wire ui` started in when that is not a session.
fn session_choices(ui: &Ui) -> Vec<(String, bool)> {
    let current = lock(&ui.acting).session.clone();
    let names = ui.sessions.as_ref().and_then(|s| s.names().ok()).unwrap_or_default();
    let mut choices = Vec::new();
    if ui.started_as.session.is_none() {
        choices.push((String::new(), current.is_none()));
    }
    choices.extend(names.into_iter().map(|n| (n.clone(), current.as_deref() == Some(n.as_str()))));
    choices
}

fn now(ep: &Endpoint) -> u64 {
    ep.home.now().0
}

fn link_line(ui: &Ui) -> String {
    let link = ui.link.borrow().clone();
    let why = link.why.map(|w| format!(" ({})", esc(&w))).unwrap_or_default();
    format!("<p>Link to the relay: <strong>{}</strong>{why}</p>", link.state)
}

async fn me(ui: &Ui, ep: &Endpoint) -> Result<View, EndpointError> {
    let w = ep.whoami()?;
    let mut live = String::new();
    let _ = write!(
        live,
        "<dl class=\"facts\"><dt>Face</dt><dd>{}</dd><dt>DID</dt><dd><code class=\"long\">{}</code></dd>\
<dt>Fingerprint</dt><dd><code>{}</code></dd><dt>Relay</dt><dd><code>{}</code></dd>",
        face(&w.face),
        esc(&w.face.did),
        esc(&w.face.fingerprint),
        esc(&w.relay)
    );
    if let Some(handle) = &w.handle {
        let _ = write!(live, "<dt>Handle</dt><dd><code>{}</code></dd>", esc(handle));
    }
    let _ = write!(live, "<dt>Key</dt><dd>generation {} ({})</dd>", w.lineage.seq, esc(w.lineage.standing));
    match ep.status().await {
        Ok(s) => {
            let health = match (s.relay.reachable.ok, s.relay.mailbox) {
                (true, Mailbox::Ok) => "reachable; our mailbox is there".to_owned(),
                (true, Mailbox::Gone) => {
                    "reachable, but it no longer knows our mailbox: run <code>wire up --reregister</code>".to_owned()
                }
                (true, Mailbox::Unknown) => "reachable".to_owned(),
                (false, _) => {
                    format!("unreachable ({})", esc(s.relay.reachable.error.as_deref().unwrap_or("no answer")))
                }
            };
            let _ = write!(
                live,
                "<dt>Relay health</dt><dd>{health}</dd><dt>Peers</dt><dd>{}</dd><dt>Inbox</dt><dd>{} events, {} unread by the agent</dd>\
<dt>Outbox</dt><dd>{} queued, {} failing</dd><dt>Pending</dt><dd>{} requests, {} outgoing, {} open invites</dd>",
                s.peers,
                s.inbox,
                s.unread,
                s.outbox.queued,
                s.outbox.failing.len(),
                s.pending.requests,
                s.pending.outgoing,
                s.pending.invites_open,
            );
        }
        Err(e) => {
            let _ = write!(live, "<dt>Relay health</dt><dd>{}</dd>", problem(&e));
        }
    }
    live.push_str("</dl>");
    live.push_str(&link_line(ui));
    Ok(View { section: "", title: "Me".into(), live, forms: String::new() })
}

fn peers(ui: &Ui, ep: &Endpoint) -> Result<View, EndpointError> {
    let p = &ui.gate.prefix;
    let list = ep.peers()?;
    let now = now(ep);
    let mut live = String::new();
    if list.is_empty() {
        let _ = write!(live, "<p>No peers yet. <a href=\"{p}/pairing\">Pair with someone</a>.</p>");
    } else {
        live.push_str("<table><caption>Paired peers</caption><thead><tr><th scope=\"col\">Peer</th><th scope=\"col\">Tier</th><th scope=\"col\">Last contact</th><th scope=\"col\">Relay</th><th scope=\"col\">Fingerprint</th></tr></thead><tbody>");
        for peer_report in &list {
            let f = &peer_report.face;
            let twins = list.iter().filter(|o| o.face.nickname == f.nickname).count();
            let collision = if twins > 1 {
                " <strong class=\"warn\">same nickname as another peer: compare fingerprints</strong>"
            } else {
                ""
            };
            let last = peer_report.last_contact.map_or_else(|| "never".to_owned(), |t| ago(now, t.0));
            let _ = write!(
                live,
                "<tr><td><a href=\"{p}/peers/{}\">{}</a>{collision}</td><td>{}</td><td>{last}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                encode(&f.did),
                face(f),
                label(&peer_report.tier),
                esc(peer_report.relay.as_deref().unwrap_or("")),
                esc(&f.fingerprint),
            );
        }
        live.push_str("</tbody></table>");
    }
    Ok(View { section: "peers", title: "Peers".into(), live, forms: String::new() })
}

/// One line of a conversation.
struct Said {
    at: u64,
    ours: bool,
    kind: String,
    text: String,
    state: Option<String>,
}

fn conversation(ui: &Ui, ep: &Endpoint, name: &str) -> Result<View, EndpointError> {
    let p = &ui.gate.prefix;
    let list = ep.peers()?;
    let peer_report = list
        .iter()
        .find(|r| r.face.did == name || r.face.nickname == name)
        .ok_or_else(|| EndpointError::UnknownPeer(name.to_owned(), Default::default()))?;
    let f = &peer_report.face;
    let mut said: Vec<Said> = ep
        .tail(Some(&f.did), 200)?
        .into_iter()
        .map(|l| Said {
            at: l.event.created_at.0,
            ours: false,
            kind: l.event.kind.to_string(),
            text: body_text(&l.event.body),
            state: None,
        })
        .collect();
    said.extend(ep.sent(Some(&f.did), 200)?.into_iter().map(|s| Said {
        at: s.created_at.0,
        ours: true,
        kind: s.kind.to_string(),
        text: body_text(&s.body),
        state: Some(label(&s.state)),
    }));
    said.sort_by_key(|s| s.at);
    let now = now(ep);
    let mut live = format!(
        "<p>{} · tier {} · fingerprint <code>{}</code></p>",
        face(f),
        label(&peer_report.tier),
        esc(&f.fingerprint)
    );
    if said.is_empty() {
        live.push_str("<p>Nothing said yet.</p>");
    } else {
        live.push_str("<ol class=\"conversation\">");
        for s in &said {
            let (class, who) = if s.ours { ("ours", "us".to_owned()) } else { ("theirs", esc(&f.nickname)) };
            let kind = if s.kind == "message" {
                String::new()
            } else {
                format!(" <span class=\"kind\">{}</span>", esc(&s.kind))
            };
            let state =
                s.state.as_ref().map(|st| format!(" · <span class=\"state\">{}</span>", esc(st))).unwrap_or_default();
            let _ = write!(
                live,
                "<li class=\"{class}\"><p class=\"meta\">{who}{kind} · {}{state}</p><p class=\"said\">{}</p></li>",
                ago(now, s.at),
                peer(&s.text)
            );
        }
        live.push_str("</ol>");
    }
    let forms = format!(
        "<form class=\"send\" method=\"post\" action=\"{p}/peers/{}/send\"><label for=\"body\">Message to {}</label>\
<textarea id=\"body\" name=\"body\" rows=\"3\" required></textarea><button type=\"submit\">Send</button></form>",
        encode(&f.did),
        esc(&f.nickname)
    );
    Ok(View { section: "peers", title: format!("Conversation with {}", esc(&f.nickname)), live, forms })
}

fn pairing(ui: &Ui, ep: &Endpoint) -> Result<View, EndpointError> {
    let p = &ui.gate.prefix;
    let mut live = String::new();
    live.push_str("<section aria-labelledby=\"codes\"><h2 id=\"codes\">Code pairings</h2>");
    let pairings = ep.pair_list()?;
    if pairings.is_empty() {
        live.push_str("<p>None in progress.</p>");
    }
    for v in &pairings {
        let np = encode(&v.nameplate);
        let _ = write!(live, "<article class=\"pairing\"><h3>Pairing {} ({})</h3>", esc(&v.nameplate), label(&v.role));
        if v.state == "waiting" && label(&v.role) == "host" {
            let _ = write!(
                live,
                "<p>Read this code to the other operator:</p><p class=\"big\"><code id=\"code-{np}\">{}</code></p>",
                esc(&v.code)
            );
        }
        let _ = write!(live, "<p>State: <strong class=\"pair-state\">{}</strong></p>", esc(v.state));
        if let Some(sas) = &v.sas {
            let _ = write!(
                live,
                "<p>Your digits (compare them with the other screen):</p><p class=\"big digits\" id=\"digits-{np}\">{}</p>",
                esc(sas)
            );
        }
        if v.state == "sas_ready" {
            let _ = write!(
                live,
                "<form method=\"post\" action=\"{p}/pairing/code/{np}/confirm\"><label for=\"other-{np}\">Digits on the other screen</label> \
<input id=\"other-{np}\" name=\"digits\" inputmode=\"numeric\" autocomplete=\"off\" required> <button type=\"submit\">Confirm</button></form>\
<form method=\"post\" action=\"{p}/pairing/code/{np}/mismatch\"><button type=\"submit\">They differ</button></form>"
            );
        }
        if let Some(face_) = &v.peer {
            let _ = write!(live, "<p>Paired with {}.</p>", face(face_));
        }
        if let Some(message) = &v.message {
            let _ = write!(live, "<p class=\"error\">{}</p>", esc(message));
        }
        if !matches!(v.state, "paired" | "aborted") {
            let _ = write!(
                live,
                "<form method=\"post\" action=\"{p}/pairing/code/{np}/cancel\"><button type=\"submit\">Cancel pairing {}</button></form>",
                esc(&v.nameplate)
            );
        }
        live.push_str("</article>");
    }
    live.push_str("</section>");
    let pending = ep.pending()?;
    live.push_str("<section aria-labelledby=\"requests\"><h2 id=\"requests\">Pair requests waiting for you</h2>");
    if pending.requests.is_empty() {
        live.push_str("<p>None.</p>");
    }
    let now = now(ep);
    for r in &pending.requests {
        let did = encode(&r.from.did);
        let note = r
            .note
            .as_deref()
            .map(|n| format!("<p>Their note (their words, unverified):</p><p class=\"said\">{}</p>", peer(n)))
            .unwrap_or_default();
        let _ = write!(
            live,
            "<article class=\"request\"><h3>{}</h3><dl class=\"facts\"><dt>DID</dt><dd><code class=\"long\">{}</code></dd><dt>Fingerprint</dt><dd><code>{}</code></dd>\
<dt>Tier if accepted</dt><dd>tofu (trust on first use: compare the fingerprint with them, then <code>wire verify</code>)</dd><dt>Asked</dt><dd>{}</dd></dl>{note}\
<form method=\"post\" action=\"{p}/pending/{did}/accept\"><button type=\"submit\">Accept {nick}</button></form>\
<form method=\"post\" action=\"{p}/pending/{did}/reject\"><button type=\"submit\">Reject {nick}</button></form></article>",
            face(&r.from),
            esc(&r.from.did),
            esc(&r.from.fingerprint),
            ago(now, r.received_at.0),
            nick = esc(&r.from.nickname),
        );
    }
    live.push_str("</section>");
    if !pending.outgoing.is_empty() {
        live.push_str("<section aria-labelledby=\"outgoing\"><h2 id=\"outgoing\">Our requests in flight</h2><ul>");
        for o in &pending.outgoing {
            let _ = write!(live, "<li>{} ({})</li>", face(&o.to), label(&o.flow));
        }
        live.push_str("</ul></section>");
    }
    if let Some((url, uses, expires_at)) = lock(&ui.invite).clone() {
        let _ = write!(
            live,
            "<section aria-labelledby=\"invite\"><h2 id=\"invite\">Your invite</h2><p><label for=\"invite-url\">Invite URL ({} uses, until {})</label></p>\
<p><input id=\"invite-url\" class=\"long\" readonly value=\"{}\"></p>{}</section>",
            uses,
            esc(&crate::output::time(expires_at)),
            esc(&url),
            html::qr(&url, "QR code of the invite URL"),
        );
    }
    let forms = format!(
        "<section aria-labelledby=\"start\"><h2 id=\"start\">Pair</h2>\
<form method=\"post\" action=\"{p}/pairing/invite\"><label for=\"uses\">Invite uses</label> <input id=\"uses\" name=\"uses\" type=\"number\" min=\"1\" max=\"100\" value=\"1\"> <button type=\"submit\">Make an invite</button></form>\
<form method=\"post\" action=\"{p}/pairing/accept\"><label for=\"url\">Their invite URL</label> <input id=\"url\" name=\"url\" class=\"long\" required> <button type=\"submit\">Accept invite</button></form>\
<form method=\"post\" action=\"{p}/pairing/code/start\"><button type=\"submit\">Start a code pairing</button></form>\
<form method=\"post\" action=\"{p}/pairing/code/join\"><label for=\"code\">Code from the other operator</label> <input id=\"code\" name=\"code\" autocomplete=\"off\" required> <button type=\"submit\">Join</button></form></section>"
    );
    Ok(View { section: "pairing", title: "Pairing".into(), live, forms })
}

fn rooms(ui: &Ui, ep: &Endpoint) -> Result<View, EndpointError> {
    let p = &ui.gate.prefix;
    let list = ep.rooms()?;
    let mut live = String::new();
    if list.is_empty() {
        live.push_str("<p>No rooms. <code>wire room create NAME</code> makes one.</p>");
    } else {
        live.push_str("<table><caption>Rooms</caption><thead><tr><th scope=\"col\">Room</th><th scope=\"col\">Our part</th><th scope=\"col\">Members</th><th scope=\"col\">Standing</th><th scope=\"col\">Epoch</th></tr></thead><tbody>");
        for r in &list {
            let _ = write!(
                live,
                "<tr><td><a href=\"{p}/rooms/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                encode(&r.id),
                esc(&r.name),
                label(&r.role),
                r.members,
                label(&r.standing),
                r.epoch
            );
        }
        live.push_str("</tbody></table>");
    }
    Ok(View { section: "rooms", title: "Rooms".into(), live, forms: String::new() })
}

fn room(ui: &Ui, ep: &Endpoint, name: &str) -> Result<View, EndpointError> {
    let p = &ui.gate.prefix;
    let view = ep
        .rooms()?
        .into_iter()
        .find(|r| r.id == name || r.name == name)
        .ok_or_else(|| EndpointError::NoSuchRoom(name.to_owned()))?;
    let members = ep.room_members(&view.id)?;
    let lines = ep.room_tail(&view.id, 200)?;
    let now = now(ep);
    let mut live = String::new();
    if let Some(welcome) = &view.welcome {
        let _ = write!(live, "<p>Welcome text: <span class=\"said\">{}</span></p>", peer(welcome));
    }
    live.push_str("<h2>Members</h2><ul>");
    for m in &members {
        let tags = [(m.me, "us"), (m.paired, "paired")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(live, "<li>{} · {} {}</li>", face(&m.face), label(&m.role), tags);
    }
    live.push_str("</ul><h2>Messages</h2>");
    if lines.is_empty() {
        live.push_str("<p>Nothing said yet.</p>");
    } else {
        live.push_str("<ol class=\"conversation\">");
        for l in &lines {
            let from = Face::of(&l.event.from);
            let _ = write!(
                live,
                "<li class=\"theirs\"><p class=\"meta\">{} · {} · {}</p><p class=\"said\">{}</p></li>",
                face(&from),
                esc(&l.event.kind.to_string()),
                ago(now, l.event.created_at.0),
                peer(&body_text(&l.event.body))
            );
        }
        live.push_str("</ol>");
    }
    let forms = format!(
        "<form class=\"send\" method=\"post\" action=\"{p}/rooms/{}/send\"><label for=\"body\">Message to the room {}</label>\
<textarea id=\"body\" name=\"body\" rows=\"3\" required></textarea><button type=\"submit\">Send to room</button></form>",
        encode(&view.id),
        esc(&view.name)
    );
    Ok(View { section: "rooms", title: format!("Room {}", esc(&view.name)), live, forms })
}

fn jobs(ui: &Ui, ep: &Endpoint) -> Result<View, EndpointError> {
    let _ = ui;
    let list = ep.jobs()?;
    let calls = ep.calls(false)?;
    let now = now(ep);
    let mut live = String::from("<h2>Jobs</h2>");
    if list.is_empty() {
        live.push_str("<p>No jobs.</p>");
    } else {
        live.push_str("<table><caption>Jobs, newest last</caption><thead><tr><th scope=\"col\">Job</th><th scope=\"col\">Task</th><th scope=\"col\">With</th><th scope=\"col\">Our side</th><th scope=\"col\">State</th><th scope=\"col\">Steps</th></tr></thead><tbody>");
        for j in &list {
            let steps = j
                .events
                .iter()
                .map(|e| format!("{} {}", esc(e.step), ago(now, e.created_at.0)))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                live,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{steps}</td></tr>",
                esc(&j.id[..8.min(j.id.len())]),
                peer(&j.job.task),
                face(&j.peer),
                label(&j.role),
                label(&j.phase),
            );
        }
        live.push_str("</tbody></table>");
    }
    live.push_str("<h2>Open calls for offers</h2>");
    if calls.is_empty() {
        live.push_str("<p>None.</p>");
    } else {
        live.push_str("<ul>");
        for c in &calls {
            let _ = write!(
                live,
                "<li><code>{}</code> in {} from {}: {}{}</li>",
                esc(&c.id[..8.min(c.id.len())]),
                esc(&c.room),
                face(&c.from),
                peer(&c.task),
                if c.mine { " (ours)" } else { "" }
            );
        }
        live.push_str("</ul>");
    }
    Ok(View { section: "jobs", title: "Jobs".into(), live, forms: String::new() })
}

fn mesh(ui: &Ui) -> Result<View, EndpointError> {
    let Some(sessions) = &ui.sessions else {
        return Ok(View {
            section: "mesh",
            title: "Mesh".into(),
            live: "<p>No sessions directory on this machine.</p>".into(),
            forms: String::new(),
        });
    };
    let members = wire_core::endpoint::mesh_status(sessions, std::time::Duration::from_secs(24 * 3600))?;
    let mut live = String::new();
    if members.is_empty() {
        live.push_str("<p>No sessions; <code>wire session new NAME</code> makes one.</p>");
    } else {
        let names: Vec<(String, bool)> = members.iter().map(|m| (m.session.clone(), m.silent)).collect();
        let mut edges = Vec::new();
        for (i, m) in members.iter().enumerate() {
            for other in &m.paired_with {
                if let Some(j) = members.iter().position(|o| &o.session == other).filter(|j| i < *j) {
                    edges.push((i, j));
                }
            }
        }
        live.push_str(&html::graph(&names, &edges));
        live.push_str("<table><caption>Sessions</caption><thead><tr><th scope=\"col\">Session</th><th scope=\"col\">Face</th><th scope=\"col\">Role</th><th scope=\"col\">Paired with</th><th scope=\"col\">Heard</th></tr></thead><tbody>");
        for m in &members {
            let who = m.face.as_ref().map_or_else(|| "not set up".to_owned(), face);
            let heard = if m.silent {
                "<strong class=\"warn\">silent</strong>"
            } else if m.new {
                "new"
            } else {
                "recently"
            };
            let _ = write!(
                live,
                "<tr><td>{}</td><td>{who}</td><td>{}</td><td>{}</td><td>{heard}</td></tr>",
                esc(&m.session),
                esc(m.role.as_deref().unwrap_or("")),
                esc(&m.paired_with.join(", "))
            );
        }
        live.push_str("</tbody></table>");
    }
    Ok(View { section: "mesh", title: "Mesh".into(), live, forms: String::new() })
}

fn relay(ui: &Ui) -> Result<View, EndpointError> {
    let target = ui.metrics_target();
    let samples: Vec<Sample> = lock(&ui.samples).iter().copied().collect();
    let mut live = format!("<p>Reading <code>{}</code> every 5 s.</p>", esc(target.as_deref().unwrap_or("no relay")));
    if samples.is_empty() {
        live.push_str(
            "<p>No sample yet (the relay's <code>/metrics</code> did not answer, or the first is on its way).</p>",
        );
    }
    let rates: Vec<f64> = samples
        .windows(2)
        .map(|w| (w[1].appends - w[0].appends) / w[1].at.duration_since(w[0].at).as_secs_f64().max(1e-3))
        .collect();
    let streams: Vec<f64> = samples.iter().map(|s| s.streams).collect();
    let slots: Vec<f64> = samples.iter().map(|s| s.slots).collect();
    let p99: Vec<f64> = samples.windows(2).map(|w| quantile(&w[0], &w[1], 0.99) * 1000.0).collect();
    live.push_str("<div class=\"charts\">");
    live.push_str(&html::chart("Appends per second", "/s", &rates));
    live.push_str(&html::chart("Append latency p99", "ms", &p99));
    live.push_str(&html::chart("Open streams", "", &streams));
    live.push_str(&html::chart("Slots", "", &slots));
    live.push_str("</div>");
    Ok(View { section: "relay", title: "Relay".into(), live, forms: String::new() })
}

/// The `q` quantile of the append latencies observed between two samples (the upper bound
/// of the bucket it falls in), in seconds.
fn quantile(a: &Sample, b: &Sample, q: f64) -> f64 {
    let n = b.nbuckets.min(a.nbuckets);
    let total =
        b.buckets.get(n.wrapping_sub(1)).map_or(0.0, |x| x.1) - a.buckets.get(n.wrapping_sub(1)).map_or(0.0, |x| x.1);
    if n == 0 || total <= 0.0 {
        return 0.0;
    }
    for i in 0..n {
        if b.buckets[i].1 - a.buckets[i].1 >= q * total {
            return b.buckets[i].0;
        }
    }
    b.buckets[n - 1].0
}

/// One read of a relay's `/metrics` (plain HTTP or HTTPS through the relay client), `url`
/// being the relay's base URL.
pub async fn fetch_metrics(url: &str) -> Option<Sample> {
    let url = wire_core::client::RelayUrl::parse(url).ok()?;
    let text = wire_core::client::Client::new(url).metrics().await.ok()?;
    let mut s = Sample {
        at: std::time::Instant::now(),
        appends: 0.0,
        streams: 0.0,
        slots: 0.0,
        buckets: [(0.0, 0.0); 32],
        nbuckets: 0,
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.trim().parse::<f64>() else { continue };
        match name {
            "wire_relay_appends_total" => s.appends = v,
            "wire_relay_streams_open" => s.streams = v,
            "wire_relay_slots_total" => s.slots = v,
            _ if name.starts_with("wire_relay_request_duration_seconds_bucket{route=\"append\",le=\"") => {
                let le = name.rsplit_once("le=\"").and_then(|(_, r)| r.strip_suffix("\"}"));
                let bound = match le {
                    Some("+Inf") => f64::INFINITY,
                    Some(b) => b.parse().unwrap_or(f64::INFINITY),
                    None => continue,
                };
                if s.nbuckets < s.buckets.len() {
                    s.buckets[s.nbuckets] = (bound, v);
                    s.nbuckets += 1;
                }
            }
            _ => {}
        }
    }
    Some(s)
}
