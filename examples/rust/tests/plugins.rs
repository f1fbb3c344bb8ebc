//! The example plug-ins, built on deepalert-sdk, run both ways: through the real Lambda
//! entry point (a Lambda Runtime API served here, SQS on moto), and as exec plug-ins of
//! the `deepalert serve` engine.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use deepalert_core::{InspectionReport, ReportStatus, Severity};
use deepalert_local::plugins::exec::{ExecCommand, ExecInspector};
use deepalert_local::plugins::{InspectorEntry, Plugins};
use deepalert_local::{Durability, Engine, RuntimeSettings, SqliteStore};
use deepalert_testkit::lambda_runtime::RuntimeApi;
use deepalert_testkit::moto::Moto;
use deepalert_testkit::{example, read_json};

const INSPECTOR: &str = env!("CARGO_BIN_EXE_example-inspector");
const REVIEWER: &str = env!("CARGO_BIN_EXE_example-reviewer");
const EMITTER: &str = env!("CARGO_BIN_EXE_example-emitter");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_runs_through_the_lambda_entry_point() {
    let moto = Moto::start(None).await;
    let sdk = moto.sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name("inspection")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sns-task-event.json"),
    )
    .unwrap();
    let api = RuntimeApi::start(vec![fixture]).await;
    let mut child = api
        .command(INSPECTOR, "example-inspector")
        .envs(moto.env())
        .env("INSPECTION_QUEUE_URL", &queue)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let answers = api.wait_answers(1, 30).await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        answers.len(),
        1,
        "runtime answers; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        (answers[0].request_id.as_str(), answers[0].kind.as_str()),
        ("req-1", "response"),
        "{answers:?}"
    );

    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = got.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let report: InspectionReport = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(report.author, "example-inspector");
    assert_eq!(
        report.report_id.to_string(),
        "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11"
    );
    assert_eq!(report.attribute.value, "10.0.1.23");
    assert_eq!(report.output.attributes[0].value, "alice");
    assert!(report.error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_runs_as_an_exec_plugin_of_the_serve_engine() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "example-inspector".into(),
            attribute_types: None,
            plugin: Arc::new(ExecInspector(ExecCommand {
                program: INSPECTOR.into(),
                args: vec![],
                env: BTreeMap::new(),
                cwd: None,
                timeout: Duration::from_secs(10),
                max_output: deepalert_local::plugins::exec::DEFAULT_MAX_OUTPUT,
            })),
        }],
        ..Plugins::default()
    };
    let runtime = RuntimeSettings {
        inspection_delay: Duration::ZERO,
        review_delay: Duration::from_millis(500),
        ..RuntimeSettings::default()
    };
    let engine = Engine::new(
        store,
        plugins,
        PipelineSettings::default(),
        runtime,
        Arc::new(SystemClock),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(engine.clone().run(async {
        let _ = rx.await;
    }));
    let alert = serde_json::from_value(read_json(&example("alerts/guardduty-ssh-bruteforce.json")))
        .unwrap();
    let receipt = engine.receive(&alert).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        use deepalert_core::ports::Store;
        let r = engine
            .store()
            .compile_report(receipt.report_id)
            .await
            .unwrap()
            .unwrap();
        if r.status == ReportStatus::Published || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = tx.send(());
    assert_eq!(report.status, ReportStatus::Published, "{report:#?}");
    let host = report
        .sections
        .iter()
        .find(|s| s.attribute.value == "10.0.1.23")
        .expect("finding");
    assert_eq!(host.hosts[0].author, "example-inspector");
    assert_eq!(host.hosts[0].content.hostname, vec!["web-1"]);
    assert!(
        report.sections.iter().any(|s| s.attribute.value == "alice"),
        "fed back and inspected"
    );
}

fn run_exec(bin: &str, stdin: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(bin)
        .envs(env.iter().copied())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
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
fn reviewer_and_emitter_run_as_exec_plugins() {
    let fixture = read_json(&example("policies/tests/ssh-bruteforce-on-our-host.json"));
    let mut report = fixture["report"].clone();
    report["alerts"] = serde_json::json!([{"detector": "aws-guardduty", "rule_id": "r"}]);
    let (ok, out) = run_exec(REVIEWER, &report.to_string(), &[]);
    assert!(ok, "{out}");
    let verdict: deepalert_core::ReviewResult = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(verdict.severity, Severity::Urgent);

    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.jsonl");
    let (ok, out) = run_exec(
        EMITTER,
        &report.to_string(),
        &[("EMITTER_OUT", out_file.to_str().unwrap())],
    );
    assert!(ok, "{out}");
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(written.lines().count(), 1);

    let (ok, out) = run_exec(REVIEWER, "{not json", &[]);
    assert!(!ok);
    assert!(out.contains("invalid input on stdin"), "{out}");
}
