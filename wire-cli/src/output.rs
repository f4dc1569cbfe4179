//! Human output: faces in their colour (off with NO_COLOR or when stdout is not a
//! terminal), times in UTC. `--json` output bypasses all of this.

use std::io::IsTerminal;

use serde::Serialize;
use wire_core::endpoint::Face;
use wire_core::proto::time::UnixMillis;

/// Whether to colour stdout.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// `error:`, in red on a terminal (stderr's, with NO_COLOR honoured).
pub fn error_label() -> &'static str {
    let tty = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal();
    if tty { "\x1b[1;31merror:\x1b[0m" } else { "error:" }
}

/// A command line that parsed but cannot be carried out as given: exit code 2 and code
/// `usage`, like the parser's own refusals; nothing was changed.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A command that found something to report and has printed it (`wire doctor`): exit code 1,
/// and nothing more is printed.
#[derive(Debug)]
pub struct Findings;

impl std::fmt::Display for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("findings reported")
    }
}

impl std::error::Error for Findings {}

/// `emoji nickname`, coloured.
pub fn face(f: &Face) -> String {
    if color() {
        format!("\x1b[38;5;{}m{} {}\x1b[0m", f.ansi256, f.emoji, f.nickname)
    } else {
        format!("{} {}", f.emoji, f.nickname)
    }
}

/// Text another agent wrote (or chose, like a rejection reason quoting it), made inert for
/// a terminal: control characters (escape sequences, carriage returns, bidi overrides) are
/// shown escaped instead of acting.
pub fn untrusted(text: &str) -> String {
    let inert = |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    text.chars().map(|c| if inert(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// Peer text that may span lines: each line made inert, continuation lines indented under a
/// bar, so a newline in a body cannot forge a line of our own output.
pub fn untrusted_block(text: &str) -> String {
    text.split('\n').map(untrusted).collect::<Vec<_>>().join("\n    | ")
}

/// The columns a string takes on a terminal: colour codes none, wide characters (the
/// emoji of faces) two, joiners and variation selectors none.
pub fn width(s: &str) -> usize {
    let mut cols = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: up to and including the final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\u{200d}' | '\u{fe00}'..='\u{fe0f}' => {}
            '\u{1100}'..='\u{115f}' | '\u{2e80}'..='\u{a4cf}' | '\u{ac00}'..='\u{d7a3}' | '\u{f900}'..='\u{faff}' => {
                cols += 2
            }
            '\u{1f000}'..='\u{1faff}' | '\u{2600}'..='\u{27bf}' => cols += 2,
            _ => cols += 1,
        }
    }
    cols
}

/// Rows as aligned columns, two spaces apart (the last column is not padded).
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| width(c)).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[i] - width(cell) + 2));
                }
            }
            line.truncate(line.trim_end().len());
            line
        })
        .collect()
}

/// A time for people: `YYYY-MM-DD HH:MM:SS UTC`.
pub fn when(t: UnixMillis) -> String {
    t.to_string()
}

/// Prints a value as one line of JSON on stdout.
pub fn json(value: &impl Serialize) {
    println!("{}", serde_json::to_string(value).expect("output types serialize"));
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(t: UnixMillis) -> String {
    t.utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_is_inert_on_a_terminal() {
        assert_eq!(untrusted("plain text, émoji 🦊"), "plain text, émoji 🦊");
        assert_eq!(untrusted("\x1b[2Jgone\r"), "\\u{1b}[2Jgone\\u{d}");
        assert_eq!(untrusted("a\u{202e}b"), "a\\u{202e}b", "a bidi override is shown, not obeyed");
        assert_eq!(untrusted_block("one\ntwo\r\nthree"), "one\n    | two\\u{d}\n    | three");
    }

    #[test]
    fn utc_times() {
        assert_eq!(time(UnixMillis(0)), "1970-01-01 00:00:00");
        assert_eq!(when(UnixMillis(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(UnixMillis(1_790_000_000_000)), "2026-09-21 14:13:20");
        assert_eq!(time(UnixMillis(951_782_400_000)), "2000-02-29 00:00:00");
    }

    #[test]
    fn tables_align_on_what_the_terminal_shows() {
        assert_eq!(width("\x1b[38;5;68m🐖 legal-kiln\x1b[0m"), 13);
        let rows = vec![
            vec!["🐖 legal-kiln".to_owned(), "TOFU".to_owned(), "x".to_owned()],
            vec!["\x1b[1m🦊 ox\x1b[0m".to_owned(), "VERIFIED".to_owned(), "y".to_owned()],
        ];
        let lines = table(&rows);
        assert_eq!(lines[0], "🐖 legal-kiln  TOFU      x");
        assert_eq!(lines[1], "\x1b[1m🦊 ox\x1b[0m          VERIFIED  y");
    }
}
