//! Errors say what to do next, in words that fit the command: a relay that speaks TLS asked
//! over plain HTTP, a certificate from a CA the agent does not trust, a send to a relay that
//! does not answer (and its `--queue` report, which must not advise `--queue`). With
//! `--json` each carries a stable code and a structured next step (docs/CLI.md).

use std::path::Path;

use crate::common::{RelayProcess, Wire, free_port, tempdir};

/// `wire ARGS --json` that must fail: its exit code and its `error` object.
fn refused(w: &Wire, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let run = w.run(&all);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "with --json the error is on stdout only: {run:?}");
    (run.code, run.json()["error"].clone())
}

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/netns").join(name)
}

#[test]
fn tls_mistakes_are_translated_into_what_to_do() {
    let dir = tempdir("errors-tls");
    let (cert, key) = (data("relay-cert.pem"), data("relay-key.pem"));
    let relay = RelayProcess::start(
        &dir.join("relay"),
        &dir.join("relay.log"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let w = Wire::new(&dir, "a");
    // `host:port` on loopback means plain HTTP: this relay speaks TLS.
    let plain = w.run(&["up", &relay.addr]);
    assert_eq!(plain.code, 1, "{plain:?}");
    assert!(plain.stderr.contains(&format!("use https://{}", relay.addr)), "{plain:?}");
    // Over TLS, the test CA is not trusted without WIRE_CA_FILE.
    let untrusted = w.run(&["up", &format!("https://{}", relay.addr)]);
    assert_eq!(untrusted.code, 1, "{untrusted:?}");
    assert!(untrusted.stderr.contains("WIRE_CA_FILE"), "{untrusted:?}");
    let (_, e) = refused(&w, &["up", &relay.addr]);
    assert_eq!((e["code"].as_str(), e["next"]["step"].as_str()), (Some("tls_required"), Some("use_https")), "{e}");
    let (_, e) = refused(&w, &["up", &format!("https://{}", relay.addr)]);
    assert_eq!((e["code"].as_str(), e["next"]["step"].as_str()), (Some("tls_unknown_ca"), Some("set_ca_file")), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_send_to_a_relay_that_does_not_answer_advises_queue_and_the_queued_report_does_not() {
    let dir = tempdir("errors-send");
    let bind = format!("127.0.0.1:{}", free_port());
    let relay = RelayProcess::start_at(&dir.join("relay"), &dir.join("relay.log"), &bind, &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    a.json(&["up", &bind]);
    b.json(&["up", &bind]);
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);
    a.json(&["pull"]);
    b.json(&["pull"]);
    relay.kill9();
    let down = a.run(&["send", &b.did(), "hello?"]);
    assert_eq!(down.code, 1);
    assert!(down.stderr.contains("could not reach") && down.stderr.contains("--queue"), "{down:?}");
    let (_, e) = refused(&a, &["send", &b.did(), "hello?"]);
    assert_eq!(
        (e["code"].as_str(), e["next"]["step"].as_str()),
        (Some("peer_unreachable"), Some("send_queued")),
        "{e}"
    );
    let queued = a.json(&["send", &b.did(), "hello?", "--queue"]);
    assert_eq!(queued["verdict"], "queued");
    assert!(!queued["reason"].as_str().unwrap().contains("--queue"), "{queued}");
    // Other commands do not suggest --queue either.
    let status = a.json(&["status"]);
    assert!(!status["relay"]["reachable"]["error"].as_str().unwrap().contains("--queue"), "{status}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn errors_carry_stable_codes_and_next_steps_and_usage_errors_honour_json() {
    let dir = tempdir("errors-codes");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let (a, b, c) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"), Wire::new(&dir, "c"));
    let (_, e) = refused(&a, &["peers"]);
    assert_eq!((e["code"].as_str(), e["next"]["command"].as_str()), (Some("not_initialized"), Some("wire up <relay>")));
    for w in [&a, &b, &c] {
        w.json(&["up", &relay.addr]);
    }
    // A usage error is JSON too, with exit status 2 (clap's), and changes nothing.
    let before = a.state();
    let (status, e) = refused(&a, &["send", "--no-such-flag"]);
    assert_eq!((status, e["code"].as_str(), e["next"]["step"].as_str()), (2, Some("usage"), Some("fix_argument")));
    assert_eq!(a.state(), before);
    let (_, e) = refused(&a, &["send", "nobody-here", "hi"]);
    assert_eq!((e["code"].as_str(), e["next"]["command"].as_str()), (Some("not_paired"), Some("wire peers")), "{e}");
    let (_, e) = refused(&a, &["send", "--kind", "pair_accept", "nobody-here", "hi"]);
    assert_eq!(e["code"], "protocol_kind", "{e}");
    let (_, e) = refused(&a, &["dial", "not-a-handle"]);
    assert_eq!(e["code"], "bad_handle", "{e}");
    let (_, e) = refused(&a, &["up", "--reregister"]);
    assert_eq!((e["code"].as_str(), e["next"]["step"].as_str()), (Some("slot_alive"), Some("status")), "{e}");
    // A single-use invite, redeemed twice.
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);
    let (_, e) = refused(&c, &["accept", &url]);
    assert_eq!((e["code"].as_str(), e["next"]["step"].as_str()), (Some("invite_spent"), Some("ask_for_invite")), "{e}");
    // Without --json the next step is said in words.
    let words = a.run(&["send", "nobody-here", "hi"]);
    assert!(words.stderr.contains("wire peers"), "{words:?}");
    // A setting that does not parse is an error before anything runs.
    let before = a.state();
    let bad = a.run_with(&["pull", "--json"], &[("WIRE_INBOX_MAX_BYTES", "lots")]);
    assert_eq!((bad.code, bad.json()["error"]["code"].as_str()), (1, Some("bad_setting")), "{bad:?}");
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("WIRE_INBOX_MAX_BYTES=lots"), "{bad:?}");
    assert_eq!(a.state(), before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_relay_that_answers_without_end_is_cut_off_at_the_cap() {
    use std::io::{Read, Write};
    let dir = tempdir("errors-huge");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let a = Wire::new(&dir, "a");
    a.json(&["up", &relay.addr]);
    // A hostile "relay": answers any request with an endless JSON-looking body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = conn.read(&mut head);
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n[");
        let chunk = vec![b' '; 64 * 1024];
        let mut total = 0usize;
        while total < 1 << 30 && conn.write_all(&chunk).is_ok() {
            total += chunk.len();
        }
        total
    });
    let (_, e) = refused(&a, &["whois", &format!("brave-otter@{addr}")]);
    assert_eq!(e["code"], "relay_protocol", "{e}");
    assert!(e["message"].as_str().unwrap().contains("larger than 24 MiB"), "{e}");
    let total = sent.join().unwrap();
    assert!(total < 128 << 20, "the client stopped reading near the cap, not at the end ({total} bytes)");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plain_http_to_another_machine_is_refused_unless_allowed() {
    let dir = tempdir("errors-plain-http");
    let a = Wire::new(&dir, "a");
    // A LAN address over plain http: refused before any byte (or token) is sent.
    let (_, e) = refused(&a, &["up", "http://192.0.2.1:8771"]);
    assert_eq!(
        (e["code"].as_str(), e["next"]["step"].as_str()),
        (Some("plain_http_refused"), Some("use_https")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("WIRE_ALLOW_PLAIN_HTTP"), "{e}");
    // The operator's explicit opt-in lets it try (this test address answers nobody).
    let run = a.run_with(&["up", "http://192.0.2.1:8771", "--json"], &[("WIRE_ALLOW_PLAIN_HTTP", "1")]);
    assert_eq!(run.json()["error"]["code"], "relay_unreachable", "{run:?}");
    std::fs::remove_dir_all(&dir).ok();
}
