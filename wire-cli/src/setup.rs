//! `wire setup`: registers `wire mcp` with the agent hosts people use, and `--remove` takes
//! it out again. Each config file is edited as text (`jsonc`, `toml`): the user's key order,
//! comments and other servers stay byte for byte, a backup of the previous version is kept
//! beside the file, and a symlinked config is written through to its target.
//!
//! User-level entries name a stable path to this binary (the `PATH` entry that reaches it,
//! never a versioned target behind it) and pin the identity selection in force (`WIRE_HOME`
//! and friends, said aloud). Project files are meant to be committed, so they name `wire`
//! and pin nothing: the project's session is chosen by its directory.

mod jsonc;
mod toml;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::output;

/// The hosts `wire setup` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    Claude,
    Cursor,
    Vscode,
    Codex,
    Gemini,
    Windsurf,
    Zed,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Claude => "Claude Code",
            Host::Cursor => "Cursor",
            Host::Vscode => "VS Code",
            Host::Codex => "Codex CLI",
            Host::Gemini => "Gemini CLI",
            Host::Windsurf => "Windsurf",
            Host::Zed => "Zed",
        }
    }

    /// Where the servers live in the file, and the entry's host-specific fields.
    fn format(self) -> Format {
        match self {
            Host::Vscode => Format::Json { path: &["servers"], extra: &[("type", "stdio")] },
            Host::Zed => Format::Json { path: &["context_servers"], extra: &[("source", "custom")] },
            Host::Codex => Format::Toml { table: "mcp_servers.wire" },
            Host::Claude | Host::Cursor | Host::Gemini | Host::Windsurf => {
                Format::Json { path: &["mcpServers"], extra: &[] }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Json { path: &'static [&'static str], extra: &'static [(&'static str, &'static str)] },
    Toml { table: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    User,
    Project,
}

/// One config file.
struct Target {
    host: Host,
    scope: Scope,
    path: PathBuf,
    /// The host counts as installed when this directory exists.
    installed_if: PathBuf,
}

fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn targets(project: bool) -> anyhow::Result<Vec<Target>> {
    let home = var("HOME").context("HOME is not set")?;
    let t = |host, scope, path: PathBuf, installed_if: PathBuf| Target { host, scope, path, installed_if };
    if project {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        return Ok(vec![
            t(Host::Claude, Scope::Project, cwd.join(".mcp.json"), cwd.clone()),
            t(Host::Cursor, Scope::Project, cwd.join(".cursor/mcp.json"), cwd.join(".cursor")),
            t(Host::Vscode, Scope::Project, cwd.join(".vscode/mcp.json"), cwd.join(".vscode")),
            t(Host::Gemini, Scope::Project, cwd.join(".gemini/settings.json"), cwd.join(".gemini")),
            t(Host::Zed, Scope::Project, cwd.join(".zed/settings.json"), cwd.join(".zed")),
        ]);
    }
    // Claude Code keeps `.claude.json` in CLAUDE_CONFIG_DIR when that is set.
    let claude = match var("CLAUDE_CONFIG_DIR") {
        Some(dir) => t(Host::Claude, Scope::User, dir.join(".claude.json"), dir),
        None if home.join(".claude").is_dir() => {
            t(Host::Claude, Scope::User, home.join(".claude.json"), home.join(".claude"))
        }
        None => t(Host::Claude, Scope::User, home.join(".claude.json"), home.join(".claude.json")),
    };
    let config = var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
    let vscode = if cfg!(target_os = "macos") {
        home.join("Library/Application Support/Code/User")
    } else if cfg!(windows) {
        var("APPDATA").unwrap_or_else(|| home.join("AppData/Roaming")).join("Code/User")
    } else {
        config.join("Code/User")
    };
    let codex = var("CODEX_HOME").unwrap_or_else(|| home.join(".codex"));
    Ok(vec![
        claude,
        t(Host::Cursor, Scope::User, home.join(".cursor/mcp.json"), home.join(".cursor")),
        t(Host::Vscode, Scope::User, vscode.join("mcp.json"), vscode),
        t(Host::Codex, Scope::User, codex.join("config.toml"), codex),
        t(Host::Gemini, Scope::User, home.join(".gemini/settings.json"), home.join(".gemini")),
        t(Host::Windsurf, Scope::User, home.join(".codeium/windsurf/mcp_config.json"), home.join(".codeium/windsurf")),
        t(Host::Zed, Scope::User, config.join("zed/settings.json"), config.join("zed")),
    ])
}

/// A path to this binary that survives upgrades: the first `PATH` entry (or the path it was
/// started by) that reaches this very file, unresolved, so a package manager's
/// `bin/wire -> versions/1.2/wire` link keeps working after the next upgrade.
pub fn stable_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the wire binary")?;
    let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
    let same = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c == real);
    let name = exe.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("wire"));
    if let Some(paths) = std::env::var_os("PATH")
        && let Some(hit) =
            std::env::split_paths(&paths).filter(|d| d.is_absolute()).map(|d| d.join(&name)).find(|p| same(p))
    {
        return Ok(hit);
    }
    if let Some(argv0) = std::env::args_os().next().map(PathBuf::from).filter(|p| p.components().count() > 1) {
        let abs = if argv0.is_absolute() { argv0 } else { std::env::current_dir()?.join(argv0) };
        if same(&abs) {
            return Ok(abs);
        }
    }
    Ok(real)
}

