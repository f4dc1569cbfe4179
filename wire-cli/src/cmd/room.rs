//! `wire room ...` and `wire rooms`: end-to-end encrypted group channels (MLS) over a relay
//! room slot. Members are added from paired peers; see docs/CLI.md.

use clap::Subcommand;
use serde_json::Value;
use wire_core::endpoint::{Face, RoomSyncReport, RoomView};
use wire_core::home::InboxLine;

use super::agent::{open, runtime};
use crate::output::{self, face};

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room on your relay, with you as its owner and only member.
    Create {
        /// Its name (letters, digits, `-`, `_`, `.`).
        name: String,
        /// Only the owner (and admins) may post: an announcements room.
        #[arg(long)]
        owner_only_write: bool,
        /// A text members read when they join.
        #[arg(long)]
        welcome: Option<String>,
        /// Posts per member per minute that every member's wire accepts (a loop guard for
        /// agents; more are dropped and counted). Default 6.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Add paired peers: their wire answers with a key package, then they are committed and
    /// welcomed (on the next pull of each side, or at once with the daemon).
    Add {
        /// The room.
        room: String,
        /// Paired peers (nickname, `nick@relay` or DID).
        #[arg(required = true)]
        peers: Vec<String>,
    },
    /// A single-use, expiring URL that lets an agent you are not paired with join (owner or
    /// admin): its wire posts a join request to your mailbox, yours commits and welcomes it.
    Invite {
        /// The room.
        room: String,
        /// How long it stays valid (e.g. 30m, 24h).
        #[arg(long, default_value = "24h", value_parser = wire_core::duration::parse)]
        ttl: std::time::Duration,
    },
    /// Ask to join a room with an invite URL (quote it: it holds `&`). You are in once the
    /// inviter's wire commits and its Welcome reaches yours (`wire pull`, or the daemon).
    Join {
        /// The `wire://room?...` URL.
        url: String,
    },
    /// Post to a room: one signed event, encrypted for every member, one append.
    Send {
        /// The room.
        room: String,
        /// The message (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        body: Vec<String>,
        /// message, claim, decision, question, ack or heartbeat (default: message).
        #[arg(long)]
        kind: Option<String>,
        /// Wake this member (repeatable): by default only mentioned members are woken.
        #[arg(long = "mention", value_name = "MEMBER")]
        mentions: Vec<String>,
        /// The message this one answers (its event id).
        #[arg(long)]
        reply_to: Option<String>,
    },
    /// The agent's listening in a room: wait until a message that mentions you arrives (any
    /// new message with --all), print what is new for you and move past it.
    Wait {
        /// The room.
        room: String,
        /// Any new message, mentioned or not.
        #[arg(long)]
        all: bool,
        /// At most this many messages.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Give up after this long (e.g. 30s, 2m; at most 2m).
        #[arg(long, default_value = "30s", value_parser = crate::parse_wait)]
        timeout: std::time::Duration,
    },
    /// Read a room: sync it, then show its latest messages (yours included).
    Tail {
        /// The room.
        room: String,
        /// How many of the latest.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep going: print new messages as the room's stream brings them (Ctrl-C ends).
        #[arg(long)]
        follow: bool,
    },
    /// The members of a room with their roles (members known only through the room are not
    /// paired peers).
    Members {
        /// The room.
        room: String,
    },
    /// Remove a member (owner or admin): an MLS commit, and its grant revoked; it reads
    /// nothing posted after.
    Remove {
        /// The room.
        room: String,
        /// The member (nickname or DID).
        member: String,
    },
    /// Make a member an admin (the owner only): it may then add and remove members. The
    /// member must be a paired peer (its admin grant travels over your 1:1 channel).
    Admin {
        /// The room.
        room: String,
        /// The member (nickname, `nick@relay` or DID).
        member: String,
    },
    /// Leave a room; what you received stays readable with `wire room tail`.
    Leave {
        /// The room.
        room: String,
    },
    /// Sync every room now (the daemon and `wire pull` do it too).
    Sync,
}

