//! Invariant 2: `wire_core::proto` performs no I/O, reads no clock and draws no OS
//! randomness. This test reads the module sources and fails on any use of the APIs that
//! would break that (test-only modules excluded).

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::io",
    "std::process",
    "std::env",
    "std::thread",
    "SystemTime",
    "Instant",
    "tokio",
    "OsRng",
    "getrandom",
    "thread_rng",
    "println!",
    "eprintln!",
    "include_bytes!",
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The part of a file before its `#[cfg(test)]` module.
fn non_test_part(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

#[test]
fn proto_modules_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("proto.rs")];
    sources(&root.join("proto"), &mut files);
    assert!(files.len() > 10, "found the proto sources");
    let mut violations = Vec::new();
    for file in &files {
        if file.ends_with("kat.rs") {
            continue; // compiled only under cfg(test)
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in non_test_part(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    violations.push(format!("{}:{}: uses `{word}`", file.display(), n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "I/O in the pure protocol modules:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_catches_a_violation() {
    // Guard against a checker that can never fail.
    let sample = "fn f() { let _ = std::fs::read(\"x\"); }\n#[cfg(test)]\nmod t { use std::fs; }";
    let hits: Vec<_> = non_test_part(sample).lines().filter(|l| FORBIDDEN.iter().any(|w| l.contains(w))).collect();
    assert_eq!(hits.len(), 1);
}
