//! The embedded runtime: the local adapters for the workflow, task bus and emitter ports
//! (all durable jobs in SQLite), and the runner that executes due jobs by calling the core
//! services, as the Lambdas do on AWS.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deepalert_core::flows::{self, Advance, FlowRunKey};
use deepalert_core::ports::{
    Clock, Emitter, FlowStarter, PortResult, ReviewRun, ReviewScheduler, Store, TaskBus, Workflow,
    WorkflowRun,
};
use deepalert_core::services::{self, PIPELINE_AUTHOR, PipelineError, PipelineSettings, Receipt};
use deepalert_core::{
    Alert, InspectionReport, Note, Report, ReportId, ReportStatus, Task, TimelineEntry,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{Instrument, error, info, info_span, warn};

use crate::faults::Faults;
use crate::plugins::Plugins;
use crate::store::jobs::{ReviewJob, review_job};
use crate::store::{DeferredWrites, JobKind, LeasedJob, NewJob, SqliteStore, collect_deferred};

/// Timings and limits of the local runtime.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Wait after an alert before inspecting it (lets bursts aggregate).
    pub inspection_delay: Duration,
    /// Wait after dispatching before reviewing (lets inspectors finish).
    pub review_delay: Duration,
    /// Pipeline steps in flight at once. Steps mostly wait on the store, so many can
    /// overlap; plug-in calls are limited separately. Each step waits a commit or two, so
    /// the engine's rate is about this many steps per commit time: 256 capped a burst at
    /// ~3,000 alerts/s where 1,024 reached ~4,000 (and more steps per commit cost the
    /// writer less per step).
    pub max_concurrent_jobs: usize,
    /// Plug-in calls (exec processes included) running at once.
    pub max_concurrent_plugins: usize,
    /// Tries of a dispatch or review step that fails on storage before giving up.
    pub max_job_attempts: u32,
    /// Finished jobs are remembered this long so a repeated start does not run twice.
    pub finished_job_retention: Duration,
    /// Emitters also get each report as alerts arrive (status `new`/`more`, unreviewed),
    /// as DeepAlert's report topic did. Built-in emitters ignore those.
    pub publish_unreviewed: bool,
    /// Published reports untouched this long are deleted, in small batches (`None`: kept
    /// forever).
    pub report_retention: Option<Duration>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            inspection_delay: Duration::from_secs(2),
            review_delay: Duration::from_secs(5),
            max_concurrent_jobs: 1024,
            max_concurrent_plugins: 16,
            max_job_attempts: 10,
            finished_job_retention: Duration::from_secs(24 * 3600),
            publish_unreviewed: false,
            report_retention: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct InspectJob {
    inspector: String,
    task: Task,
}

#[derive(Serialize, Deserialize)]
struct EmitJob {
    emitter: String,
    report_id: ReportId,
    publication_id: String,
    /// An unreviewed report (`publish_unreviewed`) travels in the job: only
    /// publications are stored as snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Report>,
}

fn payload<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("job payloads always serialize")
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A run's dispatch job is queued by the store with its alert (`SqliteStore::with_run_jobs`);
/// a review is a review job due after the review delay (one job per review name: a review
/// already scheduled is not scheduled twice).
pub struct LocalWorkflow {
    store: SqliteStore,
    clock: Arc<dyn Clock>,
    review_delay: Duration,
}

#[async_trait]
impl ReviewScheduler for LocalWorkflow {
    async fn schedule_review(&self, run: &ReviewRun) -> PortResult<()> {
        let now = self.clock.now();
        self.store
            .enqueue(vec![review_job(run, after(now, self.review_delay))], now)
            .await
    }
}

#[async_trait]
impl Workflow for LocalWorkflow {
    async fn start(&self, _: &WorkflowRun) -> PortResult<()> {
        // Already queued with the alert, in the same commit (the engine's store is built
        // `with_run_jobs`).
        Ok(())
    }
}

/// Fans tasks out to the inspectors that want their attribute type: one durable job per
/// (task, inspector), like SNS delivering to each filtered subscription.
pub struct LocalTaskBus {
    store: SqliteStore,
    clock: Arc<dyn Clock>,
    plugins: Arc<Plugins>,
    faults: Arc<Faults>,
}

#[async_trait]
impl TaskBus for LocalTaskBus {
    async fn publish(&self, tasks: &[Task]) -> PortResult<()> {
        let now = self.clock.now();
        let jobs = inspections(&self.plugins, tasks)
            .into_iter()
            .map(|i| NewJob {
                key: format!(
                    "inspect:{}:{}:{}",
                    i.task.report_id,
                    i.task.attribute.identity(),
                    i.inspector
                ),
                kind: JobKind::Inspect,
                report_id: Some(i.task.report_id),
                payload: payload(&i),
                due_at: now,
            })
            .collect();
        self.store.enqueue(jobs, now).await?;
        self.faults.hit("dispatch:tasks-queued");
        Ok(())
    }
}

/// One inspection per task and inspector that wants its attribute type, as SNS delivers a
/// task to each filtered subscription.
fn inspections(plugins: &Plugins, tasks: &[Task]) -> Vec<InspectJob> {
    tasks
        .iter()
        .flat_map(|task| {
            plugins
                .inspectors
                .iter()
                .filter(|i| i.wants(&task.attribute.attr_type))
                .map(|i| InspectJob {
                    inspector: i.name.clone(),
                    task: task.clone(),
                })
        })
        .collect()
}

/// The tasks a dispatch publishes, kept to be inspected in the same job.
#[derive(Default)]
struct CollectedTasks(std::sync::Mutex<Vec<Task>>);

#[async_trait]
impl TaskBus for CollectedTasks {
    async fn publish(&self, tasks: &[Task]) -> PortResult<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(tasks);
        Ok(())
    }
}

