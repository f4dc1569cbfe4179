//! Errors say what to do next, in words that fit the command: a relay that speaks TLS asked
//! over plain HTTP, a certificate from a CA the agent does not trust, a send to a relay that
//! does not answer (and its `--queue` report, which must not advise `--queue`).

use std::path::Path;

use crate::common::{RelayProcess, Wire, free_port, tempdir};

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
    let queued = a.json(&["send", &b.did(), "hello?", "--queue"]);
    assert_eq!(queued["verdict"], "queued");
    assert!(!queued["reason"].as_str().unwrap().contains("--queue"), "{queued}");
    // Other commands do not suggest --queue either.
    let status = a.json(&["status"]);
    assert!(!status["relay"]["reachable"]["error"].as_str().unwrap().contains("--queue"), "{status}");
    std::fs::remove_dir_all(&dir).ok();
}
