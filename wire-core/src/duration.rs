//! Human durations (command-line flags, MCP tool arguments): `90s`, `30m`, `12h`, `14d`, or plain seconds.

use std::time::Duration;

/// Parses a duration (also a clap value parser).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration (examples: 90s, 30m, 12h, 14d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}` in `{text}`: use s, m, h or d")),
    };
    let secs = n.checked_mul(scale).ok_or_else(|| format!("`{text}` is too long"))?;
    if secs == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse("3w").is_err());
        assert!(parse("h").is_err());
        assert!(parse("0s").is_err());
        assert!(parse("99999999999999999d").is_err());
    }
}
