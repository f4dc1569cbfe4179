//! Rooms with the real binary and real relay processes (docs/PROTOCOL.md, "Rooms"): three
//! members on two relays, an audit of the room relay's files, removal with post-compromise
//! security, catching up after 500 messages, crashes at each persistence step, concurrent
//! commits, refusals every receiver makes, and a room older than its relay quota.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{RelayProcess, Wire, tempdir};

struct World {
    root: PathBuf,
    r1: RelayProcess,
    _r2: RelayProcess,
    a: Wire,
    b: Wire,
    c: Wire,
}

impl Drop for World {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

/// a and b on relay 1, c on relay 2; a paired with b and with c. Local-only relays keep no
/// handle directory, so the audit below finds no card either.
fn world(name: &str, r1_flags: &[&str]) -> World {
    let root = tempdir(name);
    let mut flags = vec!["--local-only"];
    flags.extend_from_slice(r1_flags);
    let r1 = RelayProcess::start(&root.join("r1"), &root.join("r1.log"), &flags);
    let r2 = RelayProcess::start(&root.join("r2"), &root.join("r2.log"), &["--local-only"]);
    let (a, b, c) = (Wire::new(&root, "a"), Wire::new(&root, "b"), Wire::new(&root, "c"));
    a.json(&["init", "--relay", &r1.addr]);
    b.json(&["init", "--relay", &r1.addr]);
    c.json(&["init", "--relay", &r2.addr]);
    for guest in [&b, &c] {
        let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
        guest.json(&["accept", &url]);
    }
    a.json(&["pull"]);
    World { root, r1, _r2: r2, a, b, c }
}

/// One pull each, in order: enough for one step of the add exchange.
fn pulls(ws: &[&Wire]) {
    for w in ws {
        w.json(&["pull"]);
    }
}

/// a creates `lab` and adds b and c: b and c answer, a commits and welcomes, they join.
fn lab(w: &World, create: &[&str]) {
    let mut args = vec!["room", "create", "lab"];
    args.extend_from_slice(create);
    assert_eq!(w.a.json(&args)["role"], "owner");
    let added = w.a.json(&["room", "add", "lab", &w.b.nickname(), &w.c.nickname()]);
    assert_eq!(added["asked"].as_array().unwrap().len(), 2, "{added}");
    pulls(&[&w.b, &w.c]);
    let a = w.a.json(&["pull"]);
    assert_eq!((a["rooms"]["committed"].as_u64(), a["rooms"]["welcomed"].as_u64()), (Some(1), Some(2)), "{a}");
    for m in [&w.b, &w.c] {
        assert_eq!(m.json(&["pull"])["rooms"]["joined"], serde_json::json!(["lab"]));
    }
}

fn bodies(w: &Wire, limit: usize) -> Vec<String> {
    let out = w.run(&["room", "tail", "lab", "--json", "--limit", &limit.to_string()]).ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"]["body"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn room(w: &Wire) -> Value {
    w.json(&["rooms"]).as_array().unwrap().iter().find(|r| r["name"] == "lab").cloned().expect("the room")
}

fn roster(w: &Wire) -> Vec<String> {
    let mut dids: Vec<String> = w
        .json(&["room", "members", "lab"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["face"]["did"].as_str().unwrap().to_owned())
        .collect();
    dids.sort();
    dids
}

/// Every file of a relay's data directory and its log, as one haystack.
fn relay_bytes(data: &Path, log: &Path) -> Vec<u8> {
    let mut haystack = std::fs::read(log).unwrap();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            haystack.extend(std::fs::read(path).unwrap());
        }
    }
    haystack
}

