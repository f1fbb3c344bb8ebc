//! Response flows in the real `deepalert serve`: a wait survives kill -9, each step runs
//! once, the timeline is in the report (API and `reports show`), and a broken flow stops
//! start-up naming it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deepalert_testkit::{Server, ServerSpec, free_port, json_lines};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn setup(flows: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/urgent.rego"),
        "package deepalert\nimport rego.v1\nverdict contains {\"severity\": \"urgent\", \"reason\": \"an unauthorized thing\"} if true\n",
    )
    .unwrap();
    let script = dir.path().join("contain.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$DEEPALERT_REPORT_ID $DEEPALERT_FLOW\" >> contained.log\necho \"contained $DEEPALERT_REPORT_ID\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("deepalert.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[pipeline]
inspection_delay = "0s"
review_delay = "0s"

[reviewer]
policies = "policies"

[[notifier]]
name = "log"
builtin = "jsonl"
[notifier.options]
path = "notified.jsonl"

{flows}
"#
        ),
    )
    .unwrap();
    Setup {
        data: dir.path().join("data"),
        config,
        dir,
    }
}

fn start(s: &Setup) -> Server {
    Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&s.config),
        data: &s.data,
        port: free_port(),
        api_key: None,
    })
}

fn notified(s: &Setup) -> Vec<Value> {
    let path = s.path("notified.jsonl");
    if path.exists() {
        json_lines(&path)
    } else {
        vec![]
    }
}

fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CONTAIN: &str = r#"
[[flow]]
name = "contain"
rule_id = "unauthorized-thing"
steps = [
  { notify = "log", template = "first: {{ report.alerts[0].alert_key }}" },
  { wait = "4s" },
  { remediate = "exec", options = { command = "./contain.sh", dry_run = false } },
  { notify = "log", template = "after: {{ reason }}" },
]
"#;

