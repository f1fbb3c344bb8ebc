//! PagerDuty Events API v2: an urgent report triggers an incident (`dedup_key` = report
//! id, so re-publications update the same alert); a report later reviewed `safe`
//! resolves it. Unclassified reports page nobody.

use std::sync::Arc;

use async_trait::async_trait;
use deepalert_core::ports::{EmitterPlugin, PluginError, PluginState};
use deepalert_core::{Report, Severity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{check, findings_summary, headline, http_client, report_link};

pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Name of the secret holding the integration's routing key (see `crate::secrets`).
    pub routing_key_env: String,
    #[serde(default)]
    pub link_base: Option<String>,
    /// Events API endpoint (default: PagerDuty's).
    #[serde(default)]
    pub events_url: Option<String>,
}

pub struct PagerDuty {
    name: String,
    routing_key: String,
    events_url: String,
    link_base: Option<String>,
    state: Arc<dyn PluginState>,
    client: reqwest::Client,
}

impl PagerDuty {
    pub fn new(
        name: &str,
        routing_key: String,
        options: &Options,
        state: Arc<dyn PluginState>,
    ) -> Self {
        PagerDuty {
            name: name.to_string(),
            routing_key,
            events_url: options
                .events_url
                .clone()
                .unwrap_or_else(|| EVENTS_URL.into()),
            link_base: options.link_base.clone(),
            state,
            client: http_client(),
        }
    }

    /// The event for a report, if it calls for one.
    pub fn event(&self, report: &Report, triggered_before: bool) -> Option<Value> {
        let severity = report.result.as_ref().map(|r| r.severity)?;
        let action = match severity {
            Severity::Urgent => "trigger",
            Severity::Safe if triggered_before => "resolve",
            _ => return None,
        };
        let mut event = json!({
            "routing_key": self.routing_key,
            "event_action": action,
            "dedup_key": report.id.to_string(),
        });
        if action == "trigger" {
            event["payload"] = json!({
                "summary": headline(report).chars().take(1024).collect::<String>(),
                "source": report.detector(),
                "severity": "critical",
                "component": report.rule_id(),
                "custom_details": {
                    "reason": report.result.as_ref().map(|r| r.reason.clone()).unwrap_or_default(),
                    "findings": findings_summary(report),
                    "attributes": report.attributes.iter().map(|a| format!("{} {}", a.attr_type, a.value)).collect::<Vec<_>>(),
                    "alerts": report.alerts.len(),
                },
            });
            if let Some(link) = report_link(&self.link_base, report) {
                event["links"] = json!([{"href": link, "text": "deepalert report"}]);
            }
        }
        Some(event)
    }
}

#[async_trait]
impl EmitterPlugin for PagerDuty {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        let key = format!("pagerduty:{}:{}", self.name, report.id);
        let triggered = self
            .state
            .get(&key)
            .await
            .map_err(|e| PluginError::Failed(e.chain()))?
            .is_some();
        let Some(event) = self.event(report, triggered) else {
            return Ok(());
        };
        let resp = self.client.post(&self.events_url).json(&event).send().await;
        check("pagerduty", resp).await?;
        if event["event_action"] == "trigger" {
            self.state
                .put(&key, "triggered")
                .await
                .map_err(|e| PluginError::Failed(e.chain()))?;
        }
        Ok(())
    }
}
