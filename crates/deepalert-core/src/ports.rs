//! The small traits through which the pipeline talks to the world. AWS adapters implement
//! them with DynamoDB, SNS and Step Functions; local adapters with SQLite and in-process
//! queues.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Alert, AlertId, AttrHash, Attribute, Finding, InspectorOutput, Note, Report, ReportId,
    ReportStatus, ReviewResult, Task, TimelineEntry,
};
use crate::flows::{FlowRun, FlowRunKey};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure in an adapter: storage, messaging, a plug-in.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct PortError {
    what: String,
    #[source]
    source: Option<BoxError>,
}

impl PortError {
    pub fn new(what: impl Into<String>) -> Self {
        PortError {
            what: what.into(),
            source: None,
        }
    }

    pub fn with_source(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PortError {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// The message with every source in the chain, for logs and report notes.
    pub fn chain(&self) -> String {
        let mut msg = self.what.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            msg.push_str(": ");
            msg.push_str(&e.to_string());
            cur = e.source();
        }
        msg
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// A request to aggregate and store one alert.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub alert: &'a Alert,
    pub alert_id: &'a AlertId,
    /// Content hash of the alert message: the idempotency key.
    pub alert_ref: &'a str,
    /// Used if the alert opens a new report.
    pub candidate_report: ReportId,
    pub now: DateTime<Utc>,
    /// An alert joins an open report whose first alert is younger than this.
    pub window: chrono::Duration,
}

/// Where a stored alert went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertReceipt {
    pub report_id: ReportId,
    /// `new` if this alert opened the report, `more` if it joined one. For a redelivered
    /// alert, the status it got the first time.
    pub status: ReportStatus,
    /// The same alert message had been stored before; nothing was written.
    pub duplicate: bool,
    /// This alert's run must review and publish the report: the alert opened it, or joined
    /// a report that had already been published (a late alert). For a redelivered alert,
    /// the value decided the first time.
    pub review: bool,
}

/// What a report is and where it stands, cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportHead {
    pub status: ReportStatus,
    /// Of the report's first alert (all its alerts share them).
    pub detector: String,
    pub rule_id: String,
    /// Alerts stored in the report.
    pub alerts: u32,
    /// Times the report has been published.
    pub publications: u32,
}

/// A stored alert and whether its run already sent its attributes to the inspectors.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub alert: Alert,
    pub dispatched: bool,
}

/// An attribute to be inspected, with how far it is from the alert (0 = in the alert).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeClaim {
    pub attribute: Attribute,
    pub depth: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimOutcome {
    /// Attributes this claimer must dispatch: new to the report, or claimed earlier by
    /// the same claimer (a retried step publishes its tasks again rather than losing them).
    pub claimed: Vec<Attribute>,
    /// Attributes refused because the report holds its maximum number of attributes.
    pub over_limit: Vec<Attribute>,
}