#[test]
fn three_members_on_two_relays_talk_and_the_room_relay_learns_nothing() {
    let w = world("rooms-three", &[]);
    lab(&w, &["--welcome", "read the runbook first"]);
    let said = ["from a: 4f1c quince", "from b: 8e2d damson", "from c: 1a7b medlar"];
    w.a.json(&["room", "send", "lab", said[0]]);
    w.b.json(&["room", "send", "lab", "--mention", &w.c.nickname(), said[1]]);
    w.c.json(&["room", "send", "lab", said[2]]);
    for m in [&w.a, &w.b, &w.c] {
        assert_eq!(bodies(m, 10), said, "every member reads the same room in slot order");
        let r = room(m);
        assert_eq!((r["members"].as_u64(), r["epoch"].as_u64()), (Some(3), Some(1)), "{r}");
        assert_eq!(r["welcome"], "read the runbook first");
    }
    assert_eq!(roster(&w.a), roster(&w.c));
    let members = w.c.json(&["room", "members", "lab"]);
    let b_entry =
        members.as_array().unwrap().iter().find(|m| m["face"]["nickname"] == w.b.nickname().as_str()).unwrap();
    assert_eq!(
        (b_entry["role"].as_str(), b_entry["paired"].as_bool()),
        (Some("member"), Some(false)),
        "a room-only member is not a peer"
    );
    assert_eq!(w.c.json(&["peers"]).as_array().unwrap().len(), 1, "c pinned nobody new");
    // One append per message: the room slot holds the commit and the three messages. This
    // one answers a's.
    let a_id =
        w.c.run(&["room", "tail", "lab", "--json", "--limit", "10"])
            .ok()
            .stdout
            .lines()
            .next()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned());
    let a_id = a_id.expect("a's message");
    let seq = w.c.json(&["room", "send", "lab", "--reply-to", &a_id, "one more"])["seq"].as_u64().unwrap();
    assert_eq!(seq, 5);
    let last = w.b.run(&["room", "tail", "lab", "--json", "--limit", "1"]).ok().stdout;
    assert_eq!(serde_json::from_str::<Value>(last.trim()).unwrap()["reply_to"], a_id.as_str());

    let (data, log) = (w.root.join("r1"), w.root.join("r1.log"));
    let haystack = relay_bytes(&data, &log);
    assert!(haystack.len() > 4096, "the audit read the database");
    let mut needles: Vec<(String, String)> = said.iter().map(|s| ("a message".to_owned(), s.to_string())).collect();
    for (name, m) in [("a", &w.a), ("b", &w.b), ("c", &w.c)] {
        needles.push((format!("{name}'s DID"), m.did()));
        needles.push((format!("{name}'s nickname"), m.nickname()));
    }
    needles.push(("the room's name".into(), "\"lab\"".into()));
    needles.push(("the welcome".into(), "read the runbook first".into()));
    needles.push(("the room's DID".into(), room(&w.a)["id"].as_str().unwrap().to_owned()));
    for (what, needle) in needles {
        let found = haystack.windows(needle.len()).any(|x| x == needle.as_bytes());
        assert!(!found, "the room relay's files or log contain {what}");
    }
}

#[test]
fn a_removed_member_given_every_later_envelope_reads_none_of_them() {
    let w = world("rooms-remove", &[]);
    lab(&w, &[]);
    w.a.json(&["room", "send", "lab", "before the removal"]);
    assert_eq!(bodies(&w.c, 10), vec!["before the removal"]);
    let removed = w.a.json(&["room", "remove", "lab", &w.c.nickname()]);
    assert_eq!(removed["committed"], 1, "{removed}");
    let after = ["after the removal: 3c9e", "still after: 77ab"];
    w.a.json(&["room", "send", "lab", after[0]]);
    w.b.json(&["room", "send", "lab", after[1]]);
    assert_eq!(bodies(&w.b, 10), vec!["before the removal", after[0], after[1]]);
    assert_eq!(roster(&w.a), roster(&w.b));
    assert_eq!(roster(&w.a).len(), 2);

    // c's grant is revoked; the relay refuses it and c says so.
    let synced = w.c.json(&["room", "sync"]);
    assert_eq!(synced["removed_from"], serde_json::json!(["lab"]), "{synced}");
    assert_eq!(room(&w.c)["standing"], "removed");
    // Give c's client everything anyway: a fresh grant minted with the owner's token, and
    // its standing set back, so it tries every later envelope with the state it had.
    let owner = state(&w.a);
    let room_a = &owner["rooms"][0];
    let grant = w.r1.json(
        "POST",
        &format!("/v1/slots/{}/grants", room_a["slot"].as_str().unwrap()),
        Some(room_a["token"].as_str().unwrap()),
        br#"{"kind":"member"}"#,
    );
    let mut c_state = state(&w.c);
    c_state["rooms"][0]["token"] = grant["token"].clone();
    c_state["rooms"][0]["standing"] = "active".into();
    c_state["rooms"][0]["cursor"] = 0.into();
    std::fs::write(w.c.home.join("rooms.json"), serde_json::to_vec(&c_state).unwrap()).unwrap();
    w.c.run(&["room", "sync", "--json"]);
    let read = bodies(&w.c, 20);
    for body in after {
        assert!(!read.iter().any(|r| r == body), "the removed member decrypted `{body}`: {read:?}");
    }
    assert!(room(&w.c)["standing"] == "removed" || room(&w.c)["refused"].as_u64() > Some(0), "{}", room(&w.c));
}

