//! End to end against the real `deepalert` binary, with the example exec plug-ins.

use std::path::{Path, PathBuf};
use std::process::Command;

use deepalert_testkit::{Server, ServerSpec, example, free_port, json_lines, python, read_json};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    inspector_log: PathBuf,
    emitted: PathBuf,
}

/// A config wiring the example inspector, reviewer and emitter, with short delays.
fn setup(inspection_delay: &str, review_delay: &str) -> Setup {
    let py = python();
    let dir = tempfile::tempdir().expect("tempdir");
    let inspector_log = dir.path().join("inspector.log");
    let emitted = dir.path().join("emitted.jsonl");
    let plugin = |name: &str| example(&format!("plugins/{name}")).display().to_string();
    let config = dir.path().join("deepalert.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[pipeline]
inspection_delay = "{inspection_delay}"
review_delay = "{review_delay}"

[[inspector]]
name = "example-intel"
command = ["{py}", "{inspector}"]
env = {{ INSPECTOR_LOG = "{log}" }}

[reviewer]
command = ["{py}", "{reviewer}"]

[[emitter]]
name = "jsonl"
command = ["{py}", "{emitter}"]
env = {{ EMITTER_OUT = "{emitted}" }}
"#,
            inspector = plugin("inspector.py"),
            reviewer = plugin("reviewer.py"),
            emitter = plugin("emitter.py"),
            log = inspector_log.display(),
            emitted = emitted.display(),
        ),
    )
    .expect("write config");
    Setup {
        data: dir.path().join("data"),
        _dir: dir,
        config,
        inspector_log,
        emitted,
    }
}

fn start(s: &Setup, api_key: Option<&str>) -> Server {
    Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&s.config),
        data: &s.data,
        port: free_port(),
        api_key,
    })
}

/// How many times the inspector was handed an attribute with this value.
fn inspected(log: &Path, value: &str) -> usize {
    json_lines(log)
        .iter()
        .filter(|a| a["value"] == value)
        .count()
}

fn section<'a>(report: &'a Value, value: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["attribute"]["value"] == value))
        .unwrap_or_else(|| panic!("no section for {value} in {report:#}"))
}

fn emitted_for(path: &Path, id: &str) -> Vec<Value> {
    json_lines(path)
        .into_iter()
        .filter(|r| r["id"] == id)
        .collect()
}

