//! `deepalert aws dlq list|show|redrive --stack NAME`: the stack's four dead-letter
//! queues, why each message is there (the log line its function wrote about it: every
//! refusal is logged with the message's id, which SQS keeps when it moves the message to
//! the DLQ), and moving messages back to the queue they came from.

use std::collections::BTreeMap;
use std::process::ExitCode;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use serde::Serialize;
use serde_json::Value;

/// A DLQ of the stack: its name on the command line, the logical ids of it, of the queue
/// it serves, and of the log group of the function that refuses into it.
struct Dlq {
    name: &'static str,
    dlq: &'static str,
    source: &'static str,
    log_group: &'static str,
}

const DLQS: [Dlq; 4] = [
    Dlq {
        name: "alert",
        dlq: "AlertDeadLetterQueue",
        source: "AlertQueue",
        log_group: "ReceptorLogGroup",
    },
    Dlq {
        name: "dispatch",
        dlq: "DispatchDeadLetterQueue",
        source: "DispatchQueue",
        log_group: "DispatcherLogGroup",
    },
    Dlq {
        name: "inspection",
        dlq: "InspectionDeadLetterQueue",
        source: "InspectionQueue",
        log_group: "InspectorGatewayLogGroup",
    },
    Dlq {
        name: "event",
        dlq: "EventDeadLetterQueue",
        source: "EventQueue",
        log_group: "EventRouterLogGroup",
    },
];

#[derive(Debug, clap::Args)]
pub struct StackArgs {
    /// The deepalert stack's name (deploy.jsonnet's StackName).
    #[arg(long)]
    stack: String,
    /// Its region (default: the AWS configuration's).
    #[arg(long)]
    region: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Every message in the DLQs, with why it is there.
    List {
        #[command(flatten)]
        stack: StackArgs,
        /// Only this DLQ: alert, dispatch, inspection or event.
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One message: its body, attributes and every log line about it.
    Show {
        #[command(flatten)]
        stack: StackArgs,
        id: String,
    },
    /// Move messages back to the queue they came from (all, or those given), to be
    /// processed again; each is sent there, then deleted from the DLQ.
    Redrive {
        #[command(flatten)]
        stack: StackArgs,
        #[arg(long)]
        queue: Option<String>,
        ids: Vec<String>,
    },
}

struct Stack {
    sqs: aws_sdk_sqs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    /// Logical id → physical id.
    resources: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct DeadMessage {
    queue: &'static str,
    id: String,
    sent_at: Option<String>,
    receives: Option<u64>,
    /// Why it is there: the last error its function logged about it.
    reason: Option<String>,
    body: String,
    #[serde(skip)]
    receipt: String,
    #[serde(skip)]
    attributes: BTreeMap<String, MessageAttributeValue>,
    #[serde(skip)]
    sent_ms: i64,
}

async fn stack(args: &StackArgs) -> Result<Stack, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &args.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let described = cfn
        .describe_stack_resources()
        .stack_name(&args.stack)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read stack {}: {}",
                args.stack,
                aws_sdk_cloudformation::error::DisplayErrorContext(e)
            )
        })?;
    let resources = described
        .stack_resources()
        .iter()
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                r.physical_resource_id()?.to_string(),
            ))
        })
        .collect();
    Ok(Stack {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
        resources,
    })
}

impl Stack {
    fn physical(&self, logical: &str) -> Result<&str, String> {
        self.resources
            .get(logical)
            .map(String::as_str)
            .ok_or_else(|| format!("the stack has no {logical}: is it a deepalert stack?"))
    }

    /// The DLQs `queue` names (all without it).
    fn dlqs(&self, queue: Option<&str>) -> Result<Vec<&'static Dlq>, String> {
        match queue {
            None => Ok(DLQS.iter().collect()),
            Some(q) => DLQS
                .iter()
                .find(|d| d.name == q)
                .map(|d| vec![d])
                .ok_or_else(|| {
                    format!("--queue {q}: the DLQs are alert, dispatch, inspection and event")
                }),
        }
    }

    /// Every message of a DLQ, received with the given visibility (0: only looked at).
    async fn messages(
        &self,
        dlq: &'static Dlq,
        visibility: i32,
    ) -> Result<Vec<DeadMessage>, String> {
        let url = self.physical(dlq.dlq)?;
        let mut seen: BTreeMap<String, DeadMessage> = BTreeMap::new();
        let mut empty_rounds = 0;
        // SQS hands out a sample per call: receive until a few calls bring nothing new.
        while empty_rounds < 3 {
            let got = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(visibility)
                .wait_time_seconds(if seen.is_empty() { 1 } else { 0 })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the {} DLQ: {}",
                        dlq.name,
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            let mut new = 0;
            for m in got.messages() {
                let Some(id) = m.message_id() else { continue };
                if seen.contains_key(id) {
                    continue;
                }
                new += 1;
                let attr =
                    |k: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&k)).cloned();
                let sent_ms: i64 = attr(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                seen.insert(
                    id.to_string(),
                    DeadMessage {
                        queue: dlq.name,
                        id: id.to_string(),
                        sent_at: sent_at(sent_ms),
                        receives: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                            .and_then(|c| c.parse().ok()),
                        reason: None,
                        body: m.body().unwrap_or_default().to_string(),
                        receipt: m.receipt_handle().unwrap_or_default().to_string(),
                        attributes: m
                            .message_attributes()
                            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default(),
                        sent_ms,
                    },
                );
            }
            empty_rounds = if new == 0 { empty_rounds + 1 } else { 0 };
        }
        Ok(seen.into_values().collect())
    }

    /// The log lines about a message (its id appears in each), oldest first, from its
    /// function's log group since a minute before it was first sent.
    async fn log_lines(&self, dlq: &Dlq, m: &DeadMessage) -> Result<Vec<Value>, String> {
        let group = self.physical(dlq.log_group)?;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let got = self
                .logs
                .filter_log_events()
                .log_group_name(group)
                .filter_pattern(format!("\"{}\"", m.id))
                .start_time((m.sent_ms - 60_000).max(0))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read {group}: {}",
                        aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e)
                    )
                })?;
            for e in got.events() {
                let line = e.message().unwrap_or_default();
                out.push(serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.into())));
            }
            token = got.next_token().map(str::to_string);
            if token.is_none() || got.events().is_empty() {
                return Ok(out);
            }
        }
    }

    async fn with_reasons(&self, dlq: &Dlq, messages: &mut [DeadMessage]) {
        for m in messages {
            m.reason = Some(match self.log_lines(dlq, m).await {
                Ok(lines) => reason(&lines).unwrap_or_else(|| {
                    "no log line names this message (older than the log retention?)".into()
                }),
                Err(e) => e,
            });
        }
    }
}

