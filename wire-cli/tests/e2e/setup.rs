//! `wire setup`: every host's config, with the user's comments, other servers and a symlink,
//! comes back byte for byte after `--apply` then `--remove`; the hosts' own CLIs read the
//! entry back; the binary is named by a path that survives upgrades; project files stay
//! portable.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wire_testkit::tempdir;

use crate::common::Run;

/// Each host's config path under HOME, and a file as a user keeps it.
const CONFIGS: [(&str, &str, &str); 7] = [
    // Claude Code writes strict JSON itself (and refuses comments): other servers, its own keys.
    (
        "claude",
        ".claude.json",
        "{\n  \"numStartups\": 7,\n  \"mcpServers\": {\n    \"github\": {\n      \"command\": \"gh-mcp\",\n      \"args\": []\n    }\n  },\n  \"theme\": \"dark\"\n}\n",
    ),
    (
        "cursor",
        ".cursor/mcp.json",
        "// Cursor: my servers\n{\n  \"mcpServers\": {\n    /* the GitHub one */\n    \"github\": { \"command\": \"gh-mcp\" } // keep\n  }\n}\n",
    ),
    (
        "vscode",
        ".config/Code/User/mcp.json",
        "{\n\t// VS Code\n\t\"servers\": {\n\t\t\"fetch\": {\n\t\t\t\"type\": \"stdio\",\n\t\t\t\"command\": \"uvx\",\n\t\t},\n\t},\n\t\"inputs\": [],\n}\n",
    ),
    (
        "codex",
        ".codex/config.toml",
        "# Codex\nmodel = \"o3\" # the default\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\nargs = [\"--stdio\"]\n\n[profiles.fast]\nmodel = \"o4-mini\"\n",
    ),
    (
        "gemini",
        ".gemini/settings.json",
        "{\n  // Gemini CLI\n  \"theme\": \"GitHub\",\n  \"mcpServers\": {\n    \"github\": {\"command\": \"gh-mcp\"}\n  }\n}\n",
    ),
    (
        "windsurf",
        ".codeium/windsurf/mcp_config.json",
        "{\n    \"mcpServers\": {\n        // Windsurf\n        \"github\": {\"command\": \"gh-mcp\"}\n    }\n}\n",
    ),
    (
        "zed",
        ".config/zed/settings.json",
        "// Zed settings\n{\n  \"ui_font_size\": 16,\n  \"context_servers\": {\n    \"github\": { \"source\": \"custom\", \"command\": \"gh-mcp\", \"args\": [] },\n  },\n  \"theme\": \"One Dark\", // trailing comma style\n}\n",
    ),
];

struct Fixture {
    root: PathBuf,
    home: PathBuf,
    project: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let root = tempdir(name);
        let (home, project) = (root.join("home"), root.join("project"));
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        Fixture { root, home, project }
    }

    /// `wire setup ARGS` as `bin`, with HOME (and the current directory) in the fixture.
    fn run_as(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(bin);
        cmd.arg("setup").args(args).current_dir(&self.project).env("HOME", &self.home);
        for var in [
            "WIRE_HOME",
            "WIRE_SESSION_ID",
            "WIRE_SESSIONS_DIR",
            "WIRE_CA_FILE",
            "CLAUDE_CONFIG_DIR",
            "CODEX_HOME",
            "XDG_CONFIG_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        Run::from(cmd.output().unwrap())
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_as(Path::new(env!("CARGO_BIN_EXE_wire")), args, env)
    }

    /// Each host's config as a symlink into `dotfiles/`, holding `CONFIGS`' text.
    fn configs_behind_links(&self) -> Vec<(String, PathBuf, PathBuf)> {
        let dotfiles = self.root.join("dotfiles");
        std::fs::create_dir_all(&dotfiles).unwrap();
        CONFIGS
            .iter()
            .map(|(host, rel, text)| {
                let link = self.home.join(rel);
                std::fs::create_dir_all(link.parent().unwrap()).unwrap();
                let real = dotfiles.join(format!("{host}.conf"));
                std::fs::write(&real, text).unwrap();
                symlink(&real, &link).unwrap();
                (host.to_string(), link, real)
            })
            .collect()
    }
}

fn actions(report: &Value) -> Vec<(String, String)> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["host"].as_str().unwrap().to_owned(), t["action"].as_str().unwrap().to_owned()))
        .collect()
}

fn all(action: &str) -> Vec<(String, String)> {
    CONFIGS.iter().map(|(h, _, _)| (h.to_string(), action.to_owned())).collect()
}