#[test]
fn alert_is_inspected_reviewed_and_emitted() {
    let s = setup("300ms", "2s");
    let server = start(&s, None);

    let first = read_json(&example("alerts/guardduty-ssh-bruteforce.json"));
    let (status, receipt) = server.post_alert(&first);
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["status"], "new");
    let id = receipt["report_id"]
        .as_str()
        .expect("report_id")
        .to_string();

    // Same AlertID (detector, rule_id, alert_key): joins the report. One repeated
    // attribute (context in another order), one new.
    let more = read_json(&example("alerts/guardduty-ssh-bruteforce-more.json"));
    let (status, receipt) = server.post_alert(&more);
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["status"], "more");
    assert_eq!(receipt["report_id"], id.as_str());

    let report = server.wait_report(&id, 30, |r| r["status"] == "published");

    // The example inspector's findings are in the report.
    let remote = section(&report, "198.51.100.23");
    assert_eq!(remote["hosts"][0]["author"], "example-intel");
    assert_eq!(
        remote["hosts"][0]["activities"][0]["service_name"],
        "threat-list"
    );
    let local = section(&report, "10.0.1.23");
    assert_eq!(local["hosts"][0]["hostname"], json!(["web-1"]));
    // …including about the attribute it returned (the host owner), inspected in turn.
    let owner = section(&report, "alice");
    assert_eq!(owner["attribute"]["type"], "username");
    assert_eq!(owner["users"][0]["activities"][0]["action"], "ConsoleLogin");
    assert!(
        report["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["value"] == "alice"),
        "new attribute listed in the report: {report:#}"
    );

    // Each attribute was inspected exactly once: repeated ones are not sent again.
    for value in ["198.51.100.23", "10.0.1.23", "198.51.100.99", "alice"] {
        assert_eq!(inspected(&s.inspector_log, value), 1, "{value} inspections");
    }
    assert_eq!(report["alerts"].as_array().unwrap().len(), 2);

    // The reviewer's verdict is in the published report…
    assert_eq!(report["result"]["severity"], "urgent");
    assert!(
        report["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("web-1"),
        "{}",
        report["result"]
    );
    assert_eq!(report["publications"], 1);

    // …and the emitter received that published report, once.
    assert!(deepalert_testkit::eventually(10, || emitted_for(
        &s.emitted, &id
    )
    .len()
        == 1));
    let got = &emitted_for(&s.emitted, &id)[0];
    assert_eq!(got["status"], "published");
    assert_eq!(got["result"]["severity"], "urgent");
    assert_eq!(got["sections"], report["sections"]);

    // A late alert joining the published report gets it reviewed and published again;
    // only its new attribute is inspected.
    let mut late = more.clone();
    late["attributes"] = json!([
        {"type": "ipaddr", "key": "remote address", "value": "198.51.100.23", "context": ["remote", "client"]},
        {"type": "ipaddr", "key": "remote address", "value": "192.0.2.200", "context": ["remote", "client"]}
    ]);
    late["description"] = json!("late alert");
    let (status, receipt) = server.post_alert(&late);
    assert_eq!(
        (status, receipt["report_id"].as_str()),
        (202, Some(id.as_str()))
    );
    let report = server.wait_report(&id, 30, |r| {
        r["publications"] == 2 && r["status"] == "published"
    });
    assert_eq!(report["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(inspected(&s.inspector_log, "192.0.2.200"), 1);
    assert_eq!(inspected(&s.inspector_log, "198.51.100.23"), 1);
    assert!(deepalert_testkit::eventually(10, || emitted_for(
        &s.emitted, &id
    )
    .len()
        == 2));
    let second = &emitted_for(&s.emitted, &id)[1];
    assert_eq!(second["publications"], 2);
    assert_eq!(second["alerts"].as_array().unwrap().len(), 3);

    // An unrelated alert makes its own report.
    let login = read_json(&example("alerts/console-login.json"));
    let (_, receipt) = server.post_alert(&login);
    assert_eq!(receipt["status"], "new");
    assert_ne!(receipt["report_id"], id.as_str());
}

#[test]
fn redelivered_alert_is_stored_once() {
    let s = setup("200ms", "1s");
    let server = start(&s, None);
    let alert = read_json(&example("alerts/console-login.json"));
    let (_, a) = server.post_alert(&alert);
    let (status, b) = server.post_alert(&alert);
    assert_eq!(status, 202);
    assert_eq!(a["report_id"], b["report_id"]);
    assert_eq!(b["duplicate"], true);
    let id = a["report_id"].as_str().unwrap();
    let report = server.wait_report(id, 30, |r| r["status"] == "published");
    assert_eq!(report["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(inspected(&s.inspector_log, "alice"), 1);
    assert_eq!(inspected(&s.inspector_log, "203.0.113.77"), 1);
    assert!(deepalert_testkit::eventually(10, || emitted_for(
        &s.emitted, id
    )
    .len()
        == 1));
}

#[test]
fn pending_review_survives_a_crash_and_publishes_once() {
    let s = setup("100ms", "3s");
    let mut server = start(&s, None);
    let alert = read_json(&example("alerts/guardduty-ssh-bruteforce.json"));
    let (_, receipt) = server.post_alert(&alert);
    let id = receipt["report_id"].as_str().unwrap().to_string();
    // Inspected, now waiting on its review delay.
    let report = server.wait_report(&id, 20, |r| {
        r["sections"].as_array().is_some_and(|s| s.len() >= 2)
    });
    assert_ne!(report["status"], "published");
    server.kill();
    assert!(emitted_for(&s.emitted, &id).is_empty());

    let server = start(&s, None);
    let report = server.wait_report(&id, 30, |r| r["status"] == "published");
    assert_eq!(report["publications"], 1);
    assert_eq!(report["result"]["severity"], "urgent");
    assert!(deepalert_testkit::eventually(10, || emitted_for(
        &s.emitted, &id
    )
    .len()
        == 1));
    // Nothing more arrives later: published once.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(emitted_for(&s.emitted, &id).len(), 1);
    assert_eq!(server.report(&id)["publications"], 1);
}

#[test]
fn alert_accepted_just_before_a_crash_is_not_lost() {
    let s = setup("1s", "500ms");
    let mut server = start(&s, None);
    let (status, receipt) = server.post_alert(&read_json(&example("alerts/console-login.json")));
    assert_eq!(status, 202);
    server.kill(); // before its inspection delay elapsed
    let id = receipt["report_id"].as_str().unwrap().to_string();
    let server = start(&s, None);
    let report = server.wait_report(&id, 30, |r| r["status"] == "published");
    assert_eq!(
        section(&report, "alice")["users"][0]["author"],
        "example-intel"
    );
}

#[test]
fn bad_input_is_refused_clearly_and_stores_nothing() {
    let s = setup("100ms", "500ms");
    let key = "s3cret-test-key";
    let server = start(&s, Some(key));
    let valid = read_json(&example("alerts/console-login.json"));
    let url = format!("{}/api/v1/alerts", server.base);
    let client = deepalert_testkit::http();

    // Missing and wrong key.
    let resp = client.post(&url).json(&valid).send().unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );
    let resp = client
        .post(&url)
        .bearer_auth("nope")
        .json(&valid)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client
        .get(format!("{}/api/v1/reports", server.base))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401, "reports need the key too");

    // Malformed JSON: 400 naming the parse error.
    let (status, body) = server.post_alert_bytes(b"{\"detector\": \"x\", ".to_vec());
    assert_eq!(status, 400);
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("invalid alert JSON") && msg.contains("line 1"),
        "{msg}"
    );

    // Wrong type of a field: the path is named.
    let mut bad = valid.clone();
    bad["attributes"][1]["type"] = json!(4);
    let (status, body) = server.post_alert(&bad);
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("attributes[1].type"),
        "{body}"
    );

    // A limit violated: 400 naming the field and the limit.
    let mut bad = valid.clone();
    bad["rule_id"] = json!("r".repeat(1025));
    let (status, body) = server.post_alert(&bad);
    assert_eq!(status, 400);
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("rule_id") && msg.contains("1024"), "{msg}");

    let mut bad = valid.clone();
    bad["detector"] = json!("");
    let (status, body) = server.post_alert(&bad);
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("detector"),
        "{body}"
    );

    // Over 1 MiB: 413.
    let mut huge = valid.clone();
    huge["body"] = json!({"blob": "x".repeat(1024 * 1024 + 1)});
    let (status, body) = server.post_alert(&huge);
    assert_eq!(status, 413, "{body}");

    // Nothing was stored.
    let (_, list) = server.get("/api/v1/reports");
    assert_eq!(list["reports"], json!([]), "{list}");

    // Bad queries.
    assert_eq!(server.get("/api/v1/reports?status=closed").0, 400);
    assert_eq!(server.get("/api/v1/reports?limit=0").0, 400);
    assert_eq!(server.get("/api/v1/reports/not-a-uuid").0, 400);
    assert_eq!(
        server
            .get("/api/v1/reports/6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11")
            .0,
        404
    );

    // And the server still serves.
    let (status, receipt) = server.post_alert(&valid);
    assert_eq!(status, 202, "{receipt}");
    let (_, list) = server.get("/api/v1/reports");
    assert_eq!(list["reports"].as_array().unwrap().len(), 1);
    assert_eq!(list["reports"][0]["id"], receipt["report_id"]);
    let (_, health) = server.get("/healthz");
    assert_eq!(health["status"], "ok");
}

