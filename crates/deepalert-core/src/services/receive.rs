use serde::Serialize;
use tracing::info;

use super::{PipelineError, PipelineSettings};
use crate::domain::{Alert, ReportId, ReportStatus, validate_alert};
use crate::ports::{Clock, NewAlert, Store, Workflow, WorkflowRun};

/// What the sender of an alert is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub report_id: ReportId,
    pub status: ReportStatus,
    /// The same alert had been received before: nothing new was stored or started.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Validates, aggregates and stores an alert, then starts its workflow run.
///
/// Safe to call again with the same alert (at-least-once delivery): the store keeps one
/// copy and the run has a deterministic name, so a redelivery that follows a crash
/// between the two steps still starts the run, and one that doesn't starts nothing new.
pub async fn receive_alert(
    store: &dyn Store,
    workflow: &dyn Workflow,
    clock: &dyn Clock,
    settings: &PipelineSettings,
    alert: &Alert,
) -> Result<Receipt, PipelineError> {
    validate_alert(alert)?;
    let alert_id = alert.alert_id();
    let alert_ref = alert.content_hash();
    let receipt = store
        .put_alert(NewAlert {
            alert,
            alert_id: &alert_id,
            alert_ref: &alert_ref,
            candidate_report: ReportId::new_random(),
            now: clock.now(),
            window: settings.aggregation_window,
        })
        .await?;
    let run = WorkflowRun {
        name: run_name(receipt.report_id, &alert_ref),
        report_id: receipt.report_id,
        alert_ref,
        review: receipt.review,
    };
    workflow.start(&run).await?;
    info!(
        report_id = %receipt.report_id,
        alert_id = %alert_id,
        status = receipt.status.as_str(),
        duplicate = receipt.duplicate,
        detector = %alert.detector,
        rule_id = %alert.rule_id,
        "alert received"
    );
    Ok(Receipt {
        report_id: receipt.report_id,
        status: receipt.status,
        duplicate: receipt.duplicate,
    })
}

/// `<report uuid>-<first 32 hex of the alert hash>`: 69 chars, a valid execution name.
fn run_name(report_id: ReportId, alert_ref: &str) -> String {
    let short = &alert_ref[..alert_ref.len().min(32)];
    format!("{report_id}-{short}")
}
