//! POSTs the published report as JSON to any URL, signed with HMAC-SHA256:
//! `X-Deepalert-Signature: sha256=<hex of HMAC(secret, body)>`.

use async_trait::async_trait;
use deepalert_core::Report;
use deepalert_core::ports::{EmitterPlugin, PluginError};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{Notifier, check, http_client};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub url: String,
    /// Name of the secret holding the signing key (see `crate::secrets`).
    pub secret_env: String,
}

pub struct Webhook {
    url: String,
    secret: String,
    client: reqwest::Client,
}

pub const SIGNATURE_HEADER: &str = "X-Deepalert-Signature";

/// `sha256=<hex>`: what a receiver recomputes over the raw body to verify the sender.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Webhook {
    pub fn new(url: String, secret: String) -> Self {
        Webhook {
            url,
            secret,
            client: http_client(),
        }
    }
}

#[async_trait]
impl EmitterPlugin for Webhook {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        self.send(report, None).await
    }
}

/// As a flow's notifier: the report, with the step's message as `message`.
#[async_trait]
impl Notifier for Webhook {
    async fn send(&self, report: &Report, message: Option<&str>) -> Result<(), PluginError> {
        let mut value = serde_json::to_value(report).expect("reports serialize");
        if let Some(m) = message {
            value["message"] = serde_json::Value::String(m.to_string());
        }
        let body = serde_json::to_vec(&value).expect("JSON serializes");
        let resp = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, &body))
            .header("X-Deepalert-Report-Id", report.id.to_string())
            .body(body)
            .send()
            .await;
        check("webhook", resp).await.map(|_| ())
    }
}