/// Queues a published report for each emitter, once per publication.
pub struct LocalEmitter {
    store: SqliteStore,
    clock: Arc<dyn Clock>,
    plugins: Arc<Plugins>,
}

#[async_trait]
impl Emitter for LocalEmitter {
    async fn emit(&self, report: &Report, publication_id: &str) -> PortResult<()> {
        let now = self.clock.now();
        let snapshot = (report.status != ReportStatus::Published).then(|| report.clone());
        let jobs = self
            .plugins
            .emitters
            .iter()
            .map(|e| NewJob {
                key: format!("emit:{publication_id}:{}", e.name),
                kind: JobKind::Emit,
                report_id: Some(report.id),
                payload: payload(&EmitJob {
                    emitter: e.name.clone(),
                    report_id: report.id,
                    publication_id: publication_id.to_string(),
                    snapshot: snapshot.clone(),
                }),
                due_at: now,
            })
            .collect();
        self.store.enqueue(jobs, now).await
    }
}

/// A flow run is a job: started now, and again when each wait ends.
pub struct LocalFlowStarter {
    store: SqliteStore,
    clock: Arc<dyn Clock>,
}

fn flow_job(key: &FlowRunKey, due_at: DateTime<Utc>, wake: bool) -> NewJob {
    NewJob {
        // One job per start and per wake-up: a start repeated within the retention of
        // finished jobs starts nothing, and the run itself records each step once.
        key: if wake {
            format!("flow:{}@{}", key.name(), due_at.timestamp())
        } else {
            format!("flow:{}", key.name())
        },
        kind: JobKind::Flow,
        report_id: Some(key.report_id),
        payload: payload(key),
        due_at,
    }
}

#[async_trait]
impl FlowStarter for LocalFlowStarter {
    async fn start_flow(&self, key: &FlowRunKey) -> PortResult<()> {
        let now = self.clock.now();
        self.store
            .enqueue(vec![flow_job(key, now, false)], now)
            .await
    }
}

enum Outcome {
    Done(Vec<NewJob>),
    Retry(String),
    GiveUp(String),
}

impl From<PipelineError> for Outcome {
    fn from(e: PipelineError) -> Self {
        let msg = match &e {
            PipelineError::Port(p) => p.chain(),
            other => other.to_string(),
        };
        if e.is_retryable() {
            Outcome::Retry(msg)
        } else {
            Outcome::GiveUp(msg)
        }
    }
}

