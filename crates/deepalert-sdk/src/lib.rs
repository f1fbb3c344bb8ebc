//! Write a deepalert plug-in once, run it anywhere.
//!
//! An inspector is `async fn(Task) -> Result<InspectorOutput, Error>`, a reviewer
//! `async fn(Report) -> Result<Option<ReviewResult>, Error>`, an emitter
//! `async fn(Report) -> Result<(), Error>`. One call in `main` runs it:
//!
//! - **as a Lambda function** when started by Lambda (`AWS_LAMBDA_RUNTIME_API` is set):
//!   an inspector takes SNS task events (subscribe it to the task topic) and sends its
//!   results to the inspection queue (`INSPECTION_QUEUE_URL`); an emitter takes SNS report
//!   events (subscribe it to the report topic); a reviewer is invoked directly by
//!   `review-invoker` (set its ARN as `ReviewerLambdaArn`);
//! - **as an exec plug-in** of `deepalert serve` otherwise: one JSON document on stdin,
//!   the answer on stdout, failures on stderr with a non-zero exit.
//!
//! ```no_run
//! use deepalert_sdk::{Error, InspectorOutput, Task};
//!
//! async fn inspect(task: Task) -> Result<InspectorOutput, Error> {
//!     Ok(InspectorOutput::default())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     deepalert_sdk::run_inspector("my-inspector", inspect).await
//! }
//! ```
//!
//! [`testing`] builds tasks, reports and SNS events for unit tests without AWS.

use std::future::Future;
use std::io::Read;

use aws_lambda_events::sns::SnsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

pub use deepalert_core::finding::{
    ContentBinary, ContentHost, ContentUser, EntityActivity, EntityDomain, EntityMalware,
    EntityMalwareScan, EntitySoftware, EntityUrl,
};
pub use deepalert_core::{
    AttrContext, AttrType, Attribute, FindingContent, InspectionReport, InspectorOutput, Report,
    ReviewResult, Severity, Task,
};

pub mod testing;

pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where an inspector running on Lambda sends its results.
pub const INSPECTION_QUEUE_URL: &str = "INSPECTION_QUEUE_URL";

fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    // Lambda: JSON lines for CloudWatch. Exec: stdout is the answer, so logs go to stderr.
    // A binary that set up logging itself keeps its own (hence `try_init`).
    let _ = if on_lambda() {
        fmt.json().without_time().try_init()
    } else {
        fmt.with_writer(std::io::stderr).with_ansi(false).try_init()
    };
}

fn read_stdin<T: serde::de::DeserializeOwned>() -> Result<T, Error> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    serde_json::from_str(&input).map_err(|e| format!("invalid input on stdin: {e}").into())
}

fn exit_with(e: Error) -> ! {
    eprintln!("{e}");
    std::process::exit(1)
}

/// Runs an inspector. `name` is the `author` of its findings on Lambda (locally,
/// `deepalert serve` uses the name in its configuration).
pub async fn run_inspector<F, Fut>(name: &str, inspect: F) -> Result<(), Error>
where
    F: Fn(Task) -> Fut,
    Fut: Future<Output = Result<InspectorOutput, Error>>,
{
    init_logging();
    if !on_lambda() {
        let task: Task = read_stdin().unwrap_or_else(|e| exit_with(e));
        let out = inspect(task).await.unwrap_or_else(|e| exit_with(e));
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    let queue = std::env::var(INSPECTION_QUEUE_URL)
        .map_err(|_| format!("{INSPECTION_QUEUE_URL} is not set: where should results go?"))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (inspect, sqs, queue) = (&inspect, &sqs, queue.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        handle_task_event(name, inspect, sqs, queue, event.payload).await
    }))
    .await
}

/// What the Lambda entry point does with one SNS event: inspect each task and send an
/// [`InspectionReport`] per task to the inspection queue. An inspector error is sent as
/// the report's `error` (deepalert notes it on the report) rather than failing the
/// invocation, which would only make SNS retry the same lookup.
pub async fn handle_task_event<F, Fut>(
    name: &str,
    inspect: &F,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: SnsEvent,
) -> Result<(), Error>
where
    F: Fn(Task) -> Fut,
    Fut: Future<Output = Result<InspectorOutput, Error>>,
{
    for record in event.records {
        let task: Task = serde_json::from_str(&record.sns.message)
            .map_err(|e| format!("SNS message {} is not a task: {e}", record.sns.message_id))?;
        let report = inspection_report(name, &task, inspect(task.clone()).await);
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(serde_json::to_string(&report)?)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "sending to the inspection queue: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
    }
    Ok(())
}

/// The message an inspector sends back for one task.
pub fn inspection_report(
    name: &str,
    task: &Task,
    result: Result<InspectorOutput, Error>,
) -> InspectionReport {
    let (output, error) = match result {
        Ok(out) => (out, None),
        Err(e) => (InspectorOutput::default(), Some(e.to_string())),
    };
    InspectionReport {
        report_id: task.report_id,
        author: name.to_string(),
        attribute: task.attribute.clone(),
        output,
        error,
    }
}

/// Runs a reviewer.
pub async fn run_reviewer<F, Fut>(review: F) -> Result<(), Error>
where
    F: Fn(Report) -> Fut,
    Fut: Future<Output = Result<Option<ReviewResult>, Error>>,
{
    init_logging();
    if !on_lambda() {
        let report: Report = read_stdin().unwrap_or_else(|e| exit_with(e));
        let verdict = review(report).await.unwrap_or_else(|e| exit_with(e));
        println!("{}", serde_json::to_string(&verdict)?);
        return Ok(());
    }
    let review = &review;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Report>| async move {
        review(event.payload).await
    }))
    .await
}

/// Runs an emitter.
pub async fn run_emitter<F, Fut>(emit: F) -> Result<(), Error>
where
    F: Fn(Report) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    init_logging();
    if !on_lambda() {
        let report: Report = read_stdin().unwrap_or_else(|e| exit_with(e));
        emit(report).await.unwrap_or_else(|e| exit_with(e));
        return Ok(());
    }
    let emit = &emit;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        handle_report_event(emit, event.payload).await
    }))
    .await
}

/// What the Lambda entry point does with one SNS event of the report topic. A failure
/// fails the invocation, so Lambda retries it (emitters should be idempotent on
/// `id` + `publications`).
pub async fn handle_report_event<F, Fut>(emit: &F, event: SnsEvent) -> Result<(), Error>
where
    F: Fn(Report) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    for record in event.records {
        let report: Report = serde_json::from_str(&record.sns.message)
            .map_err(|e| format!("SNS message {} is not a report: {e}", record.sns.message_id))?;
        emit(report).await?;
    }
    Ok(())
}
