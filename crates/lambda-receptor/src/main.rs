//! receptor: alert queue (SQS, fed by the alert topic) → aggregated, stored alert and its
//! run on the dispatch queue, delayed by the inspection delay. Partial batch failures: one
//! bad alert fails alone.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deepalert_aws::env;
use deepalert_aws::handlers::receptor;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    let sdk = deepalert_aws::sdk_config().await;
    let intake = deepalert_aws::Intake::from_env(&sdk)?;
    let deps = intake.deps();
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(receptor(deps, event.payload).await)
    }))
    .await
}
