//! Cloud events into the real `deepalert serve` (examples/cloud.toml): the events API, a
//! CloudTrail log file with a bad record, `deepalert events send` with a gzipped file,
//! `deepalert rules test|eval`, and a Rego rule that does not parse.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use deepalert_testkit::{Server, ServerSpec, example, free_port, read_json, repo_root};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");

fn event(name: &str) -> Value {
    read_json(&repo_root().join("tests/fixtures/events").join(name))
}

/// examples/cloud.toml, copied with its lists, policies and rules so its relative paths
/// resolve and its emitter writes into the temporary directory.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["lists", "policies", "rules", "rules/tests"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for f in std::fs::read_dir(example(sub)).unwrap().flatten() {
            if f.path().is_file() {
                std::fs::copy(f.path(), dir.path().join(sub).join(f.file_name())).unwrap();
            }
        }
    }
    let config = dir.path().join("cloud.toml");
    std::fs::copy(example("cloud.toml"), &config).unwrap();
    (dir, config)
}

fn start(config: &Path, data: &Path) -> Server {
    Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(config),
        data,
        port: free_port(),
        api_key: None,
    })
}

#[test]
fn an_event_becomes_a_published_report_inspected_by_the_threat_list() {
    let (dir, config) = setup();
    let server = start(&config, &dir.path().join("data"));

    let (status, body) = server.post_bytes(
        "/api/v1/events",
        serde_json::to_vec(&event("signin-alice.json")).unwrap(),
    );
    assert_eq!(status, 202, "{body}");
    let alerts = body["alerts"].as_array().unwrap();
    let rules: Vec<&str> = alerts
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        vec!["suspicious-login-hour", "suspicious-login-ip"],
        "{body}"
    );
    assert!(
        alerts
            .iter()
            .all(|a| a["detector"] == "aws-cloudtrail" && a["alert_key"] == "alice")
    );
    let id = alerts[1]["report_id"].as_str().unwrap().to_string();

    let report = server.wait_report(&id, 30, |r| r["status"] == "published");
    let alert = &report["alerts"][0];
    assert_eq!(
        alert["timestamp"], "2026-11-20T02:14:00Z",
        "the event's own time"
    );
    assert_eq!(alert["body"]["account"], "123456789012");
    let ip = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["attribute"]["value"] == "198.51.100.23")
        .unwrap_or_else(|| panic!("the source address was inspected: {report:#}"));
    assert_eq!(ip["hosts"][0]["author"], "blocklists");
    assert_eq!(
        ip["hosts"][0]["activities"][0]["service_name"],
        "threat-list"
    );
    // The example policies: a threat-listed address, but no host of ours.
    assert_eq!(report["result"]["severity"], "unclassified", "{report:#}");
    assert!(
        report["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("threat-listed 198.51.100.23"),
        "{report:#}"
    );

    // The same event again: stored once.
    let (status, again) = server.post_bytes(
        "/api/v1/events",
        serde_json::to_vec(&event("signin-alice.json")).unwrap(),
    );
    assert_eq!(status, 202);
    assert_eq!(again["alerts"][1]["report_id"], id.as_str());
}

#[test]
fn documents_of_events_good_and_bad() {
    let (dir, config) = setup();
    let server = start(&config, &dir.path().join("data"));
    let post = |v: Vec<u8>| server.post_bytes("/api/v1/events", v);

    // A CloudTrail log file: the bad record is named, the others' alerts are stored.
    let (status, body) = post(serde_json::to_vec(&event("cloudtrail-log.json")).unwrap());
    assert_eq!(status, 202, "{body}");
    let rules: Vec<&str> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        vec!["root-login", "non-compliant-user-created"],
        "{body}"
    );
    assert_eq!(body["errors"][0]["event"], 1);
    assert!(
        body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not a CloudTrail record")
    );

    // An array of events: GuardDuty's, Security Hub's.
    let (status, body) = post(
        serde_json::to_vec(&json!([
            event("guardduty-ssh-bruteforce.json"),
            event("securityhub-network.json")
        ]))
        .unwrap(),
    );
    assert_eq!(status, 202, "{body}");
    let detectors: Vec<&str> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["detector"].as_str().unwrap())
        .collect();
    assert_eq!(detectors, vec!["aws-guardduty", "aws-securityhub"]);

    // No rule matched: 200, nothing stored.
    let mut quiet = event("signin-alice.json");
    quiet["detail"]["eventName"] = json!("SwitchRole");
    let (status, body) = post(serde_json::to_vec(&quiet).unwrap());
    assert_eq!((status, body), (200, json!({"alerts": []})));

    // Not JSON, not an event, too large: 4xx saying why.
    let (status, body) = post(b"{\"source\": ".to_vec());
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );
    let (status, body) = post(br#"{"hello": "world"}"#.to_vec());
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not an EventBridge event"),
        "{body}"
    );
    let mut huge = event("signin-alice.json");
    huge["detail"]["padding"] = json!("x".repeat(1024 * 1024));
    let (status, body) = post(serde_json::to_vec(&huge).unwrap());
    assert_eq!(status, 413, "{body}");
    // A rule that cannot read a field it needs skips the event, saying which and why;
    // that is no failure of the event.
    let mut broken = event("iam-createuser.json");
    broken["detail"]["requestParameters"] = Value::Null;
    let (status, body) = post(serde_json::to_vec(&broken).unwrap());
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["skipped"][0]["rule"], "non-compliant-user-created",
        "{body}"
    );
    assert!(
        body["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("requestParameters.userName"),
        "{body}"
    );
}

