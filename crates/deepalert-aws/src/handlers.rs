//! The Lambda handlers. Each is a plain async function over the ports, calling the
//! same core services as `deepalert serve`; the `lambda-*` binaries wrap them in
//! `lambda_runtime`.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use deepalert_core::flows::{self, Advance, FlowSet, StepRunner};
use deepalert_core::ports::{
    Clock, Emitter, FlowStarter, ReviewScheduler, Reviewer, Store, TaskBus, Workflow,
};
use deepalert_core::rules::{RuleSet, parse_events};
use deepalert_core::services::{self, PipelineError, PipelineSettings};
use deepalert_core::{
    Alert, AlertError, InspectionReport, ReportId, ReviewResult, Severity, parse_alert,
};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::flows::{FlowInput, FlowOutput};
use crate::reviewer::{LambdaReviewStep, ReviewStep};
use crate::trail::{TrailObject, TrailReader, notification_objects};
use crate::workflow::{DispatchMessage, SqsDispatchQueue};

/// A message body as it arrives from a queue: the payload itself (raw delivery), or an
/// SNS notification envelope around it (subscription without raw delivery). As DeepAlert
/// did, an envelope is recognised by its string `Message` field, with or without `Type`.
pub fn unwrap_sns_envelope(body: &str) -> std::borrow::Cow<'_, str> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "Type", default)]
        kind: Option<String>,
        #[serde(rename = "Message")]
        message: String,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(env) if env.kind.as_deref().is_none_or(|k| k == "Notification") => env.message.into(),
        _ => body.into(),
    }
}

fn failure(message_id: Option<&String>) -> Option<BatchItemFailure> {
    // Without an id the record cannot be reported alone; the runtime then retries the
    // batch, which is safe (every step is idempotent).
    message_id.map(|id| {
        let mut f = BatchItemFailure::default();
        f.item_identifier = id.clone();
        f
    })
}

pub struct ReceptorDeps<'a> {
    pub store: &'a dyn Store,
    pub workflow: &'a dyn Workflow,
    pub clock: &'a dyn Clock,
    pub settings: &'a PipelineSettings,
    /// With `PublishUnreviewed`: the report topic, where each received alert's report
    /// is published with status `new` or `more`, as DeepAlert did.
    pub announce: Option<&'a dyn Emitter>,
    /// Flows with `on = "received"` start here.
    pub flows: Option<FlowDeps<'a>>,
}

/// The configured flows and what starts their runs.
#[derive(Clone, Copy)]
pub struct FlowDeps<'a> {
    pub set: &'a FlowSet,
    pub starter: &'a dyn FlowStarter,
}

/// Runs `handle` on each record's body (unwrapped from an SNS envelope) and reports the
/// records it failed, alone (partial batch response): the others are not retried.
async fn each_record<F, Fut>(event: &SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ()>>,
{
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_else(|| "?".into());
        let body = unwrap_sns_envelope(record.body.as_deref().unwrap_or("")).into_owned();
        if handle(id, body).await.is_err() {
            response
                .batch_item_failures
                .extend(failure(record.message_id.as_ref()));
        }
    }
    response
}

/// Stores one alert and schedules its run; with `announce`, publishes the report as it
/// stands (DeepAlert's lifecycle). What the receptor and the event router share.
async fn receive_one(deps: &ReceptorDeps<'_>, alert: &Alert) -> Result<(), PipelineError> {
    let receipt =
        services::receive_alert(deps.store, deps.workflow, deps.clock, deps.settings, alert)
            .await?;
    if let Some(emitter) = deps.announce {
        services::announce_received(deps.store, emitter, &receipt).await?;
    }
    if let Some(f) = deps.flows {
        flows::start_on_receipt(f.starter, f.set, alert, &receipt).await?;
    }
    Ok(())
}

/// Logs why a record failed: retried (a store or queue hiccup) or bound for the DLQ.
fn log_failure(id: &str, what: &str, e: &PipelineError) {
    if e.is_retryable() {
        warn!(message_id = %id, error = %e, "{what} not stored; will be retried");
    } else {
        error!(message_id = %id, error = %e, "{what} refused; it will go to the DLQ");
    }
}

