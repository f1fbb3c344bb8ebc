//! flow-runner: the task of the `<stack>-flows` state machine. Moves one flow run on —
//! notify, check, remediate, each step at most once — and answers how long the state
//! machine should wait before calling again. Its role holds only the permissions the
//! configured flows need (`make deploy` works them out).

use std::collections::HashMap;
use std::sync::Arc;

use deepalert_aws::env;
use deepalert_aws::flows::FlowInput;
use deepalert_aws::handlers::flow_runner;
use deepalert_core::ports::SystemClock;
use deepalert_plugins::builtin;
use deepalert_plugins::responses;
use deepalert_plugins::secrets::{SECRET_ARN_SUFFIX, SSM_PARAMETER_SUFFIX, Secrets};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::{error, info};

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    run()
        .await
        .inspect_err(|e| error!(error = %e, "cannot start"))
}

async fn run() -> Result<(), Error> {
    let table = env::var("TABLE_NAME")?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;
    let document = env::document("FLOWS_CONFIG_FILE")?;
    let config = deepalert_aws::flows::flows_document(&document)?;

    let sdk = deepalert_aws::sdk_config().await;
    let store = deepalert_aws::store(&sdk, table, retention_days);

    // Secrets the notifiers' options name are looked up where `secrets` says: an ARN in
    // Secrets Manager, or `ssm:<parameter>`.
    let locations: HashMap<String, String> = config
        .secrets
        .iter()
        .map(|(name, at)| match at.strip_prefix("ssm:") {
            Some(p) => (format!("{name}{SSM_PARAMETER_SUFFIX}"), p.to_string()),
            None => (format!("{name}{SECRET_ARN_SUFFIX}"), at.clone()),
        })
        .collect();
    let secrets = Secrets::new(move |k| locations.get(k).cloned(), Some(sdk.clone()));
    let base_dir = std::path::PathBuf::from(".");
    let ctx = builtin::Context {
        base_dir: &base_dir,
        secret: &secrets,
        aws: Some(&sdk),
    };
    // No exec remediation on AWS: a Lambda has no programs of the user's to run.
    let (set, responder) = responses::from_document(&config, &ctx, false)
        .await
        .map_err(|e| format!("{}: {e}", document.path.display()))?;
    info!(flows = set.iter().count(), "flows loaded");

    let responder = Arc::new(responder);
    let (store, set, responder) = (&store, &set, &responder);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<FlowInput>| async move {
            flow_runner(store, responder.as_ref(), &SystemClock, set, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
