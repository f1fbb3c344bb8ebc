//! review-invoker: state-machine task. Compiles the report and gets a verdict from the
//! Rego policies built into this binary (`ReviewerPolicies` in stack.jsonnet), else from
//! the reviewer Lambda (REVIEWER_LAMBDA_ARN), else `unclassified`; a failing reviewer
//! gives `unclassified` with the error.

use std::sync::Arc;

use deepalert_aws::handlers::{ReviewInput, review_invoker};
use deepalert_aws::{LambdaReviewer, env};
use deepalert_core::ports::{PortResult, Reviewer};
use deepalert_core::{Report, ReviewResult};
use deepalert_plugins::PolicyReviewer;
use lambda_runtime::{Error, LambdaEvent, service_fn};

include!(concat!(env!("OUT_DIR"), "/policies.rs"));

struct NoReviewer;

#[async_trait::async_trait]
impl Reviewer for NoReviewer {
    async fn review(&self, _: &Report) -> PortResult<Option<ReviewResult>> {
        Ok(Some(ReviewResult::unclassified(
            "no reviewer is configured; set ReviewerLambdaArn in stack.jsonnet",
        )))
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let table = env::var("TABLE_NAME")?;
    let reviewer_arn = env::optional("REVIEWER_LAMBDA_ARN");

    let sdk = deepalert_aws::sdk_config().await;
    // Reads only: it writes nothing, so the retention does not matter here.
    let store = deepalert_aws::store(&sdk, table, 30);
    let reviewer: Arc<dyn Reviewer> = match reviewer_arn {
        _ if !POLICIES.is_empty() => {
            if reviewer_arn.is_some() {
                tracing::warn!("policies are built in; REVIEWER_LAMBDA_ARN is not used");
            }
            Arc::new(PolicyReviewer::from_sources(POLICIES)?)
        }
        Some(arn) => Arc::new(LambdaReviewer::new(aws_sdk_lambda::Client::new(&sdk), arn)),
        None => Arc::new(NoReviewer),
    };
    let (store, reviewer) = (&store, reviewer.as_ref());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ReviewInput>| async move {
            review_invoker(store, reviewer, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