#[test]
fn events_send_posts_gzipped_cloudtrail_files() {
    let (dir, config) = setup();
    let server = start(&config, &dir.path().join("data"));
    let gz = dir
        .path()
        .join("123456789012_CloudTrail_us-east-1_20261120T1015Z_x.json.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&serde_json::to_vec(&event("cloudtrail-log.json")).unwrap())
        .unwrap();
    enc.finish().unwrap();

    let out = Command::new(BIN)
        .args(["events", "send", "--server", &server.base])
        .arg(&gz)
        .arg(repo_root().join("tests/fixtures/events/guardduty-s3.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("aws-cloudtrail root-login 123456789012 → report"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("non-compliant-user-created BobAdmin1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("aws-guardduty Exfiltration:S3/AnomalousBehavior"),
        "{stdout}"
    );
    assert!(
        stderr.contains("event 1: not a CloudTrail record"),
        "{stderr}"
    );
    assert!(
        !out.status.success(),
        "a bad record makes the exit status say so"
    );
}

#[test]
fn rules_test_and_eval_from_the_command_line() {
    let out = Command::new(BIN)
        .args(["rules", "test"])
        .arg(example("rules"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");

    let out = Command::new(BIN)
        .args(["rules", "eval", "--format", "json"])
        .arg(example("cloud.toml"))
        .arg(repo_root().join("tests/fixtures/events/ec2-runinstances.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert"]["alert_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"]);
    assert_eq!(v["summary"]["events"], 1);
    assert_eq!(
        v["summary"]["alerts_by_rule"]["unauthorized-instance-created"],
        2
    );

    // A failing fixture fails the run, naming it.
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(example("rules")).unwrap().flatten() {
        if f.path().is_file() {
            std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("tests/wrong.json"),
        json!({"event": event("signin-root.json"), "expect": [{"rule_id": "console-login-without-mfa"}]}).to_string(),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["rules", "test"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("FAIL") && stdout.contains("wrong.json: expected 1 alert(s), got 0"),
        "{stdout}"
    );
}

#[test]
fn a_rego_rule_that_does_not_parse_stops_start_up_naming_file_and_line() {
    let (dir, config) = setup();
    std::fs::write(
        dir.path().join("rules/broken.rego"),
        "package deepalert.rules\n\nalert contains x if {\n  x := \n}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--config",
        ])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("broken.rego:4:"), "{stderr}");
    assert!(stderr.contains("rule[5]"), "names the rule: {stderr}");
}

/// `deepalert rules eval` reads a ~20 MB gzipped trail file as a stream: every record is
/// evaluated, the summary counts them, `--since/--until` filter on the events' own time,
/// and memory stays bounded by a record, not the file (checked on the process's peak RSS).
#[test]
fn rules_eval_streams_a_large_gzipped_trail_file() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir
        .path()
        .join("123456789012_CloudTrail_eu-west-1_20261120T1200Z_big.json.gz");
    let records = 40_000;
    let (roots, users) = deepalert_testkit::trail::write_trail(&trail, records);
    let size = std::fs::metadata(&trail).unwrap().len();
    assert!(size > 15_000_000, "a trail file of ~20 MB: {size} bytes");
    let out = Command::new(BIN)
        .args(["rules", "eval", "--format", "json"])
        .arg(example("cloud.toml"))
        .arg(&trail)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &v["summary"];
    assert_eq!(summary["events"], records, "{summary}");
    assert_eq!(summary["alerts_by_rule"]["root-login"], roots, "{summary}");
    assert_eq!(
        summary["alerts_by_rule"]["non-compliant-user-created"], users,
        "{summary}"
    );
    let rss = summary["peak_rss_mib"].as_f64().unwrap();
    // The file is ~60 MB of JSON once gunzipped; a process holding it would be far over.
    assert!(
        rss < 60.0,
        "peak RSS {rss} MiB for a {size}-byte trail file"
    );

    // The events' own time, between 10:00 and 11:00: the root sign-ins only.
    let out = Command::new(BIN)
        .args([
            "rules",
            "eval",
            "--format",
            "json",
            "--since",
            "2026-11-20T10:00:00Z",
            "--until",
            "2026-11-20T11:00:00Z",
        ])
        .arg(example("cloud.toml"))
        .arg(&trail)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["alerts"], roots, "{}", v["summary"]);
    assert_eq!(v["summary"]["filtered"], records - roots);

    // The table: one line per alert on stdout, the summary on stderr.
    let out = Command::new(BIN)
        .args(["rules", "eval", "--until", "2026-11-20T11:00:00Z"])
        .arg(example("cloud.toml"))
        .arg(&trail)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), roots, "{stdout}");
    assert!(stdout.lines().all(|l| l.contains("root-login")), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{records} event(s) in 1 file(s): {roots} alert(s), 0 error(s)"
        )) && stderr.contains("events/s"),
        "{stderr}"
    );
    let bad = Command::new(BIN)
        .args(["rules", "eval", "--since", "yesterday"])
        .arg(example("cloud.toml"))
        .arg(&trail)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an RFC 3339 time"));
}