/// The last error (else warning) logged about the message: its message and error.
fn reason(lines: &[Value]) -> Option<String> {
    let pick = |level: &str| {
        lines.iter().rev().find(|l| {
            l["level"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(level))
        })
    };
    let line = pick("ERROR").or_else(|| pick("WARN"))?;
    let fields = &line["fields"];
    let message = fields["message"].as_str().unwrap_or("");
    Some(match fields["error"].as_str() {
        Some(error) => format!("{message}: {error}"),
        None => message.to_string(),
    })
}

fn sent_at(ms: i64) -> Option<String> {
    (ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(ms))
        .flatten()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

pub async fn dlq(command: DlqCommand) -> Result<ExitCode, String> {
    match command {
        DlqCommand::List {
            stack: s,
            queue,
            json,
        } => {
            let st = stack(&s).await?;
            let mut all = Vec::new();
            for dlq in st.dlqs(queue.as_deref())? {
                let mut messages = st.messages(dlq, 0).await?;
                st.with_reasons(dlq, &mut messages).await;
                all.extend(messages);
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?
                );
            } else if all.is_empty() {
                println!("the DLQs of {} are empty", s.stack);
            } else {
                for m in &all {
                    let body: String = m.body.chars().take(100).collect();
                    println!(
                        "{:<10} {}  sent {}  received {} times\n  why:  {}\n  body: {body}",
                        m.queue,
                        m.id,
                        m.sent_at.as_deref().unwrap_or("?"),
                        m.receives.unwrap_or(0),
                        m.reason.as_deref().unwrap_or("?"),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show { stack: s, id } => {
            let st = stack(&s).await?;
            for dlq in &DLQS {
                for m in st.messages(dlq, 0).await? {
                    if m.id == id {
                        let lines = st.log_lines(dlq, &m).await?;
                        let out = serde_json::json!({
                            "queue": m.queue, "id": m.id, "sent_at": m.sent_at,
                            "receives": m.receives, "reason": reason(&lines),
                            "body": m.body, "log": lines,
                        });
                        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            Err(format!("no message {id} in the DLQs of {}", s.stack))
        }
        DlqCommand::Redrive {
            stack: s,
            queue,
            ids,
        } => {
            let st = stack(&s).await?;
            let mut moved = 0;
            for dlq in st.dlqs(queue.as_deref())? {
                let source = st.physical(dlq.source)?.to_string();
                let url = st.physical(dlq.dlq)?.to_string();
                // Held for a minute while they move: nobody else takes them meanwhile.
                for m in st.messages(dlq, 60).await? {
                    if !ids.is_empty() && !ids.contains(&m.id) {
                        continue;
                    }
                    st.sqs
                        .send_message()
                        .queue_url(&source)
                        .message_body(&m.body)
                        .set_message_attributes(
                            (!m.attributes.is_empty())
                                .then(|| m.attributes.clone().into_iter().collect()),
                        )
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "cannot send {} back to the {} queue (it stays in the DLQ): {}",
                                m.id,
                                dlq.name,
                                aws_sdk_sqs::error::DisplayErrorContext(e)
                            )
                        })?;
                    st.sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(&m.receipt)
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "{} was sent back but not deleted from the {} DLQ (it will be processed twice; harmless: every step is idempotent): {}",
                                m.id,
                                dlq.name,
                                aws_sdk_sqs::error::DisplayErrorContext(e)
                            )
                        })?;
                    println!("moved {} back to the {} queue", m.id, dlq.name);
                    moved += 1;
                }
            }
            println!("{moved} message(s) moved back");
            if !ids.is_empty() && moved < ids.len() {
                return Err(format!(
                    "{} of the given messages are not in the DLQs",
                    ids.len() - moved
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_last_error_logged_about_the_message() {
        let lines = vec![
            serde_json::json!({"level": "WARN", "fields": {"message": "alert not stored; will be retried", "error": "throttled"}}),
            serde_json::json!({"level": "ERROR", "fields": {"message": "alert refused; it will go to the DLQ", "error": "detector: missing"}}),
        ];
        assert_eq!(
            reason(&lines).unwrap(),
            "alert refused; it will go to the DLQ: detector: missing"
        );
        assert_eq!(
            reason(&lines[..1]).unwrap(),
            "alert not stored; will be retried: throttled"
        );
        assert_eq!(reason(&[]), None);
    }

    #[test]
    fn sent_times_print_as_utc() {
        assert_eq!(sent_at(0), None);
        assert_eq!(sent_at(1_796_428_800_000).unwrap(), "2026-12-05T00:00:00Z");
        assert_eq!(sent_at(951_782_400_000).unwrap(), "2000-02-29T00:00:00Z");
    }
}
