//! builtin: one of deepalert's built-in inspectors or emitters as a Lambda function,
//! configured by its environment (README.md next to this crate lists the variables).
//! An inspector takes SNS task events and sends results to the inspection queue; an
//! emitter takes SNS report events and remembers what it sent in a DynamoDB table.

use std::path::PathBuf;
use std::sync::Arc;

use deepalert_aws::env;
use deepalert_plugins::{Secrets, builtin};
use lambda_runtime::Error;
use tracing::error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    run()
        .await
        .inspect_err(|e| error!(error = %e, "cannot start"))
}

async fn run() -> Result<(), Error> {
    let kind = env::var("DEEPALERT_BUILTIN")?;
    let name = env::optional("DEEPALERT_NAME").unwrap_or_else(|| kind.clone());
    let options: serde_json::Value = match env::optional("DEEPALERT_OPTIONS") {
        None => serde_json::json!({}),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| format!("DEEPALERT_OPTIONS is not a JSON object: {e}"))?,
    };
    // Relative paths in options (threat lists, inventories) resolve in the function's
    // package unless told otherwise; lists shipped in a layer are under /opt.
    let base_dir = PathBuf::from(
        env::optional("DEEPALERT_FILES_DIR")
            .or_else(|| env::optional("LAMBDA_TASK_ROOT"))
            .unwrap_or_else(|| ".".into()),
    );

    let sdk = deepalert_aws::sdk_config().await;
    let secrets = Secrets::from_env(Some(sdk.clone()));
    let ctx = builtin::Context {
        base_dir: &base_dir,
        secret: &secrets,
        aws: Some(&sdk),
    };
    if builtin::is_inspector(&kind) {
        let plugin = builtin::inspector(&kind, options, &ctx).await?;
        let plugin = &plugin;
        deepalert_sdk::run_inspector(&name, |task| async move {
            plugin.inspect(&task).await.map_err(Error::from)
        })
        .await
    } else if builtin::is_emitter(&kind) {
        let table = env::var("STATE_TABLE")?;
        let retention_days = env::number("RETENTION_DAYS", 30)?;
        let state = deepalert_aws::plugin_state(&sdk, table, retention_days);
        let plugin = builtin::emitter(&name, &kind, options, &ctx, Arc::new(state)).await?;
        let plugin = &plugin;
        deepalert_sdk::run_emitter(|report| async move {
            plugin.emit(&report).await.map_err(Error::from)
        })
        .await
    } else {
        Err(format!(
            "DEEPALERT_BUILTIN={kind:?} is not a built-in (inspectors: {}; emitters: {})",
            builtin::INSPECTORS.join(", "),
            builtin::EMITTERS.join(", ")
        )
        .into())
    }
}
