use std::collections::HashSet;

use tracing::{info, warn};

use super::{PIPELINE_AUTHOR, PipelineError, PipelineSettings};
use crate::domain::{Attribute, Note, ReportId, ReportStatus, Task};
use crate::ports::{
    AttributeClaim, Clock, ReviewRun, ReviewScheduler, Store, TaskBus, WorkflowRun,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchOutcome {
    pub tasks_published: usize,
    /// A review was scheduled (or was already for this round): the alert opened the
    /// report, or joined it after a publication, or the report got published while this
    /// alert waited for its inspection delay.
    pub review: bool,
}

/// Sends each attribute of the run's alert that is new to the report to the inspectors,
/// then schedules the report's review if it needs one (the alert opened the report or
/// came after a publication). One review per report and round: alerts of a burst share
/// the first one's.
pub async fn dispatch(
    store: &dyn Store,
    bus: &dyn TaskBus,
    reviews: &dyn ReviewScheduler,
    clock: &dyn Clock,
    settings: &PipelineSettings,
    run: &WorkflowRun,
) -> Result<DispatchOutcome, PipelineError> {
    let stored = store
        .get_alert(run.report_id, &run.alert_ref)
        .await?
        .ok_or_else(|| PipelineError::AlertNotFound {
            report_id: run.report_id,
            alert_ref: run.alert_ref.clone(),
        })?;
    let alert = stored.alert;
    // DeepAlert's dispatcher gave every task attribute a time (the alert's) and Go
    // inspectors dereference it; without one in the alert, the time of dispatch.
    let observed = alert.timestamp.unwrap_or_else(|| clock.now());
    let attributes: Vec<Attribute> = alert
        .attributes
        .iter()
        .map(|a| with_time(a, Some(observed)))
        .collect();
    let claims = unique_claims(&attributes, 0);
    let origin = TaskOrigin {
        report_id: run.report_id,
        detector: &alert.detector,
        rule_id: &alert.rule_id,
    };
    // A run delivered twice (at-least-once) sends its tasks once.
    let tasks_published = if stored.dispatched {
        0
    } else {
        let n = claim_and_publish(store, bus, clock, settings, &origin, &claims, &run.name).await?;
        store.mark_dispatched(run.report_id, &run.alert_ref).await?;
        n
    };
    let head = store
        .report_head(run.report_id)
        .await?
        .ok_or(PipelineError::ReportNotFound(run.report_id))?;
    // Published while this alert waited for its inspection delay: what it adds would
    // otherwise never be published.
    let review = run.review || head.status == ReportStatus::Published;
    if review {
        reviews
            .schedule_review(&ReviewRun::new(run.report_id, head.publications))
            .await?;
    }
    info!(report_id = %run.report_id, tasks = tasks_published, review, "dispatched");
    Ok(DispatchOutcome {
        tasks_published,
        review,
    })
}

/// The attribute with `time` as its timestamp if it has none (identity ignores it).
pub(super) fn with_time(a: &Attribute, time: Option<chrono::DateTime<chrono::Utc>>) -> Attribute {
    let mut a = a.clone();
    if a.timestamp.is_none() {
        a.timestamp = time;
    }
    a
}

pub(super) fn unique_claims(attrs: &[Attribute], depth: u32) -> Vec<AttributeClaim> {
    let mut seen = HashSet::new();
    attrs
        .iter()
        .filter(|a| seen.insert(a.identity()))
        .map(|a| AttributeClaim {
            attribute: a.clone(),
            depth,
        })
        .collect()
}

/// The report tasks are about.
pub(super) struct TaskOrigin<'a> {
    pub report_id: ReportId,
    pub detector: &'a str,
    pub rule_id: &'a str,
}

/// Claims attributes and publishes a task for each one claimed; records refused ones.
pub(super) async fn claim_and_publish(
    store: &dyn Store,
    bus: &dyn TaskBus,
    clock: &dyn Clock,
    settings: &PipelineSettings,
    origin: &TaskOrigin<'_>,
    claims: &[AttributeClaim],
    claimer: &str,
) -> Result<usize, PipelineError> {
    let report_id = origin.report_id;
    if claims.is_empty() {
        return Ok(0);
    }
    let outcome = store
        .claim_attributes(
            report_id,
            claims,
            claimer,
            settings.max_attributes_per_report,
        )
        .await?;
    for refused in &outcome.over_limit {
        warn!(report_id = %report_id, value = %refused.value, "attribute over the per-report limit, not inspected");
        store
            .put_note(
                report_id,
                &Note {
                    author: PIPELINE_AUTHOR.into(),
                    attribute: Some(refused.clone()),
                    message: format!(
                        "not inspected: the report already holds {} attributes (max_attributes_per_report)",
                        settings.max_attributes_per_report
                    ),
                    created_at: clock.now(),
                },
            )
            .await?;
    }
    let tasks: Vec<Task> = outcome
        .claimed
        .into_iter()
        .map(|attribute| Task {
            report_id,
            attribute,
            detector: origin.detector.to_string(),
            rule_id: origin.rule_id.to_string(),
        })
        .collect();
    bus.publish(&tasks).await?;
    Ok(tasks.len())
}