/// Alert queue → stored alert + its run on the dispatch queue. Only the records that
/// failed are reported (partial batch response), so one bad alert does not retry the
/// others; it goes to the DLQ after the queue's maxReceiveCount, with the reason in the log.
pub async fn receptor(deps: &ReceptorDeps<'_>, event: SqsEvent) -> SqsBatchResponse {
    each_record(&event, |id, body| async move {
        let alert = match parse_alert(body.as_bytes()) {
            Ok(alert) => alert,
            Err(AlertError::Invalid(v)) => {
                log_failure(&id, "alert", &PipelineError::Invalid(v));
                return Err(());
            }
            Err(e @ AlertError::Parse(_)) => {
                error!(message_id = %id, error = %e, "alert refused; it will go to the DLQ");
                return Err(());
            }
        };
        receive_one(deps, &alert)
            .await
            .map_err(|e| log_failure(&id, "alert", &e))
    })
    .await
}

/// Event queue (EventBridge's rule → SQS) → the rules → each alert stored as the
/// receptor stores it. An event that is not one, or on which a rule fails, is reported
/// failed after the others' alerts are stored (they are stored once however often it is
/// retried) and reaches the DLQ, with a log line naming the event or rule and why. A rule
/// that cannot read a field it needs skips the event with a log line; that fails nothing.
pub async fn event_router(
    deps: &ReceptorDeps<'_>,
    rules: &RuleSet,
    trail: Option<&TrailReader>,
    event: SqsEvent,
) -> SqsBatchResponse {
    each_record(&event, |id, body| async move {
        // The trail queue's messages are S3's notifications of new trail files.
        if let Some(objects) = notification_objects(&body) {
            // Boxed: the trail's future is deep, and this one stays small.
            return Box::pin(read_trail_files(deps, rules, trail, &id, objects)).await;
        }
        let events = parse_events(body.as_bytes()).map_err(|e| {
            error!(message_id = %id, error = %e, "event refused; it will go to the DLQ");
        })?;
        let mut refused = false;
        for (i, event) in events.iter().enumerate() {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    error!(message_id = %id, event = i, error = %e, "event refused; it will go to the DLQ");
                    refused = true;
                    continue;
                }
            };
            let evaluation = rules.evaluate(event);
            // A rule that cannot read a field it needs skips the event, said so; the
            // event is not failed for it (the other rules ran on it).
            for e in &evaluation.skipped {
                warn!(message_id = %id, event = i, rule = %e.rule, reason = %e.message, "rule skipped an event");
            }
            for e in &evaluation.errors {
                error!(message_id = %id, event = i, rule = %e.rule, error = %e.message, "rule failed on an event; it will go to the DLQ");
                refused = true;
            }
            for alert in &evaluation.alerts {
                match receive_one(deps, alert).await {
                    Ok(()) => {}
                    Err(e) if e.is_retryable() => {
                        log_failure(&id, "event's alert", &e);
                        return Err(());
                    }
                    Err(e) => {
                        log_failure(&id, "event's alert", &e);
                        refused = true;
                    }
                }
            }
        }
        if refused { Err(()) } else { Ok(()) }
    })
    .await
}

