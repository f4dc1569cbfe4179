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
    let code = &v["steps"][3]["detail"];
    assert_eq!(code["alice_sas"], code["bob_sas"]);
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
    for part in [
        "pairing by invite",
        "pairing by code",
        "alice's screen",
        "no sender, no recipient, no kind",
        "everything removed",
    ] {
        assert!(text.contains(part), "demo output lacks `{part}`:\n{text}");
    }
    assert_eq!(leftovers(&tmp), Vec::<String>::new());
    std::fs::remove_dir_all(&tmp).ok();
}