#[test]
fn apply_then_remove_gives_every_host_config_back_byte_for_byte() {
    let fx = Fixture::new("setup-hosts");
    let files = fx.configs_behind_links();
    let wire_home = fx.root.join("identity");
    let ca = fx.root.join("ca.pem");
    let env = [("WIRE_HOME", wire_home.to_str().unwrap()), ("WIRE_CA_FILE", ca.to_str().unwrap())];

    // A preview writes nothing.
    let preview = fx.run(&["--json"], &env).ok().json();
    assert_eq!(actions(&preview), all("would_write"), "{preview}");
    for (host, _, real) in &files {
        let original = CONFIGS.iter().find(|c| c.0 == host).unwrap().2;
        assert_eq!(std::fs::read_to_string(real).unwrap(), original, "{host}: a preview wrote");
    }

    let applied = fx.run(&["--apply"], &env).ok();
    assert!(
        applied.stderr.contains("the entries pin")
            && applied.stderr.contains(&format!("  WIRE_HOME={}\n", wire_home.display())),
        "setup must say it pins WIRE_HOME: {applied:?}"
    );
    for (host, link, real) in &files {
        let original = CONFIGS.iter().find(|c| c.0 == host).unwrap().2;
        let now = std::fs::read_to_string(real).unwrap();
        assert!(std::fs::symlink_metadata(link).unwrap().file_type().is_symlink(), "{host}: the link was replaced");
        assert!(now.contains(&format!("{}", wire_home.display())), "{host}: WIRE_HOME not pinned:\n{now}");
        assert!(now.contains(ca.to_str().unwrap()), "{host}: WIRE_CA_FILE not carried:\n{now}");
        assert!(now.contains("\"mcp\""), "{host}: no `mcp` argument:\n{now}");
        // The user's text is all still there, in order: only wire's lines were added.
        let mut rest = now.as_str();
        for word in original.split_whitespace().map(|w| w.trim_matches(',')) {
            let at = rest.find(word).unwrap_or_else(|| panic!("{host}: lost or reordered `{word}`:\n{now}"));
            rest = &rest[at + word.len()..];
        }
        let backup = PathBuf::from(format!("{}.wire-backup", real.display()));
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), original, "{host}: no backup of the original");
    }
    // Host-specific shapes.
    let read = |host: &str| std::fs::read_to_string(&files.iter().find(|f| f.0 == host).unwrap().2).unwrap();
    assert!(read("vscode").contains("\"type\": \"stdio\""), "{}", read("vscode"));
    assert!(read("zed").contains("\"source\": \"custom\""), "{}", read("zed"));
    assert!(read("codex").contains("\n[mcp_servers.wire]\ncommand = "), "{}", read("codex"));

    let again = fx.run(&["--apply", "--json"], &env).ok().json();
    assert_eq!(actions(&again), all("unchanged"), "{again}");

    let removed = fx.run(&["--remove", "--json"], &env).ok().json();
    assert_eq!(actions(&removed), all("removed"), "{removed}");
    for (host, link, real) in &files {
        let original = CONFIGS.iter().find(|c| c.0 == host).unwrap().2;
        assert_eq!(std::fs::read_to_string(real).unwrap(), original, "{host}: not byte-identical after --remove");
        assert!(std::fs::symlink_metadata(link).unwrap().file_type().is_symlink(), "{host}: the link was replaced");
    }
    let gone = fx.run(&["--remove", "--json"], &[]).ok().json();
    assert_eq!(actions(&gone), all("absent"), "{gone}");
    std::fs::remove_dir_all(&fx.root).ok();
}

