//! event-router: event queue (fed by the stack's EventBridge rule: CloudTrail events,
//! GuardDuty and Security Hub findings) → the rules (the document `RULES_CONFIG_FILE`
//! names in the deployment package, and Rego rules built in from stack.jsonnet) → each
//! alert stored as the receptor stores it. Partial batch failures: one bad event fails alone.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deepalert_aws::env;
use deepalert_aws::handlers::event_router;
use deepalert_aws::trail::TrailReader;
use deepalert_plugins::rules::{FindingsConfig, Policies, RuleConfig, rule_set};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::{error, info};

include!(concat!(env!("OUT_DIR"), "/rule_policies.rs"));

/// The rules of stack.jsonnet, as `tools/deploy.py` writes them into the zip.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesConfig {
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    findings: FindingsConfig,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    deepalert_aws::init_logging(env::optional("RUST_LOG"));
    run()
        .await
        .inspect_err(|e| error!(error = %e, "cannot start"))
}

async fn run() -> Result<(), Error> {
    let document = env::document("RULES_CONFIG_FILE")?;
    let config: RulesConfig = serde_json::from_str(&document.text).map_err(|e| {
        format!(
            "{} is not the rules' configuration: {e}",
            document.path.display()
        )
    })?;
    let rules = rule_set(&config.rules, &config.findings, Policies::BuiltIn(POLICIES))?;
    info!(
        rules = ?rules.names(),
        path = %document.path.display(),
        bytes = document.text.len(),
        sha256 = %document.sha256,
        "rules loaded"
    );

    let sdk = deepalert_aws::sdk_config().await;
    let intake = deepalert_aws::Intake::from_env(&sdk)?;
    // With TrailBucket, trail files' notifications come too (the trail queue).
    let trail = match env::optional("TRAIL_BUCKET") {
        None => None,
        Some(bucket) => {
            info!(bucket = %bucket, "trail files in");
            Some(TrailReader::new(
                aws_sdk_s3::Client::new(&sdk),
                deepalert_aws::DynamoPluginState::new(
                    aws_sdk_dynamodb::Client::new(&sdk),
                    env::var("TABLE_NAME")?,
                    chrono::Duration::days(env::number("RETENTION_DAYS", 30)? as i64),
                ),
            ))
        }
    };
    let deps = intake.deps();
    let (deps, rules, trail) = (&deps, &rules, trail.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(event_router(deps, rules, trail, event.payload).await)
    }))
    .await
}
