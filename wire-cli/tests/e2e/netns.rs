//! Across machines, for real: three network namespaces made by this test (a relay host and
//! two agent hosts on a bridge, addresses 10.213.77.0/24), the relay serving TLS with a
//! certificate from a test CA the agents trust (`WIRE_CA_FILE`). Invite and accept across
//! hosts, SPAKE2 code pairing across hosts, messages both ways, the daemon delivering live,
//! then the relay host's link cut and restored with nothing lost.
//!
//! Creating namespaces needs CAP_NET_ADMIN (root), so the test is `#[ignore]`d outside CI;
//! `.ci/test` runs it, and there a failing `ip netns add` fails the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Run, tempdir};
use serde_json::Value;

const RELAY_IP: &str = "10.213.77.1";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/netns").join(name)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The namespaces, deleted (with everything in them stopped) on drop.
struct Net {
    relay: String,
    a: String,
    b: String,
    switch: String,
    children: Vec<Child>,
    root: PathBuf,
}

impl Net {
    fn create(root: &Path) -> Result<Self, String> {
        let tag = format!("{}", std::process::id() % 100_000);
        let net = Net {
            relay: format!("wr{tag}"),
            a: format!("wa{tag}"),
            b: format!("wb{tag}"),
            switch: format!("ws{tag}"),
            children: Vec::new(),
            root: root.to_owned(),
        };
        for ns in [&net.switch, &net.relay, &net.a, &net.b] {
            ip(&["netns", "add", ns])?;
        }
        let sw = net.switch.as_str();
        ip(&["-n", sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", sw, "link", "set", "br0", "up"])?;
        for (ns, host, port) in [(&net.relay, 1, "pr"), (&net.a, 2, "pa"), (&net.b, 3, "pb")] {
            ip(&["link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw])?;
            ip(&["-n", ns, "addr", "add", &format!("10.213.77.{host}/24"), "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", sw, "link", "set", port, "master", "br0"])?;
            ip(&["-n", sw, "link", "set", port, "up"])?;
        }
        Ok(net)
    }

    /// Takes the relay host off the network, or puts it back.
    fn relay_link(&self, up: bool) {
        ip(&["-n", &self.switch, "link", "set", "pr", if up { "up" } else { "down" }]).unwrap();
    }

    fn start_relay(&mut self) -> String {
        let bind = format!("{RELAY_IP}:8443");
        let log = std::fs::File::create(self.root.join("relay.log")).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.relay, env!("CARGO_BIN_EXE_wire"), "relay-server", "--json"])
            .args(["--bind", &bind, "--ip-rate", "0", "--token-rate", "0", "--data"])
            .arg(self.root.join("relay-data"))
            .arg("--tls-cert")
            .arg(data("relay-cert.pem"))
            .arg("--tls-key")
            .arg(data("relay-key.pem"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let announce: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("relay announce {line:?}: {e}"));
        assert_eq!(announce["event"], "listening");
        self.children.push(child);
        format!("https://{bind}")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.relay, &self.a, &self.b, &self.switch] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// One agent on a host.
struct Agent {
    ns: String,
    home: PathBuf,
    daemon: PathBuf,
}

impl Agent {
    fn new(ns: &str, root: &Path, name: &str) -> Self {
        Self { ns: ns.to_owned(), home: root.join(name), daemon: root.join(format!("{name}-daemon")) }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_wire")])
            .args(args)
            .env("WIRE_HOME", &self.home)
            .env("WIRE_DAEMON_DIR", &self.daemon)
            .env("WIRE_SESSIONS_DIR", self.home.with_extension("sessions"))
            .env("WIRE_CA_FILE", data("ca.pem"))
            .env_remove("WIRE_SESSION_ID")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Run::from(out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).ok().json()
    }

    fn nickname(&self) -> String {
        self.json(&["whoami"])["nickname"].as_str().unwrap().to_owned()
    }

    /// Bodies in the inbox file (no pull: what the daemon or an earlier pull stored).
    fn stored(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.home.join("inbox")).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "jsonl") {
                continue; // the id index beside each inbox
            }
            for line in std::fs::read_to_string(path).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                out.push(v["body"].as_str().unwrap_or_default().to_owned());
            }
        }
        out
    }

    fn wait_for_body(&self, body: &str, pull: bool, within: Duration) {
        crate::common::wait_until(
            within.max(crate::common::WAIT),
            &format!("`{body}` to reach {}", self.home.display()),
            || {
                if self.stored().iter().any(|b| b == body) {
                    return true;
                }
                if pull {
                    self.run(&["pull"]);
                }
                false
            },
        );
    }
}

fn pair_list_last(w: &Agent) -> Value {
    w.json(&["pair-list", "--reveal"]).as_array().unwrap().last().cloned().unwrap_or(Value::Null)
}

