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

/// Prints a value as one line of JSON on stdout.
pub fn json(value: &impl Serialize) {
    println!("{}", serde_json::to_string(value).expect("output types serialize"));
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(t: UnixMillis) -> String {
    let secs = t.0 / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
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
        assert_eq!(time(UnixMillis(1_790_000_000_000)), "2026-09-21 14:13:20");
        assert_eq!(time(UnixMillis(951_782_400_000)), "2000-02-29 00:00:00");
    }
}
