//! The reviewer as a Lambda function: invoked with the compiled report, answers
//! `{"severity", "reason"}` or `null`.

use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use deepalert_core::ports::{PortError, PortResult, Reviewer};
use deepalert_core::{Report, ReviewResult};

/// Lambda request payloads are at most 6 MB.
const MAX_PAYLOAD_BYTES: usize = 6 * 1000 * 1000 - 1024;

pub struct LambdaReviewer {
    client: Client,
    function: String,
}

impl LambdaReviewer {
    pub fn new(client: Client, function_arn: impl Into<String>) -> Self {
        LambdaReviewer {
            client,
            function: function_arn.into(),
        }
    }
}

#[async_trait]
impl Reviewer for LambdaReviewer {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
        let mut report = report.clone();
        report.shrink_to_fit(MAX_PAYLOAD_BYTES, chrono::Utc::now());
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(
                serde_json::to_vec(&report).expect("reports serialize"),
            ))
            .send()
            .await
            .map_err(|e| {
                PortError::new(format!(
                    "invoking reviewer {}: {}",
                    self.function,
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                ))
            })?;
        let payload = out.payload.map(|b| b.into_inner()).unwrap_or_default();
        if let Some(kind) = out.function_error {
            return Err(PortError::new(format!(
                "reviewer {} failed ({kind}): {}",
                self.function,
                String::from_utf8_lossy(&payload)
            )));
        }
        deepalert_core::parse_verdict(&payload).map_err(|e| {
            PortError::new(format!(
                "reviewer {} answered something that is not a verdict ({e}): {}",
                self.function,
                String::from_utf8_lossy(&payload[..payload.len().min(300)])
            ))
        })
    }
}
