//! Snapshot of the human output of the main commands in one scripted session. Values that
//! differ per run (DIDs, faces, fingerprints, slots, addresses, times, URLs) are replaced
//! by placeholders; the rest must match `tests/snapshots/session.txt` exactly. After an
//! intended change: `WIRE_UPDATE_SNAPSHOTS=1 cargo test -p wire-cli --test snapshots`,
//! then review the diff.

use crate::common::{RelayProcess, Wire, tempdir};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/session.txt");

/// Replaces `YYYY-MM-DD HH:MM:SS` with a placeholder.
fn mask_times(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-dd dd:dd:dd";
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| if *s == b'd' { b.is_ascii_digit() } else { s == b });
        if fits {
            out.push_str("<TIME>");
            i += shape.len();
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Masks per-run values (longest first) and times, then compares with (or with
/// WIRE_UPDATE_SNAPSHOTS rewrites) the golden file.
fn compare(transcript: String, mut masks: Vec<(String, String)>, golden_path: &str) {
    masks.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut text = transcript;
    for (value, placeholder) in &masks {
        text = text.replace(value.as_str(), placeholder);
    }
    let text = mask_times(&text);
    assert!(!text.contains('\x1b'), "NO_COLOR is respected");
    if std::env::var_os("WIRE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(golden_path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(golden_path).unwrap_or_default();
    assert_eq!(text, golden, "human output changed; if intended, update the snapshot (see module docs)");
}

#[test]
fn human_output_of_the_main_commands() {
    let dir = tempdir("snap");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    let mut transcript = String::new();
    let mut step = |who: &str, w: &Wire, args: &[&str]| -> String {
        let run = w.run(args);
        transcript.push_str(&format!("$ {who}: wire {}\n", args.join(" ")));
        transcript.push_str(&run.stdout);
        for line in run.stderr.lines() {
            transcript.push_str(&format!("[stderr] {line}\n"));
        }
        transcript.push_str(&format!("[exit {}]\n\n", run.code));
        run.stdout
    };
    step("a", &a, &["up", &relay.addr]);
    step("b", &b, &["up", &relay.addr]);
    let url = step("a", &a, &["invite"]).trim().to_owned();
    let (an, bn) = (a.nickname(), b.nickname());
    step("b", &b, &["accept", &url]);
    step("a", &a, &["pull"]);
    step("b", &b, &["pull"]);
    step("a", &a, &["peers"]);
    step("a", &a, &["send", &bn, "hello, b"]);
    step("b", &b, &["pull"]);
    step("b", &b, &["tail"]);
    step("b", &b, &["send", &an, "--kind", "question", "ready?"]);
    step("a", &a, &["pull"]);
    step("a", &a, &["tail", &bn]);
    step("a", &a, &["pending"]);
    step("a", &a, &["status"]);
    step("b", &b, &["whoami"]);
    step("a", &a, &["send", "nobody-here", "hi"]);

    let mut masks: Vec<(String, String)> = vec![(url, "<INVITE-URL>".into()), (relay.addr.clone(), "<RELAY>".into())];
    for (w, tag) in [(&a, "A"), (&b, "B")] {
        let me = w.json(&["whoami"]);
        for (field, name) in
            [("did", "DID"), ("fingerprint", "FINGERPRINT"), ("slot", "SLOT"), ("nickname", "NICK"), ("home", "HOME")]
        {
            masks.push((me[field].as_str().unwrap().to_owned(), format!("<{tag}-{name}>")));
        }
        // One placeholder for both: two agents share an emoji one time in 128.
        masks.push((me["emoji"].as_str().unwrap().to_owned(), "<EMOJI>".into()));
    }
    compare(transcript, masks, GOLDEN);
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}

const MESH_GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/mesh.txt");

/// The same for sessions, the mesh, services and MCP setup, run from project directories
/// with this test's HOME, sessions and daemon directories.
#[test]
fn human_output_of_sessions_mesh_service_and_setup() {
    let dir = tempdir("snap-mesh");
    let relay = RelayProcess::start(&dir.join("relay"), &dir.join("relay.log"), &["--local-only"]);
    let mut transcript = String::new();
    let machine = crate::common::Machine::new(&dir);
    let mut step = |project: &str, args: &[&str]| -> String {
        let cwd = dir.join("projects").join(project);
        std::fs::create_dir_all(&cwd).unwrap();
        let run = machine.run(&cwd, args, &[("WIRE_RELAY", &relay.addr)]);
        transcript.push_str(&format!("$ {project}: wire {}\n", args.join(" ")));
        transcript.push_str(&run.stdout);
        for line in run.stderr.lines() {
            transcript.push_str(&format!("[stderr] {line}\n"));
        }
        transcript.push_str(&format!("[exit {}]\n\n", run.code));
        run.stdout
    };
    step("api", &["session", "new", "--local-only"]);
    step("web", &["session", "new", "--local-only"]);
    step("web", &["session", "current"]);
    step("api", &["session", "list"]);
    step("api", &["session", "pair-all-local"]);
    step("api", &["session", "pair-all-local"]);
    step("web", &["mesh", "role", "set", "reviewer"]);
    step("api", &["mesh", "broadcast", "main is frozen"]);
    step("api", &["mesh", "route", "reviewer", "please review #12"]);
    step("api", &["mesh", "route", "auditor", "anyone?"]);
    step("web", &["pull"]);
    step("api", &["mesh", "status"]);
    step("api", &["whoami"]);
    step("api", &["service", "install", "--local-relay", "--platform", "systemd", "--dry-run"]);
    step("api", &["setup"]);

    let mut masks: Vec<(String, String)> =
        vec![(dir.display().to_string(), "<ROOT>".into()), (relay.addr.clone(), "<RELAY>".into())];
    masks.push((std::fs::canonicalize(env!("CARGO_BIN_EXE_wire")).unwrap().display().to_string(), "<WIRE-BIN>".into()));
    for (name, tag) in [("api", "API"), ("web", "WEB")] {
        let home = crate::common::Wire { home: dir.join("sessions").join(name) };
        let me = home.json(&["whoami"]);
        for (field, label) in [("did", "DID"), ("fingerprint", "FINGERPRINT"), ("slot", "SLOT"), ("nickname", "NICK")] {
            masks.push((me[field].as_str().unwrap().to_owned(), format!("<{tag}-{label}>")));
        }
        masks.push((me["emoji"].as_str().unwrap().to_owned(), "<EMOJI>".into()));
    }
    compare(transcript, masks, MESH_GOLDEN);
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}
