//! The receive path never stalls (decide, then act). An invite redemption whose answer
//! cannot be delivered used to make every later pull fail before anything was appended or
//! acked, minting a new grant each time. Now the answer is parked in the outbox with its one
//! grant, every other peer's messages keep arriving, and the answer goes out when the
//! guest's address comes back. And every post takes the one route: a guest whose card
//! lists an unreachable first address is answered at the next one.

use serde_json::Value;

use crate::common::{RelayProcess, WAIT, Wire, eventually, free_port, metric, tempdir, wait_until};

fn bodies(w: &Wire) -> Vec<String> {
    w.run(&["tail", "--json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn pair(issuer: &Wire, guest: &Wire) {
    let url = issuer.json(&["invite"])["url"].as_str().unwrap().to_owned();
    guest.json(&["accept", &url]);
    issuer.json(&["pull"]);
    guest.json(&["pull"]);
}

#[test]
fn an_undeliverable_invite_answer_is_parked_and_blocks_nothing() {
    let dir = tempdir("receive-jam");
    let issuer_relay = RelayProcess::start(&dir.join("r1"), &dir.join("r1.log"), &[]);
    let guest_bind = format!("127.0.0.1:{}", free_port());
    let guest_relay = RelayProcess::start_at(&dir.join("r2"), &dir.join("r2.log"), &guest_bind, &[]);
    let (a, c, g) = (Wire::new(&dir, "a"), Wire::new(&dir, "c"), Wire::new(&dir, "g"));
    a.json(&["up", &issuer_relay.addr]);
    c.json(&["up", &issuer_relay.addr]);
    g.json(&["up", &guest_bind]);
    pair(&a, &c);

    // g redeems an invite, then its relay goes away before a can answer.
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    g.json(&["accept", &url]);
    guest_relay.kill9();
    c.json(&["send", &a.did(), "from c, behind the redemption"]);
    let grants = metric(&issuer_relay.addr, "wire_relay_grants_active");

    let pulled = a.json(&["pull"]);
    assert_eq!(pulled["received"], 1, "c's message arrives: {pulled}");
    assert_eq!(pulled["paired"][0]["did"], g.did(), "g is pinned at once: {pulled}");
    assert_eq!(bodies(&a), ["from c, behind the redemption"]);
    let pending = a.json(&["pending"]);
    assert_eq!(pending["answers"][0]["to"]["did"], g.did(), "{pending}");
    assert!(pending["answers"][0]["attempts"].as_u64().unwrap() >= 1);
    assert!(pending["answers"][0]["last_error"].is_string(), "{pending}");
    let status = a.json(&["status"]);
    assert_eq!(status["outbox"]["failing"].as_array().unwrap().len(), 0, "said once, under pending: {status}");

    // Later pulls neither fail nor mint again; other messages keep arriving.
    for i in 0..3 {
        c.json(&["send", &a.did(), &format!("more from c {i}")]);
        a.json(&["pull"]);
    }
    assert_eq!(bodies(&a).len(), 4);
    assert_eq!(
        metric(&issuer_relay.addr, "wire_relay_grants_active"),
        grants + 1,
        "exactly one grant for g's redemption"
    );

    // g's relay comes back (same address, same data): the parked answer goes out at a sync.
    let guest_relay = RelayProcess::start_at(&dir.join("r2"), &dir.join("r2.log"), &guest_bind, &[]);
    wait_until(WAIT, "the parked answer to be delivered", || {
        a.json(&["pull"]);
        a.json(&["pending"])["answers"].as_array().unwrap().is_empty()
    });
    let joined = eventually(WAIT, "g to be paired", || {
        let pulled = g.json(&["pull"]);
        (pulled["paired"].as_array().unwrap().len() == 1).then_some(pulled)
    });
    assert_eq!(joined["paired"][0]["did"], a.did());
    g.json(&["send", &a.did(), "hello from g"]);
    a.json(&["send", &g.did(), "hello g"]);
    a.json(&["pull"]);
    g.json(&["pull"]);
    assert_eq!(bodies(&a).last().unwrap(), "hello from g");
    assert_eq!(bodies(&g), ["hello g"]);
    assert_eq!(metric(&issuer_relay.addr, "wire_relay_grants_active"), grants + 1, "still exactly one");
    drop((issuer_relay, guest_relay));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_parked_answer_can_be_given_up_which_unpins_and_revokes() {
    let dir = tempdir("receive-drop");
    let issuer_relay = RelayProcess::start(&dir.join("r1"), &dir.join("r1.log"), &[]);
    let guest_relay = RelayProcess::start(&dir.join("r2"), &dir.join("r2.log"), &[]);
    let (a, g) = (Wire::new(&dir, "a"), Wire::new(&dir, "g"));
    a.json(&["up", &issuer_relay.addr]);
    g.json(&["up", &guest_relay.addr]);
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    g.json(&["accept", &url]);
    guest_relay.kill9();
    a.json(&["pull"]);
    let grants = metric(&issuer_relay.addr, "wire_relay_grants_active");
    assert_eq!(a.json(&["peers"]).as_array().unwrap().len(), 1);
    let dropped = a.json(&["reject", &g.did()]);
    assert_eq!(dropped["decision"], "dropped", "{dropped}");
    assert!(a.json(&["peers"]).as_array().unwrap().is_empty(), "unpinned");
    assert!(a.json(&["pending"])["answers"].as_array().unwrap().is_empty());
    assert_eq!(metric(&issuer_relay.addr, "wire_relay_grants_active"), grants - 1, "its grant revoked");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_guest_whose_first_address_is_dead_is_answered_at_the_next() {
    let dir = tempdir("receive-route");
    let issuer_relay = RelayProcess::start(&dir.join("r1"), &dir.join("r1.log"), &[]);
    let guest_relay = RelayProcess::start(&dir.join("r2"), &dir.join("r2.log"), &[]);
    let (a, g) = (Wire::new(&dir, "a"), Wire::new(&dir, "g"));
    a.json(&["up", &issuer_relay.addr]);
    // The card lists a dead address of g's relay before the live one.
    let dead = format!("127.0.0.1:{}", free_port());
    let up = g.json(&["up", &guest_relay.addr, "--also", &dead]);
    assert_eq!(up["created"], true);
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    g.json(&["accept", &url]);
    a.json(&["pull"]);
    assert!(a.json(&["pending"])["answers"].as_array().unwrap().is_empty(), "delivered at once, at the next address");
    assert_eq!(g.json(&["pull"])["paired"][0]["did"], a.did());
    a.json(&["send", &g.did(), "via the live address"]);
    g.json(&["pull"]);
    assert_eq!(bodies(&g), ["via the live address"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_session_with_a_socket_and_another_address_accepts_an_invite_from_another_relay() {
    let root = tempdir("receive-session");
    let socket = root.join("sock/relay.sock");
    let local = RelayProcess::start(&root.join("local"), &root.join("local.log"), &["--uds", socket.to_str().unwrap()]);
    let other = RelayProcess::start(&root.join("other"), &root.join("other.log"), &[]);
    let m = crate::common::Machine::new(&root);
    let project = root.join("projects/api");
    std::fs::create_dir_all(&project).unwrap();
    // The session's card: the socket first, then the --also address, then the relay URL.
    let dead = format!("127.0.0.1:{}", free_port());
    m.json(
        &project,
        &["session", "new", "--relay", &local.addr, "--with-uds", socket.to_str().unwrap(), "--also", &dead],
    );
    let issuer = Wire::new(&root, "issuer");
    issuer.json(&["up", &other.addr]);
    let url = issuer.json(&["invite"])["url"].as_str().unwrap().to_owned();
    m.json(&project, &["accept", &url]);
    let pulled = issuer.json(&["pull"]);
    assert_eq!(pulled["answers_waiting"], 0, "the answer reached the session: {pulled}");
    let joined = m.json(&project, &["pull"]);
    assert_eq!(joined["paired"][0]["did"], issuer.did(), "{joined}");
    let session = m.json(&project, &["whoami"])["did"].as_str().unwrap().to_owned();
    issuer.json(&["send", &session, "to the session"]);
    m.json(&project, &["send", &issuer.did(), "to the issuer"]);
    let got = m.run(&project, &["pull", "--json"], &[]).ok().json();
    assert_eq!(got["received"], 1, "{got}");
    issuer.json(&["pull"]);
    assert_eq!(bodies(&issuer), ["to the issuer"]);
    std::fs::remove_dir_all(&root).ok();
}
