//! A flow run: what each step did, and the service that moves it on.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FlowSet, Step, StepKind, StepRunner, show_duration};
use crate::ports::{Clock, Store};
use crate::services::PipelineError;
use crate::{ReportId, TimelineEntry};

/// A run is one flow for one publication of one report (0: an `on = "received"` run).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowRunKey {
    pub report_id: ReportId,
    pub flow: String,
    pub publication: u32,
}

impl FlowRunKey {
    /// `<report>-<flow>-p<publication>`: the Step Functions execution name, and the
    /// local job's key.
    pub fn name(&self) -> String {
        format!("{}-{}-p{}", self.report_id, self.flow, self.publication)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Claimed and started; its outcome is not recorded yet.
    Running,
    Done,
    /// A remediation in dry-run: what it would have done is recorded, nothing changed.
    DryRun,
    /// A guard refused it (recorded, never silently).
    Skipped,
    /// The check said the problem is gone: the flow ends here.
    CheckFalse,
    Failed,
    /// A wait, until `until`.
    Waiting,
    /// Not run: its sequence stopped before it.
    NotRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub state: StepState,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRun {
    pub key: FlowRunKey,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a remediation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Done(String),
    /// Dry run: the plan, nothing changed.
    DryRun(String),
    /// Refused by a guard, and why.
    Guarded(String),
}

/// What is due now in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Leaf steps to run now.
    pub ready: Vec<Step>,
    /// When a wait ends, if nothing is ready before.
    pub wake_at: Option<DateTime<Utc>>,
    pub finished: bool,
    /// Finished with every step done (not stopped by a check or a failure).
    pub completed: bool,
}

enum Status {
    Ok,
    Stopped,
    Pending {
        ready: Vec<Step>,
        wake: Option<DateTime<Utc>>,
    },
}

fn eval(step: &Step, run: &FlowRun, now: DateTime<Utc>) -> Status {
    let record = run.steps.get(&step.id);
    match &step.kind {
        StepKind::Wait(_) => match record {
            None => Status::Pending {
                ready: vec![step.clone()],
                wake: None,
            },
            Some(r) if r.state == StepState::Waiting => match r.until {
                Some(until) if until > now => Status::Pending {
                    ready: vec![],
                    wake: Some(until),
                },
                _ => Status::Ok,
            },
            Some(r) if r.state == StepState::Done => Status::Ok,
            Some(_) => Status::Stopped,
        },
        StepKind::Sequential(children) => {
            for c in children {
                match eval(c, run, now) {
                    Status::Ok => continue,
                    other => return other,
                }
            }
            Status::Ok
        }
        StepKind::Parallel(children) => {
            let mut ready = Vec::new();
            let mut wake: Option<DateTime<Utc>> = None;
            let mut pending = false;
            let mut stopped = false;
            for c in children {
                match eval(c, run, now) {
                    Status::Ok => {}
                    Status::Stopped => stopped = true,
                    Status::Pending { ready: r, wake: w } => {
                        pending = true;
                        ready.extend(r);
                        wake = match (wake, w) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                }
            }
            if pending {
                Status::Pending { ready, wake }
            } else if stopped {
                Status::Stopped
            } else {
                Status::Ok
            }
        }
        _ => match record.map(|r| r.state) {
            None => Status::Pending {
                ready: vec![step.clone()],
                wake: None,
            },
            Some(StepState::Done | StepState::DryRun | StepState::Skipped) => Status::Ok,
            Some(_) => Status::Stopped,
        },
    }
}

/// What is due in `run` at `now`. Pure: the same run and time give the same plan.
pub fn plan(tree: &Step, run: &FlowRun, now: DateTime<Utc>) -> Plan {
    match eval(tree, run, now) {
        Status::Ok => Plan {
            ready: vec![],
            wake_at: None,
            finished: true,
            completed: true,
        },
        Status::Stopped => Plan {
            ready: vec![],
            wake_at: None,
            finished: true,
            completed: false,
        },
        Status::Pending { ready, wake } => Plan {
            ready,
            wake_at: wake,
            finished: false,
            completed: false,
        },
    }
}

/// Where a run stands after [`advance`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Advance {
    /// Call again at this time (a wait).
    WaitUntil(DateTime<Utc>),
    Finished,
}

fn entry(
    now: DateTime<Utc>,
    key: &FlowRunKey,
    step: Option<&Step>,
    state: &str,
    message: String,
) -> TimelineEntry {
    TimelineEntry {
        at: now,
        kind: TimelineEntry::FLOW.into(),
        message,
        detail: serde_json::json!({
            "flow": key.flow,
            "publication": key.publication,
            "step": step.map(|s| s.id.as_str()),
            "label": step.map(|s| s.label()),
            "state": state,
        }),
    }
}

fn state_name(s: StepState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Moves a run on as far as it can go now: records every step it starts before running
/// it (so a step runs at most once, whatever crashes), runs it, records its outcome on
/// the run and on the report's timeline, and stops at a wait or at the end. Called again
/// (after the wait, after a crash, by a retried Lambda) it picks up where the run is.
pub async fn advance(
    store: &dyn Store,
    runner: &dyn StepRunner,
    clock: &dyn Clock,
    flows: &FlowSet,
    key: &FlowRunKey,
) -> Result<Advance, PipelineError> {
    let report_id = key.report_id;
    let Some((config, tree)) = flows.get(&key.flow) else {
        store
            .append_timeline(
                report_id,
                &[entry(
                    clock.now(),
                    key,
                    None,
                    "failed",
                    format!(
                        "flow {} is no longer configured; its run ends here",
                        key.flow
                    ),
                )],
            )
            .await?;
        return Ok(Advance::Finished);
    };
    let mut run = match store.get_flow_run(key).await? {
        Some(run) => run,
        None => {
            let now = clock.now();
            let run = FlowRun {
                key: key.clone(),
                started_at: now,
                steps: BTreeMap::new(),
                finished_at: None,
            };
            store.put_flow_run(&run).await?;
            store
                .append_timeline(
                    report_id,
                    &[entry(
                        now,
                        key,
                        None,
                        "started",
                        format!(
                            "flow {} started (publication {})",
                            key.flow, key.publication
                        ),
                    )],
                )
                .await?;
            run
        }
    };
    if run.finished_at.is_some() {
        return Ok(Advance::Finished);
    }
    // A step found running was interrupted (a crash, a timeout): at most once means it
    // is not run again.
    let interrupted: Vec<String> = run
        .steps
        .iter()
        .filter(|(_, r)| r.state == StepState::Running)
        .map(|(id, _)| id.clone())
        .collect();
    if !interrupted.is_empty() {
        let now = clock.now();
        let mut entries = Vec::new();
        for id in interrupted {
            let message = "interrupted before its outcome was recorded; not run again (each step runs at most once)".to_string();
            let step = tree.leaves().into_iter().find(|s| s.id == id).cloned();
            entries.push(entry(
                now,
                key,
                step.as_ref(),
                "failed",
                format!(
                    "{}: {message}",
                    step.as_ref().map(|s| s.label()).unwrap_or_default()
                ),
            ));
            run.steps.insert(
                id,
                StepRecord {
                    state: StepState::Failed,
                    at: now,
                    until: None,
                    message,
                },
            );
        }
        store.put_flow_run(&run).await?;
        store.append_timeline(report_id, &entries).await?;
    }

    loop {
        let now = clock.now();
        let p = plan(tree, &run, now);
        if p.finished {
            // Steps after a stop are recorded as not run, so the timeline shows them.
            let mut entries = Vec::new();
            for leaf in tree.leaves() {
                if !run.steps.contains_key(&leaf.id) {
                    run.steps.insert(
                        leaf.id.clone(),
                        StepRecord {
                            state: StepState::NotRun,
                            at: now,
                            until: None,
                            message: "its sequence stopped before it".into(),
                        },
                    );
                    entries.push(entry(
                        now,
                        key,
                        Some(leaf),
                        "not_run",
                        format!("{}: not run (its sequence stopped before it)", leaf.label()),
                    ));
                }
            }
            run.finished_at = Some(now);
            store.put_flow_run(&run).await?;
            entries.push(entry(
                now,
                key,
                None,
                if p.completed { "completed" } else { "stopped" },
                format!(
                    "flow {} {}",
                    key.flow,
                    if p.completed { "completed" } else { "stopped" }
                ),
            ));
            store.append_timeline(report_id, &entries).await?;
            return Ok(Advance::Finished);
        }
        if p.ready.is_empty() {
            store.put_flow_run(&run).await?;
            return Ok(Advance::WaitUntil(p.wake_at.unwrap_or(now)));
        }
        // Claim everything due before running any of it.
        let mut entries = Vec::new();
        for step in &p.ready {
            let record = match &step.kind {
                StepKind::Wait(d) => {
                    let until =
                        now + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
                    entries.push(entry(
                        now,
                        key,
                        Some(step),
                        "waiting",
                        format!("wait {} (until {})", show_duration(*d), until.to_rfc3339()),
                    ));
                    StepRecord {
                        state: StepState::Waiting,
                        at: now,
                        until: Some(until),
                        message: String::new(),
                    }
                }
                _ => StepRecord {
                    state: StepState::Running,
                    at: now,
                    until: None,
                    message: String::new(),
                },
            };
            run.steps.insert(step.id.clone(), record);
        }
        store.put_flow_run(&run).await?;
        if !entries.is_empty() {
            store.append_timeline(report_id, &entries).await?;
        }
        let runnable: Vec<&Step> = p
            .ready
            .iter()
            .filter(|s| !matches!(s.kind, StepKind::Wait(_)))
            .collect();
        if runnable.is_empty() {
            continue;
        }
        let report = store
            .compile_report(report_id)
            .await?
            .ok_or(PipelineError::ReportNotFound(report_id))?;
        // Branches of a parallel group run one after the other here, each whatever the
        // others did; a failure is recorded for that branch alone.
        for step in runnable {
            let (state, message) = match &step.kind {
                StepKind::Notify { notifier, template } => {
                    match runner.notify(notifier, template.as_deref(), &report).await {
                        Ok(m) => (StepState::Done, m),
                        Err(e) => (StepState::Failed, e),
                    }
                }
                StepKind::Check { check, options } => {
                    match runner.check(check, options, &report).await {
                        Ok((true, m)) => (StepState::Done, m),
                        Ok((false, m)) => (StepState::CheckFalse, m),
                        Err(e) => (StepState::Failed, e),
                    }
                }
                StepKind::Remediate { action, options } => {
                    match runner.remediate(action, options, &report, config).await {
                        Ok(StepOutcome::Done(m)) => (StepState::Done, m),
                        Ok(StepOutcome::DryRun(m)) => (StepState::DryRun, m),
                        Ok(StepOutcome::Guarded(m)) => (StepState::Skipped, m),
                        Err(e) => (StepState::Failed, e),
                    }
                }
                _ => continue,
            };
            let done = clock.now();
            let note = entry(
                done,
                key,
                Some(step),
                &state_name(state),
                format!(
                    "{}: {}{message}",
                    step.label(),
                    match state {
                        StepState::Done => "",
                        StepState::DryRun => "dry run: ",
                        StepState::Skipped => "skipped by a guard: ",
                        StepState::CheckFalse => "check false, the flow ends: ",
                        StepState::Failed => "failed: ",
                        _ => "",
                    }
                ),
            );
            run.steps.insert(
                step.id.clone(),
                StepRecord {
                    state,
                    at: done,
                    until: None,
                    message,
                },
            );
            store.put_flow_run(&run).await?;
            store.append_timeline(report_id, &[note]).await?;
        }
    }
}
