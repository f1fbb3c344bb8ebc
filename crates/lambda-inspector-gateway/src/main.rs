//! inspector-gateway: inspection queue (where inspectors send what they found) → stored
//! findings and new tasks for the new attributes, within the depth and count bounds.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deepalert_aws::handlers::{TaskDeps, inspector_gateway};
use deepalert_aws::{SnsTaskBus, env};
use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let table = env::var("TABLE_NAME")?;
    let task_topic = env::var("TASK_TOPIC_ARN")?;
    let max_depth = env::number("MAX_ATTRIBUTE_DEPTH", 3)?;
    let max_attributes = env::number("MAX_ATTRIBUTES_PER_REPORT", 256)?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;

    let sdk = deepalert_aws::sdk_config().await;
    let store = deepalert_aws::store(&sdk, table, retention_days);
    let bus = SnsTaskBus::new(aws_sdk_sns::Client::new(&sdk), task_topic);
    let settings = PipelineSettings {
        max_attribute_depth: u32::try_from(max_depth)?,
        max_attributes_per_report: u32::try_from(max_attributes)?,
        ..PipelineSettings::default()
    };
    let deps = TaskDeps {
        store: &store,
        bus: &bus,
        clock: &SystemClock,
        settings: &settings,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(inspector_gateway(deps, event.payload).await)
    }))
    .await
}
