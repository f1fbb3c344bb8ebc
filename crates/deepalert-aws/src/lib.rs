//! deepalert on AWS: adapters for the core ports (DynamoDB store, SNS task bus and report
//! emitter, Step Functions workflow, Lambda reviewer), the five Lambda handlers, and what
//! the `lambda-*` binaries share (configuration from the environment, JSON logs).

pub mod env;
pub mod flows;
pub mod handlers;
pub mod intake;
pub mod plugin_state;
pub mod reviewer;
pub mod sns;
pub mod store;
pub mod trail;
pub mod workflow;

pub use flows::SfnFlows;
pub use intake::Intake;
pub use plugin_state::DynamoPluginState;
pub use reviewer::{LambdaReviewStep, LambdaReviewer, ReviewStep};
pub use sns::{SnsEmitter, SnsTaskBus};
pub use store::DynamoStore;
pub use workflow::{DispatchMessage, ReviewExecutionInput, SfnReviews, SqsDispatchQueue};

/// JSON logs for CloudWatch, one object per line. `filter` is `RUST_LOG` syntax.
pub fn init_logging(filter: Option<String>) {
    let filter = filter
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps each line
        .init();
}

fn days(n: u64) -> chrono::Duration {
    chrono::Duration::days(i64::try_from(n).unwrap_or(i64::MAX / 86_400_000))
}

/// The store as every function builds it: `retention_days` is the TTL of what it writes.
pub fn store(sdk: &aws_config::SdkConfig, table: String, retention_days: u64) -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table,
        days(retention_days),
    )
}

/// An emitter's state table, built the same way.
pub fn plugin_state(
    sdk: &aws_config::SdkConfig,
    table: String,
    retention_days: u64,
) -> DynamoPluginState {
    DynamoPluginState::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table,
        days(retention_days),
    )
}

/// The shared SDK configuration, loaded once per cold start.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
