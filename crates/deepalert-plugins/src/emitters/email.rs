//! Email: locally by SMTP (lettre), on AWS through an SNS topic with email subscriptions
//! (as Responder does: `sns_topic_arn`, no SMTP server needed in a Lambda). The subject is
//! the report's headline; the body the template's text (or a summary), then the reason,
//! the attributes and the link.

use async_trait::async_trait;
use deepalert_core::Report;
use deepalert_core::ports::PluginError;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::{Notifier, findings_summary, headline, report_link};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// SMTP: the server, port (587), `tls` (`starttls`, `tls` or `none`), `from`, `to`, and
    /// the secrets holding a user name and password, if it wants them.
    #[serde(default)]
    pub smtp_host: Option<String>,
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default = "starttls")]
    pub tls: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// On AWS instead: an SNS topic whose subscriptions are the recipients' addresses.
    #[serde(default)]
    pub sns_topic_arn: Option<String>,
    #[serde(default)]
    pub link_base: Option<String>,
    /// The body's first part, a template (`crate::templates`).
    #[serde(default)]
    pub template: Option<String>,
}

fn starttls() -> String {
    "starttls".into()
}

enum Channel {
    Smtp {
        // Boxed: the transport is large and the SNS channel small.
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
    Sns {
        client: aws_sdk_sns::Client,
        topic: String,
    },
}

pub struct Email {
    channel: Channel,
    options: Options,
}

impl Email {
    /// `credentials`: the SMTP user name and password read from the secrets the options
    /// name; `sns`: the SNS client when `sns_topic_arn` is set.
    pub fn new(
        options: Options,
        credentials: Option<(String, String)>,
        sns: Option<aws_sdk_sns::Client>,
    ) -> Result<Self, String> {
        let channel = match (&options.sns_topic_arn, &options.smtp_host) {
            (Some(_), Some(_)) => return Err("set smtp_host or sns_topic_arn, not both".into()),
            (None, None) => return Err("set smtp_host (SMTP) or sns_topic_arn (SNS)".into()),
            (Some(topic), None) => Channel::Sns {
                client: sns.ok_or("sns_topic_arn needs the AWS SDK configuration")?,
                topic: topic.clone(),
            },
            (None, Some(host)) => {
                let port = options.smtp_port.unwrap_or(587);
                let builder = match options.tls.as_str() {
                    "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
                    "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
                    "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                        host,
                    )),
                    other => return Err(format!("tls: {other:?} is not starttls, tls or none")),
                }
                .map_err(|e| format!("smtp_host {host:?}: {e}"))?
                .port(port)
                .timeout(Some(std::time::Duration::from_secs(15)));
                let builder = match credentials {
                    Some((u, p)) => builder.credentials(Credentials::new(u, p)),
                    None => builder,
                };
                let from = options
                    .from
                    .as_deref()
                    .ok_or("from: the sender's address is required")?
                    .parse::<Mailbox>()
                    .map_err(|e| format!("from: {e}"))?;
                if options.to.is_empty() {
                    return Err("to: list at least one recipient".into());
                }
                let to = options
                    .to
                    .iter()
                    .map(|t| t.parse::<Mailbox>().map_err(|e| format!("to: {t:?}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Channel::Smtp {
                    transport: Box::new(builder.build()),
                    from,
                    to,
                }
            }
        };
        Ok(Email { channel, options })
    }
}

/// Subject and plain-text body, also used by tests.
pub fn message(
    report: &Report,
    link_base: &Option<String>,
    text: Option<&str>,
) -> (String, String) {
    let mut body = String::new();
    if let Some(text) = text {
        body.push_str(text);
        body.push_str("\n\n");
    }
    let reason = report
        .result
        .as_ref()
        .map(|r| r.reason.as_str())
        .unwrap_or("not reviewed yet");
    body.push_str(&format!(
        "Reason: {reason}\nRule: {} / {}\nAlerts: {}\n{}\n",
        report.detector(),
        report.rule_id(),
        report.alerts.len(),
        findings_summary(report)
    ));
    if !report.attributes.is_empty() {
        body.push_str("\nAttributes:\n");
        for a in report.attributes.iter().take(20) {
            body.push_str(&format!("  {} {} ({})\n", a.value, a.key, a.attr_type));
        }
    }
    if let Some(link) = report_link(link_base, report) {
        body.push_str(&format!("\n{link}\n"));
    }
    body.push_str(&format!("\ndeepalert report {}\n", report.id));
    (headline(report), body)
}

#[async_trait]
impl Notifier for Email {
    async fn send(&self, report: &Report, text: Option<&str>) -> Result<(), PluginError> {
        let (subject, body) = message(report, &self.options.link_base, text);
        match &self.channel {
            Channel::Smtp {
                transport,
                from,
                to,
            } => {
                let mut builder = Message::builder().from(from.clone()).subject(subject);
                for t in to {
                    builder = builder.to(t.clone());
                }
                let email = builder
                    .body(body)
                    .map_err(|e| PluginError::Failed(format!("email: {e}")))?;
                transport
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|e| PluginError::Failed(format!("email (smtp): {e}")))
            }
            Channel::Sns { client, topic } => client
                .publish()
                .topic_arn(topic)
                // SNS email subjects are at most 100 characters.
                .subject(subject.chars().take(100).collect::<String>())
                .message(body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    PluginError::Failed(format!(
                        "email (sns): {}",
                        aws_sdk_sns::error::DisplayErrorContext(e)
                    ))
                }),
        }
    }

    fn template(&self) -> Option<&str> {
        self.options.template.as_deref()
    }

    fn link(&self, report: &Report) -> Option<String> {
        report_link(&self.options.link_base, report)
    }
}
