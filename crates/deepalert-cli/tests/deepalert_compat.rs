//! A DeepAlert user's pieces under `deepalert serve` (the real binary): an exec inspector
//! that answers in DeepAlert's messages, an alert with an attribute type DeepAlert allows
//! but deepalert does not know, and an emitter that wants DeepAlert's report lifecycle
//! (unreviewed reports as alerts arrive) and the original line's flat sections.

use std::path::{Path, PathBuf};

use deepalert_testkit::{
    Server, ServerSpec, eventually, example, free_port, json_lines, python, repo_root,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");

fn values(log: &Path) -> Vec<String> {
    json_lines(log)
        .iter()
        .map(|a| a["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn deepalert_shaped_inspector_unknown_types_and_report_lifecycle() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let log = |n: &str| dir.path().join(format!("{n}.log"));
    let emitted = dir.path().join("emitted.jsonl");
    let plugin = |name: &str| example(&format!("plugins/{name}")).display().to_string();
    let config = dir.path().join("deepalert.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[pipeline]
inspection_delay = "200ms"
review_delay = "2s"
publish_unreviewed = true
report_sections = "flat"

[[inspector]]
name = "go-style"
command = ["{py}", "{deepalert_style}"]
attribute_types = ["ipaddr", "domain"]
env = {{ INSPECTOR_LOG = "{go_log}" }}

[[inspector]]
name = "typed"
command = ["{py}", "{inspector}"]
attribute_types = ["ipaddr", "username", "filehashvalue"]
env = {{ INSPECTOR_LOG = "{typed_log}" }}

[[inspector]]
name = "catch-all"
command = ["{py}", "{inspector}"]
env = {{ INSPECTOR_LOG = "{all_log}" }}

[[emitter]]
name = "lifecycle"
command = ["{py}", "{emitter}"]
env = {{ EMITTER_OUT = "{emitted}" }}
"#,
            deepalert_style = plugin("deepalert_style_inspector.py"),
            inspector = plugin("inspector.py"),
            emitter = plugin("emitter.py"),
            go_log = log("go").display(),
            typed_log = log("typed").display(),
            all_log = log("all").display(),
            emitted = emitted.display(),
        ),
    )
    .unwrap();
    let data: PathBuf = dir.path().join("data");
    let server = Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&config),
        data: &data,
        port: free_port(),
        api_key: None,
    });

    let alert =
        deepalert_testkit::read_json(&repo_root().join("tests/fixtures/deepalert/alert.json"));
    let (status, receipt) = server.post_alert(&alert);
    assert_eq!(status, 202, "{receipt}");
    let id = receipt["report_id"].as_str().unwrap().to_string();
    let report = server.wait_report(&id, 30, |r| r["status"] == "published");

    // The unknown type is accepted, stored and shown as it came…
    let instance = report["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "instanceid")
        .unwrap_or_else(|| panic!("instanceid attribute kept: {report:#}"));
    assert_eq!(instance["value"], "i-0a1b2c3d4e5f67890");
    assert_eq!(instance["context"], json!(["local", "workload"]));
    // …and sent only to the inspector without a type filter.
    assert!(values(&log("all")).contains(&"i-0a1b2c3d4e5f67890".to_string()));
    assert!(!values(&log("typed")).contains(&"i-0a1b2c3d4e5f67890".to_string()));
    assert!(!values(&log("go")).contains(&"i-0a1b2c3d4e5f67890".to_string()));

    // The DeepAlert-shaped inspector's finding and new attribute, inspected in turn.
    let sections = report["sections"].as_array().unwrap();
    let by = |value: &str, author: &str| {
        sections.iter().any(|s| {
            s["attribute"]["value"] == value
                && s["hosts"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["author"] == author))
        })
    };
    assert!(by("198.51.100.23", "go-style"), "{report:#}");
    assert!(by("c2.example.net", "go-style"), "{report:#}");
    let domain = report["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["value"] == "c2.example.net")
        .expect("new attribute in the report");
    assert_eq!(
        domain["timestamp"], "2026-11-20T03:14:07Z",
        "a new attribute carries its origin's time"
    );
    assert!(values(&log("go")).contains(&"c2.example.net".to_string()));

    // The emitter saw the report unreviewed as the alert arrived, then published, with the
    // original DeepAlert's flat sections.
    assert!(
        eventually(15, || json_lines(&emitted).len() >= 2),
        "{:#?}",
        json_lines(&emitted)
    );
    let lines = json_lines(&emitted);
    let statuses: Vec<&str> = lines
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["new", "published"], "{lines:#?}");
    assert_eq!(lines[0]["result"], json!({"severity": "", "reason": ""}));
    let published = &lines[1];
    let flat: &Vec<Value> = published["sections"].as_array().unwrap();
    assert!(!flat.is_empty());
    assert!(
        flat.iter().all(|s| s["type"].is_string()
            && s["content"].is_object()
            && s["report_id"] == id.as_str()),
        "{flat:#?}"
    );
    assert!(flat.iter().any(|s| s["author"] == "go-style"));
}
