//! The `wire` binary's own surface: help, version, and clear refusals of bad flags.

use std::process::Command;

fn wire(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wire")).args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let (code, out, _) = wire(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("wire {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = wire(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("relay-server"), "{out}");
    let (code, out, _) = wire(&["relay-server", "--help"], &[]);
    assert_eq!(code, 0);
    for flag in
        ["--bind", "--data", "--local-only", "--uds", "--tls-cert", "--tls-key", "--max-envelope", "--retention"]
    {
        assert!(out.contains(flag), "relay-server --help lacks {flag}");
    }
    assert!(out.contains("WIRE_RELAY_BIND"), "help names the environment variables");
    // No command: help on stderr, non-zero.
    let (code, _, err) = wire(&[], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn local_only_refuses_a_public_bind_from_flags_or_environment() {
    let (code, _, err) = wire(&["relay-server", "--local-only", "--bind", "0.0.0.0:0", "--ephemeral"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("--local-only refuses to listen on 0.0.0.0:0"), "{err}");
    let (code, out, _) = wire(
        &["relay-server", "--json", "--ephemeral"],
        &[("WIRE_RELAY_LOCAL_ONLY", "true"), ("WIRE_RELAY_BIND", "0.0.0.0:0")],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("--local-only"), "{out}");
}

#[test]
fn bad_flag_values_are_explained() {
    let (code, _, err) = wire(&["relay-server", "--retention", "3w", "--ephemeral"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown unit `w`"), "{err}");
    let (code, _, err) = wire(&["relay-server", "--tls-cert", "x.pem", "--ephemeral"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--tls-key"), "{err}");
    let (code, _, err) = wire(
        &[
            "relay-server",
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.pem",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot read certificates from /nonexistent.pem"), "{err}");
}

#[test]
fn every_command_has_help() {
    let commands = [
        "init",
        "up",
        "whoami",
        "whois",
        "peers",
        "status",
        "invite",
        "accept",
        "reject",
        "dial",
        "pending",
        "forget",
        "send",
        "pull",
        "tail",
        "relay-server",
        "session new",
        "session list",
        "session current",
        "session bind",
        "session pair-all-local",
        "mesh status",
        "mesh broadcast",
        "mesh role set",
        "mesh route",
        "service install",
        "service uninstall",
        "service status",
        "mcp",
        "setup",
    ];
    let (_, top, _) = wire(&["--help"], &[]);
    for cmd in commands {
        let words: Vec<&str> = cmd.split(' ').collect();
        assert!(top.contains(words[0]), "`wire --help` lists {cmd}");
        let mut args = words.clone();
        args.push("--help");
        let (code, out, _) = wire(&args, &[]);
        assert_eq!(code, 0, "{cmd} --help");
        assert!(out.contains("Usage: wire"), "{cmd}: {out}");
        assert!(out.contains("--json"), "{cmd} documents --json");
        assert!(out.lines().next().is_some_and(|l| l.len() > 20), "{cmd} has a description: {out}");
    }
}

#[test]
fn no_flag_confirms_the_sas_for_the_operator() {
    for cmd in ["pair", "pair-host", "pair-join", "pair-confirm"] {
        let (_, out, _) = wire(&[cmd, "--help"], &[]);
        for flag in ["--yes", "--auto", "--force", "-y,"] {
            assert!(!out.contains(flag), "`wire {cmd}` offers {flag}");
        }
    }
    let (code, _, err) = wire(&["pair-confirm", "1-brave-otter"], &[]);
    assert_eq!(code, 2, "pair-confirm requires the digits");
    assert!(err.contains("<DIGITS>"), "{err}");
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let (code, out, _) = wire(&["completions", shell], &[]);
        assert_eq!(code, 0, "{shell}");
        assert!(out.contains("pair-confirm") && out.contains("relay-server"), "{shell} completions cover the commands");
    }
    let (code, out, _) = wire(&["man"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with(".ie") || out.contains(".TH wire"), "roff: {}", &out[..out.len().min(200)]);
    assert!(out.contains("relay\\-server") || out.contains("relay-server"), "the man page lists the commands");
    let (code, _, err) = wire(&["completions", "tcsh"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value"), "{err}");
}
