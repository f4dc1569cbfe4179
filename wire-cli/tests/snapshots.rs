//! Snapshot of the human output of the main commands in one scripted session. Values that
//! differ per run (DIDs, faces, fingerprints, slots, addresses, times, URLs) are replaced
//! by placeholders; the rest must match `tests/snapshots/session.txt` exactly. After an
//! intended change: `WIRE_UPDATE_SNAPSHOTS=1 cargo test -p wire-cli --test snapshots`,
//! then review the diff.
#![allow(clippy::unwrap_used)]

mod common;

use common::{RelayProcess, Wire, tempdir};

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
    masks.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut text = transcript;
    for (value, placeholder) in &masks {
        text = text.replace(value.as_str(), placeholder);
    }
    let text = mask_times(&text);
    assert!(!text.contains('\x1b'), "NO_COLOR is respected");
    if std::env::var_os("WIRE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(GOLDEN, &text).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    assert_eq!(text, golden, "human output changed; if intended, update the snapshot (see module docs)");
    drop(relay);
    std::fs::remove_dir_all(&dir).ok();
}