#[test]
fn refuses_to_listen_publicly_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path())
        .env_remove("DEEPALERT_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without an API key"),
        "{err}"
    );
}

#[test]
fn bad_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[[inspector]]\nname = \"x\"\ncommand = []\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inspector[0].command"), "{err}");
}

#[test]
fn cli_send_and_reports() {
    let s = setup("100ms", "500ms");
    let server = start(&s, Some("k"));
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--server", &server.base])
            .env("DEEPALERT_API_KEY", "k")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let alert = example("alerts/console-login.json").display().to_string();
    let (ok, stdout, stderr) = run(&["send", &alert]);
    assert!(ok, "{stderr}");
    let id = stdout
        .split_whitespace()
        .nth(2)
        .expect("`FILE: report ID (status)`")
        .to_string();
    assert!(stdout.contains("(new)"), "{stdout}");
    server.wait_report(&id, 30, |r| r["status"] == "published");

    let (ok, stdout, _) = run(&["reports", "list", "--status", "published"]);
    assert!(ok);
    assert!(
        stdout.contains(&id) && stdout.contains("unclassified"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&["reports", "show", &id]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());

    // A file that is not JSON fails with its name, and the others are still sent.
    let bad = s.data.with_extension("bad.json");
    std::fs::write(&bad, "{").unwrap();
    let (ok, _, stderr) = run(&["send", bad.to_str().unwrap(), &alert]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.json") && stderr.contains("invalid JSON"),
        "{stderr}"
    );
}

/// A plug-in cannot take the server down: an inspector printing without end is killed at
/// `max_plugin_output`, one answering too many findings is cut to
/// `max_findings_per_answer`; both are noted on the report, which is still published.
#[test]
fn endless_or_huge_plugin_output_is_capped_and_noted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("endless.sh"),
        "#!/bin/sh\ncat >/dev/null\nyes '{\"findings\": [' \n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("many.sh"),
        "#!/bin/sh\ncat >/dev/null\npython3 -c 'import json; print(json.dumps({\"findings\": [{\"type\": \"host\", \"content\": {\"hostname\": [\"h%d\" % i]}} for i in range(5000)]}))'\n",
    )
    .unwrap();
    for f in ["endless.sh", "many.sh"] {
        std::fs::set_permissions(
            dir.path().join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let config = dir.path().join("deepalert.toml");
    std::fs::write(
        &config,
        r#"
[pipeline]
inspection_delay = "0s"
review_delay = "2s"
max_plugin_output = 1048576
max_findings_per_answer = 100

[[inspector]]
name = "endless"
command = ["./endless.sh"]
timeout = "60s"

[[inspector]]
name = "many"
command = ["./many.sh"]
"#,
    )
    .unwrap();
    let server = Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&config),
        data: &dir.path().join("data"),
        port: free_port(),
        api_key: None,
    });
    let (status, receipt) = server.post_alert(&json!({
        "detector": "test", "rule_id": "r", "alert_key": "k",
        "attributes": [{"type": "ipaddr", "key": "src", "value": "198.51.100.1", "context": ["remote"]}]
    }));
    assert_eq!(status, 202, "{receipt}");
    let id = receipt["report_id"].as_str().unwrap();
    let report = server.wait_report(id, 60, |r| r["status"] == "published");
    let notes: Vec<String> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{}: {}", n["author"], n["message"]))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("endless") && n.contains("printed more than 1048576 bytes")),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("many")
            && n.contains("5000 findings in one answer: the first 100 kept, 4900 dropped")),
        "{notes:#?}"
    );
    let hosts = report["sections"][0]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 100, "the first 100 findings kept");
    // The figure for the closing note; memory targets are the bench's business.
    eprintln!(
        "server RSS after the endless plug-in: {:?} KiB",
        server.rss_kib()
    );
}

/// The data directory's lock refuses a second server before it touches the database; many
/// clients sending the same alert at once make exactly one report.
#[test]
fn one_server_per_data_directory_and_one_report_per_alert_id() {
    let s = setup("1s", "1s");
    let server = start(&s, None);
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data")
        .arg(&s.data)
        .arg("--config")
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another deepalert is already using"), "{err}");

    let alert = json!({
        "detector": "test", "rule_id": "same", "alert_key": "same-key",
        "attributes": [{"type": "ipaddr", "key": "src", "value": "198.51.100.7", "context": ["remote"]}]
    });
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let (status, receipt) = server.post_alert(&alert);
                    assert_eq!(status, 202, "{receipt}");
                    receipt["report_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let report = server.wait_report(&ids[0], 30, |r| r["status"] == "published");
    assert_eq!(report["alerts"].as_array().unwrap().len(), 1, "stored once");
    let (_, list) = server.get("/api/v1/reports?limit=100");
    assert_eq!(list["reports"].as_array().unwrap().len(), 1, "{list}");
}