/// Each trail file a notification names, read and its records' alerts stored (see
/// [`crate::trail`]); a file that cannot be read, or has a record no rule can run on,
/// fails the message (retried, then the trail DLQ), after its other alerts are stored.
async fn read_trail_files(
    deps: &ReceptorDeps<'_>,
    rules: &RuleSet,
    trail: Option<&TrailReader>,
    id: &str,
    objects: Result<Vec<TrailObject>, String>,
) -> Result<(), ()> {
    let objects = objects.map_err(|e| {
        error!(message_id = %id, error = %e, "trail notification refused; it will go to the DLQ");
    })?;
    let Some(trail) = trail else {
        error!(message_id = %id, "a trail file notification, but this stack has no TrailBucket; it will go to the DLQ");
        return Err(());
    };
    let mut failed = false;
    for object in &objects {
        let store = |alert: Alert| async move {
            receive_one(deps, &alert).await.map_err(|e| {
                log_failure(id, "trail record's alert", &e);
                e.to_string()
            })
        };
        match trail.read_object(rules, object, store).await {
            Ok(outcome) if outcome.refused > 0 => {
                error!(message_id = %id, object = %object, refused = outcome.refused, "trail file with refused records; it will go to the DLQ (its other alerts are stored)");
                failed = true;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(message_id = %id, object = %object, error = %e, "trail file not read; will be retried");
                failed = true;
            }
        }
    }
    if failed { Err(()) } else { Ok(()) }
}

/// What the inspector gateway needs: it stores findings, claims the new attributes and
/// publishes their tasks.
pub struct TaskDeps<'a> {
    pub store: &'a dyn Store,
    pub bus: &'a dyn TaskBus,
    pub clock: &'a dyn Clock,
    pub settings: &'a PipelineSettings,
}

/// What the dispatcher needs: it claims attributes, publishes tasks, schedules reviews,
/// and puts back runs that are not due yet.
pub struct DispatchDeps<'a> {
    pub store: &'a dyn Store,
    pub bus: &'a dyn TaskBus,
    pub reviews: &'a dyn ReviewScheduler,
    pub queue: &'a SqsDispatchQueue,
    pub clock: &'a dyn Clock,
    pub settings: &'a PipelineSettings,
}

/// Dispatch queue → each run's new attributes to the task topic, and the report's review
/// scheduled when it needs one. A run whose inspection delay is longer than SQS can hold
/// a message goes back on the queue until it is due.
pub async fn dispatcher(deps: &DispatchDeps<'_>, event: SqsEvent) -> SqsBatchResponse {
    each_record(&event, |id, body| async move {
        let message: DispatchMessage = serde_json::from_str(&body).map_err(|e| {
            error!(message_id = %id, error = %e, "dispatch message refused; it will go to the DLQ");
        })?;
        let report_id = message.run.report_id;
        let now = deps.clock.now();
        if message.delay(now).is_some() {
            return deps.queue.send(&message, now).await.map_err(|e| {
                warn!(report_id = %report_id, message_id = %id, error = %e.chain(), "cannot put a run back; will be retried");
            });
        }
        services::dispatch(
            deps.store,
            deps.bus,
            deps.reviews,
            deps.clock,
            deps.settings,
            &message.run,
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if e.is_retryable() {
                warn!(report_id = %report_id, message_id = %id, error = %e, "dispatch failed; will be retried");
            } else {
                error!(report_id = %report_id, message_id = %id, error = %e, "dispatch refused; it will go to the DLQ");
            }
        })
    })
    .await
}

