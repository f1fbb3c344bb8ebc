//! emitter-publisher: the state machine's task after the review delay. Gets the verdict
//! from review-invoker (its failure publishes `unclassified`), records the publication
//! and publishes the report to the report topic with `status`, `severity`, `detector` and
//! `rule_id` message attributes, for emitters' filter policies.

use deepalert_aws::handlers::{FlowDeps, PublishInput, PublisherDeps, emitter_publisher};
use deepalert_aws::{LambdaReviewStep, SfnReviews, SnsEmitter, env};
use deepalert_core::SectionFormat;
use deepalert_core::ports::SystemClock;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let table = env::var("TABLE_NAME")?;
    let report_topic = env::var("REPORT_TOPIC_ARN")?;
    let review_invoker = env::var("REVIEW_INVOKER_FUNCTION")?;
    let state_machine = env::var("STATE_MACHINE_ARN")?;
    let review_delay = env::seconds("REVIEW_DELAY_SECONDS", 600)?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;
    let sections = env::parsed("REPORT_SECTIONS", SectionFormat::Grouped)?;

    let sdk = deepalert_aws::sdk_config().await;
    let store = deepalert_aws::store(&sdk, table, retention_days);
    let flows =
        deepalert_aws::flows::flow_starting(&sdk, &env::document("FLOWS_CONFIG_FILE")?, || {
            env::var("FLOW_STATE_MACHINE_ARN")
        })?;
    let emitter = SnsEmitter::new(aws_sdk_sns::Client::new(&sdk), report_topic, sections);
    let reviews = SfnReviews::new(aws_sdk_sfn::Client::new(&sdk), state_machine, review_delay);
    let review_step = LambdaReviewStep::new(aws_sdk_lambda::Client::new(&sdk), review_invoker);
    let deps = PublisherDeps {
        store: &store,
        emitter: &emitter,
        reviews: &reviews,
        review_step: &review_step,
        clock: &SystemClock,
        flows: flows
            .as_ref()
            .map(|(set, starter)| FlowDeps { set, starter }),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<PublishInput>| async move {
            emitter_publisher(deps, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