fn wait_state(w: &Agent, other: &Agent, state: &str) -> Value {
    crate::common::eventually(crate::common::WAIT, &format!("the pairing to reach {state}"), || {
        other.run(&["pair-list", "--json", "--reveal"]);
        let last = pair_list_last(w);
        (last["state"] == state).then_some(last)
    })
}

#[test]
#[ignore = "needs root and network namespaces (.ci/test runs it)"]
fn two_hosts_pair_and_talk_through_a_tls_relay_and_survive_a_cut_link() {
    let root = tempdir("netns");
    let mut net = match Net::create(&root) {
        Ok(net) => net,
        Err(why) => panic!("cannot create network namespaces here ({why}); run as root with iproute2"),
    };
    let relay = net.start_relay();
    let (a, b) = (Agent::new(&net.a, &root, "a"), Agent::new(&net.b, &root, "b"));

    // The relay is only reachable through the namespaces' network, over TLS.
    let up = a.json(&["init", "--relay", &relay]);
    assert_eq!(up["relay"], relay);
    b.json(&["init", "--relay", &relay]);
    let untrusted = Command::new("ip")
        .args(["netns", "exec", &net.a, env!("CARGO_BIN_EXE_wire"), "whois"])
        .arg(format!("{}@{RELAY_IP}:8443", b.nickname()))
        .env("WIRE_HOME", &a.home)
        .env("WIRE_DAEMON_DIR", &a.daemon)
        .env_remove("WIRE_CA_FILE")
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        !untrusted.status.success() && why.contains("TLS") && why.contains("WIRE_CA_FILE"),
        "a client without the test CA must refuse the relay: {why}"
    );

    // Invite on host A, accept on host B.
    let url = a.json(&["invite"])["url"].as_str().unwrap().to_owned();
    b.json(&["accept", &url]);
    a.json(&["pull"]);
    b.json(&["pull"]);
    assert_eq!(a.json(&["peers"]).as_array().unwrap().len(), 1);
    assert_eq!(b.json(&["peers"]).as_array().unwrap().len(), 1);

    // SPAKE2 code pairing between two more agents, one on each host.
    let (a2, b2) = (Agent::new(&net.a, &root, "a2"), Agent::new(&net.b, &root, "b2"));
    a2.json(&["init", "--relay", &relay]);
    b2.json(&["init", "--relay", &relay]);
    let code = a2.json(&["pair-host", "--detach", "--reveal"])["code"].as_str().unwrap().to_owned();
    b2.json(&["pair-join", &code, "--detach"]);
    let a2_view = wait_state(&a2, &b2, "sas_ready");
    let b2_view = wait_state(&b2, &a2, "sas_ready");
    assert_eq!(a2_view["sas"], b2_view["sas"]);
    a2.json(&["pair-confirm", &code, b2_view["sas"].as_str().unwrap()]);
    b2.json(&["pair-confirm", &code, a2_view["sas"].as_str().unwrap()]);
    wait_state(&a2, &b2, "paired");
    wait_state(&b2, &a2, "paired");
    a2.json(&["send", &b2.nickname(), "code-paired across hosts"]);
    b2.wait_for_body("code-paired across hosts", true, Duration::from_secs(20));

    // The daemon on host B delivers live; replies go the other way.
    b.json(&["daemon", "start", "--no-notify"]);
    a.json(&["send", &b.nickname(), "live 1"]);
    b.wait_for_body("live 1", false, Duration::from_secs(20));
    b.json(&["send", &a.nickname(), "reply 1"]);
    a.wait_for_body("reply 1", true, Duration::from_secs(20));

    // Cut the relay host off: sends queue; restore it: everything arrives, once.
    net.relay_link(false);
    let queued = a.json(&["send", &b.nickname(), "during the cut", "--queue"]);
    assert_eq!(queued["verdict"], "queued", "{queued}");
    let queued = b.json(&["send", &a.nickname(), "reply during the cut", "--queue"]);
    assert_eq!(queued["verdict"], "queued", "{queued}");
    net.relay_link(true);
    a.wait_for_body("reply during the cut", true, Duration::from_secs(60));
    b.wait_for_body("during the cut", false, Duration::from_secs(60));
    a.json(&["send", &b.nickname(), "after the cut"]);
    b.wait_for_body("after the cut", false, Duration::from_secs(30));
    b.json(&["daemon", "stop"]);

    let count = |w: &Agent, body: &str| w.stored().iter().filter(|b| *b == body).count();
    for body in ["live 1", "during the cut", "after the cut"] {
        assert_eq!(count(&b, body), 1, "{body}");
    }
    for body in ["reply 1", "reply during the cut"] {
        assert_eq!(count(&a, body), 1, "{body}");
    }
    drop(net);
    std::fs::remove_dir_all(&root).ok();
}
