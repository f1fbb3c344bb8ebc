//! Built-in emitters: Slack, PagerDuty, GitHub issues, a signed generic webhook, and a
//! JSON-lines file. See README.md in this folder for their options.
//!
//! Every built-in emitter sends only on change: a report published again with nothing
//! new (same verdict, attributes, findings, notes and alert count) is not sent again.
//! They send reviewed (`published`) reports only.

pub mod discord;
pub mod email;
pub mod github;
pub mod google_chat;
pub mod jsonl;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deepalert_core::ports::{EmitterPlugin, PluginError, PluginState};
use deepalert_core::{Report, ReportStatus, sha256_hex};

/// What a flow's `notify` step sends through: the report, and the text of the step's (or
/// the notifier's) template, rendered.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, report: &Report, message: Option<&str>) -> Result<(), PluginError>;

    /// The notifier's own template (option `template`), used when a step gives none.
    fn template(&self) -> Option<&str> {
        None
    }

    /// The report's link, for templates (`{{link}}`).
    fn link(&self, _report: &Report) -> Option<String> {
        None
    }
}

/// A notifier is an emitter too: as an emitter it sends with its own template.
pub struct AsEmitter(pub Arc<dyn Notifier>);

#[async_trait]
impl EmitterPlugin for AsEmitter {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        let message = match self.0.template() {
            Some(t) => Some(
                crate::templates::render(t, report, self.0.link(report).as_deref())
                    .map_err(PluginError::Failed)?,
            ),
            None => None,
        };
        self.0.send(report, message.as_deref()).await
    }
}

/// Severity colour, as notifiers show it: red urgent, green safe, grey otherwise.
pub(crate) fn severity_colour(report: &Report) -> u32 {
    match report.result.as_ref().map(|r| r.severity) {
        Some(deepalert_core::Severity::Urgent) => 0xD9_30_25,
        Some(deepalert_core::Severity::Safe) => 0x2E_A0_43,
        _ => 0x8A_8A_8A,
    }
}

/// Sends through `inner` only when the report changed since this emitter last sent it.
pub struct OnChange {
    name: String,
    inner: Arc<dyn EmitterPlugin>,
    state: Arc<dyn PluginState>,
    reviewed_only: bool,
}

impl OnChange {
    /// For built-ins: reviewed reports only.
    pub fn new(name: &str, inner: Arc<dyn EmitterPlugin>, state: Arc<dyn PluginState>) -> Self {
        OnChange {
            name: name.to_string(),
            inner,
            state,
            reviewed_only: true,
        }
    }

    /// For exec emitters, which also get unreviewed reports when asked for
    /// (`publish_unreviewed`): a report's status is part of what changed.
    pub fn any_status(
        name: &str,
        inner: Arc<dyn EmitterPlugin>,
        state: Arc<dyn PluginState>,
    ) -> Self {
        OnChange {
            reviewed_only: false,
            ..OnChange::new(name, inner, state)
        }
    }
}

/// What a reader of a notification would see change.
pub fn fingerprint(report: &Report) -> String {
    let content = serde_json::json!([
        report.result,
        report.attributes,
        report.sections,
        report
            .notes
            .iter()
            .map(|n| (&n.author, &n.message))
            .collect::<Vec<_>>(),
        report.alerts.len(),
    ]);
    sha256_hex(content.to_string().as_bytes())
}

#[async_trait]
impl EmitterPlugin for OnChange {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        if self.reviewed_only && report.status != ReportStatus::Published {
            // Unreviewed reports (DeepAlert's `new`/`more`, with PublishUnreviewed) are for
            // emitters that ask for them; a notification needs a verdict.
            tracing::debug!(report_id = %report.id, emitter = %self.name, status = report.status.as_str(), "not reviewed yet; not sent");
            return Ok(());
        }
        let key = format!("sent:{}:{}", self.name, report.id);
        let now = if self.reviewed_only {
            fingerprint(report)
        } else {
            format!("{}:{}", report.status.as_str(), fingerprint(report))
        };
        let last = self
            .state
            .get(&key)
            .await
            .map_err(|e| PluginError::Failed(e.chain()))?;
        if last.as_deref() == Some(now.as_str()) {
            tracing::info!(report_id = %report.id, emitter = %self.name, "unchanged since last sent; not sent again");
            return Ok(());
        }
        self.inner.emit(report).await?;
        self.state
            .put(&key, &now)
            .await
            .map_err(|e| PluginError::Failed(e.chain()))
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("deepalert/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client")
}

/// Turns an HTTP answer into the plug-in's outcome: 2xx is delivered, 429 asks to slow
/// down (the runtime retries later), anything else fails with the status and body.
pub(crate) async fn check(
    service: &str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, PluginError> {
    let resp = resp.map_err(|e| PluginError::Failed(format!("{service}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let body = &body[..body.len().min(300)];
    if status.as_u16() == 429 {
        return Err(PluginError::RateLimited(format!(
            "{service} (HTTP 429): {body}"
        )));
    }
    Err(PluginError::Failed(format!(
        "{service} answered HTTP {status}: {body}"
    )))
}

/// The rule's name, or its id when it has none.
pub(crate) fn rule_label(report: &Report) -> String {
    report
        .alerts
        .first()
        .map(|a| {
            if a.rule_name.is_empty() {
                a.rule_id.clone()
            } else {
                a.rule_name.clone()
            }
        })
        .unwrap_or_default()
}

/// One line saying what the report is about, for titles and summaries.
pub(crate) fn headline(report: &Report) -> String {
    let rule = rule_label(report);
    let severity = report
        .result
        .as_ref()
        .map(|r| r.severity.as_str())
        .unwrap_or("unreviewed");
    format!("[{severity}] {} — {rule}", report.detector())
}

/// "N finding(s) on M attribute(s) by a, b".
pub(crate) fn findings_summary(report: &Report) -> String {
    let mut authors: Vec<&str> = report
        .sections
        .iter()
        .flat_map(|s| {
            s.hosts
                .iter()
                .map(|h| h.author.as_str())
                .chain(s.users.iter().map(|u| u.author.as_str()))
                .chain(s.binaries.iter().map(|b| b.author.as_str()))
        })
        .collect();
    let count = authors.len();
    authors.sort_unstable();
    authors.dedup();
    if count == 0 {
        return "no findings".into();
    }
    format!(
        "{count} finding(s) on {} attribute(s) by {}",
        report.sections.len(),
        authors.join(", ")
    )
}

/// A link to the report when `link_base` is set (e.g. the deepalert API or a dashboard).
pub(crate) fn report_link(link_base: &Option<String>, report: &Report) -> Option<String> {
    link_base
        .as_ref()
        .map(|b| format!("{}/{}", b.trim_end_matches('/'), report.id))
}