/// Durable state: aggregation, attributes, findings, reports.
#[async_trait]
pub trait Store: Send + Sync {
    /// Aggregates the alert into an open report (or opens `candidate_report`) and stores
    /// it, atomically. Storing the same `alert_ref` twice into the same open report writes
    /// nothing the second time. An alert joining a published report sets it back to `more`.
    async fn put_alert(&self, req: NewAlert<'_>) -> PortResult<AlertReceipt>;

    async fn get_alert(
        &self,
        report_id: ReportId,
        alert_ref: &str,
    ) -> PortResult<Option<StoredAlert>>;

    /// Records that the alert's attributes went to the inspectors, so a repeated run of
    /// the same alert (a redelivered message) does not send them again.
    async fn mark_dispatched(&self, report_id: ReportId, alert_ref: &str) -> PortResult<()>;

    /// Claims attributes for inspection, de-duplicated per report by identity, and bounded
    /// by `max_attributes` per report. Atomic per attribute.
    async fn claim_attributes(
        &self,
        report_id: ReportId,
        claims: &[AttributeClaim],
        claimer: &str,
        max_attributes: u32,
    ) -> PortResult<ClaimOutcome>;

    /// Depth of an attribute already in the report.
    async fn attribute_depth(
        &self,
        report_id: ReportId,
        attr: &AttrHash,
    ) -> PortResult<Option<u32>>;

    /// Stores findings; storing the same finding twice keeps one.
    async fn put_findings(&self, findings: &[Finding]) -> PortResult<()>;

    /// Stores a note; storing the same note (author, attribute, message) twice keeps one.
    async fn put_note(&self, report_id: ReportId, note: &Note) -> PortResult<()>;

    /// Status and origin of a report, without compiling it.
    async fn report_head(&self, report_id: ReportId) -> PortResult<Option<ReportHead>>;

    /// Everything stored about a report, assembled.
    async fn compile_report(&self, report_id: ReportId) -> PortResult<Option<Report>>;

    /// The report as it is reviewed and published: `compile_report` with only the flow
    /// steps on its timeline. A store's log of the pipeline's own steps (the local one keeps
    /// one) is history for people, not content for policies and emitters, and would make a
    /// report differ between platforms.
    async fn compile_report_for_review(&self, report_id: ReportId) -> PortResult<Option<Report>> {
        let mut report = self.compile_report(report_id).await?;
        if let Some(r) = report.as_mut() {
            r.timeline.retain(TimelineEntry::is_flow_step);
        }
        Ok(report)
    }

    /// Whether `record_publication`, called here and now, itself queues the next round's
    /// review when alerts joined the report after it was compiled (checked in the
    /// publication's own commit); `publish` then skips its own check, a read.
    fn publication_queues_next_round(&self) -> bool {
        false
    }

    /// Marks the report published with its result and returns the report as published.
    /// Idempotent on `publication_id`: a retried step gets the snapshot recorded the
    /// first time instead of counting a second publication.
    async fn record_publication(
        &self,
        report: &Report,
        publication_id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Report>;

    /// Appends to the report's timeline (storing the same entry twice may keep both).
    async fn append_timeline(
        &self,
        report_id: ReportId,
        entries: &[TimelineEntry],
    ) -> PortResult<()>;

    async fn get_flow_run(&self, key: &FlowRunKey) -> PortResult<Option<FlowRun>>;

    /// Stores a flow run's state (the whole run, replacing what was there).
    async fn put_flow_run(&self, run: &FlowRun) -> PortResult<()>;
}

/// Starts flow runs: a durable job locally, a Step Functions execution on AWS. Starting a
/// run that was started before is not an error and starts nothing.
#[async_trait]
pub trait FlowStarter: Send + Sync {
    async fn start_flow(&self, key: &FlowRunKey) -> PortResult<()>;
}

/// Carries tasks to inspectors (SNS task topic on AWS; a durable local queue).
#[async_trait]
pub trait TaskBus: Send + Sync {
    async fn publish(&self, tasks: &[Task]) -> PortResult<()>;
}

/// One stored alert's run: after the inspection delay, send its new attributes to the
/// inspectors (`services::dispatch`), which also decides whether the report needs a
/// review. A delayed SQS message on AWS; a durable timer locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    /// Deterministic: the same alert gives the same name (≤ 80 chars of `[0-9a-z-]`).
    pub name: String,
    pub report_id: ReportId,
    pub alert_ref: String,
    /// The alert opened the report or joined a published one: the report must be
    /// reviewed (again) after dispatching (see [`AlertReceipt::review`]).
    pub review: bool,
}

#[async_trait]
pub trait Workflow: Send + Sync {
    /// Schedules a run's dispatch after the inspection delay. Scheduling the same run
    /// twice may dispatch it twice; dispatch is idempotent.
    async fn start(&self, run: &WorkflowRun) -> PortResult<()>;
}

/// One review of a report: after the review delay, compile, review and publish it. One
/// per report and round at most (the round is the number of publications so far), so a
/// burst of alerts shares one review, and an alert arriving after a publication starts
/// the next. A Step Functions execution on AWS; a durable timer locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRun {
    /// `<report id>-r<round>`: the execution name, and the publication's id.
    pub name: String,
    pub report_id: ReportId,
    pub round: u32,
}

impl ReviewRun {
    pub fn new(report_id: ReportId, round: u32) -> Self {
        ReviewRun {
            name: format!("{report_id}-r{round}"),
            report_id,
            round,
        }
    }
}

#[async_trait]
pub trait ReviewScheduler: Send + Sync {
    /// Schedules a review after the review delay; a review of the same name that was
    /// already scheduled (running or finished) is not scheduled again.
    async fn schedule_review(&self, run: &ReviewRun) -> PortResult<()>;
}

/// Decides how bad a compiled report is. `Ok(None)`: no verdict.
#[async_trait]
pub trait Reviewer: Send + Sync {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>>;
}

/// Hands a published report on (SNS report topic on AWS; emitter plug-ins locally).
#[async_trait]
pub trait Emitter: Send + Sync {
    /// `publication_id` is stable across retries of the same publication, so adapters
    /// can avoid emitting it twice.
    async fn emit(&self, report: &Report, publication_id: &str) -> PortResult<()>;
}

/// Why a plug-in call failed. Recorded as a note on the report.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("timed out after {0:?} (killed)")]
    Timeout(std::time::Duration),
    #[error("exited with {status}{stderr}")]
    Exit { status: String, stderr: String },
    #[error("bad output: {0}")]
    BadOutput(String),
    /// The plug-in printed more than it may; it was killed and its answer dropped.
    #[error(
        "printed more than {0} bytes on stdout (max_plugin_output); killed, its answer dropped"
    )]
    OutputTooLarge(usize),
    /// A service said to slow down; the lookup was not made.
    #[error("rate limited by {0}")]
    RateLimited(String),
    #[error("{0}")]
    Failed(String),
}

/// An inspector run by the local runtime (exec, built-in, or in process).
#[async_trait]
pub trait InspectorPlugin: Send + Sync {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError>;
}

/// An emitter run by the local runtime (exec, built-in, or in process).
#[async_trait]
pub trait EmitterPlugin: Send + Sync {
    async fn emit(&self, report: &Report) -> Result<(), PluginError>;
}

/// Small durable state for plug-ins (what an emitter last sent for a report, the issue
/// it opened…), namespaced by the caller in `key`.
#[async_trait]
pub trait PluginState: Send + Sync {
    async fn get(&self, key: &str) -> PortResult<Option<String>>;
    async fn put(&self, key: &str, value: &str) -> PortResult<()>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