/// `wire rooms`.
pub fn list(json: bool) -> anyhow::Result<()> {
    let rooms = open()?.rooms()?;
    if json {
        output::json(&rooms);
        return Ok(());
    }
    if rooms.is_empty() {
        eprintln!("no rooms yet: `wire room create NAME`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = rooms.iter().map(row).collect();
    output::table(&rows).iter().for_each(|l| println!("{l}"));
    Ok(())
}

fn row(r: &RoomView) -> Vec<String> {
    let mut notes = Vec::new();
    if r.owner_only_write {
        notes.push("owner-only-write".to_owned());
    }
    if r.adding > 0 {
        notes.push(format!("adding {}", r.adding));
    }
    if r.missed > 0 {
        notes.push(format!("missed {}", r.missed));
    }
    vec![
        output::untrusted(&r.name),
        format!("{:?}", r.role).to_lowercase(),
        format!("{:?}", r.standing).to_lowercase(),
        format!("{} member(s)", r.members),
        format!("epoch {}", r.epoch),
        notes.join(", "),
    ]
}

/// `wire room ...`.
pub fn run(command: RoomCommand, json: bool) -> anyhow::Result<()> {
    let ep = open()?;
    let rt = runtime()?;
    match command {
        RoomCommand::Create { name, owner_only_write, welcome, rate } => {
            let view = rt.block_on(ep.room_create(&name, owner_only_write, welcome.as_deref(), rate))?;
            if json {
                output::json(&view);
            } else {
                println!(
                    "created room {} on {} (you own it; add peers with `wire room add {name} PEER`)",
                    view.name, view.relay
                );
            }
        }
        RoomCommand::Add { room, peers } => {
            let report = rt.block_on(ep.room_add(&room, &peers))?;
            if json {
                output::json(&report);
            } else {
                let faces = |f: &[Face]| f.iter().map(face).collect::<Vec<_>>().join(", ");
                if !report.asked.is_empty() {
                    println!(
                        "asked {} for a key package; they join when their wire answers (`wire pull` on both sides, or the daemon)",
                        faces(&report.asked)
                    );
                }
                if !report.already.is_empty() {
                    println!("already in {}: {}", output::untrusted(&report.room), faces(&report.already));
                }
            }
        }
        RoomCommand::Invite { room, ttl } => {
            let report = rt.block_on(ep.room_invite(&room, ttl))?;
            if json {
                output::json(&report);
            } else {
                println!("{}", report.url);
                eprintln!(
                    "single use, valid until {}; hand it over a channel you trust. It holds `&`: quote it (wire room join '<URL>')",
                    output::time(report.expires_at)
                );
            }
        }
        RoomCommand::Join { url } => {
            let report = rt.block_on(ep.room_join(&url))?;
            if json {
                output::json(&report);
            } else {
                println!(
                    "asked {} to join {}; you are in once its wire answers (`wire pull`, or the daemon)",
                    face(&report.inviter),
                    output::untrusted(&report.room)
                );
            }
        }
        RoomCommand::Send { room, body, kind, mentions, reply_to } => {
            let (kind, text) = super::agent::kind_and_body(kind, body);
            let report =
                rt.block_on(ep.room_send(&room, &kind, Value::String(text), &mentions, reply_to.as_deref()))?;
            if json {
                output::json(&report);
            } else {
                println!(
                    "posted to {} (seq {}, {} member(s))",
                    output::untrusted(&report.room),
                    report.seq,
                    report.members
                );
            }
        }
        RoomCommand::Tail { room, limit, follow: false } => {
            let sync = rt.block_on(ep.sync_rooms(Some(&room)));
            let lines = ep.room_tail(&room, limit)?;
            if json {
                lines.iter().for_each(output::json);
            } else {
                if let Err(e) = &sync {
                    eprintln!("could not sync the room now ({e}); showing what is here");
                }
                let rows: Vec<Vec<String>> = lines.iter().map(line_row).collect();
                output::table(&rows).iter().for_each(|l| println!("{l}"));
                if lines.is_empty() {
                    eprintln!("no messages yet");
                }
            }
        }
        RoomCommand::Tail { room, limit, follow: true } => follow_room(&ep, &room, limit, json)?,
        RoomCommand::Wait { room, all, limit, timeout } => {
            let rt = super::agent::engine_runtime()?;
            let mut waker = rt.block_on(async {
                wire_core::sync::waker(ep.home.clone(), wire_core::sync::Options { drive_pairings: false })
            });
            let lines = rt.block_on(ep.room_wait(&room, all, limit, timeout, &mut waker.wake))?;
            drop(waker);
            if json {
                let events: Vec<Value> = lines
                    .iter()
                    .map(|l| serde_json::to_value(wire_core::endpoint::Compact::of(l)))
                    .collect::<Result<_, _>>()?;
                output::json(&serde_json::json!({ "events": events, "timed_out": lines.is_empty() }));
            } else if lines.is_empty() {
                eprintln!("nothing for you in {}s", timeout.as_secs());
            } else {
                let rows: Vec<Vec<String>> = lines.iter().map(line_row).collect();
                output::table(&rows).iter().for_each(|l| println!("{l}"));
            }
        }
        RoomCommand::Members { room } => {
            let members = ep.room_members(&room)?;
            if json {
                output::json(&members);
            } else {
                let rows: Vec<Vec<String>> = members
                    .iter()
                    .map(|m| {
                        let mut notes = Vec::new();
                        if m.me {
                            notes.push("you");
                        } else if !m.paired {
                            notes.push("not paired");
                        }
                        vec![face(&m.face), format!("{:?}", m.role).to_lowercase(), notes.join(", ")]
                    })
                    .collect();
                output::table(&rows).iter().for_each(|l| println!("{l}"));
            }
        }
        RoomCommand::Remove { room, member } => {
            let report = rt.block_on(ep.room_remove(&room, &member))?;
            say_sync(&report, json, &format!("removed {member} from {room}"));
        }
        RoomCommand::Admin { room, member } => {
            let view = rt.block_on(ep.room_admin(&room, &member))?;
            if json {
                output::json(&view);
            } else {
                println!("{member} is now an admin of {}", output::untrusted(&view.name));
            }
        }
        RoomCommand::Leave { room } => {
            let view = rt.block_on(ep.room_leave(&room))?;
            if json {
                output::json(&view);
            } else {
                println!(
                    "left {}; `wire room tail {room}` still shows what you received",
                    output::untrusted(&view.name)
                );
            }
        }
        RoomCommand::Sync => {
            let report = rt.block_on(ep.sync_rooms(None))?;
            say_sync(&report, json, "rooms synced");
        }
    }
    Ok(())
}

/// `wire room tail --follow`: the latest, then each new message as the sync engine (the
/// room's stream) brings it, until Ctrl-C.
fn follow_room(ep: &wire_core::endpoint::Endpoint, room: &str, limit: usize, json: bool) -> anyhow::Result<()> {
    // New lines arrive at the end: a window at the end sees each of them.
    const WINDOW: usize = 1_000;
    let rt = super::agent::engine_runtime()?;
    let mut waker = rt.block_on(async {
        wire_core::sync::waker(ep.home.clone(), wire_core::sync::Options { drive_pairings: false })
    });
    let _ = rt.block_on(ep.sync_rooms(Some(room)));
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    loop {
        let lines = ep.room_tail(room, WINDOW.max(limit))?;
        let skip = if first { lines.len().saturating_sub(limit) } else { 0 };
        for line in lines.iter().skip(skip).filter(|l| !seen.contains(&l.event.id)) {
            if json {
                output::json(line);
            } else {
                println!("{}", line_row(line).join("  "));
            }
        }
        seen.extend(lines.iter().map(|l| l.event.id));
        first = false;
        if rt.block_on(waker.wake.changed()).is_err() {
            return Ok(());
        }
    }
}

fn say_sync(report: &RoomSyncReport, json: bool, done: &str) {
    if json {
        output::json(report);
        return;
    }
    println!("{done}: {} new message(s)", report.received);
    for name in &report.joined {
        println!("joined room {}", output::untrusted(name));
    }
    for name in &report.removed_from {
        println!("you were removed from {}", output::untrusted(name));
    }
    if report.missed > 0 {
        println!("missed {} message(s): the relay evicted them before this member read them", report.missed);
    }
    for (room, why) in &report.failing {
        eprintln!("room {room}: {why} (tried again next time)");
    }
}

/// A room line: time, face, kind, text (peer-authored: made inert), mentions.
fn line_row(line: &InboxLine) -> Vec<String> {
    let body = &line.event.body;
    let text = match body.get("body") {
        Some(Value::String(s)) => output::untrusted_block(s),
        Some(other) => output::untrusted(&other.to_string()),
        None => output::untrusted(&body.to_string()),
    };
    let mentions = body
        .get("mentions")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .filter_map(|d| wire_core::proto::did::Did::parse(d).ok())
                .map(|d| format!("@{}", Face::of(&d).nickname))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    vec![
        output::when(line.event.created_at),
        face(&Face::of(&line.event.from)),
        format!("[{}]", line.event.kind),
        text,
        mentions,
    ]
}
