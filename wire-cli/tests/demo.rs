//! `wire demo` runs every step, shows what the relay stored, and leaves nothing behind.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn demo_dirs() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("wire-demo-"))
        .count()
}

#[test]
fn the_demo_runs_end_to_end_and_cleans_up() {
    let before = demo_dirs();
    let out = Command::new(env!("CARGO_BIN_EXE_wire")).args(["demo", "--json"]).env("NO_COLOR", "1").output().unwrap();
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
    assert_eq!(demo_dirs(), before, "the demo removed its temporary directory");

    let human = Command::new(env!("CARGO_BIN_EXE_wire")).arg("demo").env("NO_COLOR", "1").output().unwrap();
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
}
