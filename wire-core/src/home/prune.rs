//! `wire prune --before`: drops history older than a time from the inboxes (peers' and
//! rooms', both generations) and the sent logs. With prekeys deleted after their time
//! (docs/THREAT_MODEL.md, "Forward secrecy"), what is pruned here is gone from the home:
//! neither the line nor a key that opens the relay's copy is left.

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::{Home, HomeError, io};
use crate::proto::time::UnixMillis;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Lines removed from inboxes.
    pub inbox_lines: usize,
    /// Lines removed from sent logs.
    pub sent_lines: usize,
    /// Files rewritten.
    pub files: usize,
}

/// Where a prune cuts: an age (`14d`: what is older than that) or a UTC date
/// (`2026-11-01`: what came before its midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Older than this.
    Age(std::time::Duration),
    /// Before this time.
    At(UnixMillis),
}

impl Before {
    /// Parses `14d` (any duration of [`crate::duration::parse`]) or `YYYY-MM-DD` (also a
    /// clap value parser).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let [y, m, d] = text.split('-').collect::<Vec<_>>()[..]
            && y.len() == 4
            && m.len() == 2
            && d.len() == 2
        {
            let num = |t: &str| t.parse::<i64>().map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"));
            let (y, m, d) = (num(y)?, num(m)?, num(d)?);
            if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
                return Err(format!("`{text}` is not a date (YYYY-MM-DD, from 1970)"));
            }
            // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            return Ok(Before::At(UnixMillis(u64::try_from(days * 86_400_000).unwrap_or(0))));
        }
        crate::duration::parse(text)
            .map(Before::Age)
            .map_err(|_| format!("`{text}` is neither an age (14d, 12h) nor a date (YYYY-MM-DD)"))
    }

    /// The cut as a time, at `now`.
    pub fn at(self, now: UnixMillis) -> UnixMillis {
        match self {
            Before::Age(age) => UnixMillis(now.0.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))),
            Before::At(t) => t,
        }
    }
}

/// The time a history line is about: an inbox line's `received_at`, a sent record's `at`.
/// `None` for a line that says neither (kept: pruning never guesses).
fn line_time(line: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if let Some(t) = value.get("received_at").and_then(serde_json::Value::as_u64) {
        return Some(t);
    }
    // A sent record: `{"<kind>": {..., "at": ms}}`.
    value.as_object()?.values().next()?.get("at").and_then(serde_json::Value::as_u64)
}

impl Home {
    /// Removes every inbox and sent-log line older than `before`. Each file is rewritten
    /// atomically (a crash leaves it whole, before or after); an inbox's id index is
    /// dropped with it and rebuilt on the next read. Hold the lock.
    pub fn prune_before(&self, before: UnixMillis) -> Result<Pruned, HomeError> {
        let mut pruned = Pruned::default();
        for (dir, inbox) in [("inbox", true), ("sent", false)] {
            for path in self.list_dir(dir)? {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if !(name.ends_with(".jsonl") || name.ends_with(".jsonl.1")) {
                    continue;
                }
                let removed = self.prune_file(&path, before)?;
                if removed == 0 {
                    continue;
                }
                pruned.files += 1;
                if inbox {
                    pruned.inbox_lines += removed;
                    if name.ends_with(".jsonl") {
                        let index = path.with_extension("ids");
                        match fs::remove_file(&index) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&index)(e)),
                            _ => {}
                        }
                    }
                } else {
                    pruned.sent_lines += removed;
                }
            }
        }
        Ok(pruned)
    }

    fn prune_file(&self, path: &Path, before: UnixMillis) -> Result<usize, HomeError> {
        let text = fs::read_to_string(path).map_err(io(path))?;
        let mut kept = String::with_capacity(text.len());
        let mut removed = 0;
        for line in text.split_inclusive('\n') {
            // A torn last line (a crash mid-append) is kept as it is.
            let old = line.ends_with('\n') && line_time(line.trim_end()).is_some_and(|t| t < before.0);
            if old {
                removed += 1;
            } else {
                kept.push_str(line);
            }
        }
        if removed > 0 {
            crate::files::write_atomic(path, kept.as_bytes(), Some(0o600)).map_err(io(path))?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cuts_are_ages_or_dates() {
        assert_eq!(Before::parse("14d"), Ok(Before::Age(std::time::Duration::from_secs(14 * 86_400))));
        let Ok(Before::At(t)) = Before::parse("2026-12-02") else { panic!("a date") };
        assert_eq!(t.utc(), "2026-12-02 00:00:00");
        assert_eq!(Before::parse("1970-03-01").map(|b| b.at(UnixMillis(0)).utc()), Ok("1970-03-01 00:00:00".into()));
        assert!(Before::parse("2026-13-01").is_err());
        assert!(Before::parse("yesterday").is_err());
        assert_eq!(Before::Age(std::time::Duration::from_secs(1)).at(UnixMillis(5_000)), UnixMillis(4_000));
    }

    #[test]
    fn lines_are_dated_by_receipt_or_record_time_and_undated_lines_stay() {
        assert_eq!(line_time(r#"{"id":"x","received_at":5,"signed":{}}"#), Some(5));
        assert_eq!(line_time(r#"{"relayed":{"id":"x","at":7}}"#), Some(7));
        assert_eq!(line_time(r#"{"other":1}"#), None);
        assert_eq!(line_time("not json"), None);
    }

    #[test]
    fn prune_keeps_newer_lines_and_torn_tails() {
        let root = std::env::temp_dir().join(format!("wire-home-prune-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        fs::create_dir_all(root.join("inbox")).unwrap();
        fs::create_dir_all(root.join("sent")).unwrap();
        let inbox = root.join("inbox/peer.jsonl");
        fs::write(&inbox, "{\"received_at\":1}\n{\"received_at\":9}\n{\"received_at\":2").unwrap();
        fs::write(root.join("inbox/peer.ids"), "cache").unwrap();
        fs::write(root.join("sent/peer.jsonl"), "{\"relayed\":{\"at\":3}}\n{\"relayed\":{\"at\":11}}\n").unwrap();
        let pruned = home.prune_before(UnixMillis(5)).unwrap();
        assert_eq!(pruned, Pruned { inbox_lines: 1, sent_lines: 1, files: 2 });
        assert_eq!(fs::read_to_string(&inbox).unwrap(), "{\"received_at\":9}\n{\"received_at\":2");
        assert!(!root.join("inbox/peer.ids").exists(), "the id index is rebuilt");
        assert_eq!(home.prune_before(UnixMillis(5)).unwrap(), Pruned::default(), "nothing twice");
        fs::remove_dir_all(&root).unwrap();
    }
}