#[test]
fn a_wait_survives_kill_9_and_every_step_runs_once() {
    let s = setup(CONTAIN);
    let mut server = start(&s);
    let (status, receipt) = server.post_alert(&json!({
        "detector": "test", "rule_id": "unauthorized-thing", "alert_key": "thing-1"
    }));
    assert_eq!(status, 202, "{receipt}");
    let id = receipt["report_id"].as_str().unwrap().to_string();
    wait_until(20, "the first notification", || !notified(&s).is_empty());
    // Mid-wait: the process dies without warning.
    server.kill();
    assert!(!s.path("contained.log").exists(), "the wait had not ended");

    std::thread::sleep(Duration::from_secs(4));
    let server = start(&s);
    let report = server.wait_report(&id, 30, |r| {
        r["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["detail"]["state"] == "completed"))
    });
    let sent = notified(&s);
    assert_eq!(
        sent.iter()
            .map(|m| m["message"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["first: thing-1", "after: an unauthorized thing"],
        "each notification once"
    );
    let contained = std::fs::read_to_string(s.path("contained.log")).unwrap();
    assert_eq!(
        contained,
        format!("{id} contain\n"),
        "the remediation ran once"
    );

    let flow_entries = flow_entries(&report);
    let steps: Vec<(String, String)> = flow_entries
        .iter()
        .map(|e| {
            (
                e["detail"]["step"].as_str().unwrap_or("-").to_string(),
                e["detail"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("-", "started"),
        ("0", "done"),
        ("1", "waiting"),
        ("2", "done"),
        ("3", "done"),
        ("-", "completed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(steps, expected, "{:#}", report["timeline"]);
    let remediation = flow_entries[3];
    assert_eq!(
        remediation["message"],
        format!("remediate exec: contained {id}")
    );

    // `deepalert reports show` prints the same timeline.
    let out = Command::new(BIN)
        .args(["reports", "show", &id, "--server", &server.base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["timeline"], report["timeline"]);
}

/// The timeline's flow steps (the pipeline's own entries left out).
fn flow_entries(report: &Value) -> Vec<&Value> {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "flow")
        .collect()
}

#[test]
fn dry_run_is_the_default_and_recorded() {
    let s = setup(
        r#"
[[flow]]
name = "contain"
steps = [{ remediate = "exec", options = { command = "./contain.sh" } }]
"#,
    );
    let server = start(&s);
    let (_, receipt) = server.post_alert(&json!({
        "detector": "test", "rule_id": "anything", "alert_key": "k"
    }));
    let id = receipt["report_id"].as_str().unwrap();
    let report = server.wait_report(id, 30, |r| {
        r["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["detail"]["state"] == "completed"))
    });
    let step = flow_entries(&report)[1];
    assert_eq!(step["detail"]["state"], "dry_run");
    assert!(
        step["message"]
            .as_str()
            .unwrap()
            .starts_with("remediate exec: dry run: would run ")
            && step["message"].as_str().unwrap().ends_with("contain.sh"),
        "{step}"
    );
    assert!(!s.path("contained.log").exists(), "nothing ran");
}

#[test]
fn a_broken_flow_stops_start_up_naming_it() {
    for (flows, expected) in [
        (
            "[[flow]]\nname = \"tell\"\nsteps = [{ notify = \"pager\" }]\n",
            "flow \"tell\": step 0: no notifier or emitter \"pager\" (configured: log)",
        ),
        (
            "[[flow]]\nname = \"stop-it\"\nsteps = [{ remediate = \"ec2-instance\", options = { mode = \"terminate\" } }]\n",
            "flow \"stop-it\": step 0: options of ec2-instance: mode terminate cannot be undone",
        ),
        (
            "[[flow]]\nname = \"early\"\non = \"received\"\nsteps = [{ remediate = \"exec\", options = { command = \"./contain.sh\" } }]\n",
            "set remediate_before_review = true",
        ),
        (
            "[[flow]]\nname = \"w\"\nsteps = [{ wait = \"later\" }]\n",
            "flow \"w\": step 0: wait \"later\" is not a duration",
        ),
    ] {
        let s = setup(flows);
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&s.config)
            .arg("--data")
            .arg(&s.data)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{flows}\n→ {err}");
    }
}

// ---- Flows on AWS: `deepalert flows check` and what `make deploy` makes of them ----

const DEPLOY: &str = "{ StackName: 'da-flows', Region: 'eu-west-1', CodeS3Bucket: 'code-bucket', CodeS3Prefix: 'fn' }";

const AWS_FLOWS: &str = r#"{
  Notifiers: [
    { name: 'sec-email', builtin: 'email', options: { sns_topic_arn: 'arn:aws:sns:eu-west-1:123456789012:sec-mail' } },
    { name: 'sec-chat', builtin: 'discord', options: { webhook_url_env: 'DISCORD_URL' } },
  ],
  FlowSecrets: {
    DISCORD_URL: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:discord-AbCdEf',
  },
  Flows: [
    {
      name: 'contain-user',
      rule_id: 'non-compliant-user-created',
      min_severity: 'urgent',
      steps: [
        { notify: 'sec-email', template: 'user {{ report.alerts[0].alert_key }}' },
        { wait: '10m' },
        { check: 'iam-user-exists' },
        { parallel: [
          { remediate: 'iam-user', options: { dry_run: false } },
          { notify: 'sec-chat' },
        ] },
      ],
    },
  ],
}"#;

fn flows_check(document: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["flows", "check"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn flows_check_names_what_is_wrong_and_the_permissions_needed() {
    let good = json!({
        "flows": [{"name": "contain", "steps": [
            {"check": "instance-running"},
            {"remediate": "ec2-instance", "options": {"mode": "stop", "dry_run": false}}
        ]}]
    });
    let (ok, out) = flows_check(&good);
    assert!(ok, "{out}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = printed["iam_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(actions.contains(&"ec2:DescribeInstances"), "{actions:?}");
    assert!(actions.contains(&"ec2:StopInstances"), "{actions:?}");
    assert!(
        !actions.iter().any(|a| a.starts_with("iam:")),
        "no IAM without an IAM step: {actions:?}"
    );

    for (document, says) in [
        (
            json!({"flows": [{"name": "f", "steps": [{"check": "moon-phase"}]}]}),
            "moon-phase",
        ),
        (
            json!({"flows": [{"name": "f", "steps": [{"notify": "nobody"}]}]}),
            "nobody",
        ),
        (
            json!({"flows": [{"name": "f", "steps": [{"remediate": "ec2-instance", "options": {"mode": "melt"}}]}]}),
            "melt",
        ),
        (
            json!({"notifiers": [{"name": "chat", "builtin": "discord", "options": {"webhook_url_env": "NOT_LISTED"}}]}),
            "NOT_LISTED",
        ),
        (json!({"flow": []}), "unknown field `flow`"),
    ] {
        let (ok, out) = flows_check(&document);
        assert!(!ok, "{document} was accepted");
        assert!(out.contains(says), "{document}: {out}");
    }
}

#[test]
fn deploy_writes_flows_and_exactly_their_permissions_into_the_stack() {
    let (ok, out, documents) = deepalert_testkit::deploy::deploy_dry_run_documents(
        &[],
        DEPLOY,
        Some(("stack.jsonnet", AWS_FLOWS)),
        &[("DEEPALERT_CLI", BIN)],
    );
    assert!(ok, "{out}");
    let values = deepalert_testkit::deploy::override_values(&out);
    // The flows document goes into the zips of the functions that read it, not into a
    // parameter or an environment (Lambda allows 4 KB of environment).
    assert!(!values.contains_key("FlowsConfig"), "{out}");
    assert!(
        out.contains("in the zips of: emitter-publisher, event-router, flow-runner, receptor)"),
        "{out}"
    );
    let config: Value = serde_json::from_str(&documents["flows"]).unwrap();
    assert_eq!(config["flows"][0]["name"], "contain-user");
    assert_eq!(config["notifiers"].as_array().unwrap().len(), 2);
    let actions: Vec<&str> = values["FlowActions"].split(',').collect();
    for wanted in [
        "iam:GetUser",
        "iam:PutUserPolicy",
        "iam:UpdateAccessKey",
        "iam:DeleteLoginProfile",
    ] {
        assert!(actions.contains(&wanted), "{wanted} in {actions:?}");
    }
    assert!(
        !actions.contains(&"iam:DeleteUser"),
        "reversible remediation: no DeleteUser in {actions:?}"
    );
    assert_eq!(
        values["FlowSecretArns"],
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:discord-AbCdEf*"
    );
    assert_eq!(
        values["FlowTopicArns"],
        "arn:aws:sns:eu-west-1:123456789012:sec-mail"
    );

    // A preset that names a notifier brings its default flow, in dry run: reads only.
    let (ok, out, documents) = deepalert_testkit::deploy::deploy_dry_run_documents(
        &[],
        DEPLOY,
        Some((
            "stack.jsonnet",
            "{ Rules: [{ preset: 'non-compliant-user-created', notify: 'sec-email', options: { user_name_pattern: 'svc-.*' } }],\n  Notifiers: [{ name: 'sec-email', builtin: 'email', options: { sns_topic_arn: 'arn:aws:sns:eu-west-1:123456789012:sec-mail' } }] }",
        )),
        &[("DEEPALERT_CLI", BIN)],
    );
    assert!(ok, "{out}");
    let values = deepalert_testkit::deploy::override_values(&out);
    let config: Value = serde_json::from_str(&documents["flows"]).unwrap();
    assert_eq!(
        config["presets"],
        json!([{"preset": "non-compliant-user-created", "notify": "sec-email"}])
    );
    let actions: Vec<&str> = values["FlowActions"].split(',').collect();
    assert!(actions.contains(&"iam:GetUser"), "{actions:?}");
    assert!(
        !actions.contains(&"iam:PutUserPolicy"),
        "a dry-run IAM remediation changes nothing: {actions:?}"
    );

    // Without flows, the document is empty and the parameters too (an update removes
    // old flows).
    let (ok, out, documents) = deepalert_testkit::deploy::deploy_dry_run_documents(
        &[],
        DEPLOY,
        Some(("stack.jsonnet", "{}")),
        &[],
    );
    assert!(ok, "{out}");
    let values = deepalert_testkit::deploy::override_values(&out);
    assert_eq!(documents["flows"], "");
    assert_eq!(values["FlowActions"], "");

    // A broken flow stops the deploy, naming it.
    let broken = AWS_FLOWS.replace("iam-user-exists", "iam-user-gone");
    let (ok, out) = deepalert_testkit::deploy::deploy_dry_run_env(
        &[],
        DEPLOY,
        Some(("stack.jsonnet", &broken)),
        &[("DEEPALERT_CLI", BIN)],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("contain-user") && out.contains("iam-user-gone"),
        "{out}"
    );
    // The derived parameters are not set by hand.
    let (ok, out) = deepalert_testkit::deploy::deploy_dry_run(
        &[],
        DEPLOY,
        Some(("stack.jsonnet", "{ FlowActions: ['iam:*'] }")),
    );
    assert!(!ok && out.contains("FlowActions is written from"), "{out}");
}

/// examples/responses.toml as shipped: the root sign-in's
/// preset flow notifies at once; the instance flow notifies after review, then waits.
#[test]
fn the_example_responses_config_runs_preset_and_custom_flows() {
    let dir = tempfile::tempdir().unwrap();
    let root = deepalert_testkit::repo_root();
    let config = dir.path().join("responses.toml");
    std::fs::copy(root.join("examples/responses.toml"), &config).unwrap();
    let server = Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&config),
        data: &dir.path().join("data"),
        port: free_port(),
        api_key: None,
    });
    let event = |name: &str| std::fs::read(root.join("tests/fixtures/events").join(name)).unwrap();
    let (status, body) = server.post_bytes("/api/v1/events", event("ec2-runinstances.json"));
    assert_eq!(status, 202, "{body}");
    let instance_report = body["alerts"][0]["report_id"].as_str().unwrap().to_string();
    let (status, body) = server.post_bytes("/api/v1/events", event("signin-root.json"));
    assert_eq!(status, 202, "{body}");

    let notified = dir.path().join("notified.jsonl");
    let messages = || -> Vec<String> {
        if !notified.exists() {
            return vec![];
        }
        json_lines(&notified)
            .iter()
            .map(|m| m.to_string())
            .collect()
    };
    wait_until(30, "three notifications", || messages().len() >= 3);
    let all = messages().join("\n");
    assert!(all.contains("root-login"), "the preset flow: {all}");
    assert!(
        all.contains("Unauthorized instance i-0aaaaaaaaaaaaaaa1")
            && all.contains("Unauthorized instance i-0aaaaaaaaaaaaaaa2"),
        "the custom flow, one report per instance: {all}"
    );
    // The instance flow now waits its 10 minutes, on the report's timeline.
    let report = server.wait_report(&instance_report, 20, |r| {
        r["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["detail"]["state"] == "waiting"))
    });
    let flow_steps: Vec<&Value> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "flow")
        .collect();
    assert!(
        flow_steps
            .iter()
            .all(|e| e["detail"]["flow"] == "contain-instance"),
        "the preset's own flow was replaced: {flow_steps:#?}"
    );
}
