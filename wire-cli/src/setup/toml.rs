//! Edits one table of a TOML config file (Codex CLI's `[mcp_servers.<name>]`) in place, as
//! text: the table is appended, replaced or cut out whole, every other byte stays. Adding it
//! and removing it gives back the original bytes (for a file that ends in a newline).
//!
//! Only table headers are read: a line starting with `[` outside a multi-line string. Other
//! spellings of the same entry (`[mcp_servers]` with a `wire = {...}` key, dotted keys) are
//! reported, not edited.

use anyhow::bail;
use serde_json::Value;

/// A header line: its byte range and its dotted name with quotes and spaces removed.
struct Header {
    start: usize,
    name: String,
}

/// A `key = ...` line: the table it sits in (empty at the root) and its dotted key.
type KeyLine = (String, String);

/// Table headers, and the key lines with the table they sit in.
fn scan(text: &str) -> anyhow::Result<(Vec<Header>, Vec<KeyLine>)> {
    let mut headers = Vec::new();
    let mut keys = Vec::new();
    let mut open: Option<&str> = None; // inside a multi-line string with this delimiter
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        if let Some(delim) = open {
            if line.matches(delim).count() % 2 == 1 {
                open = None;
            }
            continue;
        }
        for delim in ["\"\"\"", "'''"] {
            if line.matches(delim).count() % 2 == 1 {
                open = Some(delim);
            }
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let inner = trimmed.trim_start_matches('[');
            let Some(close) = inner.find(']') else { bail!("a table header without `]`: {}", line.trim()) };
            let name: String = inner[..close].chars().filter(|c| !matches!(c, ' ' | '\t' | '"' | '\'')).collect();
            headers.push(Header { start, name });
        } else if let Some(eq) = trimmed.find('=').filter(|_| !trimmed.starts_with('#')) {
            let table = headers.last().map(|h| h.name.clone()).unwrap_or_default();
            let key: String = trimmed[..eq].chars().filter(|c| !matches!(c, ' ' | '\t' | '"' | '\'')).collect();
            keys.push((table, key));
        }
    }
    if open.is_some() {
        bail!("a multi-line string that never closes");
    }
    Ok((headers, keys))
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[table]` with `command`, `args` and an inline `env`, from the JSON entry.
fn render(table: &str, entry: &Value) -> String {
    let mut out = format!("[{table}]\n");
    if let Some(cmd) = entry["command"].as_str() {
        out.push_str(&format!("command = {}\n", quote(cmd)));
    }
    if let Some(args) = entry["args"].as_array() {
        let args: Vec<String> = args.iter().map(|a| quote(a.as_str().unwrap_or_default())).collect();
        out.push_str(&format!("args = [{}]\n", args.join(", ")));
    }
    if let Some(env) = entry["env"].as_object() {
        let pairs: Vec<String> =
            env.iter().map(|(k, v)| format!("{} = {}", quote(k), quote(v.as_str().unwrap_or_default()))).collect();
        out.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
    }
    out
}

/// The byte range of `[table]` and its sub-tables: from its header to the next other header
/// (or the end), without the blank lines before that next header.
fn find(text: &str, table: &str) -> anyhow::Result<Option<(usize, usize)>> {
    let (headers, keys) = scan(text)?;
    let (parent, name) = table.rsplit_once('.').unwrap_or(("", table));
    let spelled_otherwise = keys.iter().any(|(t, k)| {
        (t == parent && (k == name || k.starts_with(&format!("{name}."))))
            || (t.is_empty() && k.starts_with(&format!("{table}.")))
    });
    let ours = |h: &Header| h.name == table || h.name.starts_with(&format!("{table}."));
    let Some(first) = headers.iter().position(ours) else {
        if spelled_otherwise {
            bail!("it defines `{table}` in a form other than a `[{table}]` table; edit that entry by hand");
        }
        return Ok(None);
    };
    if headers[first + 1..].iter().skip_while(|h| ours(h)).any(ours) {
        bail!("`[{table}]` is split across the file; edit it by hand");
    }
    let end = headers[first + 1..].iter().find(|h| !ours(h)).map_or(text.len(), |h| h.start);
    let body = &text[headers[first].start..end];
    let trimmed = body.trim_end_matches(['\n', ' ', '\t', '\r']).len();
    // Keep the final newline of the table's last line.
    let end = headers[first].start + (trimmed + 1).min(body.len());
    Ok(Some((headers[first].start, end)))
}

/// Sets `[table]` to the entry. `None`: it already is.
pub fn upsert(text: &str, table: &str, entry: &Value) -> anyhow::Result<Option<String>> {
    let block = render(table, entry);
    match find(text, table)? {
        Some((from, to)) if text[from..to] == block => Ok(None),
        Some((from, to)) => {
            let mut out = text.to_owned();
            out.replace_range(from..to, &block);
            Ok(Some(out))
        }
        None if text.is_empty() => Ok(Some(block)),
        None => {
            let sep = if text.ends_with('\n') { "\n" } else { "\n\n" };
            Ok(Some(format!("{text}{sep}{block}")))
        }
    }
}

/// Removes `[table]` and the blank line `upsert` put before it. `None`: there was none.
pub fn remove(text: &str, table: &str) -> anyhow::Result<Option<String>> {
    let Some((mut from, to)) = find(text, table)? else { return Ok(None) };
    if to == text.len() && text[..from].ends_with("\n\n") {
        from -= 1;
    }
    let mut out = text.to_owned();
    out.replace_range(from..to, "");
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_then_remove_gives_back_the_bytes() {
        let entry = json!({ "command": "/usr/bin/wire", "args": ["mcp"], "env": { "WIRE_HOME": "/h \"q\"" } });
        for original in [
            "",
            "# mine\nmodel = \"o3\"\n",
            "model = \"o3\"\n\n[mcp_servers.gh]\ncommand = \"gh\"\n\n[profiles.x]\nnote = '''\n[mcp_servers.wire]\n'''\n",
        ] {
            let added = upsert(original, "mcp_servers.wire", &entry).unwrap().expect("a change");
            assert!(added.contains("env = { \"WIRE_HOME\" = \"/h \\\"q\\\"\" }"), "{added}");
            assert_eq!(upsert(&added, "mcp_servers.wire", &entry).unwrap(), None, "{added}");
            assert_eq!(remove(&added, "mcp_servers.wire").unwrap().as_deref(), Some(original), "{added}");
        }
    }

    #[test]
    fn replaces_in_the_middle_and_refuses_other_spellings() {
        let text = "[mcp_servers.wire]\ncommand = \"old\"\n\n[mcp_servers.wire.env]\nA = \"1\"\n\n[other]\nx = 1\n";
        let new = upsert(text, "mcp_servers.wire", &json!({"command": "new", "args": []})).unwrap().unwrap();
        assert_eq!(new, "[mcp_servers.wire]\ncommand = \"new\"\nargs = []\n\n[other]\nx = 1\n");
        assert!(upsert("[mcp_servers]\nwire = { command = \"x\" }\n", "mcp_servers.wire", &json!({})).is_err());
        assert!(upsert("mcp_servers.wire.command = \"x\"\n", "mcp_servers.wire", &json!({})).is_err());
    }
}
