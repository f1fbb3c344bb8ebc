//! Responses: **flows** of steps run after a report — notify, wait, check, remediate —
//! in sequence or in parallel, durably and at most once per step.
//!
//! A flow run is data ([`FlowRun`]: which step did what, when the next is due), so the
//! same service ([`advance`]) runs it from a SQLite job locally and from a Step Functions
//! loop on AWS; its history is the report's timeline.

mod config;
mod document;
mod presets;
mod run;

pub use config::{FlowConfig, FlowError, FlowSet, On, StepConfig};
pub use document::{FlowsDocument, NotifierConfig, PresetFlow};
pub use presets::{PRESET_GRACE, preset_flow, with_preset_flows};
pub use run::{
    Advance, FlowRun, FlowRunKey, Plan, StepOutcome, StepRecord, StepState, advance, plan,
};

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A step of a flow, compiled from its configuration, with a stable id (its path in the
/// tree: `0`, `1.0`, `1.1`…) so a run records what each step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Hand the report to a notifier (or a configured emitter), with an optional message
    /// template.
    Notify {
        notifier: String,
        template: Option<String>,
    },
    Wait(#[serde(with = "humantime_secs")] Duration),
    /// A named check; false ends the flow (recorded).
    Check {
        check: String,
        options: serde_json::Value,
    },
    /// A named remediation, behind its guards.
    Remediate {
        action: String,
        options: serde_json::Value,
    },
    Sequential(Vec<Step>),
    Parallel(Vec<Step>),
}

mod humantime_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

impl Step {
    /// A short label for the timeline: `notify sec-slack`, `wait 10m`, `check instance-running`…
    pub fn label(&self) -> String {
        match &self.kind {
            StepKind::Notify { notifier, .. } => format!("notify {notifier}"),
            StepKind::Wait(d) => format!("wait {}", show_duration(*d)),
            StepKind::Check { check, .. } => format!("check {check}"),
            StepKind::Remediate { action, .. } => format!("remediate {action}"),
            StepKind::Sequential(_) => "sequential".into(),
            StepKind::Parallel(_) => "parallel".into(),
        }
    }

    /// Every leaf step (what runs), depth first.
    pub fn leaves(&self) -> Vec<&Step> {
        match &self.kind {
            StepKind::Sequential(s) | StepKind::Parallel(s) => {
                s.iter().flat_map(|c| c.leaves()).collect()
            }
            _ => vec![self],
        }
    }
}

pub(crate) fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What runs a leaf step: notifiers, checks and remediations live in the plug-ins; the
/// flow service only knows their names. Each returns what to write on the timeline.
#[async_trait::async_trait]
pub trait StepRunner: Send + Sync {
    async fn notify(
        &self,
        notifier: &str,
        template: Option<&str>,
        report: &crate::Report,
    ) -> Result<String, String>;

    /// `Ok((true, why))`: the problem is still there; `Ok((false, why))` ends the flow.
    async fn check(
        &self,
        check: &str,
        options: &serde_json::Value,
        report: &crate::Report,
    ) -> Result<(bool, String), String>;

    /// What was done, planned (dry run) or refused by a guard.
    async fn remediate(
        &self,
        action: &str,
        options: &serde_json::Value,
        report: &crate::Report,
        flow: &FlowConfig,
    ) -> Result<StepOutcome, String>;
}

/// Starts the flows a publication of `report` matches (one run per flow and
/// publication; starting one again starts nothing).
pub async fn start_after_publication(
    starter: &dyn crate::ports::FlowStarter,
    flows: &FlowSet,
    report: &crate::Report,
) -> crate::ports::PortResult<Vec<FlowRunKey>> {
    let mut started = Vec::new();
    for f in flows.on_publication(report) {
        let key = FlowRunKey {
            report_id: report.id,
            flow: f.name.clone(),
            publication: report.publications,
        };
        starter.start_flow(&key).await?;
        tracing::info!(report_id = %report.id, flow = %f.name, publication = report.publications, "flow started");
        started.push(key);
    }
    Ok(started)
}

/// Starts the `on = "received"` flows for the first alert of a new report.
pub async fn start_on_receipt(
    starter: &dyn crate::ports::FlowStarter,
    flows: &FlowSet,
    alert: &crate::Alert,
    receipt: &crate::services::Receipt,
) -> crate::ports::PortResult<Vec<FlowRunKey>> {
    if receipt.status != crate::ReportStatus::New {
        return Ok(vec![]);
    }
    let mut started = Vec::new();
    for f in flows.on_received(&alert.detector, &alert.rule_id) {
        let key = FlowRunKey {
            report_id: receipt.report_id,
            flow: f.name.clone(),
            publication: 0,
        };
        starter.start_flow(&key).await?;
        tracing::info!(report_id = %receipt.report_id, flow = %f.name, "flow started on receipt");
        started.push(key);
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn flow(steps: serde_json::Value) -> FlowConfig {
        serde_json::from_value(json!({"name": "f", "steps": steps})).unwrap()
    }

    fn run() -> FlowRun {
        FlowRun {
            key: FlowRunKey {
                report_id: "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11".parse().unwrap(),
                flow: "f".into(),
                publication: 1,
            },
            started_at: Utc.timestamp_opt(0, 0).unwrap(),
            steps: Default::default(),
            finished_at: None,
        }
    }

    fn record(run: &mut FlowRun, id: &str, state: StepState, until: Option<i64>) {
        run.steps.insert(
            id.into(),
            StepRecord {
                state,
                at: Utc.timestamp_opt(0, 0).unwrap(),
                until: until.map(|u| Utc.timestamp_opt(u, 0).unwrap()),
                message: String::new(),
            },
        );
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.ready.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn sequences_go_step_by_step_and_stop_at_a_false_check() {
        let tree = flow(json!([{"notify": "a"}, {"check": "c"}, {"remediate": "r"}]))
            .compile()
            .unwrap();
        let now = Utc.timestamp_opt(100, 0).unwrap();
        let mut r = run();
        assert_eq!(ids(&plan(&tree, &r, now)), vec!["0"]);
        record(&mut r, "0", StepState::Done, None);
        assert_eq!(ids(&plan(&tree, &r, now)), vec!["1"]);
        record(&mut r, "1", StepState::CheckFalse, None);
        let p = plan(&tree, &r, now);
        assert!(p.finished && !p.completed && p.ready.is_empty());
    }

    #[test]
    fn parallel_branches_all_run_and_nested_groups_wait() {
        let tree = flow(json!([
            {"parallel": [{"notify": "a"}, {"sequential": [{"wait": "10m"}, {"notify": "b"}]}, {"remediate": "r"}]},
            {"notify": "after"}
        ]))
        .compile()
        .unwrap();
        let t0 = Utc.timestamp_opt(0, 0).unwrap();
        let mut r = run();
        assert_eq!(ids(&plan(&tree, &r, t0)), vec!["0.0", "0.1.0", "0.2"]);
        record(&mut r, "0.0", StepState::Failed, None);
        record(&mut r, "0.1.0", StepState::Waiting, Some(600));
        record(&mut r, "0.2", StepState::Done, None);
        // The failed branch does not stop the others; the wait holds the group.
        let p = plan(&tree, &r, Utc.timestamp_opt(10, 0).unwrap());
        assert!(p.ready.is_empty() && !p.finished);
        assert_eq!(p.wake_at, Some(Utc.timestamp_opt(600, 0).unwrap()));
        let p = plan(&tree, &r, Utc.timestamp_opt(600, 0).unwrap());
        assert_eq!(ids(&p), vec!["0.1.1"]);
        record(&mut r, "0.1.1", StepState::Done, None);
        // A branch failed: the group is stopped, the step after it does not run.
        let p = plan(&tree, &r, Utc.timestamp_opt(601, 0).unwrap());
        assert!(p.finished && !p.completed);
    }

    #[test]
    fn guarded_and_dry_run_steps_let_the_flow_go_on() {
        let tree = flow(json!([{"remediate": "r"}, {"notify": "a"}]))
            .compile()
            .unwrap();
        let mut r = run();
        record(&mut r, "0", StepState::Skipped, None);
        assert_eq!(ids(&plan(&tree, &r, Utc::now())), vec!["1"]);
        record(&mut r, "0", StepState::DryRun, None);
        assert_eq!(ids(&plan(&tree, &r, Utc::now())), vec!["1"]);
        record(&mut r, "1", StepState::Done, None);
        let p = plan(&tree, &r, Utc::now());
        assert!(p.finished && p.completed);
    }

    #[test]
    fn invalid_flows_are_named() {
        let check = |v: serde_json::Value, expected: &str| {
            let f: FlowConfig = serde_json::from_value(v).unwrap();
            let err = FlowSet::new(
                vec![f],
                &["slack".into()],
                &["instance-running"],
                &["ec2-instance"],
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{err}");
        };
        check(json!({"name": "x", "steps": []}), "has no steps");
        check(
            json!({"name": "x", "steps": [{"notify": "pager"}]}),
            "no notifier or emitter \"pager\"",
        );
        check(
            json!({"name": "x", "steps": [{"check": "nope"}]}),
            "no check \"nope\"",
        );
        check(
            json!({"name": "x", "steps": [{"wait": "soon"}]}),
            "not a duration",
        );
        check(
            json!({"name": "x", "steps": [{"notify": "slack", "wait": "1m"}]}),
            "exactly one of",
        );
        check(
            json!({"name": "x", "steps": [{"parallel": []}]}),
            "empty group",
        );
        check(
            json!({"name": "x", "on": "received", "steps": [{"remediate": "ec2-instance"}]}),
            "remediate_before_review",
        );
        check(
            json!({"name": "x y", "steps": [{"notify": "slack"}]}),
            "letters, digits",
        );
        let ok: FlowConfig = serde_json::from_value(
            json!({"name": "x", "on": "received", "remediate_before_review": true, "steps": [{"remediate": "ec2-instance"}]}),
        )
        .unwrap();
        assert!(FlowSet::new(vec![ok], &[], &[], &["ec2-instance"]).is_ok());
    }
}