/// Inspection queue → stored findings and new tasks. Messages are ours
/// (`InspectionReport`) or DeepAlert's (a finding, or new attributes), raw or inside an
/// SNS envelope; anything else is reported failed and reaches the DLQ after its retries.
pub async fn inspector_gateway(deps: &TaskDeps<'_>, event: SqsEvent) -> SqsBatchResponse {
    each_record(&event, |id, body| async move {
        let msg = InspectionReport::from_message(body.as_bytes()).map_err(|e| {
            error!(message_id = %id, error = %e, "inspection message refused; it will go to the DLQ");
        })?;
        let report_id = msg.report_id;
        services::accept_inspection(deps.store, deps.bus, deps.clock, deps.settings, msg)
            .await
            .map(|_| ())
            .map_err(|e| {
                warn!(report_id = %report_id, message_id = %id, error = %e, "inspection not stored");
            })
    })
    .await
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewInput {
    pub report_id: ReportId,
}

/// State-machine task: compiles the report and asks the reviewer. Reviewer failures are
/// already turned into `unclassified` here; only storage failures fail the task.
pub async fn review_invoker(
    store: &dyn Store,
    reviewer: &dyn Reviewer,
    input: ReviewInput,
) -> Result<ReviewResult, PipelineError> {
    let report = services::review(store, reviewer, input.report_id).await?;
    Ok(report
        .result
        .unwrap_or_else(|| ReviewResult::unclassified("no verdict")))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishInput {
    pub report_id: ReportId,
    /// The review's name (`<report>-r<round>`): stable across retries of this
    /// publication. The state machine passes its whole input, where it is `name`.
    #[serde(alias = "name")]
    pub publication_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutput {
    pub publications: u32,
    pub severity: Severity,
}

pub struct PublisherDeps<'a> {
    pub store: &'a dyn Store,
    pub emitter: &'a dyn Emitter,
    pub reviews: &'a dyn ReviewScheduler,
    pub review_step: &'a LambdaReviewStep,
    pub clock: &'a dyn Clock,
    /// Flows start after each publication that matches them.
    pub flows: Option<FlowDeps<'a>>,
}

/// State-machine task, after the review delay: gets the verdict from the review step
/// (`review-invoker`), records the publication and publishes the report to the report
/// topic. A review step that fails still publishes, as `unclassified`, with the error.
pub async fn emitter_publisher(
    deps: &PublisherDeps<'_>,
    input: PublishInput,
) -> Result<PublishOutput, PipelineError> {
    let result = match deps.review_step.review(input.report_id).await {
        ReviewStep::Verdict(r) => r,
        ReviewStep::Failed { error, cause } => {
            warn!(report_id = %input.report_id, %error, %cause, "review step failed; publishing as unclassified");
            ReviewResult::unclassified(format!(
                "review step failed: {error}{}{cause}",
                if cause.is_empty() { "" } else { ": " }
            ))
        }
    };
    let published = services::publish_reviewed(
        deps.store,
        deps.emitter,
        deps.reviews,
        deps.clock,
        input.report_id,
        result,
        &input.publication_id,
    )
    .await?;
    if let Some(f) = deps.flows {
        // A failure fails the task: Step Functions retries it, and publishing again is
        // idempotent, so the retry starts what this one could not.
        flows::start_after_publication(f.starter, f.set, &published).await?;
    }
    Ok(PublishOutput {
        publications: published.publications,
        severity: published
            .result
            .map(|r| r.severity)
            .unwrap_or(Severity::Unclassified),
    })
}

/// The flows state machine's task: moves the run on as far as it goes now (each step at
/// most once, whatever is retried), and says how long to wait before the next call.
pub async fn flow_runner(
    store: &dyn Store,
    runner: &dyn StepRunner,
    clock: &dyn Clock,
    set: &FlowSet,
    input: FlowInput,
) -> Result<FlowOutput, PipelineError> {
    let advanced = flows::advance(store, runner, clock, set, &input.key).await?;
    Ok(match advanced {
        Advance::Finished => FlowOutput {
            key: input.key,
            finished: true,
            wait_seconds: 0,
        },
        Advance::WaitUntil(at) => FlowOutput {
            wait_seconds: (at - clock.now()).num_seconds().max(0) as u64,
            key: input.key,
            finished: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::unwrap_sns_envelope;

    #[test]
    fn an_sns_envelope_is_known_by_its_message_field() {
        let inner = r#"{"detector":"d","rule_id":"r"}"#;
        let with_type = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        let without_type = serde_json::json!({"Message": inner, "MessageId": "m"}).to_string();
        assert_eq!(unwrap_sns_envelope(&with_type), inner);
        assert_eq!(unwrap_sns_envelope(&without_type), inner);
        // Not notifications: left as they are.
        let confirmation =
            serde_json::json!({"Type": "SubscriptionConfirmation", "Message": "x"}).to_string();
        assert_eq!(unwrap_sns_envelope(&confirmation), confirmation);
        assert_eq!(unwrap_sns_envelope(inner), inner);
        let numeric = r#"{"Message": 5}"#;
        assert_eq!(unwrap_sns_envelope(numeric), numeric);
    }
}
