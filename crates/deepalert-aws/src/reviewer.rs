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

/// How the review step answered the publisher: a verdict, or the step itself failed
/// (crashed, timed out, refused its input), in Lambda's `errorType` / `errorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewStep {
    Verdict(ReviewResult),
    Failed { error: String, cause: String },
}

/// The publisher's way to the review step: the `review-invoker` function, invoked with
/// `{"report_id"}`. Its failures come back as [`ReviewStep::Failed`], so the report is
/// still published, as `unclassified` (what a Catch in the state machine did, without a
/// state transition).
pub struct LambdaReviewStep {
    client: Client,
    function: String,
}

impl LambdaReviewStep {
    pub fn new(client: Client, function: impl Into<String>) -> Self {
        LambdaReviewStep {
            client,
            function: function.into(),
        }
    }

    pub async fn review(&self, report_id: deepalert_core::ReportId) -> ReviewStep {
        let payload = serde_json::json!({ "report_id": report_id }).to_string();
        let out = match self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return ReviewStep::Failed {
                    error: "Lambda.InvokeFailed".into(),
                    cause: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
                };
            }
        };
        let payload = out.payload.map(|b| b.into_inner()).unwrap_or_default();
        if out.function_error.is_some() {
            let v: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            return ReviewStep::Failed {
                error: text("errorType"),
                cause: if v["errorMessage"].is_string() {
                    text("errorMessage")
                } else {
                    String::from_utf8_lossy(&payload).into_owned()
                },
            };
        }
        match serde_json::from_slice::<ReviewResult>(&payload) {
            Ok(r) => ReviewStep::Verdict(r),
            Err(e) => ReviewStep::Failed {
                error: "BadAnswer".into(),
                cause: format!(
                    "{e}: {}",
                    String::from_utf8_lossy(&payload[..payload.len().min(300)])
                ),
            },
        }
    }
}
