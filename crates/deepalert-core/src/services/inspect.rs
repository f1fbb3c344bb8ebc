use tracing::{info, warn};

use super::dispatch::{TaskOrigin, claim_and_publish, unique_claims, with_time};
use super::{PIPELINE_AUTHOR, PipelineError, PipelineSettings};
use crate::domain::validate::validate_inspector_output;
use crate::domain::{Finding, InspectionReport, Note};
use crate::ports::{Clock, Store, TaskBus};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectionOutcome {
    pub findings_stored: usize,
    pub tasks_published: usize,
    /// Something was refused or failed; recorded as a note on the report.
    pub noted: bool,
}

/// Stores what an inspector found and sends the new attributes it returned back to the
/// inspectors, within the depth and count bounds. A failed inspector is recorded as a
/// note on the report, so readers see that a lookup is missing.
pub async fn accept_inspection(
    store: &dyn Store,
    bus: &dyn TaskBus,
    clock: &dyn Clock,
    settings: &PipelineSettings,
    msg: InspectionReport,
) -> Result<InspectionOutcome, PipelineError> {
    let report_id = msg.report_id;
    let note = |message: String| Note {
        author: msg.author.clone(),
        attribute: Some(msg.attribute.clone()),
        message,
        created_at: clock.now(),
    };
    let mut outcome = InspectionOutcome::default();

    if let Some(error) = &msg.error {
        warn!(report_id = %report_id, inspector = %msg.author, %error, "inspector failed");
        store
            .put_note(report_id, &note(format!("inspector failed: {error}")))
            .await?;
        outcome.noted = true;
        return Ok(outcome);
    }

    let answered = msg.output.findings.len();
    if answered > settings.max_findings_per_answer {
        warn!(report_id = %report_id, inspector = %msg.author, answered, "findings over the limit dropped");
        store
            .put_note(
                report_id,
                &note(format!(
                    "{answered} findings in one answer: the first {} kept, {} dropped (max_findings_per_answer)",
                    settings.max_findings_per_answer,
                    answered - settings.max_findings_per_answer
                )),
            )
            .await?;
        outcome.noted = true;
    }
    let findings: Vec<Finding> = msg
        .output
        .findings
        .iter()
        .take(settings.max_findings_per_answer)
        .map(|content| Finding {
            report_id,
            author: msg.author.clone(),
            attribute: msg.attribute.clone(),
            content: content.clone(),
        })
        .collect();
    store.put_findings(&findings).await?;
    outcome.findings_stored = findings.len();

    if msg.output.attributes.is_empty() {
        return Ok(outcome);
    }
    if let Err(e) = validate_inspector_output(&msg.output) {
        store
            .put_note(report_id, &note(format!("new attributes refused: {e}")))
            .await?;
        outcome.noted = true;
        return Ok(outcome);
    }
    let origin_depth = store
        .attribute_depth(report_id, &msg.attribute.identity())
        .await?
        .unwrap_or(0);
    let depth = origin_depth + 1;
    if depth > settings.max_attribute_depth {
        let values: Vec<&str> = msg
            .output
            .attributes
            .iter()
            .map(|a| a.value.as_str())
            .collect();
        store
            .put_note(
                report_id,
                &Note {
                    author: PIPELINE_AUTHOR.into(),
                    attribute: Some(msg.attribute.clone()),
                    message: format!(
                        "{} new attribute(s) from {} not inspected: depth {depth} is over max_attribute_depth {} ({})",
                        values.len(),
                        msg.author,
                        settings.max_attribute_depth,
                        values.join(", ")
                    ),
                    created_at: clock.now(),
                },
            )
            .await?;
        outcome.noted = true;
        return Ok(outcome);
    }
    let head = store
        .report_head(report_id)
        .await?
        .ok_or(PipelineError::ReportNotFound(report_id))?;
    let origin = TaskOrigin {
        report_id,
        detector: &head.detector,
        rule_id: &head.rule_id,
    };
    // As DeepAlert's inspector package does: a new attribute without a time gets the
    // time of the attribute it was found from.
    let found: Vec<_> = msg
        .output
        .attributes
        .iter()
        .map(|a| with_time(a, msg.attribute.timestamp))
        .collect();
    let claims = unique_claims(&found, depth);
    let claimer = format!("{}:{}", msg.author, msg.attribute.identity());
    outcome.tasks_published =
        claim_and_publish(store, bus, clock, settings, &origin, &claims, &claimer).await?;
    info!(
        report_id = %report_id,
        inspector = %msg.author,
        findings = outcome.findings_stored,
        new_tasks = outcome.tasks_published,
        "inspection accepted"
    );
    Ok(outcome)
}
