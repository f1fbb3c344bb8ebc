//! Appends each published report as one JSON line to a file.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use deepalert_core::Report;
use deepalert_core::ports::{EmitterPlugin, PluginError};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Relative to the configuration file.
    pub path: PathBuf,
}

pub struct JsonLines {
    path: PathBuf,
}

impl JsonLines {
    pub fn new(path: PathBuf) -> Self {
        JsonLines { path }
    }
}

#[async_trait]
impl EmitterPlugin for JsonLines {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        super::Notifier::send(self, report, None).await
    }
}

/// As a flow's notifier: the report, with the step's message as `message`.
#[async_trait]
impl super::Notifier for JsonLines {
    async fn send(&self, report: &Report, message: Option<&str>) -> Result<(), PluginError> {
        let mut value = serde_json::to_value(report).expect("reports serialize");
        if let Some(m) = message {
            value["message"] = serde_json::Value::String(m.to_string());
        }
        let line = value.to_string();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // One write per line, so concurrent appends do not interleave.
            f.write_all(format!("{line}\n").as_bytes())
        })
        .await
        .map_err(|e| PluginError::Failed(e.to_string()))?
        .map_err(|e| PluginError::Failed(format!("writing {}: {e}", self.path.display())))
    }
}
