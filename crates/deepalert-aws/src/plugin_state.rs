//! Plug-in state on DynamoDB: what a built-in emitter last sent for a report, the issue it
//! opened. Items `pk = state#<key>`, `sk = -`, attribute `value`, TTL `expires_at`, in any
//! table keyed by strings `pk` / `sk` — the emitter's own table, so an emitter needs no
//! access to the pipeline's.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use deepalert_core::ports::{PluginState, PortError, PortResult};

#[derive(Clone)]
pub struct DynamoPluginState {
    client: Client,
    table: String,
    retention: chrono::Duration,
}

impl DynamoPluginState {
    /// `retention`: state expires (DynamoDB TTL) this long after it is written; keep it
    /// at least as long as reports live, or an old report may be sent again.
    pub fn new(client: Client, table: impl Into<String>, retention: chrono::Duration) -> Self {
        DynamoPluginState {
            client,
            table: table.into(),
            retention,
        }
    }
}

fn pk(key: &str) -> AttributeValue {
    AttributeValue::S(format!("state#{key}"))
}

fn sk() -> AttributeValue {
    AttributeValue::S("-".into())
}

fn aws_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::with_source(
        format!("dynamodb: {what}"),
        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    )
}

#[async_trait]
impl PluginState for DynamoPluginState {
    async fn get(&self, key: &str) -> PortResult<Option<String>> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(key))
            .key("sk", sk())
            // A retried invocation right after a send must see what was sent.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_err("get plug-in state", e))?;
        Ok(got
            .item
            .and_then(|mut item| item.remove("value"))
            .and_then(|v| v.as_s().ok().cloned()))
    }

    async fn put(&self, key: &str, value: &str) -> PortResult<()> {
        let expires_at = (Utc::now() + self.retention).timestamp();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(key))
            .item("sk", sk())
            .item("value", AttributeValue::S(value.into()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .map_err(|e| aws_err("put plug-in state", e))?;
        Ok(())
    }
}