/// The pipeline on one machine.
pub struct Engine {
    store: SqliteStore,
    plugin_slots: Semaphore,
    clock: Arc<dyn Clock>,
    plugins: Arc<Plugins>,
    pipeline: PipelineSettings,
    runtime: RuntimeSettings,
    workflow: LocalWorkflow,
    bus: LocalTaskBus,
    emitter: LocalEmitter,
    flow_starter: LocalFlowStarter,
    faults: Arc<Faults>,
}

impl Engine {
    pub fn new(
        store: SqliteStore,
        plugins: Plugins,
        pipeline: PipelineSettings,
        runtime: RuntimeSettings,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Engine::with_faults(store, plugins, pipeline, runtime, clock, Faults::none())
    }

    /// The same, dying at a step boundary as `faults` says (the crash tests).
    pub fn with_faults(
        store: SqliteStore,
        plugins: Plugins,
        pipeline: PipelineSettings,
        runtime: RuntimeSettings,
        clock: Arc<dyn Clock>,
        faults: Faults,
    ) -> Arc<Self> {
        let store = store
            .with_run_jobs(runtime.inspection_delay)
            .with_review_jobs(runtime.review_delay);
        let plugins = Arc::new(plugins);
        let faults = Arc::new(faults);
        Arc::new(Engine {
            workflow: LocalWorkflow {
                store: store.clone(),
                clock: clock.clone(),
                review_delay: runtime.review_delay,
            },
            bus: LocalTaskBus {
                store: store.clone(),
                clock: clock.clone(),
                plugins: plugins.clone(),
                faults: faults.clone(),
            },
            emitter: LocalEmitter {
                store: store.clone(),
                clock: clock.clone(),
                plugins: plugins.clone(),
            },
            flow_starter: LocalFlowStarter {
                store: store.clone(),
                clock: clock.clone(),
            },
            plugin_slots: Semaphore::new(runtime.max_concurrent_plugins.max(1)),
            store,
            clock,
            plugins,
            pipeline,
            runtime,
            faults,
        })
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Validates, aggregates and stores an alert and schedules its inspection. Once this
    /// returns Ok, the alert is durable and its run will happen, even across a crash.
    pub async fn receive(&self, alert: &Alert) -> Result<Receipt, PipelineError> {
        let receipt = services::receive_alert(
            &self.store,
            &self.workflow,
            self.clock.as_ref(),
            &self.pipeline,
            alert,
        )
        .await?;
        if self.runtime.publish_unreviewed && !self.plugins.emitters.is_empty() {
            services::announce_received(&self.store, &self.emitter, &receipt).await?;
        }
        if let Some(f) = &self.plugins.flows {
            flows::start_on_receipt(&self.flow_starter, &f.set, alert, &receipt).await?;
        }
        self.faults.hit("receive:accepted");
        Ok(receipt)
    }

    /// Runs due jobs until `shutdown` resolves, then waits (briefly) for running ones.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> PortResult<()> {
        let released = self.store.release_all_leases().await?;
        if released > 0 {
            warn!(
                jobs = released,
                "resuming jobs interrupted by a previous stop"
            );
        }
        let signal = self.store.job_signal();
        let slots = Arc::new(Semaphore::new(self.runtime.max_concurrent_jobs.max(1)));
        let mut next_purge = self.clock.now();
        tokio::pin!(shutdown);
        loop {
            let now = self.clock.now();
            if now >= next_purge {
                let horizon = now
                    - chrono::Duration::from_std(self.runtime.finished_job_retention)
                        .unwrap_or_default();
                if let Err(e) = self.store.purge_finished(horizon).await {
                    warn!(error = %e.chain(), "purging finished jobs failed");
                }
                if let Some(keep) = self.runtime.report_retention {
                    // On its own task: intake goes on between its small batches.
                    let store = self.store.clone();
                    let cutoff = now - chrono::Duration::from_std(keep).unwrap_or_default();
                    tokio::spawn(async move { purge_reports(&store, cutoff).await });
                }
                next_purge = now + chrono::Duration::hours(1);
            }
            let free = slots.available_permits();
            let leased = if free == 0 {
                Vec::new()
            } else {
                // Leases matter only within this process (all are released at start), so
                // a long one is fine: it just has to outlive the job.
                self.store
                    .lease_due(now, now + chrono::Duration::hours(1), free)
                    .await?
            };
            let full_batch = free > 0 && leased.len() == free;
            for job in leased {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let engine = self.clone();
                tokio::spawn(async move {
                    engine.run_job(job).await;
                    drop(permit);
                });
            }
            if full_batch {
                continue;
            }
            let wait = match self.store.next_due().await? {
                Some(at) if free > 0 => (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = signal.notified() => {}
                _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
                _ = slots.clone().acquire_owned(), if free == 0 => {}
            }
        }
        // Give running plug-ins a moment; whatever is cut off runs again at next start.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            slots.acquire_many(self.runtime.max_concurrent_jobs.max(1) as u32),
        )
        .await;
        Ok(())
    }

