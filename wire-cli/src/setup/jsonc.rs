//! Edits one entry of a JSON (or JSON-with-comments) config file in place, as text: every
//! other byte stays where it was, comments and key order included. Adding an entry and then
//! removing it gives back the original bytes; `remove` undoes exactly what `upsert` does.
//!
//! The scanner reads JSONC as the hosts do (VS Code, Zed, Gemini CLI): `//` and `/* */`
//! comments, trailing commas. It records where each object member sits; edits are splices.

use anyhow::{Context, bail};
use serde_json::Value;

/// An object's members as they sit in the text.
#[derive(Debug)]
struct Obj {
    /// Byte offset of `{`.
    open: usize,
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    key: String,
    /// Offset of the key's opening quote.
    key_at: usize,
    /// End of the comment or token before the key (where the whitespace before it begins).
    lead: usize,
    value: Span,
    /// Offset of the comma after the value, if any (a trailing comma when last).
    comma: Option<usize>,
}

#[derive(Debug)]
struct Span {
    start: usize,
    end: usize,
    obj: Option<Obj>,
}

struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
    /// End of the last token or comment passed.
    last: usize,
}

impl Scanner<'_> {
    fn fail<T>(&self, what: &str) -> anyhow::Result<T> {
        let line = self.text[..self.at.min(self.text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
        bail!("{what} at line {line}")
    }

    /// Skips whitespace and comments.
    fn skip(&mut self) -> anyhow::Result<()> {
        loop {
            match self.text.get(self.at..self.at + 2) {
                Some(b"//") => {
                    while self.at < self.text.len() && self.text[self.at] != b'\n' {
                        self.at += 1;
                    }
                    self.last = self.at;
                }
                Some(b"/*") => {
                    let Some(end) = self.text[self.at + 2..].windows(2).position(|w| w == b"*/") else {
                        return self.fail("an unclosed /* comment");
                    };
                    self.at += 2 + end + 2;
                    self.last = self.at;
                }
                _ => match self.text.get(self.at) {
                    Some(b) if b.is_ascii_whitespace() => self.at += 1,
                    _ => return Ok(()),
                },
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn string(&mut self) -> anyhow::Result<String> {
        let start = self.at;
        self.at += 1;
        loop {
            match self.peek() {
                None => return self.fail("an unclosed string"),
                Some(b'\\') => self.at += 2,
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(_) => self.at += 1,
            }
        }
        self.last = self.at;
        let raw = std::str::from_utf8(&self.text[start..self.at]).context("a string that is not UTF-8")?;
        serde_json::from_str(raw).or_else(|_| self.fail("a bad string"))
    }

    fn value(&mut self) -> anyhow::Result<Span> {
        self.skip()?;
        let start = self.at;
        let obj = match self.peek() {
            Some(b'{') => Some(self.object()?),
            Some(b'[') => {
                self.at += 1;
                loop {
                    self.skip()?;
                    if self.peek() == Some(b']') {
                        break;
                    }
                    self.value()?;
                    self.skip()?;
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => break,
                        _ => return self.fail("expected `,` or `]`"),
                    }
                }
                self.at += 1;
                None
            }
            Some(b'"') => {
                self.string()?;
                None
            }
            Some(_) => {
                while self.peek().is_some_and(|b| !b",:]}/\"{[".contains(&b) && !b.is_ascii_whitespace()) {
                    self.at += 1;
                }
                let word = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
                if word.is_empty() || serde_json::from_str::<Value>(word).is_err() {
                    return self.fail("an unexpected character");
                }
                None
            }
            None => return self.fail("the end of the file where a value belongs"),
        };
        self.last = self.at;
        Ok(Span { start, end: self.at, obj })
    }

    fn object(&mut self) -> anyhow::Result<Obj> {
        let open = self.at;
        self.at += 1;
        self.last = self.at;
        let mut members = Vec::new();
        loop {
            self.skip()?;
            match self.peek() {
                Some(b'}') => break,
                Some(b'"') => {}
                _ => return self.fail("expected a key or `}`"),
            }
            let lead = self.last;
            let key_at = self.at;
            let key = self.string()?;
            self.skip()?;
            if self.peek() != Some(b':') {
                return self.fail("expected `:`");
            }
            self.at += 1;
            let value = self.value()?;
            self.skip()?;
            let comma = match self.peek() {
                Some(b',') => {
                    self.at += 1;
                    self.last = self.at;
                    Some(self.at - 1)
                }
                Some(b'}') => None,
                _ => return self.fail("expected `,` or `}`"),
            };
            members.push(Member { key, key_at, lead, value, comma });
            if comma.is_none() {
                self.skip()?;
                break;
            }
        }
        self.at += 1;
        Ok(Obj { open, members })
    }
}

/// Parses the whole document; the root must be an object.
fn parse(text: &str) -> anyhow::Result<Obj> {
    let mut s = Scanner { text: text.as_bytes(), at: 0, last: 0 };
    let root = s.value()?;
    s.skip()?;
    if s.at != text.len() {
        return s.fail("text after the end of the document");
    }
    root.obj.context("the document is not an object")
}

/// The value at a span with its comments dropped, for comparison.
fn value_at(text: &str, span: &Span) -> Option<Value> {
    serde_json::from_str(&strip_comments(&text[span.start..span.end])).ok()
}

fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let (mut out, mut i, mut in_string) = (String::with_capacity(text.len()), 0, false);
    while i < b.len() {
        if in_string {
            if b[i] == b'\\' {
                out.push_str(&text[i..(i + 2).min(b.len())]);
                i += 2;
                continue;
            }
            in_string = b[i] != b'"';
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if b[i..].starts_with(b"/*") {
            i = b[i + 2..].windows(2).position(|w| w == b"*/").map_or(b.len(), |p| i + 2 + p + 2);
            continue;
        } else if b[i] == b'"' {
            in_string = true;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The indentation of the line holding `at`, if only whitespace precedes `at` on it.
fn line_indent(text: &str, at: usize) -> Option<&str> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..at];
    before.chars().all(|c| c == ' ' || c == '\t').then_some(before)
}

/// The file's indentation unit: that of the root's first member on its own line.
fn unit(text: &str, root: &Obj) -> String {
    root.members.first().and_then(|m| line_indent(text, m.key_at)).filter(|i| !i.is_empty()).unwrap_or("  ").to_owned()
}

/// `"key": value` rendered at `indent` (None: on one line).
fn render_member(key: &str, value: &Value, indent: Option<&str>, unit: &str) -> String {
    let key = Value::String(key.to_owned()).to_string();
    match indent {
        None => format!("{key}: {value}"),
        Some(indent) => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(value, &mut ser).expect("a JSON value serialises");
            let pretty = String::from_utf8(buf).expect("serde_json writes UTF-8");
            format!("{key}: {}", pretty.replace('\n', &format!("\n{indent}")))
        }
    }
}

/// Where `key: value` goes in `obj`, as splices (offset, text), in ascending order.
fn insert(text: &str, obj: &Obj, key: &str, value: &Value, unit: &str) -> Vec<(usize, String)> {
    let Some(last) = obj.members.last() else {
        // An empty object: the member on its own line, the `}` back at the object's indent.
        let outer = line_indent(text, obj.open).unwrap_or("");
        let inner = format!("{outer}{unit}");
        let member = render_member(key, value, Some(&inner), unit);
        return vec![(obj.open + 1, format!("\n{inner}{member}\n{outer}"))];
    };
    let indent = line_indent(text, last.key_at);
    let member = render_member(key, value, indent, unit);
    // After the last member, its trailing comma, and a `//` comment on the same line.
    let tail = last.comma.map_or(last.value.end, |c| c + 1);
    let rest_of_line = &text[tail..text[tail..].find('\n').map_or(text.len(), |n| tail + n)];
    let at = if rest_of_line.trim_start().starts_with("//") { tail + rest_of_line.len() } else { tail };
    let lead = match indent {
        Some(indent) => format!("\n{indent}"),
        None => " ".to_owned(),
    };
    match last.comma {
        // Keeps the file's trailing-comma style.
        Some(_) => vec![(at, format!("{lead}{member},"))],
        None => vec![(last.value.end, ",".to_owned()), (at, format!("{lead}{member}"))],
    }
}

/// The cuts that take member `i` out of `obj`, as ranges, in ascending order.
fn cut(text: &str, obj: &Obj, i: usize) -> Vec<(usize, usize)> {
    let m = &obj.members[i];
    if i + 1 < obj.members.len() {
        // Not last: the member, its comma and the whitespace up to the next thing.
        let comma = m.comma.expect("a member followed by another has a comma");
        let next = comma + 1 + text[comma + 1..].len() - text[comma + 1..].trim_start().len();
        return vec![(m.key_at, next)];
    }
    if i == 0 {
        // The only member: back to an empty object.
        let end = m.comma.map_or(m.value.end, |c| c + 1);
        let close = end + text[end..].find('}').unwrap_or(0);
        return vec![(obj.open + 1, close)];
    }
    match m.comma {
        Some(c) => vec![(m.lead, c + 1)],
        None => {
            let before = obj.members[i - 1].comma.expect("a member followed by another has a comma");
            vec![(before, before + 1), (m.lead, m.value.end)]
        }
    }
}

fn splice(text: &str, inserts: Vec<(usize, String)>, cuts: Vec<(usize, usize)>) -> String {
    let mut out = text.to_owned();
    for (at, s) in inserts.into_iter().rev() {
        out.insert_str(at, &s);
    }
    for (from, to) in cuts.into_iter().rev() {
        out.replace_range(from..to, "");
    }
    out
}

/// The object at `path` under the root, or the index of the first missing step.
fn walk<'o>(root: &'o Obj, path: &[&str]) -> anyhow::Result<Result<&'o Obj, (usize, &'o Obj)>> {
    let mut obj = root;
    for (depth, step) in path.iter().enumerate() {
        match obj.members.iter().find(|m| m.key == *step) {
            None => return Ok(Err((depth, obj))),
            Some(m) => match &m.value.obj {
                Some(o) => obj = o,
                None => bail!("`{}` is not an object", path[..=depth].join(".")),
            },
        }
    }
    Ok(Ok(obj))
}

/// Sets `path.key` to `value`. `None`: it already is.
pub fn upsert(text: &str, path: &[&str], key: &str, value: &Value) -> anyhow::Result<Option<String>> {
    if text.trim().is_empty() {
        let mut doc = value.clone();
        doc = serde_json::json!({ key: doc });
        for step in path.iter().rev() {
            doc = serde_json::json!({ *step: doc });
        }
        let mut out = serde_json::to_string_pretty(&doc)?;
        out.push('\n');
        return Ok(Some(out));
    }
    let root = parse(text)?;
    let unit = unit(text, &root);
    let (obj, key, value) = match walk(&root, path)? {
        Ok(obj) => {
            if let Some(m) = obj.members.iter().find(|m| m.key == key) {
                if value_at(text, &m.value).as_ref() == Some(value) {
                    return Ok(None);
                }
                // Replace the value in place, at the member's indentation.
                let indent = line_indent(text, m.key_at);
                let member = render_member(key, value, indent, &unit);
                let rendered = &member[member.find(": ").map_or(0, |i| i + 2)..];
                let mut out = text.to_owned();
                out.replace_range(m.value.start..m.value.end, rendered);
                return Ok(Some(out));
            }
            (obj, key.to_owned(), value.clone())
        }
        Err((depth, obj)) => {
            // Build the missing steps as one nested value.
            let mut doc = serde_json::json!({ key: value });
            for step in path[depth + 1..].iter().rev() {
                doc = serde_json::json!({ *step: doc });
            }
            (obj, path[depth].to_owned(), doc)
        }
    };
    Ok(Some(splice(text, insert(text, obj, &key, &value, &unit), vec![])))
}

/// Removes `path.key`; an object at `path` left empty goes too. `None`: there was none.
pub fn remove(text: &str, path: &[&str], key: &str) -> anyhow::Result<Option<String>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let root = parse(text)?;
    let Ok(obj) = walk(&root, path)? else { return Ok(None) };
    let Some(i) = obj.members.iter().position(|m| m.key == key) else { return Ok(None) };
    if obj.members.len() == 1 && !path.is_empty() {
        let parent = walk(&root, &path[..path.len() - 1])?.expect("the parent of a found object exists");
        let j = parent.members.iter().position(|m| m.key == path[path.len() - 1]).expect("found above");
        return Ok(Some(splice(text, vec![], cut(text, parent, j))));
    }
    Ok(Some(splice(text, vec![], cut(text, obj, i))))
}

