//! The UI's markup: escaping, the page frame, and the small SVG pictures (QR codes, charts,
//! the mesh graph). Every value that is not a literal of this file goes through [`esc`] (or
//! [`peer`] for text another agent wrote): pages are built with `format!`, so the rule is
//! visible at each interpolation.

use std::fmt::Write as _;

use wire_core::endpoint::Face;

/// Text and attribute values made safe for HTML: the five markup characters as entities.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text another agent wrote: escaped as [`esc`] does, and its control characters (escape
/// sequences, carriage returns, bidi overrides) shown as visible `\u{..}` instead of acting,
/// so a copied message cannot carry them into a terminal. Newlines and tabs stay (the page
/// shows them with `white-space: pre-wrap`).
pub fn peer(text: &str) -> String {
    let inert = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let visible: String =
        text.chars().map(|c| if inert(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect();
    esc(&visible)
}

/// A message body as text: a JSON string as itself, anything else as compact JSON.
pub fn body_text(body: &serde_json::Value) -> String {
    match body {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A face: its colour as a dot (an SVG fill, not a style attribute: the CSP forbids those),
/// the emoji and the nickname.
pub fn face(f: &Face) -> String {
    format!(
        "<span class=\"face\"><svg class=\"dot\" width=\"12\" height=\"12\" aria-hidden=\"true\"><circle cx=\"6\" cy=\"6\" r=\"6\" fill=\"{}\"/></svg> <span aria-hidden=\"true\">{}</span> {}</span>",
        esc(&f.color),
        esc(&f.emoji),
        esc(&f.nickname)
    )
}

/// A time as "N min ago", with the exact time (UTC) in its title.
pub fn ago(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then) / 1000;
    let text = match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    };
    format!("<time title=\"{}\">{text}</time>", esc(&crate::output::time(wire_core::proto::time::UnixMillis(then))))
}

/// One navigation entry.
pub struct Nav<'a> {
    /// Path under the prefix (`""` for Me).
    pub path: &'a str,
    /// What it is called.
    pub label: &'a str,
}

/// The views, in the order of the navigation.
pub const VIEWS: &[Nav<'static>] = &[
    Nav { path: "", label: "Me" },
    Nav { path: "peers", label: "Peers" },
    Nav { path: "pairing", label: "Pairing" },
    Nav { path: "rooms", label: "Rooms" },
    Nav { path: "jobs", label: "Jobs" },
    Nav { path: "mesh", label: "Mesh" },
    Nav { path: "relay", label: "Relay" },
];

/// What a page frame needs besides its content.
pub struct Frame<'a> {
    /// The random path prefix, with its leading slash.
    pub prefix: &'a str,
    /// The navigation entry this page belongs to.
    pub section: &'a str,
    /// The page's title (already escaped).
    pub title: &'a str,
    /// The acting identity's face, when it has one.
    pub me: Option<&'a Face>,
    /// This machine's sessions (name, current) for the switcher.
    pub sessions: &'a [(String, bool)],
    /// A notice from the last act: (is it an error, text already escaped).
    pub notice: Option<(bool, String)>,
}

/// A whole page: head, navigation, the session switcher, then `live` (re-rendered when
/// something changes) and `forms` (left alone so typing is not lost).
pub fn page(frame: &Frame<'_>, live: &str, forms: &str) -> String {
    let p = frame.prefix;
    let mut out = String::with_capacity(live.len() + forms.len() + 4096);
    let who = frame.me.map(|f| esc(&f.nickname)).unwrap_or_else(|| "no identity".to_owned());
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · {who} · wire</title>\
<link rel=\"stylesheet\" href=\"{p}/static/ui.css\"><script src=\"{p}/static/ui.js\" defer></script></head>\
<body data-events=\"{p}/events\">\
<a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><p class=\"brand\">wire</p>",
        title = frame.title,
    );
    if let Some(me) = frame.me {
        let _ = write!(out, "<p class=\"acting\">acting as {}</p>", face(me));
    }
    out.push_str("<nav aria-label=\"Views\"><ul>");
    for view in VIEWS {
        let current = if view.path == frame.section { " aria-current=\"page\"" } else { "" };
        let _ = write!(out, "<li><a href=\"{p}/{}\"{current}>{}</a></li>", view.path, view.label);
    }
    out.push_str("</ul></nav>");
    if frame.sessions.len() > 1 {
        let _ = write!(
            out,
            "<form class=\"switch\" method=\"post\" action=\"{p}/switch\"><label for=\"session\">Session</label> <select id=\"session\" name=\"session\">"
        );
        for (name, current) in frame.sessions {
            let selected = if *current { " selected" } else { "" };
            let shown = if name.is_empty() { "this home" } else { name.as_str() };
            let _ = write!(out, "<option value=\"{}\"{selected}>{}</option>", esc(name), esc(shown));
        }
        out.push_str("</select> <button type=\"submit\">Switch</button></form>");
    }
    out.push_str("</header><p id=\"link\" class=\"link\" role=\"status\" hidden></p><main id=\"main\">");
    let _ = write!(out, "<h1>{}</h1>", frame.title);
    if let Some((error, text)) = &frame.notice {
        let (class, role) = if *error { ("notice error", "alert") } else { ("notice", "status") };
        let _ = write!(out, "<p class=\"{class}\" role=\"{role}\">{text}</p>");
    }
    let _ = writeln!(out, "<div id=\"live\">{live}</div>{forms}</main></body></html>");
    out
}

