//! Trail files in from S3 (stack parameter `TrailBucket`): CloudTrail writes gzipped log
//! files (`{"Records": [...]}`, up to tens of MB) into a bucket, often another account's;
//! the bucket's object-created notifications reach the event router through a queue, and
//! the router reads each object as a stream (memory bounded by a record, not the file)
//! and runs the rules on every record.
//!
//! Idempotent per record: an object delivered twice (S3 notifications are at least once,
//! and a file may be replayed) makes no second alert. After a record's alerts are stored,
//! its `eventID` is marked (`trail-event#<eventID>`, kept as long as reports); a marked
//! record is not evaluated again. A crash between storing and marking repeats nothing
//! either: the alerts themselves are stored once per report.

use std::io::{BufRead, Read};

use deepalert_core::ports::PluginState;
use deepalert_core::rules::stream::read_events;
use deepalert_core::rules::{Evaluation, RuleSet};
use serde::Deserialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::DynamoPluginState;

/// Reads trail files and remembers which records it has turned into alerts.
pub struct TrailReader {
    s3: aws_sdk_s3::Client,
    seen: DynamoPluginState,
}

impl TrailReader {
    pub fn new(s3: aws_sdk_s3::Client, seen: DynamoPluginState) -> Self {
        TrailReader { s3, seen }
    }
}

