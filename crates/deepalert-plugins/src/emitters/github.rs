//! GitHub issues: one issue per report, opened at its first publication; later
//! publications comment on it instead of opening duplicates.

use std::sync::Arc;

use async_trait::async_trait;
use deepalert_core::Report;
use deepalert_core::ports::{EmitterPlugin, PluginError, PluginState};
use serde::Deserialize;
use serde_json::json;

use super::{check, findings_summary, headline, http_client, report_link};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `owner/name`.
    pub repository: String,
    /// Name of the secret holding a token allowed to write issues (see `crate::secrets`).
    pub token_env: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// API base (GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub link_base: Option<String>,
}

pub struct GitHubIssues {
    name: String,
    token: String,
    options: Options,
    api: String,
    state: Arc<dyn PluginState>,
    client: reqwest::Client,
}

impl GitHubIssues {
    pub fn new(name: &str, token: String, options: Options, state: Arc<dyn PluginState>) -> Self {
        GitHubIssues {
            name: name.to_string(),
            token,
            api: options
                .api_url
                .clone()
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .to_string(),
            options,
            state,
            client: http_client(),
        }
    }

    fn body(&self, report: &Report) -> String {
        let result = report
            .result
            .clone()
            .unwrap_or_else(|| deepalert_core::ReviewResult::unclassified(""));
        let mut body = format!(
            "**Severity:** {}\n**Reason:** {}\n**Rule:** {} / {}\n**Alerts:** {}\n**Findings:** {}\n",
            result.severity,
            result.reason,
            report.detector(),
            report.rule_id(),
            report.alerts.len(),
            findings_summary(report),
        );
        if !report.attributes.is_empty() {
            body.push_str("\n| type | key | value |\n|---|---|---|\n");
            for a in report.attributes.iter().take(50) {
                body.push_str(&format!(
                    "| {} | {} | `{}` |\n",
                    a.attr_type, a.key, a.value
                ));
            }
        }
        if let Some(link) = report_link(&self.options.link_base, report) {
            body.push_str(&format!("\n[Open the report]({link})\n"));
        }
        body.push_str(&format!(
            "\n<!-- deepalert report {} publication {} -->\n",
            report.id, report.publications
        ));
        body
    }

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!(
                "{}/repos/{}{path}",
                self.api, self.options.repository
            ))
            .bearer_auth(&self.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }
}

#[derive(Deserialize)]
struct Created {
    number: u64,
}

#[async_trait]
impl EmitterPlugin for GitHubIssues {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        let key = format!("github:{}:{}", self.name, report.id);
        let issue = self
            .state
            .get(&key)
            .await
            .map_err(|e| PluginError::Failed(e.chain()))?;
        match issue {
            Some(number) => {
                let resp = self
                    .request(&format!("/issues/{number}/comments"))
                    .json(&json!({ "body": format!("Published again ({}).\n\n{}", report.publications, self.body(report)) }))
                    .send()
                    .await;
                check("github", resp).await.map(|_| ())
            }
            None => {
                let resp = self
                    .request("/issues")
                    .json(&json!({
                        "title": headline(report).chars().take(250).collect::<String>(),
                        "body": self.body(report),
                        "labels": self.options.labels,
                    }))
                    .send()
                    .await;
                let created: Created = check("github", resp).await?.json().await.map_err(|e| {
                    PluginError::BadOutput(format!(
                        "github: unexpected answer to create issue: {e}"
                    ))
                })?;
                self.state
                    .put(&key, &created.number.to_string())
                    .await
                    .map_err(|e| PluginError::Failed(e.chain()))
            }
        }
    }
}
