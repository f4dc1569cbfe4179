//! `wire demo` runs every step, shows what the relay stored, and leaves nothing behind.

use std::path::Path;
use std::process::Command;

/// What the demo left in its private temp dir (other demos on the machine use their own).
fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn demo(tmp: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wire")).args(args).env("NO_COLOR", "1").env("TMPDIR", tmp).output().unwrap()
}

#[test]
fn the_demo_runs_end_to_end_and_cleans_up() {
    let tmp = crate::common::tempdir("demo-tmp");
    let out = demo(&tmp, &["demo", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["relay", "agents", "invite_pairing", "code_pairing", "messages"]);
    // The code pairing is between two agents that never met (alice and bob paired by invite).
    assert_eq!(v["steps"][1]["detail"].as_object().unwrap().len(), 3, "alice, bob and carol");
    let code = &v["steps"][3]["detail"];
    assert_eq!(code["bob_sas"], code["carol_sas"]);
    for m in v["steps"][4]["detail"].as_array().unwrap() {
        assert_eq!(m["relay_stored"]["bytes"], 1073, "a short message fills the 1 KiB bucket");
        assert!(
            m["recipient_read"].as_str().unwrap().contains("alice")
                || m["recipient_read"].as_str().unwrap().contains("bob")
        );
    }
    assert_eq!(leftovers(&tmp), Vec::<String>::new(), "the demo removed its temporary directory");

    let human = demo(&tmp, &["demo"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    // The relay's own log lines stay out of the story.
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert!(!text.contains("wire-relay:") && !stderr.contains("wire-relay:"), "{text}\n{stderr}");
    for part in [
        "pairing by invite",
        "pairing by code",
        "carol's screen",
        "no sender, no recipient, no kind",
        "everything removed",
    ] {
        assert!(text.contains(part), "demo output lacks `{part}`:\n{text}");
    }
    assert_eq!(leftovers(&tmp), Vec::<String>::new());
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn demo_keep_names_the_binary_that_ran_it() {
    use std::io::{BufRead, BufReader};
    let tmp = crate::common::tempdir("demo-keep");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wire"))
        .args(["demo", "--keep"])
        .env("NO_COLOR", "1")
        .env("TMPDIR", &tmp)
        .env("PATH", "/usr/bin:/bin")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_wire")).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    let tried: Vec<String> = lines.by_ref().skip_while(|l| !l.contains("Try:")).skip(1).take(2).collect();
    child.kill().ok();
    child.wait().ok();
    assert_eq!(tried.len(), 2, "{tried:?}");
    for line in &tried {
        assert!(line.contains(&format!("{} ", bin.display())), "not the real binary path: {line}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}