/// The value at `path.key`, if any.
#[cfg(test)]
pub fn get(text: &str, path: &[&str], key: &str) -> anyhow::Result<Option<Value>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let root = parse(text)?;
    let Ok(obj) = walk(&root, path)? else { return Ok(None) };
    Ok(obj.members.iter().find(|m| m.key == key).and_then(|m| value_at(text, &m.value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(original: &str) -> String {
        let wire = json!({ "command": "/usr/bin/wire", "args": ["mcp"], "env": { "WIRE_HOME": "/h" } });
        let added = upsert(original, &["mcpServers"], "wire", &wire).unwrap().expect("a change");
        assert_eq!(get(&added, &["mcpServers"], "wire").unwrap(), Some(wire.clone()), "{added}");
        assert_eq!(upsert(&added, &["mcpServers"], "wire", &wire).unwrap(), None, "not idempotent:\n{added}");
        let removed = remove(&added, &["mcpServers"], "wire").unwrap().expect("a change");
        assert_eq!(removed, original, "added:\n{added}");
        added
    }

    #[test]
    fn add_then_remove_gives_back_the_bytes() {
        let added = round_trip(
            "{\n  // servers\n  \"mcpServers\": {\n    \"gh\": { \"command\": \"gh\" } // GitHub\n  },\n  \"z\": 1\n}\n",
        );
        assert!(
            added.contains("\"gh\": { \"command\": \"gh\" }, // GitHub\n    \"wire\": {\n      \"args\""),
            "{added}"
        );
        round_trip("{\"numStartups\": 7, \"mcpServers\": {\"github\": {\"command\": \"gh-mcp\", \"args\": []}}}");
        round_trip("{\n\t\"mcpServers\": {\n\t\t\"a\": {},\n\t},\n}\n");
        round_trip("{\n    \"theme\": \"dark\" /* a note */\n}\n");
        round_trip("{\n  \"context\": {\n    \"x\": \"a // not a comment\",\n  }\n}\n");
    }

    #[test]
    fn replaces_a_changed_entry_and_removes_a_first_member() {
        let text = "{ \"mcpServers\": {\n  \"wire\": {\"command\": \"old\"},\n  \"b\": 2\n} }";
        let new = upsert(text, &["mcpServers"], "wire", &json!({"command": "new"})).unwrap().unwrap();
        assert_eq!(get(&new, &["mcpServers"], "wire").unwrap(), Some(json!({"command": "new"})));
        assert!(new.contains("\"b\": 2"), "{new}");
        let gone = remove(&new, &["mcpServers"], "wire").unwrap().unwrap();
        assert_eq!(gone, "{ \"mcpServers\": {\n  \"b\": 2\n} }");
        assert_eq!(upsert("", &["a"], "wire", &json!(1)).unwrap().unwrap(), "{\n  \"a\": {\n    \"wire\": 1\n  }\n}\n");
    }

    #[test]
    fn refuses_what_is_not_an_object_document() {
        for bad in ["[1]", "{ \"a\": }", "{ \"a\": 1 ", "{ /* open", "{\"mcpServers\": 3}"] {
            assert!(upsert(bad, &["mcpServers"], "wire", &json!(1)).is_err(), "{bad}");
        }
    }
}
