//! Slack incoming webhook: a Block Kit message with the severity, rule, key attributes,
//! a findings summary and a link.

use async_trait::async_trait;
use deepalert_core::ports::PluginError;
use deepalert_core::{Report, Severity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Notifier, check, findings_summary, headline, http_client, report_link, rule_label};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Name of the secret holding the webhook URL (see `crate::secrets`).
    pub webhook_url_env: String,
    /// Base of the report link, e.g. `http://deepalert.internal:8080/reports`.
    #[serde(default)]
    pub link_base: Option<String>,
    /// The message's text, a template (`crate::templates`); shown above the fields.
    #[serde(default)]
    pub template: Option<String>,
}

pub struct Slack {
    webhook_url: String,
    link_base: Option<String>,
    template: Option<String>,
    client: reqwest::Client,
}

impl Slack {
    pub fn new(webhook_url: String, link_base: Option<String>) -> Self {
        Slack {
            webhook_url,
            link_base,
            template: None,
            client: http_client(),
        }
    }

    pub fn with_template(mut self, template: Option<String>) -> Self {
        self.template = template;
        self
    }
}

const MAX_ATTRIBUTES_SHOWN: usize = 10;

/// The message body (Block Kit), also used by tests; `text` (a rendered template) comes
/// first when given.
pub fn message(report: &Report, link_base: &Option<String>, text: Option<&str>) -> Value {
    let result = report.result.clone();
    let (emoji, severity) = match result.as_ref().map(|r| r.severity) {
        Some(Severity::Urgent) => (":rotating_light:", "urgent"),
        Some(Severity::Safe) => (":white_check_mark:", "safe"),
        _ => (":grey_question:", "unclassified"),
    };
    let rule = rule_label(report);
    let attrs: Vec<String> = report
        .attributes
        .iter()
        .take(MAX_ATTRIBUTES_SHOWN)
        .map(|a| format!("• `{}` {} ({})", a.value, a.key, a.attr_type))
        .collect();
    let more = report.attributes.len().saturating_sub(MAX_ATTRIBUTES_SHOWN);
    let mut attr_text = attrs.join("\n");
    if more > 0 {
        attr_text.push_str(&format!("\n…and {more} more"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{emoji} {severity}: {rule}"), "emoji": true}}),
    ];
    if let Some(text) = text {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    blocks.extend([
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Severity*\n{severity}")},
            {"type": "mrkdwn", "text": format!("*Rule*\n{} / {}", report.detector(), report.rule_id())},
            {"type": "mrkdwn", "text": format!("*Alerts*\n{}", report.alerts.len())},
            {"type": "mrkdwn", "text": format!("*Report*\n`{}`", report.id)},
        ]}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Reason*\n{}", result.map(|r| r.reason).unwrap_or_default())}}),
    ]);
    if !attr_text.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Attributes*\n{attr_text}")}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": findings_summary(report)}]}));
    if let Some(link) = report_link(link_base, report) {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open report"}, "url": link}
        ]}));
    }
    json!({ "text": text.map(str::to_string).unwrap_or_else(|| headline(report)), "blocks": blocks })
}

#[async_trait]
impl Notifier for Slack {
    async fn send(&self, report: &Report, text: Option<&str>) -> Result<(), PluginError> {
        let resp = self
            .client
            .post(&self.webhook_url)
            .json(&message(report, &self.link_base, text))
            .send()
            .await;
        check("slack", resp).await.map(|_| ())
    }

    fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    fn link(&self, report: &Report) -> Option<String> {
        report_link(&self.link_base, report)
    }
}