/// A QR code of `text` as inline SVG (dark modules as one path), or nothing when the text
/// is too long for a QR code.
pub fn qr(text: &str, label: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else { return String::new() };
    let width = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let _ = write!(path, "M{} {}h1v1h-1z", i % width + quiet, i / width + quiet);
        }
    }
    format!(
        "<svg class=\"qr\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {size} {size}\" width=\"220\" height=\"220\" shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>",
        esc(label)
    )
}

/// A small line chart of `points` (oldest first) with its label and latest value.
pub fn chart(label: &str, unit: &str, points: &[f64]) -> String {
    let (w, h) = (240.0_f64, 60.0_f64);
    let max = points.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let step = if points.len() > 1 { w / (points.len() - 1) as f64 } else { 0.0 };
    let mut line = String::new();
    for (i, v) in points.iter().enumerate() {
        let _ = write!(
            line,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            i as f64 * step,
            h - v / max * (h - 4.0) - 2.0
        );
    }
    let last = points.last().map_or_else(|| "no data yet".to_owned(), |v| format!("{} {unit}", round(*v)));
    format!(
        "<figure class=\"chart\"><svg role=\"img\" aria-label=\"{label}: {last}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\"><rect width=\"{w}\" height=\"{h}\" fill=\"#f4f6f8\"/><path d=\"{line}\" fill=\"none\" stroke=\"#0b5cad\" stroke-width=\"2\"/></svg><figcaption>{label}: <strong>{last}</strong></figcaption></figure>",
        label = esc(label),
        last = esc(&last),
    )
}

fn round(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// A graph of `nodes` on a circle with `edges` between them (indexes into `nodes`); the
/// node's label and whether it is silent.
pub fn graph(nodes: &[(String, bool)], edges: &[(usize, usize)]) -> String {
    let (size, r) = (360.0_f64, 130.0_f64);
    let c = size / 2.0;
    let at = |i: usize| {
        let a = std::f64::consts::TAU * i as f64 / nodes.len().max(1) as f64 - std::f64::consts::FRAC_PI_2;
        (c + r * a.cos(), c + r * a.sin())
    };
    let mut out = format!(
        "<svg class=\"graph\" role=\"img\" aria-label=\"Sessions on this machine and who is paired with whom\" viewBox=\"0 0 {size} {size}\" width=\"{size}\" height=\"{size}\">"
    );
    for (a, b) in edges {
        let ((x1, y1), (x2, y2)) = (at(*a), at(*b));
        let _ = write!(
            out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#5a6b7b\" stroke-width=\"2\"/>"
        );
    }
    for (i, (label, silent)) in nodes.iter().enumerate() {
        let (x, y) = at(i);
        let fill = if *silent { "#b3261e" } else { "#0b5cad" };
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"9\" fill=\"{fill}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#1b1f23\" font-size=\"13\">{}</text>",
            y + 24.0,
            esc(label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_come_out_inert() {
        let text = "<script>alert(1)</script>\u{1b}[2J\u{202e}\"'&\nnext";
        let out = peer(text);
        assert!(!out.contains('<') && !out.contains('>') && !out.contains('"') && !out.contains('\''));
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}'));
        assert!(out.contains("&lt;script&gt;") && out.contains("\\u{1b}[2J") && out.contains("\\u{202e}"));
        assert!(out.contains("&amp;") && out.contains("\nnext"));
    }

    #[test]
    fn a_qr_code_has_modules_and_a_too_long_text_has_none() {
        let svg = qr("wire://invite?x=1", "invite");
        assert!(svg.starts_with("<svg") && svg.contains("h1v1h-1z"));
        assert_eq!(qr(&"x".repeat(8000), "too long"), "");
    }
}