fn state(w: &Wire) -> Value {
    serde_json::from_slice(&std::fs::read(w.home.join("rooms.json")).unwrap()).unwrap()
}

#[test]
fn a_member_offline_through_500_messages_catches_up_in_order_exactly_once() {
    let w = world("rooms-catch-up", &[]);
    lab(&w, &["--rate", "1000"]);
    for i in 0..500 {
        w.a.run(&["room", "send", "lab", &format!("m{i:03}")]).ok();
    }
    let synced = w.c.json(&["room", "sync"]);
    assert_eq!(synced["received"], 500, "{synced}");
    let expected: Vec<String> = (0..500).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies(&w.c, 1_000), expected);
    assert_eq!(w.c.json(&["room", "sync"])["received"], 0, "nothing twice");
    assert_eq!(bodies(&w.b, 1_000), expected, "b (same relay as the room) too");
}

/// Runs `args` with the failpoint `step` and expects the process to die there.
fn dies_at(w: &Wire, args: &[&str], step: &str) {
    let died = w.run_with(args, &[("WIRE_FAILPOINT", step)]);
    assert!(died.code != 0 && died.stdout.is_empty(), "{step}: the failpoint was not reached: {died:?}");
}

#[test]
fn a_member_killed_at_each_persistence_step_recovers() {
    let w = world("rooms-crash", &[]);
    lab(&w, &[]);
    // A reader dies after writing the room's inbox (before the rooms file), and after the
    // rooms file: each message lands once.
    for (body, step) in [("one", "room-after-inbox"), ("two", "room-after-state")] {
        w.a.json(&["room", "send", "lab", body]);
        dies_at(&w.b, &["room", "sync"], step);
        w.b.json(&["room", "sync"]);
    }
    assert_eq!(bodies(&w.b, 20), vec!["one", "two"], "each message once, in order");
    // The committer dies after posting its commit (before reading it back); a reader dies
    // while taking that commit in. Both recover into the same epoch.
    dies_at(&w.a, &["room", "remove", "lab", &w.c.nickname()], "room-commit-posted");
    let finished = w.a.json(&["room", "sync"]);
    assert_eq!(finished["committed"], 1, "{finished}");
    dies_at(&w.b, &["room", "sync"], "room-after-inbox");
    w.b.json(&["room", "sync"]);
    assert_eq!((room(&w.a)["epoch"].as_u64(), room(&w.b)["epoch"].as_u64()), (Some(2), Some(2)));
    // The committer dies after saving its commit, before posting it.
    w.a.json(&["room", "add", "lab", &w.c.nickname()]);
    w.c.json(&["pull"]);
    dies_at(&w.a, &["pull"], "room-commit-saved");
    let done = w.a.json(&["pull"]);
    assert_eq!(done["rooms"]["welcomed"], 1, "{done}");
    assert_eq!(w.c.json(&["pull"])["rooms"]["joined"], serde_json::json!(["lab"]));
    w.a.json(&["room", "send", "lab", "c is back"]);
    assert_eq!(bodies(&w.c, 5).last().map(String::as_str), Some("c is back"));
    assert_eq!(bodies(&w.b, 5).last().map(String::as_str), Some("c is back"));
    assert_eq!(roster(&w.a), roster(&w.c));
    assert_eq!(roster(&w.a), roster(&w.b));
    assert_eq!(roster(&w.a).len(), 3);
}

#[test]
fn a_room_older_than_its_relay_quota_keeps_working() {
    let w = world("rooms-quota", &["--room-max-events", "40"]);
    lab(&w, &["--rate", "1000"]);
    for i in 0..100 {
        w.a.run(&["room", "send", "lab", &format!("n{i:03}")]).ok();
    }
    // c was away for all of it: the relay evicted the oldest 61 envelopes (the commit c
    // joined with, and 60 messages) and says so; c reads the 40 that remain and goes on.
    let synced = w.c.json(&["room", "sync"]);
    assert_eq!((synced["missed"].as_u64(), synced["received"].as_u64()), (Some(60), Some(40)), "{synced}");
    assert_eq!(room(&w.c)["missed"], 60);
    w.b.json(&["room", "send", "lab", "still working"]);
    assert_eq!(bodies(&w.c, 1).last().map(String::as_str), Some("still working"));
    assert_eq!(bodies(&w.a, 1).last().map(String::as_str), Some("still working"));
}

