//! DeepAlert users switching to deepalert on AWS: their inspectors' messages (exactly as
//! DeepAlert's Go `inspector` package sends them, both lines) reach the real
//! inspector-gateway through the queues DeepAlert's export names resolve to, and their
//! emitters get DeepAlert's report lifecycle and section shapes.

mod common;

use std::time::{Duration, Instant};

use common::{Reviewer, Stack, StackOptions, UserInspector, example_inspector};
use deepalert_core::{Report, Task};
use deepalert_testkit::{example, read_json, repo_root};
use serde_json::{Value, json};

const PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/deepalert").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Waits until the queue has delivered tasks for every value in `values`; returns the
/// report id they are about and every task seen.
async fn wait_tasks(stack: &Stack, url: &str, values: &[&str]) -> (String, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut tasks: Vec<Value> = Vec::new();
    loop {
        for m in stack.aws.drain(url, Duration::from_secs(1)).await {
            let body =
                deepalert_aws::handlers::unwrap_sns_envelope(m.body().unwrap_or("")).into_owned();
            tasks.push(serde_json::from_str(&body).expect("task"));
        }
        let have = |v: &&str| tasks.iter().any(|t| t["attribute"]["value"] == *v);
        if values.iter().all(have) {
            let id = tasks[0]["report_id"].as_str().unwrap().to_string();
            return (id, tasks);
        }
        assert!(
            Instant::now() < deadline,
            "tasks for {values:?} never came; got {tasks:#?}\n{}",
            stack.diagnostics().await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deepalert_inspector_messages_of_both_lines_reach_the_report() {
    let stack = Stack::start(StackOptions {
        inspectors: vec![],
        review_delay: 10,
        ..StackOptions::default()
    })
    .await;
    let typed = stack
        .subscribe_tasks(
            "typed",
            &["ipaddr", "domain", "url", "filehashvalue", "username"],
        )
        .await;
    let all = stack.subscribe_tasks_filtered("all", None).await;

    stack
        .publish_alert(&read_json(
            &repo_root().join("tests/fixtures/deepalert/alert.json"),
        ))
        .await;
    let hash = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    let (report_id, first) = wait_tasks(&stack, &typed, &["198.51.100.23", hash, "www-data"]).await;
    // Go inspectors dereference the task attribute's time: the alert's.
    assert!(
        first
            .iter()
            .all(|t| t["attribute"]["timestamp"] == "2026-11-20T03:14:07Z"),
        "{first:#?}"
    );
    // The unknown type reached only the subscriber without a type filter.
    assert!(!first.iter().any(|t| t["attribute"]["type"] == "instanceid"));
    let (_, unfiltered) = wait_tasks(&stack, &all, &["i-0a1b2c3d4e5f67890"]).await;
    let instance = unfiltered
        .iter()
        .find(|t| t["attribute"]["type"] == "instanceid")
        .unwrap();
    assert_eq!(
        instance["attribute"]["context"],
        json!(["local", "workload"])
    );

    // What DeepAlert's inspectors send, to the queues they import by DeepAlert's names.
    let with_id = |name: &str| fixture(name).trim().replace(PLACEHOLDER, &report_id);
    for (export, body) in [
        ("FindingQueue", with_id("fork-finding-host.json")),
        ("AttributeQueue", with_id("fork-new-attributes.json")),
        ("ContentQueue", with_id("original-section-binary.json")),
        ("AttributeQueue", with_id("original-new-attributes.json")),
        (
            "FindingQueue",
            json!({"report_id": report_id, "author": "broken", "attribute": {"type": "ipaddr", "value": "198.51.100.23"}, "verdict": "bad"})
                .to_string(),
        ),
    ] {
        stack
            .aws
            .sqs
            .send_message()
            .queue_url(stack.deployed.output(export))
            .message_body(body)
            .send()
            .await
            .expect("send as the Go inspector package does");
    }
    // One more through SNS without raw delivery: the gateway unwraps the envelope.
    let relay = stack.aws.create_topic("relay").await;
    stack
        .aws
        .subscribe_queue(
            &relay,
            &stack.deployed.attribute("InspectionQueue", "Arn"),
            false,
            None,
        )
        .await;
    stack
        .aws
        .sns
        .publish()
        .topic_arn(&relay)
        .message(with_id("fork-finding-user.json"))
        .send()
        .await
        .unwrap();

    // The new attributes are inspected in turn.
    let (_, found) = wait_tasks(
        &stack,
        &typed,
        &["c2.example.net", "http://c2.example.net/payload"],
    )
    .await;
    assert!(found.iter().all(|t| t["report_id"] == report_id.as_str()));

    let published = stack.wait_published_json(60).await;
    let Some((raw, _)) = published.iter().find(|(r, _)| r["status"] == "published") else {
        panic!("not published:\n{}", stack.diagnostics().await)
    };
    let report: Report = serde_json::from_value(raw.clone()).unwrap();
    let section = |value: &str| {
        report
            .sections
            .iter()
            .find(|s| s.attribute.value == value)
            .unwrap_or_else(|| panic!("no section for {value}: {raw:#}"))
    };
    let ip = section("198.51.100.23");
    assert_eq!(ip.hosts.len(), 1, "the malformed message added nothing");
    assert_eq!(ip.hosts[0].author, "ip-reputation");
    assert_eq!(ip.hosts[0].content.country, vec!["NL"]);
    assert_eq!(ip.hosts[0].content.activities[0].last_seen, None);
    let user = section("www-data");
    assert_eq!(user.users[0].author, "login-history");
    assert_eq!(
        user.users[0].content.activities[0].remote_addr,
        "203.0.113.7"
    );
    let binary = section(hash);
    assert_eq!(binary.binaries[0].author, "malware-scan");
    assert!(binary.binaries[0].content.related_malware[0].scans[0].positive);
    for new in ["c2.example.net", "http://c2.example.net/payload"] {
        assert!(
            report.attributes.iter().any(|a| a.value == new),
            "{new} in the report's attributes"
        );
    }
    assert!(
        report
            .attributes
            .iter()
            .any(|a| a.attr_type.as_str() == "instanceid")
    );
    // DeepAlert's fork reads `attr`.
    for s in raw["sections"].as_array().unwrap() {
        assert_eq!(s["attr"], s["attribute"]);
    }

    // The malformed message: retried, then in the DLQ, with a log line saying why.
    let dead = stack
        .aws
        .drain(&stack.inspection_dlq, Duration::from_secs(30))
        .await;
    assert_eq!(dead.len(), 1, "{}", stack.lambda.logs());
    assert!(dead[0].body().unwrap().contains("\"broken\""));
    let logs = stack.lambda.logs();
    assert!(
        logs.contains("inspection message refused") && logs.contains("not an inspection message"),
        "{logs}"
    );
}

/// An inspector built on DeepAlert's Go package: one `Finding` per finding (fork), one
/// `ReportAttribute` for its new attributes, and for domains a `ReportSection` (original).
fn deepalert_go_inspector() -> UserInspector {
    UserInspector {
        name: "go-inspector",
        attribute_types: &["ipaddr", "domain"],
        answer: |task: &Task| {
            let attr = json!(task.attribute);
            match (
                task.attribute.attr_type.as_str(),
                task.attribute.value.as_str(),
            ) {
                ("ipaddr", "198.51.100.23") => vec![
                    json!({"report_id": task.report_id, "author": "go-inspector", "attribute": attr,
                           "type": "host", "content": {"ipaddr": ["198.51.100.23"], "as_owner": ["Example Hosting BV"]}}),
                    json!({"report_id": task.report_id, "author": "go-inspector", "origin_attr": attr,
                           "attributes": [{"type": "domain", "key": "resolves to", "value": "c2.example.net",
                                           "context": ["remote"], "timestamp": attr["timestamp"]}]}),
                ],
                ("domain", "c2.example.net") => vec![
                    json!({"report_id": task.report_id, "author": "go-inspector", "attribute": attr,
                           "type": "host", "content": {"related_urls": [{"url": "http://c2.example.net/payload",
                               "reference": "", "timestamp": "0001-01-01T00:00:00Z", "source": "sandbox"}]}}),
                ],
                _ => vec![],
            }
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deepalert_and_our_inspectors_fill_one_report_with_deepalerts_lifecycle() {
    let stack = Stack::start(StackOptions {
        // A DeepAlert reviewer without a verdict: unclassified, not a failure.
        reviewer: Reviewer::Answers(json!({"severity": "", "reason": ""})),
        parameters: json!({"PublishUnreviewed": "true", "ReportSections": "flat"}),
        inspectors: vec![example_inspector(), deepalert_go_inspector()],
        ..StackOptions::default()
    })
    .await;
    // An emitter subscribed as the README says, to reviewed reports only.
    let (reviewed_only, arn) = stack.aws.create_queue("reviewed-only", 30, None).await;
    stack
        .aws
        .subscribe_queue(
            &stack.report_topic,
            &arn,
            false,
            Some(json!({"status": ["published"]})),
        )
        .await;

    stack
        .publish_alert(&read_json(&example("alerts/guardduty-ssh-bruteforce.json")))
        .await;
    let published = stack.wait_published_json(60).await;
    let statuses: Vec<&str> = published
        .iter()
        .map(|(r, _)| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec!["new", "published"],
        "{}",
        stack.diagnostics().await
    );
    let (unreviewed, attributes) = &published[0];
    assert_eq!(attributes["status"]["Value"], "new");
    assert_eq!(unreviewed["result"], json!({"severity": "", "reason": ""}));
    assert_eq!(unreviewed["alerts"].as_array().unwrap().len(), 1);

    let (raw, attributes) = &published[1];
    assert_eq!(attributes["status"]["Value"], "published");
    assert_eq!(attributes["severity"]["Value"], "unclassified");
    assert_eq!(
        raw["result"],
        json!({"severity": "unclassified", "reason": "the reviewer returned no verdict"})
    );
    // The original DeepAlert's flat section list.
    let flat = raw["sections"].as_array().unwrap();
    assert!(
        flat.iter()
            .all(|s| s["type"].is_string() && s["content"].is_object())
    );
    let report: Report = serde_json::from_value(raw.clone()).unwrap();
    let ip = report
        .sections
        .iter()
        .find(|s| s.attribute.value == "198.51.100.23")
        .unwrap();
    let mut authors: Vec<&str> = ip.hosts.iter().map(|h| h.author.as_str()).collect();
    authors.sort_unstable();
    assert_eq!(authors, vec!["example-inspector", "go-inspector"]);
    let domain = report
        .sections
        .iter()
        .find(|s| s.attribute.value == "c2.example.net")
        .expect("the Go inspector's new attribute, inspected in turn");
    assert_eq!(
        domain.hosts[0].content.related_urls[0].url,
        "http://c2.example.net/payload"
    );

    // The filter policy from the README: reviewed reports only.
    let got = stack
        .aws
        .drain(&reviewed_only, Duration::from_secs(3))
        .await;
    let statuses: Vec<String> = got
        .iter()
        .map(|m| {
            let env: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let r: Value = serde_json::from_str(env["Message"].as_str().unwrap()).unwrap();
            r["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(statuses, vec!["published"]);
}
