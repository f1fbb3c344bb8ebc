//! The whole stack on moto, as `template.yaml` ships it: its resources deployed one by one
//! (topics, queues, subscriptions, table, state machine), its five functions run by their
//! real binaries with the environment the template gives them, its SQS event source
//! mappings run by pollers that honour batch size and `ReportBatchItemFailures`. The state
//! machine really executes; its Lambda tasks reach the real binaries.

mod common;

use std::time::{Duration, Instant};

use common::{Reviewer, Stack, StackOptions};
use deepalert_core::{ReportStatus, Severity};
use deepalert_testkit::aws_stack::{PackageDocuments, sqs_event};
use deepalert_testkit::{example, read_json};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alert_flows_through_the_state_machine_to_the_report_topic() {
    let stack = Stack::start(StackOptions::default()).await;

    stack
        .publish_alert(&read_json(&example("alerts/guardduty-ssh-bruteforce.json")))
        .await;
    let published = stack.wait_published(60).await;
    assert_eq!(
        published.len(),
        1,
        "one publication:\n{}",
        stack.diagnostics().await
    );
    let (report, attributes) = &published[0];

    assert_eq!(report.status, ReportStatus::Published);
    assert_eq!(report.publications, 1);
    // The inspector's findings, including about the attribute it returned.
    let section = |v: &str| report.sections.iter().find(|s| s.attribute.value == v);
    let remote = section("198.51.100.23").expect("section for the remote address");
    assert_eq!(remote.hosts[0].author, "example-inspector");
    assert_eq!(
        remote.hosts[0].content.activities[0].service_name,
        "threat-list"
    );
    assert_eq!(
        section("10.0.1.23").unwrap().hosts[0].content.hostname,
        vec!["web-1"]
    );
    assert_eq!(
        section("alice")
            .expect("new attribute inspected")
            .users
            .len(),
        1
    );
    // The reviewer Lambda's verdict (the example reviewer's binary).
    let result = report.result.clone().unwrap();
    assert_eq!(result.severity, Severity::Urgent, "{result:?}");
    assert!(result.reason.contains("web-1"));
    // Message attributes for emitters' filter policies.
    assert_eq!(attributes["severity"]["Value"], "urgent");
    assert_eq!(attributes["status"]["Value"], "published");
    assert_eq!(attributes["detector"]["Value"], "aws-guardduty");
    assert_eq!(
        attributes["rule_id"]["Value"],
        "UnauthorizedAccess:EC2/SSHBruteForce"
    );

    // A late alert (same AlertID) joins the published report: dispatched, reviewed and
    // published again by its own execution.
    let mut late = read_json(&example("alerts/guardduty-ssh-bruteforce-more.json"));
    late["description"] = json!("late");
    stack.publish_alert(&late).await;
    let again = stack.wait_published(60).await;
    assert_eq!(again.len(), 1, "{}", stack.diagnostics().await);
    let (second, _) = &again[0];
    assert_eq!(second.id, report.id);
    assert_eq!(second.publications, 2);
    assert_eq!(second.alerts.len(), 2);
    assert!(
        second
            .sections
            .iter()
            .any(|s| s.attribute.value == "198.51.100.99")
    );

    // One review execution per round (the first alert's, the late one's); both succeeded
    // (the second may still be closing when its report arrives).
    let deadline = Instant::now() + Duration::from_secs(20);
    let executions = loop {
        let executions = stack
            .aws
            .sfn
            .list_executions()
            .state_machine_arn(&stack.state_machine)
            .send()
            .await
            .unwrap()
            .executions;
        if executions.iter().all(|e| e.status.as_str() != "RUNNING") || Instant::now() > deadline {
            break executions;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(executions.len(), 2);
    assert!(
        executions.iter().all(|e| e.status.as_str() == "SUCCEEDED"),
        "{executions:?}"
    );

    // An alert that is not an alert goes to the DLQ, not into a report.
    stack.publish_alert(&json!({"detector": "x"})).await;
    let dead = stack
        .aws
        .drain(&stack.alert_dlq, Duration::from_secs(30))
        .await;
    assert_eq!(dead.len(), 1, "{}", stack.lambda.logs());
    assert_eq!(dead[0].body(), Some(r#"{"detector":"x"}"#));
    assert!(
        stack.lambda.logs().contains("alert refused"),
        "the receptor logs why"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_delivery_stores_once_and_runs_once() {
    // The stack's own pollers run (the dispatch queue's among them); no user inspector.
    let stack = Stack::start(StackOptions {
        review_delay: 1,
        inspectors: vec![],
        ..StackOptions::default()
    })
    .await;
    let tasks_queue = stack.subscribe_tasks("inspector", &["ipaddr"]).await;
    let receptor = stack.function_name("ReceptorFunction");
    let alert = read_json(&example("alerts/guardduty-ssh-bruteforce.json")).to_string();
    let message = aws_sdk_sqs::types::Message::builder()
        .message_id("m-1")
        .receipt_handle("r-1")
        .body(&alert)
        .build();
    let alert_queue_arn = stack.deployed.attribute("AlertQueue", "Arn");
    // The same SQS message, handled twice by the receptor binary (at-least-once delivery).
    for _ in 0..2 {
        let event = sqs_event(&alert_queue_arn, std::slice::from_ref(&message));
        let response = stack
            .lambda
            .invoke(&receptor, event.to_string())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", stack.lambda.logs()));
        let response: Value = serde_json::from_str(&response).unwrap();
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    }
    let alerts = stack
        .aws
        .ddb
        .scan()
        .table_name(&stack.table)
        .filter_expression("begins_with(sk, :a)")
        .expression_attribute_values(
            ":a",
            aws_sdk_dynamodb::types::AttributeValue::S("alert#".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(alerts.len(), 1, "one stored alert");

    let deadline = Instant::now() + Duration::from_secs(30);
    let executions = loop {
        let ex = stack
            .aws
            .sfn
            .list_executions()
            .state_machine_arn(&stack.state_machine)
            .send()
            .await
            .unwrap()
            .executions;
        if !ex.is_empty() && ex.iter().all(|e| e.status.as_str() != "RUNNING") {
            break ex;
        }
        assert!(
            Instant::now() < deadline,
            "execution did not finish:\n{}",
            stack.diagnostics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(executions.len(), 1, "one execution");
    // One set of tasks: each attribute once on the inspector's queue, with the alert's
    // time on the attribute (Go inspectors dereference it).
    let tasks = stack.aws.drain(&tasks_queue, Duration::from_secs(5)).await;
    let mut values: Vec<String> = tasks
        .iter()
        .map(|m| {
            let env: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let task: Value = serde_json::from_str(env["Message"].as_str().unwrap()).unwrap();
            assert_eq!(
                env["MessageAttributes"]["attribute_type"]["Value"],
                "ipaddr"
            );
            assert_eq!(task["attribute"]["timestamp"], "2026-11-22T03:15:00Z");
            task["attribute"]["value"].as_str().unwrap().to_string()
        })
        .collect();
    values.sort();
    assert_eq!(values, vec!["10.0.1.23", "198.51.100.23"]);

    // A malformed message among valid ones: only it is reported failed.
    let valid = |id: &str, key: &str| {
        let mut a = read_json(&example("alerts/console-login.json"));
        a["alert_key"] = json!(key);
        aws_sdk_sqs::types::Message::builder()
            .message_id(id)
            .receipt_handle(id)
            .body(a.to_string())
            .build()
    };
    let batch = vec![
        valid("ok-1", "bob"),
        aws_sdk_sqs::types::Message::builder()
            .message_id("bad")
            .receipt_handle("bad")
            .body("{\"detector\":")
            .build(),
        valid("ok-2", "carol"),
    ];
    let response = stack
        .lambda
        .invoke(&receptor, sqs_event(&alert_queue_arn, &batch).to_string())
        .await
        .unwrap();
    let response: Value = serde_json::from_str(&response).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "bad"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_reviewer_still_publishes_unclassified() {
    let stack = Stack::start(StackOptions {
        reviewer: Reviewer::Failing,
        review_delay: 1,
        ..StackOptions::default()
    })
    .await;
    stack
        .publish_alert(&read_json(&example("alerts/console-login.json")))
        .await;
    let published = stack.wait_published(60).await;
    assert_eq!(published.len(), 1, "{}", stack.diagnostics().await);
    let (report, attributes) = &published[0];
    let result = report.result.clone().unwrap();
    assert_eq!(result.severity, Severity::Unclassified);
    assert!(result.reason.contains("reviewer"), "{}", result.reason);
    assert!(
        result.reason.contains("policy bundle failed to load"),
        "{}",
        result.reason
    );
    assert_eq!(attributes["severity"]["Value"], "unclassified");
    assert!(stack.lambda.invocations().iter().any(|n| n == "reviewer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_review_step_is_caught_and_still_published() {
    // The Review task's function itself fails (not just the reviewer it calls): the
    // state machine's Catch hands the error to Publish.
    let stack = Stack::start(StackOptions {
        failing_review_step: true,
        review_delay: 1,
        ..StackOptions::default()
    })
    .await;
    stack
        .publish_alert(&read_json(&example("alerts/console-login.json")))
        .await;
    let published = stack.wait_published(60).await;
    assert_eq!(published.len(), 1, "{}", stack.diagnostics().await);
    let result = published[0].0.result.clone().unwrap();
    assert_eq!(result.severity, Severity::Unclassified);
    assert!(
        result
            .reason
            .starts_with("review step failed: HandlerError"),
        "{}",
        result.reason
    );
    assert!(
        result.reason.contains("policy bundle failed to load"),
        "{}",
        result.reason
    );
}

/// One bad message in a batch fails alone, on each queue the stack consumes: the good ones
/// of the same batch are stored, the bad one is retried, then reaches its DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_batches_keep_the_good_and_dead_letter_the_bad() {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let stack = Stack::start(StackOptions {
        review_delay: 8,
        inspectors: vec![],
        ..StackOptions::default()
    })
    .await;
    let observer = stack
        .subscribe_tasks("observer", &["ipaddr", "username"])
        .await;
    stack
        .publish_alert(&read_json(&example("alerts/console-login.json")))
        .await;
    let tasks = stack.aws.drain(&observer, Duration::from_secs(20)).await;
    assert!(!tasks.is_empty(), "{}", stack.diagnostics().await);
    let env: Value = serde_json::from_str(tasks[0].body().unwrap()).unwrap();
    let task: Value = serde_json::from_str(env["Message"].as_str().unwrap()).unwrap();
    let report_id = task["report_id"].as_str().unwrap().to_string();
    let ip = json!({"type": "ipaddr", "key": "source address", "value": "203.0.113.77", "context": ["remote", "client"]});
    let user =
        json!({"type": "username", "key": "IAM user", "value": "alice", "context": ["subject"]});

    let entry = |id: &str, body: String| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .unwrap()
    };
    // One batch of three on the inspection queue: ours, garbage, DeepAlert's.
    stack
        .aws
        .sqs
        .send_message_batch()
        .queue_url(&stack.inspection_queue)
        .entries(entry(
            "ours",
            json!({"report_id": report_id, "author": "geoip", "attribute": ip,
                   "findings": [{"type": "host", "content": {"country": ["RO"]}}]})
            .to_string(),
        ))
        .entries(entry("bad", "{\"report_id\": \"".into()))
        .entries(entry(
            "theirs",
            json!({"report_id": report_id, "author": "hr-directory", "attribute": user,
                   "type": "user", "content": {"activities": [{"service_name": "hr", "action": "on leave"}]}})
            .to_string(),
        ))
        .send()
        .await
        .unwrap();
    // And a dispatch message that is not one, next to the stack's own.
    stack
        .aws
        .sqs
        .send_message()
        .queue_url(stack.deployed.physical("DispatchQueue"))
        .message_body("{\"run\": 1}")
        .send()
        .await
        .unwrap();

    let published = stack.wait_published(60).await;
    assert_eq!(published.len(), 1, "{}", stack.diagnostics().await);
    let report = &published[0].0;
    let authors: Vec<&str> = report
        .sections
        .iter()
        .flat_map(|s| {
            s.hosts
                .iter()
                .map(|h| h.author.as_str())
                .chain(s.users.iter().map(|u| u.author.as_str()))
        })
        .collect();
    assert!(
        authors.contains(&"geoip") && authors.contains(&"hr-directory"),
        "{authors:?}"
    );

    let dead = stack
        .aws
        .drain(&stack.inspection_dlq, Duration::from_secs(30))
        .await;
    assert_eq!(
        dead.iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(),
        vec!["{\"report_id\": \""]
    );
    let dead = stack
        .aws
        .drain(&stack.dispatch_dlq, Duration::from_secs(30))
        .await;
    assert_eq!(
        dead.iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(),
        vec!["{\"run\": 1}"]
    );
    let logs = stack.lambda.logs();
    assert!(logs.contains("inspection message refused"), "{logs}");
    assert!(logs.contains("dispatch message refused"), "{logs}");
}

/// A response flow on the stack as it ships: the publication starts an execution of the
/// flows state machine; the flow runner (its real binary) mails through an SNS topic,
/// the execution waits (a Wait state, no Lambda), checks the IAM user still exists and
/// contains it; every step is on the report's timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flow_notifies_waits_checks_and_contains_the_user() {
    let mail_topic = "arn:aws:sns:us-east-1:123456789012:sec-mail";
    let flows = json!({
        "notifiers": [{"name": "sec-email", "builtin": "email",
                       "options": {"sns_topic_arn": mail_topic}}],
        "flows": [{
            "name": "contain-user",
            "rule_id": "non-compliant-user-created",
            "min_severity": "urgent",
            "steps": [
                {"notify": "sec-email", "template": "new user {{ report.alerts[0].alert_key }}: {{ reason }}"},
                {"wait": "3s"},
                {"check": "iam-user-exists"},
                {"remediate": "iam-user", "options": {"dry_run": false}}
            ]
        }]
    });
    let stack = Stack::start(StackOptions {
        reviewer: Reviewer::Answers(json!({"severity": "urgent", "reason": "not our naming"})),
        documents: PackageDocuments {
            flows: flows.to_string(),
            ..PackageDocuments::default()
        },
        parameters: json!({
            "FlowActions": "iam:GetUser,iam:PutUserPolicy,iam:UpdateAccessKey,iam:DeleteLoginProfile",
            "FlowTopicArns": mail_topic,
        }),
        ..StackOptions::default()
    })
    .await;
    // The runner's role holds exactly the flows' actions; the other functions have none.
    let runner_policy = stack
        .deployed
        .properties("FlowRunnerFunctionRole")
        .to_string();
    assert!(
        runner_policy.contains("iam:PutUserPolicy"),
        "{runner_policy}"
    );
    assert!(
        !stack
            .deployed
            .properties("ReceptorFunctionRole")
            .to_string()
            .contains("iam:PutUserPolicy")
    );

    let mail = stack.aws.create_topic("sec-mail").await;
    assert_eq!(mail, mail_topic);
    let (inbox, inbox_arn) = stack.aws.create_queue("inbox", 30, None).await;
    stack
        .aws
        .subscribe_queue(&mail, &inbox_arn, true, None)
        .await;
    let iam = aws_sdk_iam::Client::new(&stack.aws.sdk);
    iam.create_user().user_name("mallory").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("mallory")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap()
        .access_key_id;

    stack
        .publish_alert(&json!({
            "detector": "aws-cloudtrail",
            "rule_id": "non-compliant-user-created",
            "alert_key": "mallory",
            "description": "IAM user created outside the naming convention",
            "attributes": [
                {"type": "username", "key": "created user", "value": "mallory", "context": ["object"]},
                {"type": "username", "key": "creator", "value": "admin", "context": ["subject"]}
            ],
            "body": {"account": "123456789012", "region": "us-east-1"}
        }))
        .await;
    let published = stack.wait_published(60).await;
    assert_eq!(published.len(), 1, "{}", stack.diagnostics().await);
    let report_id = published[0].0.id;

    let flows_machine = stack.deployed.physical("FlowsStateMachine");
    let deadline = Instant::now() + Duration::from_secs(60);
    let execution = loop {
        let executions = stack
            .aws
            .sfn
            .list_executions()
            .state_machine_arn(&flows_machine)
            .send()
            .await
            .unwrap()
            .executions;
        if let Some(e) = executions.iter().find(|e| e.status.as_str() != "RUNNING") {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no flow execution ended: {executions:?}\n{}",
            stack.lambda.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        execution.name,
        format!("{report_id}-contain-user-p1"),
        "one execution per (report, flow, publication)"
    );
    assert_eq!(
        execution.status.as_str(),
        "SUCCEEDED",
        "{}",
        stack.lambda.logs()
    );

    // The mail went out through the topic, with the template filled in.
    let mails = stack.aws.drain(&inbox, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let body = mails[0].body().unwrap();
    assert!(body.contains("new user mallory: not our naming"), "{body}");
    // Contained, reversibly: a deny-all inline policy, the key deactivated; the user stays.
    let policy = iam
        .get_user_policy()
        .user_name("mallory")
        .policy_name("deepalert-deny-all")
        .send()
        .await
        .expect("the deny-all policy is attached");
    assert!(policy.policy_document.contains("Deny"));
    let keys = iam
        .list_access_keys()
        .user_name("mallory")
        .send()
        .await
        .unwrap()
        .access_key_metadata;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].access_key_id.as_deref(), Some(key.as_str()));
    assert_eq!(keys[0].status.as_ref().unwrap().as_str(), "Inactive");
    // The admin (the subject, not the object) is untouched: no such user was needed.

    // Every step on the report's timeline.
    use deepalert_core::ports::Store;
    let store = deepalert_aws::store(&stack.aws.sdk, stack.table.clone(), 30);
    let report = store.compile_report(report_id).await.unwrap().unwrap();
    let flow_entries: Vec<String> = report
        .timeline
        .iter()
        .filter(|e| e.kind == "flow")
        .map(|e| e.message.clone())
        .collect();
    assert!(flow_entries.len() >= 4, "{flow_entries:#?}");
    let all = flow_entries.join("\n");
    for step in ["notify", "wait", "check", "remediate"] {
        assert!(all.contains(step), "{step} in {all}");
    }
    assert!(all.contains("mallory"), "{all}");
}
