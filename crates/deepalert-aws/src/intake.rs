//! What the two functions that store alerts (receptor, event-router) build from their
//! environment, once at start: the store, the dispatch queue, the report topic with
//! `PublishUnreviewed`, the flows that start on receipt, and the pipeline settings.

use deepalert_core::SectionFormat;
use deepalert_core::flows::FlowSet;
use deepalert_core::ports::{BoxError, Emitter, SystemClock};
use deepalert_core::services::PipelineSettings;

use crate::flows::{SfnFlows, flow_starting};
use crate::handlers::{FlowDeps, ReceptorDeps};
use crate::{DynamoStore, SnsEmitter, SqsDispatchQueue, env};

pub struct Intake {
    store: DynamoStore,
    workflow: SqsDispatchQueue,
    announcer: Option<SnsEmitter>,
    flows: Option<(FlowSet, SfnFlows)>,
    settings: PipelineSettings,
}

impl Intake {
    /// Reads `TABLE_NAME`, `DISPATCH_QUEUE_URL`, `INSPECTION_DELAY_SECONDS`,
    /// `AGGREGATION_WINDOW_SECONDS`, `RETENTION_DAYS`, `PUBLISH_UNREVIEWED` (then
    /// `REPORT_TOPIC_ARN`), `REPORT_SECTIONS`, `FLOWS_CONFIG_FILE` (then `FLOW_STATE_MACHINE_ARN`).
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Intake, BoxError> {
        let table = env::var("TABLE_NAME")?;
        let dispatch_queue = env::var("DISPATCH_QUEUE_URL")?;
        let inspection_delay = env::seconds("INSPECTION_DELAY_SECONDS", 300)?;
        let window = env::seconds("AGGREGATION_WINDOW_SECONDS", 3 * 3600)?;
        let retention_days = env::number("RETENTION_DAYS", 30)?;
        let publish_unreviewed = env::flag("PUBLISH_UNREVIEWED", false)?;
        let sections = env::parsed("REPORT_SECTIONS", SectionFormat::Grouped)?;
        let flows = flow_starting(sdk, &env::document("FLOWS_CONFIG_FILE")?, || {
            env::var("FLOW_STATE_MACHINE_ARN")
        })?;
        // Reports go to the report topic as alerts arrive only with PublishUnreviewed.
        let announcer = if publish_unreviewed {
            let topic = env::var("REPORT_TOPIC_ARN")?;
            Some(SnsEmitter::new(
                aws_sdk_sns::Client::new(sdk),
                topic,
                sections,
            ))
        } else {
            None
        };
        Ok(Intake {
            store: crate::store(sdk, table, retention_days),
            workflow: SqsDispatchQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                dispatch_queue,
                inspection_delay,
            ),
            announcer,
            flows,
            settings: PipelineSettings {
                aggregation_window: chrono::Duration::from_std(window)?,
                ..PipelineSettings::default()
            },
        })
    }

    pub fn deps(&self) -> ReceptorDeps<'_> {
        ReceptorDeps {
            store: &self.store,
            workflow: &self.workflow,
            clock: &SystemClock,
            settings: &self.settings,
            announce: self.announcer.as_ref().map(|e| e as &dyn Emitter),
            flows: self
                .flows
                .as_ref()
                .map(|(set, starter)| FlowDeps { set, starter }),
        }
    }
}