/// An object a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailObject {
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Display for TrailObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The objects of an S3 event notification (as S3 sends it to a queue, or through SNS,
/// unwrapped already), or `None` when `body` is not one. S3's test event names none.
pub fn notification_objects(body: &str) -> Option<Result<Vec<TrailObject>, String>> {
    #[derive(Deserialize)]
    struct Notification {
        #[serde(rename = "Records")]
        records: Vec<Value>,
    }
    let v: Value = serde_json::from_str(body).ok()?;
    if v["Event"] == "s3:TestEvent" {
        return Some(Ok(vec![]));
    }
    if !v["Records"]
        .as_array()?
        .first()
        .is_some_and(|r| r["eventSource"] == "aws:s3")
    {
        return None;
    }
    let n: Notification = match serde_json::from_value(v) {
        Ok(n) => n,
        Err(e) => return Some(Err(format!("not an S3 notification: {e}"))),
    };
    let mut out = Vec::new();
    for r in n.records {
        if !r["eventName"]
            .as_str()
            .is_some_and(|e| e.starts_with("ObjectCreated"))
        {
            continue;
        }
        let (Some(bucket), Some(key)) = (
            r.pointer("/s3/bucket/name").and_then(Value::as_str),
            r.pointer("/s3/object/key").and_then(Value::as_str),
        ) else {
            return Some(Err(
                "an S3 notification record without s3.bucket.name and s3.object.key".into(),
            ));
        };
        // Keys come URL-encoded, spaces as `+`.
        let key = percent_encoding::percent_decode_str(&key.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        out.push(TrailObject {
            bucket: bucket.to_string(),
            key,
        });
    }
    Some(Ok(out))
}

/// What the reading thread hands the storing side, record by record.
enum Read1 {
    NotAnEvent(usize, String),
    Evaluated {
        index: usize,
        event_id: String,
        evaluation: Evaluation,
    },
}

/// What one object gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ObjectOutcome {
    pub records: usize,
    pub alerts: usize,
    /// Records marked before: not evaluated again.
    pub repeated: usize,
    /// Records that are not events, or on which a rule failed (logged each).
    pub refused: usize,
}

fn marker(event_id: &str) -> String {
    format!("trail-event#{event_id}")
}

impl TrailReader {
    /// Reads `object` and hands each record's alerts to `store` (which stores them as the
    /// receptor does). `Err` when the object cannot be read or stored (retried, then the
    /// DLQ); a bad record is logged and counted, and fails the object only after every
    /// other record is stored.
    pub async fn read_object<F, Fut>(
        &self,
        rules: &RuleSet,
        object: &TrailObject,
        store: F,
    ) -> Result<ObjectOutcome, String>
    where
        F: Fn(deepalert_core::Alert) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let got = self
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read {object}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        let body = got.body.into_async_read();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Read1>(256);
        let rules = rules.clone();
        let name = object.to_string();
        // Reading and evaluating is blocking work on a stream; storing is async.
        let reader = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let mut input = std::io::BufReader::with_capacity(
                256 * 1024,
                tokio_util::io::SyncIoBridge::new(body),
            );
            let gzip = input
                .fill_buf()
                .map_err(|e| format!("cannot read {name}: {e}"))?
                .starts_with(&[0x1f, 0x8b]);
            let input: Box<dyn Read> = if gzip {
                Box::new(flate2::bufread::MultiGzDecoder::new(input))
            } else {
                Box::new(input)
            };
            let mut index = 0;
            read_events(input, |event| {
                let i = index;
                index += 1;
                let item = match event {
                    Err(e) => Read1::NotAnEvent(i, e.to_string()),
                    Ok(event) => {
                        let evaluation = rules.evaluate(&event);
                        if evaluation.alerts.is_empty()
                            && evaluation.errors.is_empty()
                            && evaluation.skipped.is_empty()
                        {
                            return;
                        }
                        Read1::Evaluated {
                            index: i,
                            event_id: event.detail()["eventID"].as_str().unwrap_or("").to_string(),
                            evaluation,
                        }
                    }
                };
                // The storing side gone means it failed; it says why.
                let _ = tx.blocking_send(item);
            })
            .map_err(|e| format!("{name}: {e}"))
        });
        let mut out = ObjectOutcome::default();
        let mut failure = None;
        while let Some(item) = rx.recv().await {
            match item {
                Read1::NotAnEvent(i, why) => {
                    error!(object = %object, record = i, error = %why, "trail record refused");
                    out.refused += 1;
                }
                Read1::Evaluated {
                    index,
                    event_id,
                    evaluation,
                } => {
                    for e in &evaluation.skipped {
                        warn!(object = %object, record = index, rule = %e.rule, reason = %e.message, "rule skipped a trail record");
                    }
                    for e in &evaluation.errors {
                        error!(object = %object, record = index, rule = %e.rule, error = %e.message, "rule failed on a trail record");
                        out.refused += 1;
                    }
                    if evaluation.alerts.is_empty() {
                        continue;
                    }
                    if !event_id.is_empty()
                        && self
                            .seen
                            .get(&marker(&event_id))
                            .await
                            .map_err(|e| e.to_string())?
                            .is_some()
                    {
                        out.repeated += 1;
                        continue;
                    }
                    for alert in evaluation.alerts {
                        if let Err(e) = store(alert).await {
                            failure.get_or_insert(e);
                        }
                        out.alerts += 1;
                    }
                    if failure.is_none() && !event_id.is_empty() {
                        self.seen
                            .put(&marker(&event_id), &object.to_string())
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        out.records = reader
            .await
            .map_err(|e| format!("reading {object} stopped: {e}"))??;
        if let Some(e) = failure {
            return Err(e);
        }
        info!(object = %object, records = out.records, alerts = out.alerts, repeated = out.repeated, refused = out.refused, "trail file read");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_their_objects_decoded() {
        let body = serde_json::json!({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": "org-trail"}, "object": {"key": "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/20/a+b%3Dc.json.gz"}}},
            {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
             "s3": {"bucket": {"name": "org-trail"}, "object": {"key": "gone"}}}
        ]})
        .to_string();
        let objects = notification_objects(&body).unwrap().unwrap();
        assert_eq!(
            objects,
            vec![TrailObject {
                bucket: "org-trail".into(),
                key: "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/20/a b=c.json.gz".into()
            }]
        );
        assert_eq!(
            notification_objects(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#),
            Some(Ok(vec![]))
        );
        assert!(notification_objects(r#"{"source":"aws.signin","detail":{}}"#).is_none());
        assert!(
            notification_objects(r#"{"Records":[{"eventSource":"signin.amazonaws.com"}]}"#)
                .is_none()
        );
        let broken =
            r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{}}]}"#;
        assert!(notification_objects(broken).unwrap().is_err());
    }
}
