//! dispatcher: dispatch queue (one delayed message per stored alert) → a task per attribute
//! new to the report on the task topic (batched), and the report's review scheduled (one
//! Step Functions execution per report and round). Partial batch failures: one bad
//! message fails alone.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deepalert_aws::handlers::{DispatchDeps, dispatcher};
use deepalert_aws::{SfnReviews, SnsTaskBus, SqsDispatchQueue, env};
use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let table = env::var("TABLE_NAME")?;
    let task_topic = env::var("TASK_TOPIC_ARN")?;
    let dispatch_queue = env::var("DISPATCH_QUEUE_URL")?;
    let state_machine = env::var("STATE_MACHINE_ARN")?;
    let review_delay = env::seconds("REVIEW_DELAY_SECONDS", 600)?;
    let max_attributes = env::number("MAX_ATTRIBUTES_PER_REPORT", 256)?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;

    let sdk = deepalert_aws::sdk_config().await;
    let store = deepalert_aws::store(&sdk, table, retention_days);
    let bus = SnsTaskBus::new(aws_sdk_sns::Client::new(&sdk), task_topic);
    let reviews = SfnReviews::new(aws_sdk_sfn::Client::new(&sdk), state_machine, review_delay);
    // Only puts back messages not due yet: each carries its own due time.
    let queue = SqsDispatchQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        dispatch_queue,
        std::time::Duration::ZERO,
    );
    let settings = PipelineSettings {
        max_attributes_per_report: u32::try_from(max_attributes)?,
        ..PipelineSettings::default()
    };
    let deps = DispatchDeps {
        store: &store,
        bus: &bus,
        reviews: &reviews,
        queue: &queue,
        clock: &SystemClock,
        settings: &settings,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(dispatcher(deps, event.payload).await)
    }))
    .await
}
