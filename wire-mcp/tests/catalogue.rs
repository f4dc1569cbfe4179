//! The tool catalogue is an interface agents and hosts depend on: names, descriptions and
//! schemas are pinned here. After a deliberate change, regenerate the file with
//! `WIRE_UPDATE_GOLDEN=1 cargo test -p wire-mcp --test catalogue` and review the diff.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn the_catalogue_matches_the_golden_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tools.json");
    let now = serde_json::to_string_pretty(&wire_mcp::catalogue()).unwrap() + "\n";
    if std::env::var_os("WIRE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let pinned = std::fs::read_to_string(&path).unwrap();
    assert!(pinned == now, "the tool catalogue changed; see this file's header to update {}", path.display());
}

#[test]
fn names_are_wire_verbs_and_every_schema_is_a_closed_object() {
    let tools = wire_mcp::catalogue();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), tools.len(), "duplicate tool names");
    for t in &tools {
        assert!(
            t.name.starts_with("wire_") && t.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{}",
            t.name
        );
        assert!(t.description.as_deref().is_some_and(|d| d.len() > 30), "{} needs a real description", t.name);
        assert_eq!(t.input_schema.get("type").and_then(|v| v.as_str()), Some("object"));
        assert_eq!(t.input_schema.get("additionalProperties"), Some(&serde_json::Value::Bool(false)));
    }
    let confirm = tools.iter().find(|t| t.name == "wire_pair_confirm").unwrap();
    let text = confirm.description.as_deref().unwrap();
    assert!(text.contains("OTHER") && text.contains("never guess"), "{text}");
    let send = tools.iter().find(|t| t.name == "wire_send").unwrap();
    let props = send.input_schema["properties"].as_object().unwrap();
    assert!(props.contains_key("peer") && props.contains_key("body") && props.contains_key("kind"));
    assert_eq!(send.input_schema["required"], serde_json::json!(["peer", "body"]));
}