/// The variables that choose the identity (and trust a private relay's CA), as in force now.
const PINNED: [&str; 4] = ["WIRE_HOME", "WIRE_SESSION_ID", "WIRE_SESSIONS_DIR", "WIRE_CA_FILE"];

/// The `wire` entry for a scope: this binary and the pinned variables for the user's
/// config, plain `wire` and nothing machine-specific for a project's.
fn entry(scope: Scope, bin: &Path) -> Value {
    if scope == Scope::Project {
        return json!({ "command": "wire", "args": ["mcp"] });
    }
    let mut e = json!({ "command": bin, "args": ["mcp"] });
    let env: Map<String, Value> = PINNED
        .iter()
        .filter_map(|k| var(k).map(|v| ((*k).to_owned(), Value::String(v.to_string_lossy().into_owned()))))
        .collect();
    if !env.is_empty() {
        e["env"] = Value::Object(env);
    }
    e
}

/// The entry as this host spells it.
fn host_entry(host: Host, base: &Value) -> Value {
    let mut e = Map::new();
    if let Format::Json { extra, .. } = host.format() {
        for (k, v) in extra {
            e.insert((*k).to_owned(), Value::String((*v).to_owned()));
        }
    }
    if let Some(base) = base.as_object() {
        e.extend(base.clone());
    }
    Value::Object(e)
}

/// Follows a chain of symlinks to the file that holds the text (which may not exist yet).
fn through_links(path: &Path) -> anyhow::Result<PathBuf> {
    let mut path = path.to_owned();
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => path = path.parent().map_or(target.clone(), |dir| dir.join(&target)),
            Err(_) => return Ok(path),
        }
    }
    bail!("{}: too many levels of symbolic links", path.display())
}

/// The new text of a file, or `None` when it needs no change.
fn edit(host: Host, text: &str, entry: &Value, remove: bool) -> anyhow::Result<Option<String>> {
    match (host.format(), remove) {
        (Format::Json { path, .. }, false) => jsonc::upsert(text, path, "wire", entry),
        (Format::Json { path, .. }, true) => jsonc::remove(text, path, "wire"),
        (Format::Toml { table }, false) => toml::upsert(text, table, entry),
        (Format::Toml { table }, true) => toml::remove(text, table),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    host: Host,
    name: &'static str,
    scope: Scope,
    path: PathBuf,
    /// The file written when `path` is a symlink.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<PathBuf>,
    /// written, would_write, removed, would_remove, unchanged, absent, skipped
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'static str>,
}

/// What `wire setup` was asked to do.
pub struct Request {
    pub apply: bool,
    pub dry_run: bool,
    pub remove: bool,
    pub project: bool,
    pub hosts: Vec<Host>,
}

/// Where a user-level host entry stands against what `wire setup --apply` would write now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// The host is installed and has no wire entry.
    Missing,
    /// The entry names another binary or pins another identity selection.
    Stale,
}

/// The installed hosts whose user-level entry is missing or stale: (host name, config file,
/// state). A file that cannot be read or understood is skipped (`wire setup` reports it).
pub fn entry_states() -> anyhow::Result<Vec<(&'static str, PathBuf, EntryState)>> {
    let base = entry(Scope::User, &stable_binary()?);
    let mut out = Vec::new();
    for t in targets(false)?.into_iter().filter(|t| t.installed_if.exists()) {
        let Ok(file) = through_links(&t.path) else { continue };
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(_) => continue,
        };
        let has = matches!(edit(t.host, &text, &Value::Null, true), Ok(Some(_)));
        let differs = matches!(edit(t.host, &text, &host_entry(t.host, &base), false), Ok(Some(_)));
        match (has, differs) {
            (false, _) => out.push((t.host.name(), t.path, EntryState::Missing)),
            (true, true) => out.push((t.host.name(), t.path, EntryState::Stale)),
            (true, false) => {}
        }
    }
    Ok(out)
}

