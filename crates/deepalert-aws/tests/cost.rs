//! What an alert costs on AWS (`make cost` prints the table): the stack of `template.yaml`
//! on moto, with a user's inspector and emitter as Lambda functions subscribed to the task
//! and report topics and a reviewer function, for a new report with 3 attributes and for
//! a burst of 20 alerts into one report. Requests are counted as the stack makes them,
//! transitions from the executions' histories; prices are in `common/cost.rs`.

mod common;

#[path = "common/cost.rs"]
mod cost;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{Stack, StackOptions};
use cost::Usage;
use deepalert_testkit::aws_stack::binary;
use deepalert_testkit::json_lines;
use serde_json::{Value, json};

/// Dollars per million alerts the stack must stay under (issue: half of DeepAlert's).
const SINGLE_ALERT_TARGET: f64 = 85.0;
const BURST_TARGET: f64 = 25.0;

fn alert(n: usize) -> Value {
    json!({
        "detector": "cost-bench",
        "rule_id": "outbound-to-c2",
        "alert_key": "web-3",
        "description": format!("connection {n}"),
        "timestamp": "2026-11-20T03:14:07Z",
        "attributes": [
            {"type": "ipaddr", "key": "remote", "value": "198.51.100.23", "context": ["remote"]},
            {"type": "domain", "key": "queried", "value": "c2.example.net", "context": ["remote"]},
            {"type": "username", "key": "process owner", "value": "bob", "context": ["subject"]},
        ]
    })
}

/// Every state entered (Standard workflows bill each transition) in executions not in
/// `before`; waits until none is running.
async fn transitions(stack: &Stack, before: &BTreeSet<String>) -> (usize, BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let executions = stack
            .aws
            .sfn
            .list_executions()
            .state_machine_arn(&stack.state_machine)
            .send()
            .await
            .unwrap()
            .executions;
        let running = executions.iter().any(|e| e.status.as_str() == "RUNNING");
        if running && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let mut total = 0;
        let mut all = before.clone();
        for e in executions {
            if !all.insert(e.execution_arn.clone()) {
                continue;
            }
            let history = stack
                .aws
                .sfn
                .get_execution_history()
                .execution_arn(&e.execution_arn)
                .send()
                .await
                .unwrap();
            total += history
                .events
                .iter()
                .filter(|ev| ev.r#type.as_str().ends_with("StateEntered"))
                .count();
        }
        return (total, all);
    }
}

/// Waits for `n` lines from the emitter, then for the stack to go quiet.
async fn settle(stack: &Stack, emitted: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while json_lines(emitted).len() < n {
        assert!(
            Instant::now() < deadline,
            "no publication:\n{}",
            stack.diagnostics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut last = stack.aws.moto.requests().await.len();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = stack.aws.moto.requests().await.len();
        if now == last {
            return;
        }
        last = now;
    }
}

async fn measure(
    stack: &Stack,
    alerts: usize,
    emitted: &std::path::Path,
    executions: &mut BTreeSet<String>,
    sqs_functions: &[String],
) -> Usage {
    stack.aws.moto.reset_requests().await;
    stack.lambda.reset_invocations();
    let lines_before = json_lines(emitted).len();
    for n in 0..alerts {
        stack.publish_alert(&alert(n)).await;
    }
    settle(stack, emitted, lines_before + 1).await;
    let (t, all) = transitions(stack, executions).await;
    *executions = all;
    let invocations = stack.lambda.invocations();
    let batches = invocations
        .iter()
        .filter(|f| sqs_functions.contains(f))
        .count();
    Usage::from_counts(
        alerts as u32,
        &stack.aws.moto.requests().await,
        invocations.len(),
        batches,
        t,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cost_per_alert_is_half_of_deepalerts() {
    let stack = Stack::start(StackOptions {
        inspectors: vec![],
        inspection_delay: 1,
        review_delay: 4,
        ..StackOptions::default()
    })
    .await;
    // The user's inspector and emitter, as Lambda functions subscribed to the topics.
    let dir = tempfile::tempdir().unwrap();
    let emitted = dir.path().join("emitted.jsonl");
    let role = stack.aws.create_role();
    for (name, bin, topic, env) in [
        (
            "user-inspector",
            "example-inspector",
            stack.task_topic.clone(),
            HashMap::from([(
                "INSPECTION_QUEUE_URL".to_string(),
                stack.inspection_queue.clone(),
            )]),
        ),
        (
            "user-emitter",
            "example-emitter",
            stack.report_topic.clone(),
            HashMap::from([("EMITTER_OUT".to_string(), emitted.display().to_string())]),
        ),
    ] {
        let arn = stack.aws.create_function(name, &role).await;
        stack
            .lambda
            .host_binary(name, &binary(bin), &env, Duration::from_secs(30), 2)
            .await;
        stack
            .aws
            .sns
            .subscribe()
            .topic_arn(topic)
            .protocol("lambda")
            .endpoint(arn)
            .send()
            .await
            .unwrap();
    }
    let sqs_functions: Vec<String> = stack.deployed.json["event_source_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| stack.function_name(m["function"].as_str().unwrap()))
        .collect();

    let mut executions = BTreeSet::new();
    let single = measure(&stack, 1, &emitted, &mut executions, &sqs_functions).await;
    let burst = measure(&stack, 20, &emitted, &mut executions, &sqs_functions).await;

    let report = json_lines(&emitted);
    let last = report.last().unwrap();
    assert_eq!(
        last["alerts"].as_array().map(Vec::len),
        Some(20),
        "the burst made one report"
    );
    println!(
        "{}\n{}",
        single.table(
            "single alert: a new report, 3 attributes, one inspector, a reviewer, one emitter"
        ),
        burst.table("burst: 20 alerts into one report (per alert)")
    );
    println!("requests, single alert: {:?}", single.by_action);
    println!("requests, burst of 20: {:?}", burst.by_action);
    println!(
        "single alert: ${:.2} per million alerts; burst of 20: ${:.2} per million alerts",
        single.per_million(),
        burst.per_million()
    );
    assert!(
        single.per_million() <= SINGLE_ALERT_TARGET,
        "single alert: ${:.2} per million, over ${SINGLE_ALERT_TARGET}",
        single.per_million()
    );
    assert!(
        burst.per_million() <= BURST_TARGET,
        "burst: ${:.2} per million, over ${BURST_TARGET}",
        burst.per_million()
    );
}
