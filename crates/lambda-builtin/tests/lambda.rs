//! The `builtin` Lambda binary through its real entry point: a Lambda Runtime API served
//! here hands it SNS events; its secrets come from Secrets Manager / SSM, its results go
//! to SQS and its emitter state to DynamoDB, all on moto; the services it calls are
//! loopback servers that record what they received.

use aws_sdk_ssm::types::ParameterType;
use deepalert_core::{AttrType, FindingContent, InspectionReport, Report, Severity};
use deepalert_sdk::testing;
use deepalert_testkit::http::Recorder;
use deepalert_testkit::lambda_runtime::RuntimeApi;
use deepalert_testkit::moto::{Moto, create_table};
use serde_json::json;

const BUILTIN: &str = env!("CARGO_BIN_EXE_builtin");

/// Runs the function until it answered `n` invocations; returns the answers and its logs.
async fn run(
    api: &RuntimeApi,
    env: &[(&str, String)],
    n: usize,
) -> (Vec<deepalert_testkit::lambda_runtime::Answer>, String) {
    let mut child = api
        .command(BUILTIN, "builtin-under-test")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let answers = api.wait_answers(n, 30).await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (answers, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspector_reads_its_key_from_secrets_manager_caches_and_reports_429() {
    let moto = Moto::start(None).await;
    let sdk = moto.sdk().await;
    let arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("deepalert/integrations")
        .secret_string(r#"{"abuseipdb": "abuse-key-7f3c"}"#)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name("inspection")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // AbuseIPDB v2 `check`: a documented answer (trimmed), then the quota is exhausted.
    let (abuseipdb, url) = Recorder::start().await;
    abuseipdb.reply(
        200,
        json!({"data": {
            "ipAddress": "198.51.100.23", "isPublic": true, "abuseConfidenceScore": 97,
            "countryCode": "NL", "isp": "Example Hosting BV", "domain": "example-hosting.nl",
            "totalReports": 412, "numDistinctUsers": 88
        }}),
    );
    abuseipdb.reply(
        429,
        json!({"errors": [{"detail": "Daily rate limit of 1000 requests exceeded for this endpoint.", "status": 429}]}),
    );

    // One instance, three deliveries: a lookup, a lookup over quota, the first again.
    let listed = testing::task(AttrType::Ipaddr, "198.51.100.23");
    let over_quota = testing::task(AttrType::Ipaddr, "203.0.113.9");
    let again = testing::task(AttrType::Ipaddr, "198.51.100.23");
    let events = [&listed, &over_quota, &again]
        .iter()
        .map(|t| serde_json::to_string(&testing::sns_task_event(std::slice::from_ref(*t))).unwrap())
        .collect();
    let api = RuntimeApi::start(events).await;
    let mut env: Vec<(&str, String)> = moto.env().into_iter().collect();
    env.extend([
        ("DEEPALERT_BUILTIN", "abuseipdb".to_string()),
        (
            "DEEPALERT_OPTIONS",
            json!({"api_key_env": "ABUSEIPDB_API_KEY", "base_url": url}).to_string(),
        ),
        ("ABUSEIPDB_API_KEY_SECRET_ARN", format!("{arn}#abuseipdb")),
        ("INSPECTION_QUEUE_URL", queue.clone()),
    ]);
    let (answers, logs) = run(&api, &env, 3).await;
    assert_eq!(answers.len(), 3, "{answers:?}\n{logs}");
    assert!(
        answers.iter().all(|a| a.kind == "response"),
        "{answers:?}\n{logs}"
    );

    // The documented requests, with the key from the secret; the repeat came from the
    // cache of the warm instance.
    let requests = abuseipdb.seen();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[0].uri,
        "/check?ipAddress=198.51.100.23&maxAgeInDays=90"
    );
    assert_eq!(requests[0].header("key"), "abuse-key-7f3c");
    // …which the function never logs.
    assert!(!logs.contains("abuse-key-7f3c"), "{logs}");

    // Results on the inspection queue, authored by the built-in.
    let mut reports: Vec<InspectionReport> = Vec::new();
    for _ in 0..5 {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        reports.extend(
            got.messages
                .unwrap_or_default()
                .iter()
                .map(|m| serde_json::from_str(m.body().unwrap()).unwrap()),
        );
        if reports.len() >= 3 {
            break;
        }
    }
    assert_eq!(reports.len(), 3, "{reports:?}");
    for task in [&listed, &again] {
        let report = reports
            .iter()
            .find(|r| r.report_id == task.report_id)
            .unwrap();
        assert_eq!(report.author, "abuseipdb");
        assert!(report.error.is_none(), "{report:?}");
        let FindingContent::Host(host) = &report.output.findings[0] else {
            panic!("{report:?}")
        };
        assert_eq!(host.country, vec!["NL"]);
        assert!(
            host.activities[0].action.contains("abuse confidence 97%"),
            "{host:?}"
        );
    }
    // 429 is an explicit error the gateway notes on the report, not an empty answer.
    let limited = reports
        .iter()
        .find(|r| r.report_id == over_quota.report_id)
        .unwrap();
    assert!(limited.output.findings.is_empty());
    assert!(
        limited
            .error
            .as_deref()
            .is_some_and(|e| e.contains("rate limited by abuseipdb")),
        "{limited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitter_signs_with_an_ssm_secret_and_sends_a_report_once_per_change() {
    let moto = Moto::start(None).await;
    let sdk = moto.sdk().await;
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/deepalert/webhook-secret")
        .value("whsec-51a9")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_table(&ddb, "emitter-state").await;
    let (webhook, url) = Recorder::start().await;

    let mut report = testing::report();
    report.status = deepalert_core::ReportStatus::Published;
    report.publications = 1;
    report.result = Some(deepalert_core::ReviewResult::unclassified("no verdict"));
    let mut reviewed = report.clone();
    reviewed.result = Some(deepalert_core::ReviewResult {
        severity: Severity::Urgent,
        reason: "listed by two feeds".into(),
    });
    // SNS delivers the same publication twice, then a changed one.
    let events = [&report, &report, &reviewed]
        .iter()
        .map(|r| serde_json::to_string(&testing::sns_report_event(&[(*r).clone()])).unwrap())
        .collect();
    let api = RuntimeApi::start(events).await;
    let mut env: Vec<(&str, String)> = moto.env().into_iter().collect();
    env.extend([
        ("DEEPALERT_BUILTIN", "webhook".to_string()),
        ("DEEPALERT_NAME", "soc-webhook".to_string()),
        (
            "DEEPALERT_OPTIONS",
            json!({"url": format!("{url}/deepalert"), "secret_env": "WEBHOOK_SECRET"}).to_string(),
        ),
        (
            "WEBHOOK_SECRET_SSM_PARAMETER",
            "/deepalert/webhook-secret".to_string(),
        ),
        ("STATE_TABLE", table.clone()),
        ("RETENTION_DAYS", "7".to_string()),
    ]);
    let (answers, logs) = run(&api, &env, 3).await;
    assert_eq!(answers.len(), 3, "{answers:?}\n{logs}");
    assert!(
        answers.iter().all(|a| a.kind == "response"),
        "{answers:?}\n{logs}"
    );

    // Sent twice: the repeat of an unchanged report is not.
    let requests = webhook.seen();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request.uri, "/deepalert");
        assert_eq!(
            request.header("x-deepalert-signature"),
            deepalert_plugins::emitters::webhook::signature("whsec-51a9", &request.body)
        );
    }
    let sent: Vec<Report> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        sent[0].result.as_ref().map(|r| r.severity),
        Some(Severity::Unclassified)
    );
    assert_eq!(
        sent[1].result.as_ref().map(|r| r.severity),
        Some(Severity::Urgent)
    );
    assert!(!logs.contains("whsec-51a9"), "{logs}");

    // What was sent is remembered in the state table, with an expiry.
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "state#sent:soc-webhook:{}",
                report.id
            )),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("-".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("state item");
    assert_eq!(
        item["value"].as_s().unwrap(),
        &deepalert_plugins::emitters::fingerprint(&reviewed)
    );
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let in_days = (expires - chrono::Utc::now().timestamp()) as f64 / 86400.0;
    assert!((6.9..=7.1).contains(&in_days), "{in_days}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfiguration_stops_start_up_naming_what_is_wrong() {
    let moto = Moto::start(None).await;
    let api = RuntimeApi::start(vec![]).await;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "DEEPALERT_BUILTIN is not set"),
        (
            vec![("DEEPALERT_BUILTIN", "shodan".into())],
            "is not a built-in (inspectors: threat-list",
        ),
        (
            vec![
                ("DEEPALERT_BUILTIN", "virustotal".into()),
                ("DEEPALERT_OPTIONS", "{\"api_key_env\": ".into()),
            ],
            "DEEPALERT_OPTIONS is not a JSON object",
        ),
        (
            vec![
                ("DEEPALERT_BUILTIN", "virustotal".into()),
                (
                    "DEEPALERT_OPTIONS",
                    json!({"api_key_env": "VT_API_KEY"}).to_string(),
                ),
            ],
            "VT_API_KEY_SECRET_ARN",
        ),
        (
            vec![
                ("DEEPALERT_BUILTIN", "virustotal".into()),
                (
                    "DEEPALERT_OPTIONS",
                    json!({"api_key_env": "VT_API_KEY"}).to_string(),
                ),
                ("VT_API_KEY_SECRET_ARN", "deepalert/not-there".into()),
            ],
            "reading deepalert/not-there from Secrets Manager",
        ),
        (
            vec![
                ("DEEPALERT_BUILTIN", "slack".into()),
                (
                    "DEEPALERT_OPTIONS",
                    json!({"webhook_url_env": "SLACK_URL"}).to_string(),
                ),
                ("SLACK_URL", "https://hooks.slack.com/services/x".into()),
            ],
            "STATE_TABLE is not set",
        ),
        (
            vec![
                ("DEEPALERT_BUILTIN", "virustotal".into()),
                (
                    "DEEPALERT_OPTIONS",
                    json!({"api_key_env": "VT_API_KEY", "colour": "red"}).to_string(),
                ),
                ("VT_API_KEY", "k".into()),
            ],
            "unknown field `colour`",
        ),
    ];
    for (vars, want) in cases {
        let out = api
            .command(BUILTIN, "builtin-under-test")
            .envs(moto.env())
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{vars:?} started:\n{logs}");
        assert!(logs.contains(want), "{vars:?}: want {want:?} in:\n{logs}");
    }
}
