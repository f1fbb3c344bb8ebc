//! receptor: alert queue (SQS, fed by the alert topic) → aggregated, stored alert and its
//! run on the dispatch queue, delayed by the inspection delay. Partial batch failures: one
//! bad alert fails alone.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deepalert_aws::handlers::{FlowDeps, ReceptorDeps, receptor};
use deepalert_aws::{SnsEmitter, SqsDispatchQueue, env};
use deepalert_core::SectionFormat;
use deepalert_core::ports::{Emitter, SystemClock};
use deepalert_core::services::PipelineSettings;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let table = env::var("TABLE_NAME")?;
    let dispatch_queue = env::var("DISPATCH_QUEUE_URL")?;
    let inspection_delay = env::seconds("INSPECTION_DELAY_SECONDS", 300)?;
    let window = env::seconds("AGGREGATION_WINDOW_SECONDS", 3 * 3600)?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;
    let publish_unreviewed = env::flag("PUBLISH_UNREVIEWED", false)?;
    let sections = env::parsed("REPORT_SECTIONS", SectionFormat::Grouped)?;

    let sdk = deepalert_aws::sdk_config().await;
    let store = deepalert_aws::store(&sdk, table, retention_days);
    let flows = deepalert_aws::flows::flow_starting(
        &sdk,
        &env::optional("FLOWS_CONFIG").unwrap_or_default(),
        || env::var("FLOW_STATE_MACHINE_ARN"),
    )?;
    let workflow = SqsDispatchQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        dispatch_queue,
        inspection_delay,
    );
    // Reports go to the report topic as alerts arrive only with PublishUnreviewed.
    let announcer = if publish_unreviewed {
        let topic = env::var("REPORT_TOPIC_ARN")?;
        Some(SnsEmitter::new(
            aws_sdk_sns::Client::new(&sdk),
            topic,
            sections,
        ))
    } else {
        None
    };
    let settings = PipelineSettings {
        aggregation_window: chrono::Duration::from_std(window)?,
        ..PipelineSettings::default()
    };
    let deps = ReceptorDeps {
        store: &store,
        workflow: &workflow,
        clock: &SystemClock,
        settings: &settings,
        announce: announcer.as_ref().map(|e| e as &dyn Emitter),
        flows: flows
            .as_ref()
            .map(|(set, starter)| FlowDeps { set, starter }),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(receptor(deps, event.payload).await)
    }))
    .await
}
