//! Response flows on the embedded engine, with a fake clock: the order steps run in,
//! what stops a flow, what each step leaves on the report's timeline, and that a run's
//! steps run once. The steps themselves are a recording double here (the real checks and
//! remediations are tested on moto in deepalert-plugins).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deepalert_core::flows::{
    self, FlowConfig, FlowRunKey, FlowSet, StepOutcome, StepRunner, StepState,
};
use deepalert_core::ports::{Clock, PortResult, Reviewer, Store};
use deepalert_core::{Alert, Report, ReportId, ReviewResult, Severity};
use deepalert_local::plugins::{Flows, Plugins};
use deepalert_local::{Durability, Engine, RuntimeSettings, SqliteStore};
use serde_json::{Value, json};

struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    fn advance(&self, d: chrono::Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Steps as the test scripts them: `notify x` succeeds unless x starts with `fail`;
/// `check yes` is true, `check no` false; `remediate ok|dry|guarded|boom`.
#[derive(Default)]
struct Script {
    calls: Mutex<Vec<String>>,
}

impl Script {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl StepRunner for Script {
    async fn notify(&self, n: &str, _: Option<&str>, _: &Report) -> Result<String, String> {
        self.calls.lock().unwrap().push(format!("notify {n}"));
        if n.starts_with("fail") {
            Err(format!("{n} is down"))
        } else {
            Ok(format!("sent to {n}"))
        }
    }

    async fn check(&self, c: &str, _: &Value, _: &Report) -> Result<(bool, String), String> {
        self.calls.lock().unwrap().push(format!("check {c}"));
        Ok((c == "yes", format!("{c} says so")))
    }

    async fn remediate(
        &self,
        a: &str,
        _: &Value,
        _: &Report,
        _: &FlowConfig,
    ) -> Result<StepOutcome, String> {
        self.calls.lock().unwrap().push(format!("remediate {a}"));
        match a {
            "ok" => Ok(StepOutcome::Done("done it".into())),
            "dry" => Ok(StepOutcome::DryRun("would do it".into())),
            "guarded" => Ok(StepOutcome::Guarded("protected".into())),
            _ => Err("boom".into()),
        }
    }
}

struct Urgent;

#[async_trait]
impl Reviewer for Urgent {
    async fn review(&self, _: &Report) -> PortResult<Option<ReviewResult>> {
        Ok(Some(ReviewResult {
            severity: Severity::Urgent,
            reason: "test".into(),
        }))
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    clock: Arc<FakeClock>,
    engine: Arc<Engine>,
    script: Arc<Script>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn flows(v: Value) -> FlowSet {
    let flows: Vec<FlowConfig> = serde_json::from_value(v).unwrap();
    FlowSet::new(
        flows,
        &[
            "a".into(),
            "b".into(),
            "c".into(),
            "fail-1".into(),
            "fail-2".into(),
        ],
        &["yes", "no"],
        &["ok", "dry", "guarded", "boom"],
    )
    .unwrap()
}

impl Harness {
    async fn start(set: FlowSet) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        let clock = Arc::new(FakeClock(Mutex::new(
            "2026-11-25T00:00:00Z".parse().unwrap(),
        )));
        let script = Arc::new(Script::default());
        let plugins = Plugins {
            reviewer: Arc::new(Urgent),
            flows: Some(Flows {
                set,
                runner: script.clone(),
            }),
            ..Plugins::default()
        };
        let runtime = RuntimeSettings {
            inspection_delay: Duration::ZERO,
            review_delay: Duration::ZERO,
            ..RuntimeSettings::default()
        };
        let engine = Engine::new(
            store.clone(),
            plugins,
            Default::default(),
            runtime,
            clock.clone(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runner = engine.clone();
        let task = tokio::spawn(async move {
            runner
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Harness {
            _dir: dir,
            store,
            clock,
            engine,
            script,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn alert(&self, rule_id: &str) -> ReportId {
        let alert: Alert = serde_json::from_value(json!({
            "detector": "test", "rule_id": rule_id, "alert_key": "k"
        }))
        .unwrap();
        self.engine.receive(&alert).await.unwrap().report_id
    }

    /// Waits (real time) until the report's timeline has an entry with this state for
    /// this step, and returns the timeline.
    async fn wait_for(&self, id: ReportId, step: Option<&str>, state: &str) -> Vec<Value> {
        for _ in 0..200 {
            let timeline = self.timeline(id).await;
            if timeline
                .iter()
                .any(|e| e["detail"]["state"] == state && e["detail"]["step"].as_str() == step)
            {
                return timeline;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {state} entry for step {step:?}; timeline: {:#?}; calls: {:?}",
            self.timeline(id).await,
            self.script.calls()
        );
    }

    async fn timeline(&self, id: ReportId) -> Vec<Value> {
        let report = self.store.compile_report(id).await.unwrap().unwrap();
        // The pipeline's own entries (alert received, review…) are not the flow's.
        report
            .timeline
            .iter()
            .filter(|e| e.kind == "flow")
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// (step, state) of every step entry, in order.
fn states(timeline: &[Value]) -> Vec<(String, String)> {
    timeline
        .iter()
        .map(|e| {
            (
                e["detail"]["step"].as_str().unwrap_or("-").to_string(),
                e["detail"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn a_sequence_stops_at_a_false_check_and_records_what_did_not_run() {
    let h = Harness::start(flows(json!([{"name": "f", "steps": [
        {"notify": "a"}, {"check": "no"}, {"remediate": "ok"}
    ]}])))
    .await;
    let id = h.alert("r").await;
    let timeline = h.wait_for(id, None, "stopped").await;
    assert_eq!(
        states(&timeline),
        pairs(&[
            ("-", "started"),
            ("0", "done"),
            ("1", "check_false"),
            ("2", "not_run"),
            ("-", "stopped"),
        ])
    );
    assert_eq!(h.script.calls(), vec!["notify a", "check no"]);
    let check = &timeline[2];
    assert_eq!(
        check["message"],
        "check no: check false, the flow ends: no says so"
    );
    assert_eq!(check["kind"], "flow");
    assert_eq!(check["detail"]["flow"], "f");
    assert_eq!(check["detail"]["publication"], 1);
    h.stop().await;
}

#[tokio::test]
async fn parallel_branches_all_run_and_each_failure_is_recorded() {
    let h = Harness::start(flows(json!([{"name": "f", "steps": [
        {"parallel": [{"notify": "fail-1"}, {"notify": "a"}, {"notify": "fail-2"}, {"remediate": "guarded"}]},
        {"notify": "b"}
    ]}])))
    .await;
    let id = h.alert("r").await;
    let timeline = h.wait_for(id, None, "stopped").await;
    let mut calls = h.script.calls();
    calls.sort();
    assert_eq!(
        calls,
        vec![
            "notify a",
            "notify fail-1",
            "notify fail-2",
            "remediate guarded"
        ]
    );
    let failed: Vec<&str> = timeline
        .iter()
        .filter(|e| e["detail"]["state"] == "failed")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        vec![
            "notify fail-1: failed: fail-1 is down",
            "notify fail-2: failed: fail-2 is down"
        ]
    );
    assert!(
        timeline
            .iter()
            .any(|e| e["message"] == "remediate guarded: skipped by a guard: protected")
    );
    assert!(
        states(&timeline).contains(&("1".into(), "not_run".into())),
        "the step after a failed group does not run"
    );
    h.stop().await;
}

#[tokio::test]
async fn nested_groups_and_waits_follow_the_clock() {
    let h = Harness::start(flows(json!([{"name": "f", "steps": [
        {"parallel": [
            {"sequential": [{"wait": "10m"}, {"notify": "b"}]},
            {"notify": "a"}
        ]},
        {"remediate": "dry"},
        {"notify": "c"}
    ]}])))
    .await;
    let id = h.alert("r").await;
    h.wait_for(id, Some("0.1"), "done").await;
    h.wait_for(id, Some("0.0.0"), "waiting").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.script.calls(), vec!["notify a"], "b waits 10 minutes");

    h.clock.advance(chrono::Duration::minutes(9));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.script.calls(), vec!["notify a"]);

    h.clock.advance(chrono::Duration::minutes(1));
    let timeline = h.wait_for(id, None, "completed").await;
    assert_eq!(
        h.script.calls(),
        vec!["notify a", "notify b", "remediate dry", "notify c"]
    );
    let dry = timeline
        .iter()
        .find(|e| e["detail"]["step"] == "1")
        .unwrap();
    assert_eq!(dry["detail"]["state"], "dry_run");
    assert_eq!(dry["message"], "remediate dry: dry run: would do it");
    h.stop().await;
}

#[tokio::test]
async fn a_finished_run_is_not_run_again() {
    let h = Harness::start(flows(json!([{"name": "f", "steps": [
        {"notify": "a"}, {"remediate": "ok"}
    ]}])))
    .await;
    let id = h.alert("r").await;
    h.wait_for(id, None, "completed").await;
    let entries = h.timeline(id).await.len();
    // The same publication's run, advanced again (a retried job, a repeated start): the
    // stored run says it is finished, so nothing runs and nothing is recorded.
    let key = FlowRunKey {
        report_id: id,
        flow: "f".into(),
        publication: 1,
    };
    let set = flows(json!([{"name": "f", "steps": [{"notify": "a"}, {"remediate": "ok"}]}]));
    let again = flows::advance(&h.store, h.script.as_ref(), h.clock.as_ref(), &set, &key)
        .await
        .unwrap();
    assert_eq!(again, flows::Advance::Finished);
    assert_eq!(h.script.calls(), vec!["notify a", "remediate ok"]);
    assert_eq!(h.timeline(id).await.len(), entries);
    let run = h.store.get_flow_run(&key).await.unwrap().unwrap();
    assert_eq!(run.steps["1"].state, StepState::Done);
    h.stop().await;
}

#[tokio::test]
async fn a_step_interrupted_mid_run_is_not_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let clock = FakeClock(Mutex::new("2026-11-25T00:00:00Z".parse().unwrap()));
    let alert: Alert =
        serde_json::from_value(json!({"detector": "t", "rule_id": "r", "alert_key": "k"})).unwrap();
    let wf = NoWorkflow;
    let receipt =
        deepalert_core::services::receive_alert(&store, &wf, &clock, &Default::default(), &alert)
            .await
            .unwrap();
    let key = FlowRunKey {
        report_id: receipt.report_id,
        flow: "f".into(),
        publication: 0,
    };
    // A crash after the remediation was claimed, before its outcome was written.
    let mut run = flows::FlowRun {
        key: key.clone(),
        started_at: clock.now(),
        steps: Default::default(),
        finished_at: None,
    };
    run.steps.insert(
        "0".into(),
        flows::StepRecord {
            state: StepState::Running,
            at: clock.now(),
            until: None,
            message: String::new(),
        },
    );
    store.put_flow_run(&run).await.unwrap();
    let set = flows(json!([{"name": "f", "steps": [{"remediate": "ok"}, {"notify": "a"}]}]));
    let script = Script::default();
    flows::advance(&store, &script, &clock, &set, &key)
        .await
        .unwrap();
    assert!(script.calls().is_empty(), "{:?}", script.calls());
    let report = store
        .compile_report(receipt.report_id)
        .await
        .unwrap()
        .unwrap();
    let first_step = report.timeline.iter().find(|e| e.kind == "flow").unwrap();
    assert!(
        first_step
            .message
            .contains("interrupted before its outcome was recorded; not run again"),
        "{:?}",
        report.timeline
    );
}

struct NoWorkflow;

#[async_trait]
impl deepalert_core::ports::Workflow for NoWorkflow {
    async fn start(&self, _: &deepalert_core::ports::WorkflowRun) -> PortResult<()> {
        Ok(())
    }
}

#[tokio::test]
async fn received_flows_start_with_the_first_alert_and_reviewed_ones_by_severity() {
    let h = Harness::start(flows(json!([
        {"name": "page-now", "on": "received", "rule_id": "root-login", "steps": [{"notify": "a"}]},
        {"name": "calm", "rule_id": "root-login", "min_severity": "urgent", "steps": [{"notify": "b"}]},
        {"name": "other-rule", "rule_id": "something-else", "steps": [{"notify": "c"}]}
    ])))
    .await;
    let id = h.alert("root-login").await;
    let timeline = h.wait_for(id, None, "completed").await;
    let first = timeline
        .iter()
        .find(|e| e["detail"]["state"] == "done")
        .unwrap();
    assert_eq!(first["detail"]["flow"], "page-now");
    assert_eq!(first["detail"]["publication"], 0);
    // After review (urgent): the reviewed flow.
    for _ in 0..100 {
        if h.script.calls().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.script.calls(), vec!["notify a", "notify b"]);
    // The second alert of the same report does not start the received flow again.
    let again: Alert = serde_json::from_value(json!({
        "detector": "test", "rule_id": "root-login", "alert_key": "k", "description": "again"
    }))
    .unwrap();
    let receipt = h.engine.receive(&again).await.unwrap();
    assert_eq!(receipt.report_id, id);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.script.calls().iter().filter(|c| *c == "notify a").count(),
        1
    );
    h.stop().await;
}