/// A member's own keys and room state, used to post what its wire would refuse to: the
/// rules are enforced by every receiver, not by the sender.
struct Rogue {
    id: wire_core::proto::identity::Identity,
    room: wire_core::room::Room,
    provider: wire_core::room::mls::Provider,
}

fn rogue(w: &Wire) -> Rogue {
    let secret = std::fs::read(w.home.join("identity.json")).unwrap();
    let id = wire_core::proto::identity::Identity::from_secret_file(&secret).unwrap();
    let file: wire_core::room::RoomsFile =
        serde_json::from_slice(&std::fs::read(w.home.join("rooms.json")).unwrap()).unwrap();
    let provider = wire_core::room::mls::Provider::new();
    provider.load(&file.mls).unwrap();
    Rogue { id, room: file.rooms.into_iter().next().unwrap(), provider }
}

impl Rogue {
    fn group(&self) -> wire_core::room::mls::MlsGroup {
        wire_core::room::mls::load(&self.provider, self.room.id.as_str().as_bytes()).unwrap().unwrap()
    }

    /// A signed message, encrypted for the room as the member's wire would.
    fn message(&self, text: &str) -> Vec<u8> {
        use wire_core::proto::event::{Event, Kind};
        let body = serde_json::json!({ "body": text, "mentions": [] });
        let now = wire_core::endpoint::now();
        let event = Event::new(&self.id, self.room.id.clone(), Kind::Message, body, now, &mut rand_core::OsRng);
        let signed = event.sign(&self.id).unwrap();
        let plaintext = serde_json::to_vec(signed.signed()).unwrap();
        wire_core::room::mls::encrypt(&mut self.group(), &self.provider, &self.id, &plaintext).unwrap()
    }

    /// A commit removing `did`.
    fn remove(&self, did: &str) -> Vec<u8> {
        let mut group = self.group();
        let leaf = wire_core::room::mls::members(&group).into_iter().find(|l| l.did.as_str() == did).unwrap();
        let leaves = [wire_core::room::mls::LeafNodeIndex::new(leaf.index)];
        wire_core::room::mls::remove(&mut group, &self.provider, &self.id, &leaves).unwrap().commit
    }

