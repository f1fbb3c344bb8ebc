use serde::Serialize;
use tracing::info;

use super::{PipelineError, PipelineSettings};
use crate::domain::{Alert, ReportId, ReportStatus, validate_alert};
use crate::ports::{Clock, Emitter, NewAlert, Store, Workflow, WorkflowRun};

/// What the sender of an alert is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub report_id: ReportId,
    pub status: ReportStatus,
    /// The same alert had been received before: nothing new was stored or started.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The alert's workflow run (deterministic: the same alert gives the same name).
    #[serde(skip)]
    pub run_name: String,
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
        run_name: run.name,
    })
}

/// Hands the report, as it stands after receiving an alert (status `new` or `more`, not
/// reviewed), to `emitter`: DeepAlert published reports on the report topic as alerts
/// arrived, and some of its users' emitters rely on that (`PublishUnreviewed`). Keyed by
/// the alert's run, so a redelivered alert announces the same thing again at most.
pub async fn announce_received(
    store: &dyn Store,
    emitter: &dyn Emitter,
    receipt: &Receipt,
) -> Result<(), PipelineError> {
    let report = store
        .compile_report(receipt.report_id)
        .await?
        .ok_or(PipelineError::ReportNotFound(receipt.report_id))?;
    if report.status == ReportStatus::Published {
        // A redelivered alert after its report was published: what subscribers to
        // `published` get comes from the publication, not from here.
        return Ok(());
    }
    let key = format!("{}-{}", receipt.run_name, report.status.as_str());
    emitter.emit(&report, &key).await?;
    info!(report_id = %receipt.report_id, status = report.status.as_str(), "announced unreviewed");
    Ok(())
}

/// `<report uuid>-<first 32 hex of the alert hash>`: 69 chars, a valid execution name.
/// The name of an alert's run: the same alert in the same report always gets the same.
pub fn run_name(report_id: ReportId, alert_ref: &str) -> String {
    let short = &alert_ref[..alert_ref.len().min(32)];
    format!("{report_id}-{short}")
}
