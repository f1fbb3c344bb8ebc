//! Google Chat incoming webhook: a card (cardsV2) with the severity and rule in its
//! header, the reason, the findings summary and an "Open report" button, and the
//! template's text as the message text.

use async_trait::async_trait;
use deepalert_core::Report;
use deepalert_core::ports::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Notifier, check, findings_summary, headline, http_client, report_link};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Name of the secret holding the webhook URL (`https://chat.googleapis.com/v1/spaces/…`).
    pub webhook_url_env: String,
    #[serde(default)]
    pub link_base: Option<String>,
    /// The message's text, a template (`crate::templates`).
    #[serde(default)]
    pub template: Option<String>,
}

pub struct GoogleChat {
    webhook_url: String,
    options: Options,
    client: reqwest::Client,
}

impl GoogleChat {
    pub fn new(webhook_url: String, options: Options) -> Self {
        GoogleChat {
            webhook_url,
            options,
            client: http_client(),
        }
    }
}

/// The webhook's body, also used by tests.
pub fn message(report: &Report, link_base: &Option<String>, text: Option<&str>) -> Value {
    let severity = report
        .result
        .as_ref()
        .map(|r| r.severity.as_str())
        .unwrap_or("unreviewed");
    let reason = report
        .result
        .as_ref()
        .map(|r| r.reason.as_str())
        .unwrap_or("");
    let mut widgets = vec![
        json!({"decoratedText": {"topLabel": "Reason", "text": if reason.is_empty() { "not reviewed yet" } else { reason }, "wrapText": true}}),
        json!({"decoratedText": {"topLabel": "Rule", "text": format!("{} / {}", report.detector(), report.rule_id())}}),
        json!({"textParagraph": {"text": findings_summary(report)}}),
    ];
    if let Some(link) = report_link(link_base, report) {
        widgets.push(json!({"buttonList": {"buttons": [
            {"text": "Open report", "onClick": {"openLink": {"url": link}}}
        ]}}));
    }
    json!({
        "text": text.map(str::to_string).unwrap_or_else(|| headline(report)),
        "cardsV2": [{
            "cardId": format!("deepalert-{}", report.id),
            "card": {
                "header": {"title": headline(report), "subtitle": format!("severity {severity} · {} alert(s)", report.alerts.len())},
                "sections": [{"widgets": widgets}],
            }
        }]
    })
}

#[async_trait]
impl Notifier for GoogleChat {
    async fn send(&self, report: &Report, text: Option<&str>) -> Result<(), PluginError> {
        let resp = self
            .client
            .post(&self.webhook_url)
            .json(&message(report, &self.options.link_base, text))
            .send()
            .await;
        check("google-chat", resp).await.map(|_| ())
    }

    fn template(&self) -> Option<&str> {
        self.options.template.as_deref()
    }

    fn link(&self, report: &Report) -> Option<String> {
        report_link(&self.options.link_base, report)
    }
}
