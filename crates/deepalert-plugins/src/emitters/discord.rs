//! Discord webhook: a message with one embed — the severity as title and colour, the
//! rule, the reason, key attributes, and a link to the report — and the template's text
//! as the message content.

use async_trait::async_trait;
use deepalert_core::Report;
use deepalert_core::ports::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Notifier, check, findings_summary, headline, http_client, report_link, severity_colour,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Name of the secret holding the webhook URL (`https://discord.com/api/webhooks/…`).
    pub webhook_url_env: String,
    #[serde(default)]
    pub link_base: Option<String>,
    /// The message's text, a template (`crate::templates`).
    #[serde(default)]
    pub template: Option<String>,
}

pub struct Discord {
    webhook_url: String,
    options: Options,
    client: reqwest::Client,
}

impl Discord {
    pub fn new(webhook_url: String, options: Options) -> Self {
        Discord {
            webhook_url,
            options,
            client: http_client(),
        }
    }
}

/// Discord's limits: content 2000 characters, embed title 256, description 4096, field
/// value 1024.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}

/// The webhook's body, also used by tests.
pub fn message(report: &Report, link_base: &Option<String>, text: Option<&str>) -> Value {
    let reason = report
        .result
        .as_ref()
        .map(|r| r.reason.as_str())
        .unwrap_or("");
    let attributes: Vec<String> = report
        .attributes
        .iter()
        .take(10)
        .map(|a| format!("`{}` {} ({})", a.value, a.key, a.attr_type))
        .collect();
    let mut embed = json!({
        "title": cut(&headline(report), 256),
        "description": cut(if reason.is_empty() { "not reviewed yet" } else { reason }, 4096),
        "color": severity_colour(report),
        "fields": [
            {"name": "Rule", "value": cut(&format!("{} / {}", report.detector(), report.rule_id()), 1024), "inline": true},
            {"name": "Alerts", "value": report.alerts.len().to_string(), "inline": true},
            {"name": "Findings", "value": cut(&findings_summary(report), 1024), "inline": false},
        ],
        "footer": {"text": format!("deepalert report {}", report.id)},
        "timestamp": report.published_at.unwrap_or(report.created_at).to_rfc3339(),
    });
    if !attributes.is_empty() {
        embed["fields"]
            .as_array_mut()
            .expect("fields is an array")
            .push(json!({"name": "Attributes", "value": cut(&attributes.join("\n"), 1024), "inline": false}));
    }
    if let Some(link) = report_link(link_base, report) {
        embed["url"] = json!(link);
    }
    let mut body =
        json!({"username": "deepalert", "embeds": [embed], "allowed_mentions": {"parse": []}});
    if let Some(text) = text {
        body["content"] = json!(cut(text, 2000));
    }
    body
}

#[async_trait]
impl Notifier for Discord {
    async fn send(&self, report: &Report, text: Option<&str>) -> Result<(), PluginError> {
        let resp = self
            .client
            .post(&self.webhook_url)
            .json(&message(report, &self.options.link_base, text))
            .send()
            .await;
        check("discord", resp).await.map(|_| ())
    }

    fn template(&self) -> Option<&str> {
        self.options.template.as_deref()
    }

    fn link(&self, report: &Report) -> Option<String> {
        report_link(&self.options.link_base, report)
    }
}
