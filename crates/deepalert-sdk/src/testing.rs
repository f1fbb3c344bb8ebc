//! Helpers to unit-test a plug-in's handler without AWS or a running deepalert.
//!
//! ```
//! use deepalert_sdk::testing;
//! use deepalert_sdk::AttrType;
//!
//! let task = testing::task(AttrType::Ipaddr, "198.51.100.23");
//! assert_eq!(task.attribute.value, "198.51.100.23");
//! let event = testing::sns_task_event(&[task]);
//! assert_eq!(event.records.len(), 1);
//! ```

use aws_lambda_events::sns::SnsEvent;
use deepalert_core::{
    Alert, AttrType, Attribute, Authored, FindingContent, Report, ReportId, ReportStatus, Section,
    Task,
};
use serde_json::json;

/// A task about one attribute of a fresh report.
pub fn task(attr_type: AttrType, value: &str) -> Task {
    Task {
        report_id: ReportId::new_random(),
        attribute: Attribute::new(attr_type, "test", value, &[]),
        detector: "test".into(),
        rule_id: "test-rule".into(),
    }
}

/// An empty report with one alert; add findings with [`with_finding`].
pub fn report() -> Report {
    Report {
        id: ReportId::new_random(),
        alerts: vec![Alert {
            detector: "test".into(),
            rule_id: "test-rule".into(),
            rule_name: String::new(),
            alert_key: String::new(),
            description: String::new(),
            timestamp: None,
            attributes: vec![],
            body: None,
        }],
        attributes: vec![],
        sections: vec![],
        notes: vec![],
        result: None,
        status: ReportStatus::New,
        created_at: chrono::Utc::now(),
        published_at: None,
        publications: 0,
        timeline: vec![],
    }
}

/// Adds a finding (by `author`) about `attribute` to the report, as deepalert would.
pub fn with_finding(
    mut report: Report,
    attribute: Attribute,
    author: &str,
    content: FindingContent,
) -> Report {
    if !report.attributes.contains(&attribute) {
        report.attributes.push(attribute.clone());
    }
    let idx = match report
        .sections
        .iter()
        .position(|s| s.attribute == attribute)
    {
        Some(i) => i,
        None => {
            report.sections.push(Section {
                attribute,
                hosts: vec![],
                users: vec![],
                binaries: vec![],
            });
            report.sections.len() - 1
        }
    };
    let section = &mut report.sections[idx];
    let author = author.to_string();
    match content {
        FindingContent::Host(content) => section.hosts.push(Authored { author, content }),
        FindingContent::User(content) => section.users.push(Authored { author, content }),
        FindingContent::Binary(content) => section.binaries.push(Authored { author, content }),
    }
    report
}

fn sns_event(messages: Vec<String>, topic: &str) -> SnsEvent {
    let records: Vec<serde_json::Value> = messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{topic}:0b0c0d0e-0000-4000-8000-00000000000{i}"),
                "Sns": {
                    "Type": "Notification",
                    "MessageId": format!("95df01b4-ee98-5cb9-9903-4c221d41eb5{i}"),
                    "TopicArn": topic,
                    "Subject": null,
                    "Message": message,
                    "Timestamp": "2026-11-22T03:15:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {}
                }
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SNS event")
}

/// The SNS event Lambda hands an inspector subscribed to the task topic.
pub fn sns_task_event(tasks: &[Task]) -> SnsEvent {
    sns_event(
        tasks
            .iter()
            .map(|t| serde_json::to_string(t).expect("tasks serialize"))
            .collect(),
        "arn:aws:sns:us-east-1:123456789012:deepalert-TaskTopic",
    )
}

/// The SNS event Lambda hands an emitter subscribed to the report topic.
pub fn sns_report_event(reports: &[Report]) -> SnsEvent {
    sns_event(
        reports
            .iter()
            .map(|r| serde_json::to_string(r).expect("reports serialize"))
            .collect(),
        "arn:aws:sns:us-east-1:123456789012:deepalert-ReportTopic",
    )
}
