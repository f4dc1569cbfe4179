//! `wire mcp` (the stdio MCP server) and `wire setup` (registering it with agent hosts).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use super::agent::chosen;
use crate::output;

/// `wire mcp`: serves MCP on stdin/stdout as the identity the session rule picks.
pub fn serve() -> anyhow::Result<()> {
    let chosen = chosen()?;
    // Nothing named an identity: the client's roots may (a host that runs the server
    // outside the project directory still gets the project's session).
    let roots_may_choose = chosen.rule == wire_core::session::Rule::Default;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(wire_mcp::serve_stdio(chosen.home, roots_may_choose)).map_err(anyhow::Error::msg)
}

/// One config file `wire setup` manages.
struct Target {
    host: &'static str,
    path: PathBuf,
    /// Only written when this directory exists (the host is installed).
    requires: Option<PathBuf>,
}

fn targets(project: bool) -> anyhow::Result<Vec<Target>> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).context("HOME is not set")?;
    let claude = if project {
        Target { host: "Claude Code (project)", path: std::env::current_dir()?.join(".mcp.json"), requires: None }
    } else {
        Target { host: "Claude Code (user)", path: home.join(".claude.json"), requires: None }
    };
    let cursor = Target { host: "Cursor", path: home.join(".cursor/mcp.json"), requires: Some(home.join(".cursor")) };
    Ok(vec![claude, cursor])
}

/// The `wire` server entry: this binary, `mcp`, and the identity selection in force now.
fn entry() -> anyhow::Result<Value> {
    let bin = std::env::current_exe().context("finding the wire binary")?;
    let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
    let mut e = json!({ "command": bin, "args": ["mcp"] });
    let mut env = Map::new();
    for var in ["WIRE_SESSION_ID", "WIRE_HOME", "WIRE_SESSIONS_DIR"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            env.insert(var.to_owned(), Value::String(v.to_string_lossy().into_owned()));
        }
    }
    if !env.is_empty() {
        e["env"] = Value::Object(env);
    }
    Ok(e)
}

/// What merging would do to one file.
enum Plan {
    Unchanged,
    Write(Vec<u8>),
}

/// Merges `mcpServers.wire` into the JSON text of `path` (missing = empty), keeping every
/// other entry. Refuses a file that is not a JSON object.
fn merge(path: &Path, wire: &Value) -> anyhow::Result<Plan> {
    let mut doc = match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Value::Object(Map::new()),
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is not JSON ({e}); fix or move it and run `wire setup --apply` again. Nothing was changed",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Some(root) = doc.as_object_mut() else {
        bail!("{} is JSON but not an object; nothing was changed", path.display());
    };
    let servers = root.entry("mcpServers").or_insert_with(|| Value::Object(Map::new()));
    let Some(servers) = servers.as_object_mut() else {
        bail!("`mcpServers` in {} is not an object; nothing was changed", path.display());
    };
    if servers.get("wire") == Some(wire) {
        return Ok(Plan::Unchanged);
    }
    servers.insert("wire".to_owned(), wire.clone());
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    Ok(Plan::Write(bytes))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Keeps the original's permissions (~/.claude.json is private).
    wire_core::files::write_atomic(path, bytes, None).with_context(|| format!("replacing {}", path.display()))
}

/// `wire setup`.
pub fn setup(apply: bool, dry_run: bool, project: bool, json: bool) -> anyhow::Result<()> {
    let wire = entry()?;
    let mut report = Vec::new();
    // Check every file first, so a bad one stops the run before anything is written.
    let mut plans = Vec::new();
    for t in targets(project)? {
        let plan = if t.requires.as_ref().is_some_and(|d| !d.is_dir()) { None } else { Some(merge(&t.path, &wire)?) };
        plans.push((t, plan));
    }
    for (t, plan) in plans {
        let action = match (&plan, apply && !dry_run) {
            (None, _) => {
                report.push(json!({ "host": t.host, "path": t.path, "action": "skipped", "why": "not installed" }));
                continue;
            }
            (Some(Plan::Unchanged), _) => "unchanged",
            (Some(Plan::Write(bytes)), true) => {
                write_atomic(&t.path, bytes)?;
                "written"
            }
            (Some(Plan::Write(_)), false) => "would_write",
        };
        report.push(json!({ "host": t.host, "path": t.path, "action": action }));
    }
    let snippet = json!({ "mcpServers": { "wire": wire } });
    if json {
        output::json(&json!({ "applied": apply && !dry_run, "entry": wire, "targets": report }));
        return Ok(());
    }
    if !apply || dry_run {
        println!("{}", serde_json::to_string_pretty(&snippet)?);
    }
    for r in &report {
        let path = r["path"].as_str().unwrap_or_default();
        let host = r["host"].as_str().unwrap_or_default();
        match r["action"].as_str().unwrap_or_default() {
            "written" => println!("{host}: added the wire server to {path}"),
            "unchanged" => println!("{host}: {path} already has it"),
            "would_write" => println!("{host}: would add it to {path}"),
            _ => println!("{host}: skipped ({})", r["why"].as_str().unwrap_or_default()),
        }
    }
    if !apply {
        eprintln!("run `wire setup --apply` to write it (other entries are kept)");
    } else if !dry_run {
        eprintln!("restart the agent host to load it; agents then see the wire_* tools");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_other_entries_and_is_idempotent() {
        let dir = std::env::temp_dir().join(format!("wire-setup-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mcp.json");
        std::fs::write(&path, r#"{"theme":"dark","mcpServers":{"other":{"command":"x"}}}"#).unwrap();
        let wire = json!({ "command": "/bin/wire", "args": ["mcp"] });
        let Plan::Write(bytes) = merge(&path, &wire).unwrap() else { panic!("expected a write") };
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((v["theme"].as_str(), v["mcpServers"]["other"]["command"].as_str()), (Some("dark"), Some("x")));
        assert_eq!(v["mcpServers"]["wire"], wire);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(merge(&path, &wire).unwrap(), Plan::Unchanged));
        std::fs::write(&path, "[1,2]").unwrap();
        assert!(merge(&path, &wire).is_err());
        std::fs::write(&path, r#"{"mcpServers": 3}"#).unwrap();
        assert!(merge(&path, &wire).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
