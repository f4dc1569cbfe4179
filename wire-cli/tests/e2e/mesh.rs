//! Same-machine sessions and the mesh, end to end: a real relay process serving loopback and
//! a Unix socket, three sessions in their own project directories, the real `wire` binary.

use std::path::{Path, PathBuf};

use crate::common::{Machine, RelayProcess, tempdir};
use serde_json::Value;

/// Pulls in `cwd`'s session and returns the bodies of its inbox. The pull returns no
/// receipts (`WIRE_RECEIPTS=off`), so a session that never sends stays silent in `wire mesh
/// status` (a receipt is contact).
fn inbox(m: &Machine, cwd: &Path) -> Vec<String> {
    m.run(cwd, &["pull", "--json"], &[("WIRE_RECEIPTS", "off")]).ok();
    m.run(cwd, &["tail", "--json", "--limit", "1000"], &[])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}
fn count(bodies: &[String], text: &str) -> usize {
    bodies.iter().filter(|b| *b == text).count()
}

#[test]
fn three_sessions_pair_broadcast_route_and_fail_over_from_the_socket() {
    let root = tempdir("mesh");
    // Where `wire service install --local-relay` puts the socket (under this test's HOME).
    let socket = root.join("home/.local/state/wire/relay.sock");
    let relay = RelayProcess::start(
        &root.join("relay"),
        &root.join("relay.log"),
        &["--local-only", "--uds", socket.to_str().unwrap()],
    );
    let m = Machine::new(&root);
    let names = ["api", "web", "docs"];
    let dirs: Vec<PathBuf> = names.iter().map(|n| root.join("projects").join(n)).collect();
    // A relay that is down: a clear error, and no half-made session left behind.
    std::fs::create_dir_all(&dirs[0]).unwrap();
    let down = m.run(&dirs[0], &["session", "new", "--relay", "127.0.0.1:1"], &[]);
    assert_ne!(down.code, 0);
    assert!(down.stderr.contains("is the local relay running?"), "{down:?}");
    assert!(!root.join("sessions/api").exists(), "a failed `session new` left a session behind");
    for (i, (name, dir)) in names.iter().zip(&dirs).enumerate() {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        // The first two find the local relay's socket by themselves; the third names it.
        let mut args = vec!["session", "new", "--relay", &relay.addr, "--local-only"];
        if i == 2 {
            args.extend(["--with-uds", socket.to_str().unwrap()]);
        }
        let v = m.json(dir, &args);
        assert_eq!(v["session"], *name, "the name defaults to the directory's");
        assert_eq!(v["created"], true);
        assert!(v["identity"]["handle"].is_null(), "a --local-only session claims no handle");
    }

    // The rule that picks the identity, and whoami saying which one chose it.
    let who = m.json(&dirs[0].join("src"), &["whoami"]);
    assert_eq!((who["session"].as_str(), who["chosen_by"].as_str()), (Some("api"), Some("bound_directory")));
    let by_id = m.run(&dirs[0], &["whoami", "--json"], &[("WIRE_SESSION_ID", "web")]).ok().json();
    assert_eq!((by_id["session"].as_str(), by_id["chosen_by"].as_str()), (Some("web"), Some("session_id")));
    let other = root.join("other-home");
    let by_home =
        m.run(&dirs[0], &["session", "current", "--json"], &[("WIRE_HOME", other.to_str().unwrap())]).ok().json();
    assert_eq!((by_home["chosen_by"].as_str(), by_home["session"].is_null()), (Some("wire_home"), true));
    let unknown = m.run(&dirs[0], &["whoami"], &[("WIRE_SESSION_ID", "nope")]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("no session `nope`"), "{unknown:?}");
    let list = m.json(&root, &["session", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    // `wire mcp` started by a host in a project directory acts as that project's session.
    let mut mcp = crate::common::McpSession::start(&root, &root.join("daemon"), &root.join("sessions"), Some(&dirs[1]));
    mcp.handshake();
    mcp.send(serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wire_whoami", "arguments": {}}}));
    let whoami = mcp.until(|v| v["id"] == 2);
    let web_did = m.json(&dirs[1], &["whoami"])["did"].as_str().unwrap().to_owned();
    assert!(whoami["result"]["content"][0]["text"].as_str().unwrap().contains(&web_did), "{whoami}");
    drop(mcp);

    // Pair everyone with everyone, twice: the second run changes nothing.
    let first = m.json(&root, &["session", "pair-all-local"]);
    assert_eq!(first["paired"].as_array().unwrap().len(), 3, "{first}");
    let peers_before = std::fs::read(root.join("sessions/api/peers.json")).unwrap();
    let second = m.json(&root, &["session", "pair-all-local"]);
    assert_eq!((second["paired"].as_array().unwrap().len(), second["already_paired"].as_u64()), (0, Some(3)));
    assert_eq!(std::fs::read(root.join("sessions/api/peers.json")).unwrap(), peers_before);
    let peers = m.json(&dirs[0], &["peers"]);
    assert_eq!(peers.as_array().unwrap().len(), 2);
    assert!(peers.as_array().unwrap().iter().all(|p| p["tier"] == "LOCAL"));

    // Broadcast over the Unix socket: each sister gets it exactly once.
    let sent = m.json(&dirs[0], &["mesh", "broadcast", "standup in 5"]);
    assert_eq!(sent["sent"], 2, "{sent}");
    for d in sent["deliveries"].as_array().unwrap() {
        assert_eq!(d["via"], format!("unix:{}", socket.display()), "the socket is the closest endpoint");
    }
    for dir in &dirs[1..] {
        assert_eq!(count(&inbox(&m, dir), "standup in 5"), 1);
    }
    assert_eq!(count(&inbox(&m, &dirs[0]), "standup in 5"), 0, "no echo to the sender");

    // Roles and routing: only the reviewer hears the routed message.
    m.json(&dirs[1], &["mesh", "role", "set", "reviewer"]);
    m.json(&dirs[2], &["mesh", "role", "set", "writer"]);
    let bad = m.run(&dirs[1], &["mesh", "role", "set", "Not A Role"], &[]);
    assert_ne!(bad.code, 0);
    let routed = m.json(&dirs[0], &["mesh", "route", "reviewer", "please review #12"]);
    assert_eq!(routed["sent"], 1);
    assert_eq!(count(&inbox(&m, &dirs[1]), "please review #12"), 1);
    assert_eq!(count(&inbox(&m, &dirs[2]), "please review #12"), 0);
    let nobody = m.run(&dirs[0], &["mesh", "route", "auditor", "hello?"], &[]);
    assert_ne!(nobody.code, 0);
    assert!(nobody.stderr.contains("no paired sister session has the role `auditor`"), "{nobody:?}");

    // The socket goes away: loopback carries the next broadcast, and nothing is lost.
    std::fs::remove_file(&socket).unwrap();
    let sent = m.json(&dirs[2], &["mesh", "broadcast", "socket gone"]);
    assert_eq!(sent["sent"], 2, "{sent}");
    for d in sent["deliveries"].as_array().unwrap() {
        assert_eq!(d["via"], format!("http://{}", relay.addr), "loopback takes over");
    }
    for dir in &dirs[..2] {
        assert_eq!(count(&inbox(&m, dir), "socket gone"), 1);
    }

    // Mesh status: every session paired with the other two; roles shown; docs has been heard.
    let status = m.json(&root, &["mesh", "status"]);
    let members = status.as_array().unwrap();
    assert_eq!(members.len(), 3);
    for member in members {
        assert_eq!(member["paired_with"].as_array().unwrap().len(), 2, "{member}");
    }
    let docs = members.iter().find(|x| x["session"] == "docs").unwrap();
    assert_eq!((docs["role"].as_str(), docs["silent"].as_bool()), (Some("writer"), Some(false)));
    let web = members.iter().find(|x| x["session"] == "web").unwrap();
    // web sent no message, but its wire told the others its lineage: heard, not silent.
    assert!(web["last_heard"].is_u64() && web["silent"] == false, "{web}");
    drop(relay);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_daemon_serves_every_session() {
    let root = tempdir("mesh-daemon");
    let relay = RelayProcess::start(&root.join("relay"), &root.join("relay.log"), &["--local-only"]);
    let m = Machine::new(&root);
    let dirs: Vec<PathBuf> = ["one", "two"].iter().map(|n| root.join(n)).collect();
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
        m.json(dir, &["session", "new", "--relay", &relay.addr, "--local-only"]);
    }
    m.json(&root, &["session", "pair-all-local"]);
    m.json(&root, &["daemon", "start", "--no-notify"]);
    let status = m.json(&root, &["daemon", "status"]);
    m.json(&dirs[0], &["mesh", "broadcast", "live"]);
    // No pull here: the daemon fetches it into the second session's inbox.
    let inbox = root.join("sessions/two/inbox");
    crate::common::wait_until(crate::common::WAIT, "the daemon to deliver into the second session", || {
        let text: String = std::fs::read_dir(&inbox)
            .map(|d| d.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok()).collect())
            .unwrap_or_default();
        text.contains("\"live\"")
    });
    m.json(&root, &["daemon", "stop"]);
    let _ = status;
    drop(relay);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_mesh_on_one_machine_fits_under_the_relays_per_address_limits() {
    let root = tempdir("mesh-limits");
    let relay = RelayProcess::start(&root.join("relay"), &root.join("relay.log"), &["--defaults", "--local-only"]);
    let m = Machine::new(&root);
    let dirs: Vec<PathBuf> = (0..8).map(|i| root.join(format!("s{i}"))).collect();
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
        m.json(dir, &["session", "new", "--relay", &relay.addr, "--local-only"]);
    }
    let paired = m.json(&root, &["session", "pair-all-local"]);
    assert_eq!(paired["paired"].as_array().unwrap().len(), 28, "{paired}");
    m.json(&root, &["daemon", "start", "--no-notify"]);
    let sent = m.json(&dirs[0], &["mesh", "broadcast", "all hands"]);
    assert_eq!(sent["sent"], 7, "{sent}");
    // The daemon holds a stream per session and fetches into every other inbox.
    crate::common::wait_until(crate::common::WAIT, "the daemon to deliver to the seven", || {
        dirs[1..].iter().all(|d| {
            let inbox = root.join("sessions").join(d.file_name().unwrap()).join("inbox");
            std::fs::read_dir(&inbox)
                .map(|es| {
                    es.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok()).any(|t| t.contains("all hands"))
                })
                .unwrap_or(false)
        })
    });
    let metric = |name: &str| crate::common::metric(&relay.addr, name);
    // A session's catch-up pull (which may already fetch the message, and posts its receipt)
    // comes before its stream opens: wait for the streams too.
    crate::common::wait_until(crate::common::WAIT, "one stream per session", || metric("wire_relay_streams_open") >= 8);
    let refused = ["connections_refused_total", "rate_limited_total", "rendezvous_refused_total"];
    for name in refused {
        assert_eq!(metric(&format!("wire_relay_{name}")), 0, "{name}");
    }
    m.json(&root, &["daemon", "stop"]);
    drop(relay);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn owner_calls_never_reach_whoever_took_the_port_of_a_stopped_local_relay() {
    let root = tempdir("mesh-port");
    let socket = root.join("sock/relay.sock");
    let relay = RelayProcess::start(
        &root.join("relay"),
        &root.join("relay.log"),
        &["--local-only", "--uds", socket.to_str().unwrap()],
    );
    let addr = relay.addr.clone();
    let m = Machine::new(&root);
    let dir = root.join("project");
    std::fs::create_dir_all(&dir).unwrap();
    m.json(&dir, &["session", "new", "--relay", &addr, "--local-only", "--with-uds", socket.to_str().unwrap()]);
    m.json(&dir, &["pull"]);

    // The relay stops; another local user binds its TCP port. The socket file stays.
    relay.kill9();
    let impostor = std::net::TcpListener::bind(&addr).unwrap();
    impostor.set_nonblocking(true).unwrap();
    assert!(socket.exists());
    let pull = m.run(&dir, &["pull", "--json"], &[]);
    assert_ne!(pull.code, 0, "{pull:?}");
    assert_eq!(pull.json()["error"]["code"], "relay_unreachable", "{pull:?}");
    let status = m.run(&dir, &["status", "--json"], &[]);
    assert_eq!(status.json()["relay"]["reachable"]["ok"], false, "{status:?}");
    match impostor.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a connection reached the port's new holder: {other:?}"),
    }
    std::fs::remove_dir_all(root).unwrap();
}