/// `wire setup`.
pub fn run(req: Request, json: bool) -> anyhow::Result<()> {
    let act = (req.apply || req.remove) && !req.dry_run;
    let bin = stable_binary()?;
    let scope = if req.project { Scope::Project } else { Scope::User };
    let base = entry(scope, &bin);
    // Every file is read and edited in memory first: one that cannot be understood stops
    // the run before anything is written.
    let mut plans = Vec::new();
    for t in targets(req.project)? {
        let asked = req.hosts.contains(&t.host);
        if !req.hosts.is_empty() && !asked {
            continue;
        }
        if !asked && !t.installed_if.exists() {
            plans.push((t, None, None, None));
            continue;
        }
        let file = through_links(&t.path)?;
        let text = match std::fs::read(&file) {
            Ok(bytes) => Some(
                String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text; nothing was changed", file.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let wanted = host_entry(t.host, &base);
        let new = edit(t.host, text.as_deref().unwrap_or(""), &wanted, req.remove).map_err(|e| {
            anyhow::anyhow!(
                "{} ({}): {e}. Fix or move it and run `wire setup` again. Nothing was changed",
                t.path.display(),
                t.host.name()
            )
        })?;
        plans.push((t, Some(file), text, new));
    }
    let mut reports = Vec::new();
    for (t, file, old, new) in plans {
        let mut r = Report {
            host: t.host,
            name: t.host.name(),
            scope: t.scope,
            target: file.clone().filter(|f| *f != t.path),
            path: t.path,
            action: "skipped",
            backup: None,
            why: None,
        };
        match (file, new) {
            (None, _) => r.why = Some("not installed"),
            (Some(_), None) => r.action = if req.remove { "absent" } else { "unchanged" },
            (Some(_), Some(_)) if !act => r.action = if req.remove { "would_remove" } else { "would_write" },
            (Some(file), Some(new)) => {
                if let Some(old) = &old {
                    let backup = PathBuf::from(format!("{}.wire-backup", file.display()));
                    wire_core::files::write_atomic(&backup, old.as_bytes(), None)
                        .with_context(|| format!("writing the backup {}", backup.display()))?;
                    r.backup = Some(backup);
                }
                let mode = (old.is_none() && t.scope == Scope::Project).then_some(0o644);
                wire_core::files::write_atomic(&file, new.as_bytes(), mode)
                    .with_context(|| format!("writing {}", file.display()))?;
                r.action = if req.remove { "removed" } else { "written" };
            }
        }
        reports.push(r);
    }
    let pinned: Map<String, Value> = base.get("env").and_then(Value::as_object).cloned().unwrap_or_default();
    if json {
        output::json(&json!({
            "applied": act,
            "remove": req.remove,
            "scope": scope,
            "entry": base,
            "pinned": pinned,
            "targets": reports,
        }));
        return Ok(());
    }
    print_human(&req, act, scope, &base, &pinned, &reports);
    Ok(())
}

fn print_human(req: &Request, act: bool, scope: Scope, base: &Value, pinned: &Map<String, Value>, reports: &[Report]) {
    if !act && !req.remove {
        let snippet = json!({ "mcpServers": { "wire": base } });
        println!("{}", serde_json::to_string_pretty(&snippet).unwrap_or_default());
    }
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in reports {
        let path = r.path.display();
        let what = match r.action {
            "written" => format!("added wire to {path}"),
            "removed" => format!("removed wire from {path}"),
            "unchanged" => format!("{path} already has it"),
            "absent" => format!("{path} does not have it"),
            "would_write" => format!("would add wire to {path}"),
            "would_remove" => format!("would remove wire from {path}"),
            _ => format!("skipped ({})", r.why.unwrap_or("")),
        };
        let through = r.target.as_ref().map(|t| format!(" (a link: wrote {})", t.display())).unwrap_or_default();
        let backup =
            r.backup.as_ref().map(|b| format!("; the previous version is in {}", b.display())).unwrap_or_default();
        println!(
            "{:<width$}  {what}{}{backup}",
            r.name,
            if r.action == "written" || r.action == "removed" { through } else { String::new() }
        );
    }
    if !req.remove {
        if scope == Scope::Project {
            eprintln!("project files name `wire` and pin no WIRE_HOME: they are meant to be committed");
            if std::env::var_os("WIRE_HOME").is_some() {
                eprintln!("note: WIRE_HOME is set but not written; this project's session is chosen by its directory");
            }
        } else if !pinned.is_empty() {
            eprintln!("the entries pin what is set now; agents of these hosts use it wherever they run:");
            for (k, v) in pinned {
                eprintln!("  {k}={}", v.as_str().unwrap_or(""));
            }
        }
    }
    if !act {
        let verb = if req.remove { "--remove" } else { "--apply" };
        eprintln!("run `wire setup {verb}` to write it (other entries and comments are kept)");
    } else if !req.remove {
        eprintln!("restart the agent host to load it; agents then see the wire_* tools");
    }
}
