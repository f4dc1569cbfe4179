//! Every `wire ...` command line quoted in a code block of AGENT.md or README.md parses
//! with the current CLI (the binary stops right after parsing under WIRE_PARSE_ONLY).

use std::process::Command;

/// Splits a shell-ish line into words: double and single quotes group, nothing else.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The `wire` invocations in the fenced code blocks of a markdown file.
fn commands(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap();
    let mut in_block = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let code = line.split(" #").next().unwrap_or(line);
        for part in code.split("&&").flat_map(|p| p.split('|')) {
            let mut w = words(part.trim());
            // Drop leading VAR=value assignments, `$(`, and redirections.
            while w.first().is_some_and(|x| x.contains('=') && !x.starts_with('-')) {
                w.remove(0);
            }
            let Some(start) = w.iter().position(|x| x == "wire" || x.ends_with("(wire") || x == "$(wire") else {
                continue;
            };
            let mut args: Vec<String> = w[start + 1..].to_vec();
            if let Some(cut) = args.iter().position(|a| {
                a.starts_with('<') && a.len() == 1
                    || a == "<"
                    || a == "&"
                    || a.starts_with('>')
                    || a.ends_with(')') && !a.starts_with('(')
            }) {
                if args[cut].ends_with(')') && args[cut].len() > 1 {
                    args[cut].pop();
                    args.truncate(cut + 1);
                } else {
                    args.truncate(cut);
                }
            }
            if args.iter().any(|a| a == "&") {
                args.retain(|a| a != "&");
            }
            out.push(args);
        }
    }
    out
}

#[test]
fn every_quoted_command_parses() {
    let mut checked = 0;
    for file in ["AGENT.md", "README.md"] {
        let found = commands(file);
        assert!(found.len() > 5, "{file}: found only {} commands", found.len());
        for args in found {
            let out =
                Command::new(env!("CARGO_BIN_EXE_wire")).args(&args).env("WIRE_PARSE_ONLY", "1").output().unwrap();
            assert!(
                out.status.success(),
                "{file}: `wire {}` does not parse:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "checked {checked}");
}

#[test]
fn the_checker_rejects_a_bad_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_wire"))
        .args(["send", "--no-such-flag"])
        .env("WIRE_PARSE_ONLY", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(words(r#"wire send x "a b" 'c d'"#), ["wire", "send", "x", "a b", "c d"]);
}
