//! The workflow on AWS, priced per alert:
//!
//! - an alert's run is a message on the dispatch queue, delayed by the inspection delay
//!   (SQS `DelaySeconds`, at most 900 s; a longer delay is served in 900 s steps by the
//!   dispatcher putting the message back), consumed by the dispatcher;
//! - a report's review is one Step Functions execution per round — a Wait for the review
//!   delay, then one task that reviews and publishes — named `<report id>-r<round>`, so
//!   the alerts of a burst share one execution and a redelivery cannot start a second.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deepalert_core::ports::{
    PortError, PortResult, ReviewRun, ReviewScheduler, Workflow, WorkflowRun,
};
use serde::{Deserialize, Serialize};

/// SQS delays a message at most this long.
pub const MAX_SQS_DELAY_SECONDS: i64 = 900;

/// A run on the dispatch queue: due once `due_at` has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchMessage {
    #[serde(flatten)]
    pub run: WorkflowRun,
    pub due_at: DateTime<Utc>,
}

impl DispatchMessage {
    /// Seconds SQS should hold the message for, or `None` when it is due.
    pub fn delay(&self, now: DateTime<Utc>) -> Option<i32> {
        let left = (self.due_at - now).num_milliseconds();
        // Within a second is due: SQS's delays are whole seconds.
        (left >= 1000).then(|| ((left + 999) / 1000).min(MAX_SQS_DELAY_SECONDS) as i32)
    }
}

/// Runs go to the dispatch queue, delayed by the inspection delay.
pub struct SqsDispatchQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    inspection_delay: chrono::Duration,
}

impl SqsDispatchQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>, delay: Duration) -> Self {
        SqsDispatchQueue {
            client,
            queue_url: queue_url.into(),
            inspection_delay: chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Puts a message on the queue, held until it is due (at most 900 s at a time).
    pub async fn send(&self, message: &DispatchMessage, now: DateTime<Utc>) -> PortResult<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(message).expect("messages serialize"))
            .delay_seconds(message.delay(now).unwrap_or(0))
            .send()
            .await
            .map_err(|e| {
                PortError::new(format!(
                    "sqs: schedule dispatch of {}: {}",
                    message.run.name,
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(())
    }
}

#[async_trait]
impl Workflow for SqsDispatchQueue {
    async fn start(&self, run: &WorkflowRun) -> PortResult<()> {
        let now = Utc::now();
        self.send(
            &DispatchMessage {
                run: run.clone(),
                due_at: now + self.inspection_delay,
            },
            now,
        )
        .await
    }
}

/// The state machine's input: the review, and the delay its Wait state reads
/// (`SecondsPath`), from the stack's `ReviewDelay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewExecutionInput {
    #[serde(flatten)]
    pub run: ReviewRun,
    pub delays: ReviewDelays,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDelays {
    pub review: u64,
}

/// Reviews are Step Functions executions named after the review.
pub struct SfnReviews {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
    review_delay: u64,
}

impl SfnReviews {
    pub fn new(
        client: aws_sdk_sfn::Client,
        state_machine_arn: impl Into<String>,
        review_delay: Duration,
    ) -> Self {
        SfnReviews {
            client,
            state_machine_arn: state_machine_arn.into(),
            review_delay: review_delay.as_secs(),
        }
    }
}

#[async_trait]
impl ReviewScheduler for SfnReviews {
    async fn schedule_review(&self, run: &ReviewRun) -> PortResult<()> {
        let input = ReviewExecutionInput {
            run: run.clone(),
            delays: ReviewDelays {
                review: self.review_delay,
            },
        };
        // Already started: this round's review is running or done, and the alert is in
        // it, or in the next round that its publication schedules.
        start_execution_once(
            &self.client,
            &self.state_machine_arn,
            &run.name,
            serde_json::to_string(&input).expect("inputs serialize"),
        )
        .await
        .map_err(|e| PortError::new(format!("stepfunctions: start review {}: {e}", run.name)))
    }
}

/// Starts the execution `name`; one of that name started before (a retry, a duplicate
/// delivery) is not an error: Step Functions keeps names unique, which makes this
/// idempotent.
pub(crate) async fn start_execution_once(
    client: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: String,
) -> Result<(), String> {
    use aws_sdk_sfn::operation::start_execution::StartExecutionError;
    let started = client
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input)
        .send()
        .await;
    match started {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(StartExecutionError::ExecutionAlreadyExists(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(due_in_ms: i64, now: DateTime<Utc>) -> DispatchMessage {
        DispatchMessage {
            run: WorkflowRun {
                name: "r".into(),
                report_id: "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11".parse().unwrap(),
                alert_ref: "a".into(),
                review: true,
            },
            due_at: now + chrono::Duration::milliseconds(due_in_ms),
        }
    }

    #[test]
    fn delays_over_sqs_limit_are_served_in_steps() {
        let now = Utc::now();
        assert_eq!(message(300_000, now).delay(now), Some(300));
        assert_eq!(message(1_500, now).delay(now), Some(2));
        assert_eq!(message(999, now).delay(now), None, "due within a second");
        assert_eq!(message(-5_000, now).delay(now), None);
        // An hour: 900 s now, the rest when it comes back.
        let long = message(3_600_000, now);
        assert_eq!(long.delay(now), Some(900));
        let later = now + chrono::Duration::seconds(900);
        assert_eq!(long.delay(later), Some(900));
        let last = now + chrono::Duration::seconds(3_500);
        assert_eq!(long.delay(last), Some(100));
    }
}
