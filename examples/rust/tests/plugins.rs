//! The example plug-ins, built on deepalert-sdk, run both ways: through the real Lambda
//! entry point (a Lambda Runtime API served here, SQS on moto), and as exec plug-ins of
//! the `deepalert serve` engine.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use deepalert_core::{InspectionReport, ReportStatus, Severity};
use deepalert_local::plugins::exec::{ExecCommand, ExecInspector};
use deepalert_local::plugins::{InspectorEntry, Plugins};
use deepalert_local::{Durability, Engine, RuntimeSettings, SqliteStore};
use deepalert_testkit::moto::Moto;
use deepalert_testkit::{example, free_port, read_json};

const INSPECTOR: &str = env!("CARGO_BIN_EXE_example-inspector");
const REVIEWER: &str = env!("CARGO_BIN_EXE_example-reviewer");
const EMITTER: &str = env!("CARGO_BIN_EXE_example-emitter");

/// A one-invocation Lambda Runtime API: hands out `event`, records the answer.
#[derive(Clone, Default)]
struct RuntimeApi {
    event: Arc<Mutex<Option<String>>>,
    answers: Arc<Mutex<Vec<(String, String)>>>,
}

async fn next(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let event = api.event.lock().unwrap().take();
    let Some(event) = event else {
        // No more work: keep the runtime waiting, as Lambda does between invocations.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return (HeaderMap::new(), String::new());
    };
    let mut h = HeaderMap::new();
    h.insert("Lambda-Runtime-Aws-Request-Id", "req-1".parse().unwrap());
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    h.insert(
        "Lambda-Runtime-Deadline-Ms",
        deadline.to_string().parse().unwrap(),
    );
    h.insert(
        "Lambda-Runtime-Invoked-Function-Arn",
        "arn:aws:lambda:us-east-1:123456789012:function:example-inspector"
            .parse()
            .unwrap(),
    );
    h.insert(
        "Lambda-Runtime-Trace-Id",
        "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap(),
    );
    (h, event)
}

async fn respond(
    State(api): State<RuntimeApi>,
    UrlPath((id, kind)): UrlPath<(String, String)>,
    body: String,
) -> &'static str {
    api.answers
        .lock()
        .unwrap()
        .push((format!("{id}/{kind}"), body));
    "{}"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_runs_through_the_lambda_entry_point() {
    let moto = Moto::start(None).await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name("inspection")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let api = RuntimeApi::default();
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sns-task-event.json"),
    )
    .unwrap();
    *api.event.lock().unwrap() = Some(fixture);
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(respond))
        .with_state(api.clone());
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut child = Command::new(INSPECTOR)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "example-inspector")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/example-inspector")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("INSPECTION_QUEUE_URL", &queue)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.answers.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let answers = api.answers.lock().unwrap().clone();
    assert_eq!(
        answers.len(),
        1,
        "runtime answers; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(answers[0].0, "req-1/response", "{answers:?}");

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
