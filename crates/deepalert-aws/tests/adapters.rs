//! The AWS adapters against moto: DynamoDB conditions and queries, SNS→SQS delivery with
//! message attributes and filter policies.

mod common;

use std::time::Duration;

use common::Aws;
use deepalert_aws::{DynamoStore, SnsTaskBus};
use deepalert_core::ports::{AttributeClaim, NewAlert, Store, TaskBus};
use deepalert_core::{
    Alert, AttrContext, AttrType, Attribute, Finding, FindingContent, ReportId, ReportStatus,
    ReviewResult, Task,
};
use serde_json::json;

fn alert(key: &str, note: &str) -> Alert {
    Alert {
        detector: "guardduty".into(),
        rule_id: "SSHBruteForce".into(),
        rule_name: String::new(),
        alert_key: key.into(),
        description: note.into(),
        timestamp: None,
        attributes: vec![Attribute::new(
            AttrType::Ipaddr,
            "remote",
            "192.0.2.1",
            &[AttrContext::Remote],
        )],
        body: None,
    }
}

async fn put(store: &DynamoStore, a: &Alert, at: &str) -> deepalert_core::ports::AlertReceipt {
    store
        .put_alert(NewAlert {
            alert: a,
            alert_id: &a.alert_id(),
            alert_ref: &a.content_hash(),
            candidate_report: ReportId::new_random(),
            now: at.parse().unwrap(),
            window: chrono::Duration::hours(3),
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_aggregation_and_idempotent_alerts() {
    let aws = Aws::start(None).await;
    let table = aws.create_table("t").await;
    let store = DynamoStore::new(aws.ddb.clone(), &table, chrono::Duration::days(1));

    let first = put(&store, &alert("i-1", "a"), "2026-11-22T00:00:00Z").await;
    assert_eq!(
        (first.status, first.duplicate, first.review),
        (ReportStatus::New, false, true)
    );
    let again = put(&store, &alert("i-1", "a"), "2026-11-22T00:00:05Z").await;
    assert_eq!(again.report_id, first.report_id);
    assert!(again.duplicate, "same message: stored once");
    let joined = put(&store, &alert("i-1", "b"), "2026-11-22T02:59:00Z").await;
    assert_eq!(
        (joined.report_id, joined.status, joined.review),
        (first.report_id, ReportStatus::More, false)
    );
    let later = put(&store, &alert("i-1", "c"), "2026-11-22T03:00:01Z").await;
    assert_eq!(later.status, ReportStatus::New);
    assert_ne!(later.report_id, first.report_id);

    // Concurrent alerts with one AlertID race for the window: one report, one opener.
    let mut handles = vec![];
    for i in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            put(
                &store,
                &alert("i-race", &format!("burst {i}")),
                "2026-11-22T05:00:00Z",
            )
            .await
        }));
    }
    let mut receipts = vec![];
    for h in handles {
        receipts.push(h.await.unwrap());
    }
    assert!(
        receipts
            .iter()
            .all(|r| r.report_id == receipts[0].report_id)
    );
    assert_eq!(
        receipts
            .iter()
            .filter(|r| r.status == ReportStatus::New)
            .count(),
        1
    );
    let report = store
        .compile_report(receipts[0].report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.alerts.len(), 8);

    // A late alert on a published report reviews it again.
    let mut r = store
        .compile_report(later.report_id)
        .await
        .unwrap()
        .unwrap();
    r.result = Some(ReviewResult::unclassified("x"));
    let p1 = store
        .record_publication(&r, "run-1", chrono::Utc::now())
        .await
        .unwrap();
    let p1_again = store
        .record_publication(&r, "run-1", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((p1.publications, p1_again.publications), (1, 1));
    let late = put(&store, &alert("i-1", "late"), "2026-11-22T03:30:00Z").await;
    assert_eq!(late.report_id, later.report_id);
    assert!(late.review);
    assert_eq!(
        store
            .report_head(later.report_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ReportStatus::More
    );
    let p2 = store
        .record_publication(&r, "run-2", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(p2.publications, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_are_claimed_once_and_bounded() {
    let aws = Aws::start(None).await;
    let table = aws.create_table("t").await;
    let store = DynamoStore::new(aws.ddb.clone(), &table, chrono::Duration::days(1));
    let receipt = put(&store, &alert("i-1", "a"), "2026-11-22T00:00:00Z").await;
    let id = receipt.report_id;
    let ip = |v: &str, ctx: &[AttrContext]| AttributeClaim {
        attribute: Attribute::new(AttrType::Ipaddr, "remote", v, ctx),
        depth: 0,
    };
    use AttrContext::*;
    let first = store
        .claim_attributes(
            id,
            &[
                ip("192.0.2.1", &[Remote, Client]),
                ip("192.0.2.2", &[Remote]),
            ],
            "run-a",
            3,
        )
        .await
        .unwrap();
    assert_eq!(first.claimed.len(), 2);
    // Another step: the same attribute (contexts in another order) is not claimed again.
    let other = store
        .claim_attributes(
            id,
            &[ip("192.0.2.1", &[Client, Remote]), ip("192.0.2.3", &[])],
            "run-b",
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        other
            .claimed
            .iter()
            .map(|a| a.value.as_str())
            .collect::<Vec<_>>(),
        vec!["192.0.2.3"]
    );
    // The same step retried gets its own claims back (so it republishes rather than loses).
    let retried = store
        .claim_attributes(id, &[ip("192.0.2.2", &[Remote])], "run-a", 3)
        .await
        .unwrap();
    assert_eq!(retried.claimed.len(), 1);
    // The report holds 3: the fourth is over the limit.
    let over = store
        .claim_attributes(id, &[ip("192.0.2.4", &[])], "run-c", 3)
        .await
        .unwrap();
    assert!(over.claimed.is_empty());
    assert_eq!(over.over_limit.len(), 1);
    let depth = store
        .attribute_depth(
            id,
            &Attribute::new(AttrType::Ipaddr, "remote", "192.0.2.3", &[]).identity(),
        )
        .await
        .unwrap();
    assert_eq!(depth, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_compiles_from_a_paginated_query() {
    let aws = Aws::start(None).await;
    let table = aws.create_table("t").await;
    // Three items a page: the report below is 40+ items.
    let store =
        DynamoStore::new(aws.ddb.clone(), &table, chrono::Duration::days(1)).with_page_size(3);
    let receipt = put(&store, &alert("i-1", "a"), "2026-11-22T00:00:00Z").await;
    let id = receipt.report_id;
    let attrs: Vec<Attribute> = (0..12)
        .map(|i| Attribute::new(AttrType::Domain, "d", &format!("host{i}.example.com"), &[]))
        .collect();
    let claims: Vec<AttributeClaim> = attrs
        .iter()
        .map(|a| AttributeClaim {
            attribute: a.clone(),
            depth: 0,
        })
        .collect();
    store
        .claim_attributes(id, &claims, "run", 100)
        .await
        .unwrap();
    let findings: Vec<Finding> = attrs
        .iter()
        .flat_map(|a| {
            ["intel", "inventory"].map(|author| Finding {
                report_id: id,
                author: author.into(),
                attribute: a.clone(),
                content: FindingContent::Host(deepalert_core::finding::ContentHost {
                    hostname: vec![a.value.clone()],
                    ..Default::default()
                }),
            })
        })
        .collect();
    store.put_findings(&findings).await.unwrap();
    store.put_findings(&findings[..5]).await.unwrap(); // redelivered: stored once

    let report = store.compile_report(id).await.unwrap().unwrap();
    assert_eq!(report.attributes.len(), 12);
    assert_eq!(report.sections.len(), 12);
    assert!(report.sections.iter().all(|s| s.hosts.len() == 2));
    // Sections follow the order attributes were claimed in.
    let order: Vec<&str> = report
        .sections
        .iter()
        .map(|s| s.attribute.value.as_str())
        .collect();
    let expected: Vec<&str> = attrs.iter().map(|a| a.value.as_str()).collect();
    assert_eq!(order, expected);
    assert_eq!(report.alerts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_published_tasks_honour_filter_policies() {
    let aws = Aws::start(None).await;
    let topic = aws.create_topic("tasks").await;
    let (ip_queue, ip_arn) = aws.create_queue("ip-only", 30, None).await;
    aws.subscribe_queue(
        &topic,
        &ip_arn,
        true,
        Some(json!({"attribute_type": ["ipaddr"]})),
    )
    .await;
    let (all_queue, all_arn) = aws.create_queue("everything", 30, None).await;
    aws.subscribe_queue(&topic, &all_arn, false, None).await;

    let report_id = ReportId::new_random();
    let tasks: Vec<Task> = (0..23)
        .map(|i| Task {
            report_id,
            attribute: if i % 3 == 0 {
                Attribute::new(AttrType::Ipaddr, "ip", &format!("192.0.2.{i}"), &[])
            } else {
                Attribute::new(AttrType::Domain, "d", &format!("d{i}.example.com"), &[])
            },
            detector: "guardduty".into(),
            rule_id: "SSHBruteForce".into(),
        })
        .collect();
    SnsTaskBus::new(aws.sns.clone(), &topic)
        .publish(&tasks)
        .await
        .unwrap();

    let ip_messages = aws.drain(&ip_queue, Duration::from_secs(10)).await;
    assert_eq!(
        ip_messages.len(),
        8,
        "only ipaddr tasks pass the filter (0,3,…,21)"
    );
    for m in &ip_messages {
        let task: Task = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(task.attribute.attr_type, AttrType::Ipaddr);
        assert_eq!(task.report_id, report_id);
    }
    let all = aws.drain(&all_queue, Duration::from_secs(10)).await;
    assert_eq!(all.len(), 23);
    let envelope: serde_json::Value = serde_json::from_str(all[0].body().unwrap()).unwrap();
    assert_eq!(
        envelope["MessageAttributes"]["detector"]["Value"],
        "guardduty"
    );
    assert_eq!(
        envelope["MessageAttributes"]["rule_id"]["Value"],
        "SSHBruteForce"
    );
    assert!(envelope["MessageAttributes"]["attribute_type"]["Value"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_state_round_trips_and_expires() {
    use deepalert_aws::DynamoPluginState;
    use deepalert_core::ports::PluginState;
    let aws = Aws::start(None).await;
    let table = aws.create_table("emitter-state").await;
    let state = DynamoPluginState::new(aws.ddb.clone(), &table, chrono::Duration::days(3));

    assert_eq!(state.get("sent:slack:r-1").await.unwrap(), None);
    state.put("sent:slack:r-1", "fp-1").await.unwrap();
    state.put("sent:slack:r-1", "fp-2").await.unwrap();
    state.put("sent:pagerduty:r-1", "fp-9").await.unwrap();
    assert_eq!(
        state.get("sent:slack:r-1").await.unwrap().as_deref(),
        Some("fp-2")
    );
    assert_eq!(
        state.get("sent:pagerduty:r-1").await.unwrap().as_deref(),
        Some("fp-9")
    );
    let item = aws
        .ddb
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("state#sent:slack:r-1".into()),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("-".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now().timestamp()) as f64 / 86400.0;
    assert!((2.9..=3.1).contains(&days), "{days}");

    // A missing table is an error naming the operation, not "nothing sent yet".
    let missing =
        DynamoPluginState::new(aws.ddb.clone(), "no-such-table", chrono::Duration::days(3));
    let e = missing.get("k").await.unwrap_err().chain();
    assert!(
        e.contains("get plug-in state") && e.contains("ResourceNotFound"),
        "{e}"
    );
}

/// Real DynamoDB cancels concurrent transactions on the same item (a burst aggregating
/// into one report does that) with `TransactionConflict`, and throttles. Only a failed
/// condition may mean "claimed before" or "over the limit"; contention is retried, and
/// contention that does not stop is an error (the step is retried), never a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_is_retried_and_never_taken_for_a_full_report() {
    use deepalert_testkit::faults::{Fault, FaultProxy};
    let aws = Aws::start(None).await;
    let table = aws.create_table("t").await;
    let proxy = FaultProxy::start(&aws.moto.endpoint).await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws.moto.sdk_via(&proxy.url).await);
    let store = DynamoStore::new(ddb, &table, chrono::Duration::days(1));

    // The alert's transaction (head + alert) loses twice to another writer.
    proxy.inject(Fault::transaction_cancelled(
        &["None", "TransactionConflict"],
        2,
    ));
    let receipt = put(&store, &alert("i-1", "a"), "2026-11-22T00:00:00Z").await;
    assert_eq!(receipt.status, ReportStatus::New);
    assert_eq!(proxy.injected(), 2);
    let id = receipt.report_id;

    let claim = |v: &str| AttributeClaim {
        attribute: Attribute::new(AttrType::Ipaddr, "remote", v, &[]),
        depth: 0,
    };
    // A claim cancelled by contention on the head's counter, then by throttling: claimed.
    proxy.inject(Fault::transaction_cancelled(
        &["None", "TransactionConflict"],
        2,
    ));
    proxy.inject(Fault::transaction_cancelled(
        &["ThrottlingError", "None"],
        1,
    ));
    let out = store
        .claim_attributes(id, &[claim("192.0.2.1")], "run-a", 256)
        .await
        .unwrap();
    assert_eq!(out.claimed.len(), 1, "{out:?}");
    assert!(out.over_limit.is_empty(), "contention is not a full report");

    // Contention that does not stop: an error (the SQS message is retried), not a refusal.
    proxy.inject(Fault::transaction_cancelled(
        &["None", "TransactionConflict"],
        100,
    ));
    let err = store
        .claim_attributes(id, &[claim("192.0.2.2")], "run-b", 256)
        .await
        .unwrap_err();
    assert!(
        err.chain().contains("TransactionConflict"),
        "{}",
        err.chain()
    );
    proxy.clear();
    // Nothing of it was stored: the retried step claims it for real.
    let out = store
        .claim_attributes(id, &[claim("192.0.2.2")], "run-b", 256)
        .await
        .unwrap();
    assert_eq!(out.claimed.len(), 1);

    // A failed condition still means what it says: the report is full at 2.
    let out = store
        .claim_attributes(id, &[claim("192.0.2.3")], "run-c", 2)
        .await
        .unwrap();
    assert_eq!((out.claimed.len(), out.over_limit.len()), (0, 1));

    // The publication's transaction (head + snapshot) too.
    let report = store.compile_report(id).await.unwrap().unwrap();
    proxy.inject(Fault::transaction_cancelled(
        &["TransactionConflict", "None"],
        3,
    ));
    let published = store
        .record_publication(&report, "pub-1", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(published.publications, 1);
    // A cancellation for a reason that never goes away is an error naming it.
    proxy.inject(Fault::transaction_cancelled(
        &["ValidationError", "None"],
        1,
    ));
    let err = store
        .claim_attributes(id, &[claim("192.0.2.9")], "run-d", 256)
        .await
        .unwrap_err();
    assert!(err.chain().contains("ValidationError"), "{}", err.chain());
}