    async fn run_job(self: &Arc<Self>, job: LeasedJob) {
        let report = job.report_id.map(|r| r.to_string()).unwrap_or_default();
        let span = info_span!("job", kind = ?job.kind, report_id = %report, attempt = job.attempts);
        async {
            // A panic in a plug-in adapter must not leave the job leased forever.
            let engine = self.clone();
            let leased = job.clone();
            let work = async move {
                // A flow's steps record their outcome as they go (a remediation must not
                // be forgotten), so only the pipeline's jobs keep their writes for the end.
                if leased.kind == JobKind::Flow {
                    (engine.execute(&leased).await, DeferredWrites::default())
                } else {
                    collect_deferred(engine.execute(&leased)).await
                }
            }
            .in_current_span();
            let (outcome, effects) = match tokio::spawn(work).await {
                Ok(o) => o,
                Err(e) => (
                    Outcome::Retry(format!("job panicked: {e}")),
                    DeferredWrites::default(),
                ),
            };
            if let Err(e) = self.settle(&job, outcome, effects).await {
                // The lease stays; the job runs again at next start.
                error!(error = %e.chain(), "cannot record job outcome");
            }
        }
        .instrument(span)
        .await
    }

    /// Records how the job ended. Its deferred writes (`effects`) commit only with a
    /// finished job; a job retried or given up runs, or ran, as if they never happened.
    async fn settle(
        &self,
        job: &LeasedJob,
        outcome: Outcome,
        effects: DeferredWrites,
    ) -> PortResult<()> {
        let now = self.clock.now();
        match outcome {
            Outcome::Done(followups) => {
                let event = self.emit_event(job, now, None);
                match self
                    .store
                    .finish(job.id, followups, effects, event, now)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let msg = format!("storing the job's results failed: {}", e.chain());
                        warn!(error = %msg, "job will run again");
                        self.store
                            .retry_at(job.id, after(now, Duration::from_secs(1)), &msg)
                            .await
                    }
                }
            }
            Outcome::Retry(msg) if job.attempts < self.max_attempts(job) => {
                let backoff = Duration::from_secs(1 << job.attempts.min(8).saturating_sub(1));
                warn!(error = %msg, retry_in = ?backoff, "job failed; will retry");
                self.store.retry_at(job.id, after(now, backoff), &msg).await
            }
            Outcome::Retry(msg) | Outcome::GiveUp(msg) => {
                error!(error = %msg, key = %job.key, "job failed; giving up");
                if let Some(report_id) = job.report_id {
                    let note = Note {
                        author: PIPELINE_AUTHOR.into(),
                        attribute: None,
                        message: format!(
                            "{:?} step gave up after {} attempt(s): {msg}",
                            job.kind, job.attempts
                        ),
                        created_at: now,
                    };
                    if let Err(e) = self.store.put_note(report_id, &note).await {
                        error!(error = %e.chain(), "cannot record failure note");
                    }
                }
                let event = self.emit_event(job, now, Some(&msg));
                self.store.give_up(job.id, &msg, event, now).await
            }
        }
    }

    /// An emit job's outcome, for the report's timeline.
    fn emit_event(
        &self,
        job: &LeasedJob,
        now: DateTime<Utc>,
        failure: Option<&str>,
    ) -> Option<(ReportId, TimelineEntry)> {
        let report_id = job.report_id?;
        if job.kind != JobKind::Emit {
            return None;
        }
        let emit = serde_json::from_str::<EmitJob>(&job.payload).ok()?;
        let what = match &emit.snapshot {
            Some(r) => format!("unreviewed report ({})", r.status.as_str()),
            None => "report".to_string(),
        };
        let message = match failure {
            None => format!("{what} sent to emitter {}", emit.emitter),
            Some(why) => format!("{what} not sent: emitter {} gave up: {why}", emit.emitter),
        };
        let entry = TimelineEntry {
            at: now,
            kind: "emit".into(),
            message,
            detail: serde_json::json!({
                "emitter": emit.emitter,
                "publication_id": emit.publication_id,
                "attempts": job.attempts,
                "ok": failure.is_none(),
            }),
        };
        Some((report_id, entry))
    }

    fn max_attempts(&self, job: &LeasedJob) -> u32 {
        if job.kind == JobKind::Emit
            && let Ok(p) = serde_json::from_str::<EmitJob>(&job.payload)
            && let Some(e) = self.plugins.emitters.iter().find(|e| e.name == p.emitter)
        {
            return e.max_attempts.max(1);
        }
        self.runtime.max_job_attempts.max(1)
    }

    async fn execute(&self, job: &LeasedJob) -> Outcome {
        let bad_payload =
            |e: serde_json::Error| Outcome::GiveUp(format!("unreadable job payload: {e}"));
        match job.kind {
            JobKind::Dispatch => match serde_json::from_str::<WorkflowRun>(&job.payload) {
                Ok(run) => self.dispatch(&run).await,
                Err(e) => bad_payload(e),
            },
            JobKind::Review => match serde_json::from_str::<ReviewJob>(&job.payload) {
                Ok(r) => self.review(&r).await,
                Err(e) => bad_payload(e),
            },
            JobKind::Inspect => match serde_json::from_str::<InspectJob>(&job.payload) {
                Ok(i) => self.inspect(i).await,
                Err(e) => bad_payload(e),
            },
            JobKind::Emit => match serde_json::from_str::<EmitJob>(&job.payload) {
                Ok(e) => self.emit(&e).await,
                Err(e) => bad_payload(e),
            },
            JobKind::Flow => match serde_json::from_str::<FlowRunKey>(&job.payload) {
                Ok(k) => self.advance_flow(&k).await,
                Err(e) => bad_payload(e),
            },
        }
    }

    async fn dispatch(&self, run: &WorkflowRun) -> Outcome {
        if self.runtime.review_delay.is_zero() {
            return self.dispatch_and_inspect(run).await;
        }
        match services::dispatch(
            &self.store,
            &self.bus,
            &self.workflow,
            self.clock.as_ref(),
            &self.pipeline,
            run,
        )
        .await
        {
            Ok(_) => Outcome::Done(vec![]),
            Err(e) => e.into(),
        }
    }

    /// With no review delay, the alert's attributes are inspected inside its dispatch job
    /// (each inspector call as an inspect job would make it, concurrently), and the review
    /// job is queued in the same commit as their findings and the "dispatched" mark, so the
    /// review sees every finding. A crash before that commit runs the whole job again, as
    /// any job. Attributes that findings name get inspect jobs of their own, as with a delay.
    async fn dispatch_and_inspect(&self, run: &WorkflowRun) -> Outcome {
        let tasks = CollectedTasks::default();
        if let Err(e) = services::dispatch(
            &self.store,
            &tasks,
            &self.workflow,
            self.clock.as_ref(),
            &self.pipeline,
            run,
        )
        .await
        {
            return e.into();
        }
        let tasks = tasks.0.into_inner().unwrap_or_else(|p| p.into_inner());
        if !tasks.is_empty() {
            self.faults.hit("dispatch:tasks-queued");
        }
        // Polled in this task, so their writes stay in this job's deferred scope.
        let outcomes = futures_util::future::join_all(
            inspections(&self.plugins, &tasks)
                .into_iter()
                .map(|job| self.inspect(job)),
        )
        .await;
        outcomes
            .into_iter()
            .find(|o| !matches!(o, Outcome::Done(_)))
            .unwrap_or(Outcome::Done(vec![]))
    }

    async fn review(&self, job: &ReviewJob) -> Outcome {
        let slot = self.plugin_slots.acquire().await.expect("never closed");
        let reviewed =
            services::review(&self.store, self.plugins.reviewer.as_ref(), job.report_id).await;
        drop(slot);
        let reviewed = match reviewed {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        self.faults.hit("review:reviewed");
        let published = match services::publish(
            &self.store,
            &self.emitter,
            &self.workflow,
            self.clock.as_ref(),
            &reviewed,
            &job.publication_id,
        )
        .await
        {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        self.faults.hit("review:published");
        if let Some(f) = &self.plugins.flows
            && let Err(e) =
                flows::start_after_publication(&self.flow_starter, &f.set, &published).await
        {
            // Publishing again is idempotent: the retry starts what this one could not.
            return PipelineError::from(e).into();
        }
        Outcome::Done(vec![])
    }

    async fn advance_flow(&self, key: &FlowRunKey) -> Outcome {
        let Some(f) = &self.plugins.flows else {
            return Outcome::GiveUp(format!(
                "flow {} is no longer configured (no [[flow]] in the configuration)",
                key.flow
            ));
        };
        let slot = self.plugin_slots.acquire().await.expect("never closed");
        let advanced = flows::advance(
            &self.store,
            f.runner.as_ref(),
            self.clock.as_ref(),
            &f.set,
            key,
        )
        .await;
        drop(slot);
        match advanced {
            Ok(Advance::Finished) => Outcome::Done(vec![]),
            Ok(Advance::WaitUntil(at)) => Outcome::Done(vec![flow_job(key, at, true)]),
            Err(e) => e.into(),
        }
    }

    async fn inspect(&self, job: InspectJob) -> Outcome {
        let Some(entry) = self
            .plugins
            .inspectors
            .iter()
            .find(|i| i.name == job.inspector)
        else {
            return Outcome::GiveUp(format!(
                "inspector {:?} is no longer configured",
                job.inspector
            ));
        };
        let slot = self.plugin_slots.acquire().await.expect("never closed");
        let inspected = entry.plugin.inspect(&job.task).await;
        drop(slot);
        let (output, error) = match inspected {
            Ok(out) => (out, None),
            Err(e) => (Default::default(), Some(e.to_string())),
        };
        let msg = InspectionReport {
            report_id: job.task.report_id,
            author: job.inspector,
            attribute: job.task.attribute,
            output,
            error,
        };
        match services::accept_inspection(
            &self.store,
            &self.bus,
            self.clock.as_ref(),
            &self.pipeline,
            msg,
        )
        .await
        {
            Ok(_) => {
                self.faults.hit("inspect:stored");
                Outcome::Done(vec![])
            }
            Err(e) => e.into(),
        }
    }

    async fn emit(&self, job: &EmitJob) -> Outcome {
        let Some(entry) = self.plugins.emitters.iter().find(|e| e.name == job.emitter) else {
            return Outcome::GiveUp(format!("emitter {:?} is no longer configured", job.emitter));
        };
        let stored = match &job.snapshot {
            Some(report) => Ok(Some(report.clone())),
            None => self.store.publication(&job.publication_id).await,
        };
        let report = match stored {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Outcome::GiveUp(format!("publication {} not found", job.publication_id));
            }
            Err(e) => return Outcome::Retry(e.chain()),
        };
        let slot = self.plugin_slots.acquire().await.expect("never closed");
        let emitted = entry.plugin.emit(&report).await;
        drop(slot);
        match emitted {
            Ok(()) => {
                self.faults.hit("emit:sent");
                Outcome::Done(vec![])
            }
            Err(e) => Outcome::Retry(format!("emitter {} failed: {e}", job.emitter)),
        }
    }
}

/// Deletes published reports untouched since `cutoff`, a batch per write so the writer
/// interleaves intake with it.
async fn purge_reports(store: &SqliteStore, cutoff: chrono::DateTime<chrono::Utc>) {
    const BATCH: usize = 200;
    let mut total = 0;
    loop {
        match store.purge_reports(cutoff, BATCH).await {
            Ok(n) => {
                total += n;
                if n < BATCH {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                warn!(error = %e.chain(), "purging old reports failed");
                break;
            }
        }
    }
    if total > 0 {
        info!(reports = total, %cutoff, "old published reports deleted (retention)");
    }
}
