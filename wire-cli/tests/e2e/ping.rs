//! `wire ping`: a signed probe answered by the peer's running endpoint, the round trip
//! reported, "no answer" when nothing runs there, the per-peer limit, and nothing in the inbox.

use serde_json::{Value, json};

use crate::common::{McpSession, RelayProcess, WAIT, Wire, eventually, pair_by_invite, tempdir};

#[test]
fn a_ping_is_answered_by_the_running_endpoint_and_never_reaches_the_inbox() {
    let dir = tempdir("ping");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let bind = relay.addr.clone();
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    for w in [&a, &b] {
        w.json(&["up", &bind]);
    }
    pair_by_invite(&a, &b);
    let b_nick = b.nickname();

    // Nothing runs for B: no answer, exit 1.
    let quiet = a.run(&["ping", &b_nick, "--timeout", "1s", "--json"]);
    assert_eq!(quiet.code, 1, "{quiet:?}");
    let v: Value = serde_json::from_str(quiet.stdout.lines().next().unwrap()).unwrap();
    assert_eq!((v["answered"].clone(), v["rtt_ms"].clone()), (json!(false), Value::Null), "{v}");

    // B's endpoint runs (its MCP server's sync engine): answered, with a round trip.
    let mut mcp = McpSession::start(&b.home, &b.daemon_dir(), &b.sessions_dir(), None);
    mcp.handshake();
    let mut answered = 1;
    let first = eventually(WAIT, "B's server to answer a ping", || {
        answered += 1;
        let run = a.run(&["ping", &b_nick, "--timeout", "20s", "--json"]);
        let v: Value = serde_json::from_str(run.stdout.lines().next()?).ok()?;
        (v["answered"] == true).then_some(v)
    });
    assert!(first["rtt_ms"].as_u64().is_some(), "{first}");
    let human = a.run(&["ping", &b_nick]);
    answered += 1;
    assert!(human.stdout.contains("pong from") && human.stdout.contains(" ms"), "{human:?}");

    // The same from an agent, through A's MCP server.
    let mut agent = McpSession::start(&a.home, &a.daemon_dir(), &a.sessions_dir(), None);
    agent.handshake();
    agent.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "wire_ping", "arguments": {"peer": b_nick, "timeout_secs": 20}}}));
    let reply = agent.until(|v| v["id"] == 2);
    answered += 1;
    assert_eq!(reply["result"]["structuredContent"]["answered"], true, "{reply}");
    drop(agent);

    // Six a minute per peer: the next one is refused before anything is sent.
    while answered < 6 {
        assert_eq!(a.json(&["ping", &b_nick])["answered"], true);
        answered += 1;
    }
    let limited = a.run(&["ping", &b_nick, "--json"]);
    assert_eq!(limited.code, 1);
    assert!(limited.stdout.contains("ping_rate_limited"), "{limited:?}");

    // Nothing of it in B's inbox, and B's agent was told nothing.
    drop(mcp);
    let tail = b.run(&["tail", "--json"]).ok();
    assert_eq!(tail.stdout.trim(), "", "B's inbox holds no ping: {tail:?}");
    assert_eq!(b.json(&["status"])["unread"], 0);
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