    /// Posts to the room slot with the member's own token.
    fn post(&self, relay: &RelayProcess, mls: &[u8]) {
        let env = wire_core::room::wrap(&self.room.wrap_key, mls, &mut rand_core::OsRng).unwrap();
        let path = format!("/v1/slots/{}/events", self.room.slot);
        let (status, body) = relay.req("POST", &path, Some(self.room.token.expose()), &env);
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn every_receiver_refuses_a_forbidden_post_and_a_forged_roster_change() {
    let w = world("rooms-rules", &[]);
    lab(&w, &["--owner-only-write"]);
    // b's wire will not post to an announcements room...
    let refused = w.b.run(&["room", "send", "lab", "--json", "may I?"]);
    assert_ne!(refused.code, 0);
    assert_eq!(refused.json()["error"]["code"], "room_closed", "{refused:?}");
    // ...and when b's keys post anyway, every receiver drops it.
    let b = rogue(&w.b);
    b.post(&w.r1, &b.message("posted around the rule"));
    // b, not an admin, commits c's removal: every other member refuses the commit.
    b.post(&w.r1, &b.remove(&w.c.did()));
    w.a.json(&["room", "send", "lab", "announcement"]);
    for m in [&w.a, &w.c] {
        m.json(&["room", "sync"]);
        assert_eq!(bodies(m, 10), vec!["announcement"], "only the owner's post");
        let r = room(m);
        assert_eq!(
            (r["refused"].as_u64(), r["epoch"].as_u64(), r["members"].as_u64()),
            (Some(2), Some(1), Some(3)),
            "{r}"
        );
    }
    assert_eq!(roster(&w.a), roster(&w.c));
    assert_eq!(bodies(&w.b, 10), vec!["announcement"], "b, still in the epoch, reads on");
}

#[test]
fn a_member_over_the_rooms_rate_is_dropped_by_every_receiver() {
    let w = world("rooms-rate", &[]);
    lab(&w, &["--rate", "2"]);
    for text in ["first", "second", "third, one too many"] {
        w.b.json(&["room", "send", "lab", text]);
    }
    for m in [&w.a, &w.c] {
        assert_eq!(bodies(m, 10), vec!["first", "second"], "the loop guard holds at every receiver");
        assert_eq!(room(m)["refused"], 1);
    }
}

#[test]
fn two_managers_commit_in_the_same_epoch_and_every_member_ends_in_one_epoch_and_roster() {
    let w = world("rooms-race", &[]);
    let d = Wire::new(&w.root, "d");
    d.json(&["init", "--relay", &w._r2.addr]);
    let url = w.a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    d.json(&["accept", &url]);
    w.a.json(&["pull"]);
    lab(&w, &[]);
    w.a.json(&["room", "add", "lab", &d.nickname()]);
    d.json(&["pull"]);
    w.a.json(&["pull"]);
    d.json(&["pull"]);
    // b becomes an admin: the policy reaches every member in the room, the grant b's wire.
    w.a.json(&["room", "admin", "lab", &w.b.nickname()]);
    w.b.json(&["pull"]);
    w.c.json(&["room", "sync"]);
    let b_members = w.c.json(&["room", "members", "lab"]);
    let b_role =
        b_members.as_array().unwrap().iter().find(|m| m["face"]["nickname"] == w.b.nickname().as_str()).unwrap();
    assert_eq!(b_role["role"], "admin", "c learned the new policy from the room");
    assert_eq!(room(&w.b)["role"], "admin");
    let epoch = room(&w.a)["epoch"].as_u64().unwrap();
    // Both commit in the same epoch: b's commit is saved (b dies before posting it), a's
    // goes out and is merged; b's is posted after a's when b comes back.
    dies_at(&w.b, &["room", "remove", "lab", &d.nickname()], "room-commit-saved");
    w.a.json(&["room", "remove", "lab", &w.c.nickname()]);
    let b_back = w.b.json(&["room", "sync"]);
    assert!(b_back["failing"].as_array().unwrap().is_empty(), "{b_back}");
    w.a.json(&["room", "sync"]);
    // a's commit won its epoch; b's lost, was skipped by everyone, and b made it again.
    for m in [&w.a, &w.b] {
        let r = room(m);
        assert_eq!((r["epoch"].as_u64(), r["members"].as_u64()), (Some(epoch + 2), Some(2)), "{r}");
    }
    assert_eq!(roster(&w.a), roster(&w.b));
    w.b.json(&["room", "send", "lab", "after the race"]);
    assert_eq!(bodies(&w.a, 1), vec!["after the race"]);
    // The removed members' grants were revoked by their minter (a), whoever committed.
    for gone in [&w.c, &d] {
        let synced = gone.json(&["room", "sync"]);
        assert!(!bodies(gone, 10).contains(&"after the race".to_owned()), "{synced}");
        assert_eq!(room(gone)["standing"], "removed");
    }
}

#[test]
fn a_waiting_member_is_woken_by_a_mention_and_not_by_the_rest() {
    let w = world("rooms-wait", &[]);
    lab(&w, &[]);
    let before = crate::common::metric(&w.r1.addr, "wire_relay_streams_open");
    let b_home = w.b.home.clone();
    let waiter =
        std::thread::spawn(move || Wire { home: b_home }.run(&["room", "wait", "lab", "--json", "--timeout", "90s"]));
    // b's wait holds its mailbox stream and the room's (both on relay 1) before a posts.
    crate::common::wait_until(crate::common::WAIT, "b's wait to hold its streams", || {
        crate::common::metric(&w.r1.addr, "wire_relay_streams_open") >= before + 2
    });
    w.a.json(&["room", "send", "lab", "for everyone, nobody in particular"]);
    w.a.json(&["room", "send", "lab", "--mention", &w.b.nickname(), "b, take the deploy"]);
    let out = waiter.join().unwrap().ok().json();
    let bodies: Vec<&str> =
        out["events"].as_array().unwrap().iter().map(|e| e["body"]["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, vec!["b, take the deploy"], "{out}");
    assert_eq!(out["timed_out"], false);
    // Both are in the room's tail; a second wait has nothing new for b.
    assert_eq!(bodies_of(&w.b).len(), 2);
    let again = w.b.json(&["room", "wait", "lab", "--timeout", "1s"]);
    assert_eq!(again["timed_out"], true, "{again}");
}

fn bodies_of(w: &Wire) -> Vec<String> {
    bodies(w, 10)
}

#[test]
fn an_agent_nobody_paired_with_joins_by_a_single_use_room_invite() {
    let w = world("rooms-invite", &[]);
    lab(&w, &[]);
    let (e, f) = (Wire::new(&w.root, "e"), Wire::new(&w.root, "f"));
    e.json(&["init", "--relay", &w._r2.addr]);
    f.json(&["init", "--relay", &w._r2.addr]);
    let invite = w.a.json(&["room", "invite", "lab", "--ttl", "1h"]);
    let url = invite["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("wire://room?v=1&inv="), "{url}");
    let asked = e.json(&["room", "join", &url]);
    assert_eq!((asked["state"].as_str(), asked["room"].as_str()), (Some("requested"), Some("lab")), "{asked}");
    // a's pull takes the request, commits, and welcomes e through the route e gave.
    let a = w.a.json(&["pull"]);
    assert_eq!(a["rooms"]["welcomed"], 1, "{a}");
    assert_eq!(e.json(&["pull"])["rooms"]["joined"], serde_json::json!(["lab"]));
    e.json(&["room", "send", "lab", "hello from e"]);
    for m in [&w.a, &w.b, &w.c] {
        assert_eq!(bodies(m, 5).last().map(String::as_str), Some("hello from e"));
    }
    assert_eq!(roster(&w.a), roster(&e));
    // A member, not a peer: nobody pinned anybody.
    assert_eq!(e.json(&["peers"]).as_array().unwrap().len(), 0);
    assert_eq!(w.a.json(&["peers"]).as_array().unwrap().len(), 2);
    // Single use: a second agent with the same URL is refused by a's relay.
    let again = f.run(&["room", "join", &url, "--json"]);
    assert_eq!(again.json()["error"]["code"], "invite_spent", "{again:?}");
    // A URL that was altered is refused before anything is sent.
    let bent = format!("{}A", &url[..url.len() - 1]);
    let bent = f.run(&["room", "join", &bent, "--json"]);
    assert_ne!(bent.code, 0);
}

#[test]
fn room_tail_follow_prints_what_the_rooms_stream_brings() {
    let w = world("rooms-follow", &[]);
    lab(&w, &[]);
    w.a.json(&["room", "send", "lab", "before watching"]);
    let (mut follow, rx) = w.c.follow(&["room", "tail", "lab", "--follow", "--json", "--limit", "5"]);
    let body =
        |line: String| serde_json::from_str::<Value>(&line).unwrap()["body"]["body"].as_str().unwrap().to_owned();
    let first = rx.recv_timeout(wire_testkit::patience(crate::common::WAIT)).expect("the latest, printed first");
    assert_eq!(body(first), "before watching");
    // Posted while c watches: only c's follow loop (its room stream) can print it.
    w.b.json(&["room", "send", "lab", "while you watch"]);
    let next = rx.recv_timeout(wire_testkit::patience(crate::common::WAIT));
    follow.kill().unwrap();
    let _ = follow.wait();
    assert_eq!(body(next.expect("the new message")), "while you watch");
}

#[test]
fn a_member_who_leaves_is_removed_by_the_owner_and_keeps_what_it_read() {
    let w = world("rooms-leave", &[]);
    lab(&w, &[]);
    w.a.json(&["room", "send", "lab", "before c left"]);
    assert_eq!(bodies(&w.c, 5), vec!["before c left"]);
    let left = w.c.json(&["room", "leave", "lab"]);
    assert_eq!(left["standing"], "left", "{left}");
    // The owner takes the leave proposal in and commits the removal.
    let synced = w.a.json(&["room", "sync"]);
    assert_eq!(synced["committed"], 1, "{synced}");
    assert_eq!(roster(&w.a).len(), 2);
    w.b.json(&["room", "sync"]);
    assert_eq!(roster(&w.a), roster(&w.b));
    w.a.json(&["room", "send", "lab", "after c left"]);
    // c still reads what it had; nothing after.
    assert_eq!(bodies(&w.c, 5), vec!["before c left"]);
    let refused = w.c.run(&["room", "send", "lab", "--json", "still here?"]);
    assert_eq!(refused.json()["error"]["code"], "room_closed");
    // The owner cannot leave its own room.
    assert_eq!(w.a.run(&["room", "leave", "lab", "--json"]).json()["error"]["code"], "room_refused");
}
