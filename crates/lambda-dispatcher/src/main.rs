//! dispatcher: state-machine task. Publishes a task per attribute new to the report to
//! the task topic (batched), and tells the state machine whether to review.

use deepalert_aws::handlers::{TaskDeps, dispatcher};
use deepalert_aws::{ExecutionInput, SnsTaskBus, env};
use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let table = env::var("TABLE_NAME")?;
    let task_topic = env::var("TASK_TOPIC_ARN")?;
    let max_attributes = env::number("MAX_ATTRIBUTES_PER_REPORT", 256)?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;

    let sdk = deepalert_aws::sdk_config().await;
    let store = deepalert_aws::store(&sdk, table, retention_days);
    let bus = SnsTaskBus::new(aws_sdk_sns::Client::new(&sdk), task_topic);
    let settings = PipelineSettings {
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
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ExecutionInput>| async move {
            dispatcher(deps, event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
