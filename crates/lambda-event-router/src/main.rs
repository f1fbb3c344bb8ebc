//! event-router: event queue (fed by the stack's EventBridge rule: CloudTrail events,
//! GuardDuty and Security Hub findings) → the rules (`RULES_CONFIG`, and Rego rules built
//! in from stack.jsonnet) → each alert stored as the receptor stores it. Partial batch
//! failures: one bad event fails alone.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deepalert_aws::handlers::{FlowDeps, ReceptorDeps, event_router};
use deepalert_aws::{SnsEmitter, SqsDispatchQueue, env};
use deepalert_core::SectionFormat;
use deepalert_core::ports::{Emitter, SystemClock};
use deepalert_core::services::PipelineSettings;
use deepalert_plugins::rules::{FindingsConfig, Policies, RuleConfig, rule_set};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::{error, info};

include!(concat!(env!("OUT_DIR"), "/rule_policies.rs"));

/// `RULES_CONFIG`: the rules of stack.jsonnet, as `tools/deploy.py` passes them.
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
    let table = env::var("TABLE_NAME")?;
    let dispatch_queue = env::var("DISPATCH_QUEUE_URL")?;
    let inspection_delay = env::seconds("INSPECTION_DELAY_SECONDS", 300)?;
    let window = env::seconds("AGGREGATION_WINDOW_SECONDS", 3 * 3600)?;
    let retention_days = env::number("RETENTION_DAYS", 30)?;
    let publish_unreviewed = env::flag("PUBLISH_UNREVIEWED", false)?;
    let sections = env::parsed("REPORT_SECTIONS", SectionFormat::Grouped)?;
    let rules_config = env::optional("RULES_CONFIG").unwrap_or_else(|| "{}".into());

    let config: RulesConfig = serde_json::from_str(&rules_config)
        .map_err(|e| format!("RULES_CONFIG is not the rules' configuration: {e}"))?;
    let rules = rule_set(&config.rules, &config.findings, Policies::BuiltIn(POLICIES))?;
    info!(rules = ?rules.names(), "rules loaded");

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
    let (deps, rules) = (&deps, &rules);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(event_router(deps, rules, event.payload).await)
    }))
    .await
}
