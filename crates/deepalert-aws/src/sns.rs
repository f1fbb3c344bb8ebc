//! SNS adapters: tasks to the task topic (batched), published reports to the report topic.
//! Message attributes let subscribers filter: tasks carry `attribute_type`, `detector`,
//! `rule_id`; reports carry `status`, `severity`, `detector`, `rule_id`.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use deepalert_core::ports::{Emitter, PortError, PortResult, TaskBus};
use deepalert_core::{Report, SectionFormat, Task};

/// SNS messages are at most 256 KiB; leave room for the envelope.
const MAX_REPORT_BYTES: usize = 240 * 1024;
/// PublishBatch takes at most 10 entries.
const BATCH: usize = 10;

fn attr(value: &str) -> Option<MessageAttributeValue> {
    // SNS refuses empty string attributes; absent is what a filter policy expects then.
    (!value.is_empty()).then(|| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("data type is set")
    })
}

fn sns_err(
    what: &str,
    e: impl std::fmt::Debug + std::fmt::Display + Send + Sync + 'static,
) -> PortError {
    PortError::new(format!("sns: {what}: {e}"))
}

pub struct SnsTaskBus {
    client: Client,
    topic_arn: String,
}

impl SnsTaskBus {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsTaskBus {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl TaskBus for SnsTaskBus {
    async fn publish(&self, tasks: &[Task]) -> PortResult<()> {
        for chunk in tasks.chunks(BATCH) {
            let mut entries: Vec<PublishBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .map(|(i, task)| {
                    let mut entry = PublishBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message(serde_json::to_string(task).expect("tasks serialize"));
                    for (name, value) in [
                        ("attribute_type", task.attribute.attr_type.as_str()),
                        ("detector", task.detector.as_str()),
                        ("rule_id", task.rule_id.as_str()),
                    ] {
                        if let Some(v) = attr(value) {
                            entry = entry.message_attributes(name, v);
                        }
                    }
                    entry.build().expect("id and message are set")
                })
                .collect();
            // One retry for entries SNS refused individually (throttling); then fail the
            // step so the state machine retries it (tasks are idempotent per report).
            for attempt in 0..2 {
                let out = self
                    .client
                    .publish_batch()
                    .topic_arn(&self.topic_arn)
                    .set_publish_batch_request_entries(Some(entries.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        sns_err("publish tasks", aws_sdk_sns::error::DisplayErrorContext(e))
                    })?;
                let failed: Vec<String> = out.failed().iter().map(|f| f.id().to_string()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == 1 {
                    return Err(PortError::new(format!(
                        "sns: {} task(s) refused by the task topic: {:?}",
                        failed.len(),
                        out.failed()
                            .iter()
                            .map(|f| f.message().unwrap_or(""))
                            .collect::<Vec<_>>()
                    )));
                }
                entries.retain(|e| failed.iter().any(|id| id == e.id()));
            }
        }
        Ok(())
    }
}

pub struct SnsEmitter {
    client: Client,
    topic_arn: String,
    sections: SectionFormat,
}

impl SnsEmitter {
    /// `sections`: how the published report's sections are written (`ReportSections`).
    pub fn new(client: Client, topic_arn: impl Into<String>, sections: SectionFormat) -> Self {
        SnsEmitter {
            client,
            topic_arn: topic_arn.into(),
            sections,
        }
    }
}

#[async_trait]
impl Emitter for SnsEmitter {
    async fn emit(&self, report: &Report, _publication_id: &str) -> PortResult<()> {
        let mut report = report.clone();
        if !report.shrink_to_fit(MAX_REPORT_BYTES, chrono::Utc::now()) {
            return Err(PortError::new(format!(
                "report {} does not fit in an SNS message even without alert bodies",
                report.id
            )));
        }
        let severity = report
            .result
            .as_ref()
            .map(|r| r.severity.as_str())
            .unwrap_or("");
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(report.to_wire(self.sections).to_string());
        for (name, value) in [
            ("status", report.status.as_str()),
            ("severity", severity),
            ("detector", report.detector()),
            ("rule_id", report.rule_id()),
        ] {
            if let Some(v) = attr(value) {
                publish = publish.message_attributes(name, v);
            }
        }
        publish
            .send()
            .await
            .map_err(|e| sns_err("publish report", aws_sdk_sns::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}