#[test]
fn a_file_it_cannot_read_stops_the_run_before_anything_is_written() {
    let fx = Fixture::new("setup-refuse");
    std::fs::create_dir_all(fx.home.join(".cursor")).unwrap();
    let claude = fx.home.join(".claude.json");
    std::fs::write(&claude, "{ this is not json").unwrap();
    let refused = fx.run(&["--apply"], &[]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(".claude.json (Claude Code)") && refused.stderr.contains("Nothing was changed"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_to_string(&claude).unwrap(), "{ this is not json");
    assert!(!fx.home.join(".cursor/mcp.json").exists(), "a refused run wrote another file");
    // Hosts that are not installed are skipped, named ones are written anyway.
    std::fs::remove_file(&claude).unwrap();
    let only = fx.run(&["--apply", "--host", "zed", "--json"], &[]).ok().json();
    assert_eq!(actions(&only), [("zed".to_owned(), "written".to_owned())], "{only}");
    let skipped = fx.run(&["--json"], &[]).ok().json();
    let zed = skipped["targets"].as_array().unwrap().iter().find(|t| t["host"] == "windsurf").unwrap().clone();
    assert_eq!((zed["action"].as_str(), zed["why"].as_str()), (Some("skipped"), Some("not installed")), "{skipped}");
    std::fs::remove_dir_all(&fx.root).ok();
}

#[test]
fn the_entry_names_the_path_that_survives_an_upgrade_and_project_files_stay_portable() {
    let fx = Fixture::new("setup-binary");
    // A package manager's layout: bin/wire -> ../cellar/wire/1.0/bin/wire -> the real file.
    let cellar = fx.root.join("cellar/wire/1.0/bin");
    std::fs::create_dir_all(&cellar).unwrap();
    symlink(env!("CARGO_BIN_EXE_wire"), cellar.join("wire")).unwrap();
    let bin = fx.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    symlink("../cellar/wire/1.0/bin/wire", bin.join("wire")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());

    let user = fx.run_as(&bin.join("wire"), &["--apply", "--host", "cursor", "--json"], &[("PATH", &path)]).ok().json();
    assert_eq!(user["entry"]["command"], bin.join("wire").to_str().unwrap(), "{user}");
    let cursor = std::fs::read_to_string(fx.home.join(".cursor/mcp.json")).unwrap();
    assert!(cursor.contains(&format!("\"{}\"", bin.join("wire").display())) && !cursor.contains("cellar"), "{cursor}");

    // CLAUDE_CONFIG_DIR moves Claude Code's file.
    let claude_dir = fx.root.join("claude-config");
    std::fs::create_dir_all(&claude_dir).unwrap();
    let moved = fx
        .run(&["--apply", "--host", "claude", "--json"], &[("CLAUDE_CONFIG_DIR", claude_dir.to_str().unwrap())])
        .ok()
        .json();
    assert_eq!(moved["targets"][0]["path"], claude_dir.join(".claude.json").to_str().unwrap(), "{moved}");
    assert!(!fx.home.join(".claude.json").exists());

    // Project files: plain `wire`, no machine paths, no WIRE_HOME, and it says so.
    std::fs::create_dir_all(fx.project.join(".vscode")).unwrap();
    let home = fx.root.join("identity");
    let project = fx.run(&["--apply", "--project"], &[("WIRE_HOME", home.to_str().unwrap())]).ok();
    assert!(project.stderr.contains("WIRE_HOME is set but not written"), "{project:?}");
    for file in [".mcp.json", ".vscode/mcp.json"] {
        let text = std::fs::read_to_string(fx.project.join(file)).unwrap();
        assert!(text.contains("\"command\": \"wire\""), "{file}: {text}");
        assert!(!text.contains("WIRE_HOME") && !text.contains(fx.root.to_str().unwrap()), "{file}: {text}");
    }
    assert!(!fx.project.join(".cursor").exists(), "Cursor's project file is written only where .cursor/ exists");
    std::fs::remove_dir_all(&fx.root).ok();
}

/// The hosts' own CLIs (installed from npm by `.ci/test`), run offline in a scratch HOME.
fn host_cli(name: &str) -> PathBuf {
    let dir = std::env::var_os("WIRE_TEST_HOSTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::common::workspace().join("target/test-deps/hosts/node_modules/.bin"));
    let cli = dir.join(name);
    assert!(cli.exists(), "{} is not installed (`.ci/test` installs it with npm)", cli.display());
    cli
}

#[test]
#[ignore = "needs the Claude Code, Codex and Gemini CLIs from npm (.ci/test installs them)"]
fn the_hosts_own_clis_read_the_entry_back() {
    let fx = Fixture::new("setup-host-clis");
    let claude_dir = fx.root.join("claude-config");
    for dir in [claude_dir.clone(), fx.home.join(".codex"), fx.home.join(".gemini")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let wire_home = fx.root.join("identity");
    let env = [("WIRE_HOME", wire_home.to_str().unwrap()), ("CLAUDE_CONFIG_DIR", claude_dir.to_str().unwrap())];
    fx.run(&["--apply", "--host", "claude", "--host", "codex", "--host", "gemini"], &env).ok();
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_wire")).unwrap();

    let host = |cli: &str, args: &[&str]| {
        let out = Command::new(host_cli(cli))
            .args(args)
            .current_dir(&fx.project)
            .env("HOME", &fx.home)
            .env("CLAUDE_CONFIG_DIR", &claude_dir)
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env_remove("WIRE_HOME")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{cli} {args:?}: {text}");
        text
    };
    let got = host("claude", &["mcp", "get", "wire"]);
    assert!(got.contains("wire:") && got.contains("User config"), "{got}");
    // `mcp list` starts `wire mcp` and speaks MCP to it.
    let listed = host("claude", &["mcp", "list"]);
    assert!(listed.contains(&format!("wire: {} mcp", bin.display())) && listed.contains("Connected"), "{listed}");
    let codex = host("codex", &["mcp", "list"]);
    let row = codex.lines().find(|l| l.starts_with("wire ")).unwrap_or_else(|| panic!("{codex}"));
    assert!(row.contains(bin.to_str().unwrap()) && row.contains("WIRE_HOME="), "{codex}");
    let gemini = host("gemini", &["mcp", "list"]);
    assert!(gemini.contains(&format!("wire: {} mcp", bin.display())), "{gemini}");
    std::fs::remove_dir_all(&fx.root).ok();
}
