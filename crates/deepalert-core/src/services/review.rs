use tracing::{info, warn};

use super::PipelineError;
use crate::domain::{Report, ReportId, ReviewResult};
use crate::ports::{Clock, Emitter, ReviewRun, ReviewScheduler, Reviewer, Store};

/// Compiles the report and asks the reviewer for a verdict. Never fails because of the
/// reviewer: no verdict or an error gives `unclassified` with the reason, so the report is
/// still published (DeepAlert lost such reports).
pub async fn review(
    store: &dyn Store,
    reviewer: &dyn Reviewer,
    report_id: ReportId,
) -> Result<Report, PipelineError> {
    let mut report = store
        .compile_report_for_review(report_id)
        .await?
        .ok_or(PipelineError::ReportNotFound(report_id))?;
    let result = match reviewer.review(&report).await {
        Ok(Some(result)) => result,
        Ok(None) => ReviewResult::unclassified("the reviewer returned no verdict"),
        Err(e) => {
            let cause = e.chain();
            warn!(report_id = %report_id, error = %cause, "reviewer failed; publishing as unclassified");
            ReviewResult::unclassified(format!("reviewer failed: {cause}"))
        }
    };
    info!(report_id = %report_id, severity = %result.severity, "reviewed");
    report.result = Some(result);
    Ok(report)
}

/// Publishes a report reviewed in an earlier step (on AWS the verdict travels through the
/// state machine, not the whole report): compiles it again, so findings that arrived
/// meanwhile are included, and publishes it with `result`.
pub async fn publish_reviewed(
    store: &dyn Store,
    emitter: &dyn Emitter,
    reviews: &dyn ReviewScheduler,
    clock: &dyn Clock,
    report_id: ReportId,
    result: ReviewResult,
    publication_id: &str,
) -> Result<Report, PipelineError> {
    let mut report = store
        .compile_report_for_review(report_id)
        .await?
        .ok_or(PipelineError::ReportNotFound(report_id))?;
    report.result = Some(result);
    publish(store, emitter, reviews, clock, &report, publication_id).await
}

/// Records the publication and hands the published report to the emitter. Idempotent on
/// `publication_id`, so a retried step publishes the same snapshot again rather than a
/// second publication. Alerts that joined after the report was compiled get the next
/// round's review: their own runs may already have found this round taken.
pub async fn publish(
    store: &dyn Store,
    emitter: &dyn Emitter,
    reviews: &dyn ReviewScheduler,
    clock: &dyn Clock,
    report: &Report,
    publication_id: &str,
) -> Result<Report, PipelineError> {
    let published = store
        .record_publication(report, publication_id, clock.now())
        .await?;
    emitter.emit(&published, publication_id).await?;
    info!(
        report_id = %published.id,
        publications = published.publications,
        severity = published.result.as_ref().map(|r| r.severity.as_str()).unwrap_or(""),
        "published"
    );
    if store.publication_queues_next_round() {
        return Ok(published);
    }
    if let Some(head) = store.report_head(report.id).await?
        && head.alerts as usize > report.alerts.len()
    {
        info!(report_id = %report.id, "alerts joined during the review; reviewing again");
        // The next round is named after the publications so far. A store may commit this
        // publication with the step (the local one does), so `head` may not count it yet.
        let round = head.publications.max(published.publications);
        reviews
            .schedule_review(&ReviewRun::new(report.id, round))
            .await?;
    }
    Ok(published)
}
