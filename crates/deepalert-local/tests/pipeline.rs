//! The core services over the SQLite store, and the embedded engine with in-process and
//! exec plug-ins. Outcomes are read back from the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deepalert_core::ports::{
    Clock, PortError, PortResult, Reviewer, Store, SystemClock, Workflow, WorkflowRun,
};
use deepalert_core::services::{PipelineSettings, receive_alert};
use deepalert_core::{
    Alert, AttrContext, AttrType, Attribute, FindingContent, InspectorOutput, Report, ReportId,
    ReportStatus, ReviewResult, Severity, Task, TimelineEntry,
};
use deepalert_local::plugins::exec::{ExecCommand, ExecInspector};
use deepalert_local::plugins::{
    EmitterEntry, EmitterPlugin, InspectorEntry, InspectorPlugin, NO_REVIEWER_REASON, PluginError,
    Plugins,
};
use deepalert_local::{Durability, Engine, RuntimeSettings, SqliteStore};

struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    fn at(t: &str) -> Self {
        FakeClock(Mutex::new(t.parse().unwrap()))
    }
    fn advance(&self, d: chrono::Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[derive(Default)]
struct RecordingWorkflow(Mutex<Vec<WorkflowRun>>);

#[async_trait]
impl Workflow for RecordingWorkflow {
    async fn start(&self, run: &WorkflowRun) -> PortResult<()> {
        self.0.lock().unwrap().push(run.clone());
        Ok(())
    }
}

fn alert(rule_name: &str, attrs: Vec<Attribute>) -> Alert {
    Alert {
        detector: "guardduty".into(),
        rule_id: "SSHBruteForce".into(),
        rule_name: rule_name.into(),
        alert_key: "i-123".into(),
        description: String::new(),
        timestamp: None,
        attributes: attrs,
        body: None,
    }
}

fn ip(v: &str) -> Attribute {
    Attribute::new(AttrType::Ipaddr, "remote", v, &[AttrContext::Remote])
}

fn open_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    (dir, store)
}

#[tokio::test]
async fn aggregation_window_joins_then_opens_a_new_report() {
    let (_dir, store) = open_store();
    let wf = RecordingWorkflow::default();
    let clock = FakeClock::at("2026-11-22T00:00:00Z");
    let settings = PipelineSettings::default(); // 3 h window

    let first = receive_alert(
        &store,
        &wf,
        &clock,
        &settings,
        &alert("a", vec![ip("192.0.2.1")]),
    )
    .await
    .unwrap();
    assert_eq!(first.status, ReportStatus::New);

    clock.advance(chrono::Duration::minutes(179));
    // Another rule_name, same detector/rule_id/alert_key: same AlertID, joins.
    let joined = receive_alert(
        &store,
        &wf,
        &clock,
        &settings,
        &alert("b", vec![ip("192.0.2.2")]),
    )
    .await
    .unwrap();
    assert_eq!(joined.status, ReportStatus::More);
    assert_eq!(joined.report_id, first.report_id);

    // The window runs from the report's first alert, not the latest one.
    clock.advance(chrono::Duration::minutes(1) + chrono::Duration::milliseconds(1));
    let later = receive_alert(
        &store,
        &wf,
        &clock,
        &settings,
        &alert("c", vec![ip("192.0.2.3")]),
    )
    .await
    .unwrap();
    assert_eq!(later.status, ReportStatus::New);
    assert_ne!(later.report_id, first.report_id);

    let runs = wf.0.lock().unwrap().clone();
    assert_eq!(runs.len(), 3);
    assert_eq!(
        runs.iter().map(|r| r.review).collect::<Vec<_>>(),
        vec![true, false, true],
        "only the alert that opens a report reviews it"
    );
    let report = store
        .compile_report(first.report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.alerts.len(), 2);
    assert_eq!(report.status, ReportStatus::More);
}

#[tokio::test]
async fn redelivered_alert_is_stored_once_and_restarts_the_same_run() {
    let (_dir, store) = open_store();
    let wf = RecordingWorkflow::default();
    let clock = FakeClock::at("2026-11-22T00:00:00Z");
    let settings = PipelineSettings::default();
    let a = alert("a", vec![ip("192.0.2.1")]);
    let r1 = receive_alert(&store, &wf, &clock, &settings, &a)
        .await
        .unwrap();
    let r2 = receive_alert(&store, &wf, &clock, &settings, &a)
        .await
        .unwrap();
    assert!(!r1.duplicate && r2.duplicate);
    assert_eq!((r1.report_id, r1.status), (r2.report_id, r2.status));
    let runs = wf.0.lock().unwrap().clone();
    // Same name twice: the workflow adapter starts it once (StartExecution / job key).
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].name.len() <= 80);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts["reports"], counts["alerts"]), (1, 1));
}

#[tokio::test]
async fn alert_joining_a_published_report_reviews_it_again() {
    let (_dir, store) = open_store();
    let wf = RecordingWorkflow::default();
    let clock = FakeClock::at("2026-11-22T00:00:00Z");
    let settings = PipelineSettings::default();
    let r = receive_alert(&store, &wf, &clock, &settings, &alert("a", vec![]))
        .await
        .unwrap();
    let mut report = store.compile_report(r.report_id).await.unwrap().unwrap();
    report.result = Some(ReviewResult::unclassified("x"));
    let published = store
        .record_publication(&report, "pub-1", clock.now())
        .await
        .unwrap();
    assert_eq!(
        (published.status, published.publications),
        (ReportStatus::Published, 1)
    );
    // Recording the same publication again (a retried step) does not count twice.
    let again = store
        .record_publication(&report, "pub-1", clock.now())
        .await
        .unwrap();
    assert_eq!(again.publications, 1);

    let late = receive_alert(
        &store,
        &wf,
        &clock,
        &settings,
        &alert("late", vec![ip("192.0.2.9")]),
    )
    .await
    .unwrap();
    assert_eq!(late.report_id, r.report_id);
    assert!(wf.0.lock().unwrap()[1].review, "late alert must re-review");
    assert_eq!(
        store
            .report_head(r.report_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ReportStatus::More
    );
}

// ---- The engine, with plug-ins ----

/// Returns a new attribute derived from each one it sees, forever.
struct ChattyInspector(AtomicUsize);

#[async_trait]
impl InspectorPlugin for ChattyInspector {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(InspectorOutput {
            findings: vec![FindingContent::Host(Default::default())],
            attributes: vec![Attribute::new(
                AttrType::Domain,
                "derived",
                &format!("x.{}", task.attribute.value),
                &[],
            )],
        })
    }
}

struct FailingReviewer;

#[async_trait]
impl Reviewer for FailingReviewer {
    async fn review(&self, _: &Report) -> PortResult<Option<ReviewResult>> {
        Err(PortError::new("policy engine exploded"))
    }
}

struct SeverityReviewer(Severity);

#[async_trait]
impl Reviewer for SeverityReviewer {
    async fn review(&self, _: &Report) -> PortResult<Option<ReviewResult>> {
        Ok(Some(ReviewResult {
            severity: self.0,
            reason: "test policy".into(),
        }))
    }
}

#[derive(Default)]
struct CollectingEmitter(Mutex<Vec<Report>>);

#[async_trait]
impl EmitterPlugin for CollectingEmitter {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        self.0.lock().unwrap().push(report.clone());
        Ok(())
    }
}

struct BrokenEmitter;

#[async_trait]
impl EmitterPlugin for BrokenEmitter {
    async fn emit(&self, _: &Report) -> Result<(), PluginError> {
        Err(PluginError::Failed("webhook returned 500".into()))
    }
}

struct Running {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn run_engine(plugins: Plugins, settings: PipelineSettings) -> Running {
    run_engine_with(plugins, settings, Duration::from_millis(300))
}

fn run_engine_with(
    plugins: Plugins,
    settings: PipelineSettings,
    review_delay: Duration,
) -> Running {
    let (dir, store) = open_store();
    let runtime = RuntimeSettings {
        inspection_delay: Duration::ZERO,
        review_delay,
        ..RuntimeSettings::default()
    };
    let engine = Engine::new(store, plugins, settings, runtime, Arc::new(SystemClock));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(engine.clone().run(async {
        let _ = rx.await;
    }));
    Running {
        _dir: dir,
        engine,
        stop: Some(tx),
    }
}

async fn wait_published(engine: &Engine, id: ReportId, publications: u32) -> Report {
    for _ in 0..200 {
        if let Some(r) = engine.store().compile_report(id).await.unwrap()
            && r.status == ReportStatus::Published
            && r.publications >= publications
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "report {id} not published: {:#?}",
        engine.store().compile_report(id).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_bounded_by_depth() {
    let chatty = Arc::new(ChattyInspector(AtomicUsize::new(0)));
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "chatty".into(),
            attribute_types: None,
            plugin: chatty.clone(),
        }],
        ..Plugins::default()
    };
    let settings = PipelineSettings {
        max_attribute_depth: 2,
        ..PipelineSettings::default()
    };
    let run = run_engine(plugins, settings);
    let receipt = run
        .engine
        .receive(&alert("a", vec![ip("192.0.2.1")]))
        .await
        .unwrap();
    let report = wait_published(&run.engine, receipt.report_id, 1).await;
    let values: Vec<&str> = report.attributes.iter().map(|a| a.value.as_str()).collect();
    assert_eq!(values, vec!["192.0.2.1", "x.192.0.2.1", "x.x.192.0.2.1"]);
    assert_eq!(
        chatty.0.load(Ordering::SeqCst),
        3,
        "depth 0, 1 and 2 inspected"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.message.contains("max_attribute_depth 2")
                && n.message.contains("x.x.x.192.0.2.1")),
        "{:#?}",
        report.notes
    );
    // No reviewer configured: unclassified, and the reason says why.
    let result = report.result.unwrap();
    assert_eq!(result.severity, Severity::Unclassified);
    assert_eq!(result.reason, NO_REVIEWER_REASON);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_bounded_by_count() {
    let chatty = Arc::new(ChattyInspector(AtomicUsize::new(0)));
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "chatty".into(),
            attribute_types: None,
            plugin: chatty.clone(),
        }],
        ..Plugins::default()
    };
    let settings = PipelineSettings {
        max_attribute_depth: 10,
        max_attributes_per_report: 4,
        ..PipelineSettings::default()
    };
    let run = run_engine(plugins, settings);
    let receipt = run
        .engine
        .receive(&alert("a", vec![ip("192.0.2.1"), ip("192.0.2.2")]))
        .await
        .unwrap();
    let report = wait_published(&run.engine, receipt.report_id, 1).await;
    assert_eq!(report.attributes.len(), 4);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.message.contains("max_attributes_per_report")),
        "{:#?}",
        report.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_failures_are_recorded_and_the_report_still_published() {
    let emitted = Arc::new(CollectingEmitter::default());
    let crash = ExecInspector(ExecCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            "cat >/dev/null; echo 'lookup failed: quota' >&2; exit 7".into(),
        ],
        env: BTreeMap::new(),
        cwd: None,
        timeout: Duration::from_secs(10),
        max_output: deepalert_local::plugins::exec::DEFAULT_MAX_OUTPUT,
    });
    let garbage = ExecInspector(ExecCommand {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "cat >/dev/null; echo '<html>'".into()],
        env: BTreeMap::new(),
        cwd: None,
        timeout: Duration::from_secs(10),
        max_output: deepalert_local::plugins::exec::DEFAULT_MAX_OUTPUT,
    });
    let plugins = Plugins {
        inspectors: vec![
            InspectorEntry {
                name: "crashing".into(),
                attribute_types: None,
                plugin: Arc::new(crash),
            },
            InspectorEntry {
                name: "garbage".into(),
                attribute_types: Some([AttrType::Ipaddr].into()),
                plugin: Arc::new(garbage),
            },
        ],
        reviewer: Arc::new(FailingReviewer),
        emitters: vec![EmitterEntry {
            name: "collect".into(),
            max_attempts: 1,
            plugin: emitted.clone(),
        }],
        flows: None,
    };
    let run = run_engine(plugins, PipelineSettings::default());
    let receipt = run
        .engine
        .receive(&alert("a", vec![ip("192.0.2.1")]))
        .await
        .unwrap();
    let report = wait_published(&run.engine, receipt.report_id, 1).await;

    let notes: Vec<(&str, &str)> = report
        .notes
        .iter()
        .map(|n| (n.author.as_str(), n.message.as_str()))
        .collect();
    assert!(
        notes.iter().any(|(a, m)| *a == "crashing"
            && m.contains("exit status: 7")
            && m.contains("lookup failed: quota")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|(a, m)| *a == "garbage" && m.contains("bad output")),
        "{notes:?}"
    );
    let result = report.result.clone().unwrap();
    assert_eq!(result.severity, Severity::Unclassified);
    assert!(
        result.reason.contains("policy engine exploded"),
        "{}",
        result.reason
    );

    for _ in 0..100 {
        if !emitted.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = emitted.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].result, report.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitter_that_keeps_failing_is_given_up_with_a_note() {
    let good = Arc::new(CollectingEmitter::default());
    let plugins = Plugins {
        inspectors: vec![],
        reviewer: Arc::new(SeverityReviewer(Severity::Urgent)),
        emitters: vec![
            EmitterEntry {
                name: "broken".into(),
                max_attempts: 2,
                plugin: Arc::new(BrokenEmitter),
            },
            EmitterEntry {
                name: "good".into(),
                max_attempts: 2,
                plugin: good.clone(),
            },
        ],
        flows: None,
    };
    let run = run_engine(plugins, PipelineSettings::default());
    let receipt = run.engine.receive(&alert("a", vec![])).await.unwrap();
    wait_published(&run.engine, receipt.report_id, 1).await;
    let mut noted = None;
    for _ in 0..100 {
        let r = run
            .engine
            .store()
            .compile_report(receipt.report_id)
            .await
            .unwrap()
            .unwrap();
        noted = r
            .notes
            .into_iter()
            .find(|n| n.message.contains("webhook returned 500"));
        if noted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let note = noted.expect("a note about the broken emitter");
    assert!(
        note.message.contains("after 2 attempt(s)"),
        "{}",
        note.message
    );
    // The other emitter was not held up by the broken one.
    let got = good.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].result.as_ref().unwrap().severity, Severity::Urgent);
    let failed = run.engine.store().failed_jobs().await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].0.ends_with(":broken"), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_new_attributes_are_refused_with_a_note() {
    struct Oversized;
    #[async_trait]
    impl InspectorPlugin for Oversized {
        async fn inspect(&self, _: &Task) -> Result<InspectorOutput, PluginError> {
            Ok(InspectorOutput {
                findings: vec![],
                attributes: vec![Attribute::new(AttrType::Url, "u", &"u".repeat(2000), &[])],
            })
        }
    }
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "oversized".into(),
            attribute_types: None,
            plugin: Arc::new(Oversized),
        }],
        ..Plugins::default()
    };
    let run = run_engine(plugins, PipelineSettings::default());
    let receipt = run
        .engine
        .receive(&alert("a", vec![ip("192.0.2.1")]))
        .await
        .unwrap();
    let report = wait_published(&run.engine, receipt.report_id, 1).await;
    assert_eq!(report.attributes.len(), 1);
    assert!(
        report.notes.iter().any(|n| n.author == "oversized"
            && n.message.contains("attributes[0].value")
            && n.message.contains("1024")),
        "{:#?}",
        report.notes
    );
}

/// `retention`: published reports untouched since the cutoff go, with everything stored
/// about them, in batches; reports still open, or touched since, stay.
#[tokio::test]
async fn retention_deletes_old_published_reports_and_all_they_hold() {
    use deepalert_core::ports::PluginState;
    let (_dir, store) = open_store();
    let wf = RecordingWorkflow::default();
    let clock = FakeClock::at("2026-01-01T00:00:00Z");
    let settings = PipelineSettings::default();
    let publish = async |key: &str, at: DateTime<Utc>| {
        let mut a = alert("a", vec![ip("192.0.2.1")]);
        a.alert_key = key.into();
        let r = receive_alert(&store, &wf, &clock, &settings, &a)
            .await
            .unwrap();
        let mut report = store.compile_report(r.report_id).await.unwrap().unwrap();
        report.result = Some(ReviewResult::unclassified("x"));
        store
            .record_publication(&report, &format!("pub-{key}"), at)
            .await
            .unwrap();
        store
            .put_findings(&[deepalert_core::Finding {
                report_id: r.report_id,
                author: "intel".into(),
                attribute: ip("192.0.2.1"),
                content: FindingContent::Host(Default::default()),
            }])
            .await
            .unwrap();
        store
            .put(&format!("sent:slack:{}", r.report_id), "fingerprint")
            .await
            .unwrap();
        r.report_id
    };
    let old_a = publish("old-a", clock.now()).await;
    let old_b = publish("old-b", clock.now()).await;
    clock.advance(chrono::Duration::days(20));
    let recent = publish("recent", clock.now()).await;
    let open = receive_alert(&store, &wf, &clock, &settings, &alert("open", vec![]))
        .await
        .unwrap()
        .report_id;

    let cutoff = clock.now() - chrono::Duration::days(10);
    assert_eq!(
        store.purge_reports(cutoff, 1).await.unwrap(),
        1,
        "one batch of 1"
    );
    assert_eq!(store.purge_reports(cutoff, 100).await.unwrap(), 1);
    assert_eq!(store.purge_reports(cutoff, 100).await.unwrap(), 0);
    for gone in [old_a, old_b] {
        assert!(store.compile_report(gone).await.unwrap().is_none());
        assert!(
            store
                .get(&format!("sent:slack:{gone}"))
                .await
                .unwrap()
                .is_none(),
            "emitters' memory of it goes too"
        );
    }
    assert!(store.publication("pub-old-a").await.unwrap().is_none());
    let kept = store.compile_report(recent).await.unwrap().unwrap();
    assert_eq!(
        kept.sections[0].hosts.len(),
        1,
        "findings of kept reports stay"
    );
    assert!(
        store
            .get(&format!("sent:slack:{recent}"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store.compile_report(open).await.unwrap().is_some(),
        "not published: kept"
    );
}

/// Finds a host behind every attribute, slowly.
struct SlowHostInspector;

#[async_trait]
impl InspectorPlugin for SlowHostInspector {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok(InspectorOutput {
            findings: vec![FindingContent::Host(deepalert_core::finding::ContentHost {
                hostname: vec![format!("host-of-{}", task.attribute.value)],
                ..Default::default()
            })],
            attributes: vec![],
        })
    }
}

/// Says how many of the report's attributes had a finding when it looked.
struct CountingReviewer;

#[async_trait]
impl Reviewer for CountingReviewer {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
        let found = report
            .sections
            .iter()
            .filter(|s| !s.hosts.is_empty())
            .count();
        Ok(Some(ReviewResult {
            severity: Severity::Safe,
            reason: format!(
                "{found} of {} attributes inspected",
                report.attributes.len()
            ),
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_review_delay_the_review_follows_every_inspection() {
    let emitted = Arc::new(CollectingEmitter::default());
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "slow-hosts".into(),
            attribute_types: None,
            plugin: Arc::new(SlowHostInspector),
        }],
        reviewer: Arc::new(CountingReviewer),
        emitters: vec![EmitterEntry {
            name: "collect".into(),
            max_attempts: 1,
            plugin: emitted.clone(),
        }],
        flows: None,
    };
    let run = run_engine_with(plugins, PipelineSettings::default(), Duration::ZERO);
    let receipt = run
        .engine
        .receive(&alert(
            "three",
            vec![ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")],
        ))
        .await
        .unwrap();
    let report = wait_published(&run.engine, receipt.report_id, 1).await;

    // Without a delay the review still waits for the inspections, however slow.
    assert_eq!(
        report.result.as_ref().unwrap().reason,
        "3 of 3 attributes inspected"
    );
    let hosts: Vec<&str> = report
        .sections
        .iter()
        .flat_map(|s| s.hosts.iter().flat_map(|h| h.content.hostname.iter()))
        .map(String::as_str)
        .collect();
    assert_eq!(
        hosts.len(),
        3,
        "one finding per attribute, stored once: {hosts:?}"
    );

    let timeline = run
        .engine
        .store()
        .report_timeline(receipt.report_id)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    let last_inspection = kinds.iter().rposition(|k| *k == "inspection").unwrap();
    let review = kinds.iter().position(|k| *k == "review").unwrap();
    assert!(last_inspection < review, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "inspection").count(), 3);

    for _ in 0..100 {
        if !emitted.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(emitted.0.lock().unwrap().len(), 1);

    // The inspections ran inside the dispatch job: no inspect jobs.
    let jobs: Vec<(String, i64, String)> = job_rows(
        run._dir.path(),
        "SELECT kind, count(*), min(state) FROM jobs WHERE report_id = ?1 GROUP BY kind ORDER BY kind",
        receipt.report_id,
    );
    assert_eq!(
        jobs,
        vec![
            ("dispatch".to_string(), 1, "done".to_string()),
            ("emit".to_string(), 1, "done".to_string()),
            ("review".to_string(), 1, "done".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_and_its_run_are_stored_in_one_write() {
    let (dir, store) = open_store();
    let runtime = RuntimeSettings {
        inspection_delay: Duration::from_secs(60),
        ..RuntimeSettings::default()
    };
    // Not running: the job stays queued for the test to read.
    let engine = Engine::new(
        store,
        Plugins::default(),
        PipelineSettings::default(),
        runtime,
        Arc::new(SystemClock),
    );
    let sent = alert("one write", vec![ip("192.0.2.9")]);
    let (w0, _) = engine.store().write_stats();
    let receipt = engine.receive(&sent).await.unwrap();
    let (w1, _) = engine.store().write_stats();
    assert_eq!(w1 - w0, 1, "the alert and its run: one write");

    let again = engine.receive(&sent).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.report_id, receipt.report_id);

    let jobs: Vec<(String, String, i64)> = job_rows(
        dir.path(),
        "SELECT kind, key, due_at - created_at FROM jobs WHERE report_id = ?1",
        receipt.report_id,
    );
    assert_eq!(
        jobs.len(),
        1,
        "one run, however often the alert comes: {jobs:?}"
    );
    assert_eq!(jobs[0].0, "dispatch");
    assert!(
        jobs[0]
            .1
            .starts_with(&format!("run:{}-", receipt.report_id))
    );
    assert_eq!(jobs[0].2, 60_000, "due after the inspection delay");
}

/// Rows of three columns about a report's jobs, read straight from the store's database.
fn job_rows<A, B, C>(dir: &std::path::Path, sql: &str, report: ReportId) -> Vec<(A, B, C)>
where
    A: rusqlite::types::FromSql,
    B: rusqlite::types::FromSql,
    C: rusqlite::types::FromSql,
{
    let db = rusqlite::Connection::open(dir.join("deepalert.db")).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([report.to_string()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[tokio::test]
async fn a_review_job_publishes_with_its_completion_and_queues_a_round_for_alerts_that_joined() {
    let (dir, store) = open_store();
    let store = store.with_review_jobs(Duration::ZERO);
    let wf = RecordingWorkflow::default();
    let clock = FakeClock::at("2026-11-22T00:00:00Z");
    let settings = PipelineSettings::default();
    let first = receive_alert(&store, &wf, &clock, &settings, &alert("a", vec![]))
        .await
        .unwrap();
    let mut report = store
        .compile_report(first.report_id)
        .await
        .unwrap()
        .unwrap();
    report.result = Some(ReviewResult::unclassified("x"));
    let pid = format!("{}-r0", first.report_id);

    // In a job: the publication waits for the job's completion.
    let (published, effects) = deepalert_local::store::collect_deferred(async {
        store.record_publication(&report, &pid, clock.now()).await
    })
    .await;
    let published = published.unwrap();
    assert_eq!(
        (published.status, published.publications),
        (ReportStatus::Published, 1)
    );
    let head = store.report_head(first.report_id).await.unwrap().unwrap();
    assert_eq!((head.status, head.publications), (ReportStatus::New, 0));

    // An alert joins after the review compiled the report and before the job commits:
    // the report is not published yet, so the alert does not ask for a review itself.
    let joined = receive_alert(
        &store,
        &wf,
        &clock,
        &settings,
        &alert("b", vec![ip("192.0.2.7")]),
    )
    .await
    .unwrap();
    assert_eq!(joined.report_id, first.report_id);
    assert!(!wf.0.lock().unwrap()[1].review);

    store
        .finish(-1, vec![], effects, None, clock.now())
        .await
        .unwrap();
    let head = store.report_head(first.report_id).await.unwrap().unwrap();
    assert_eq!(
        (head.status, head.publications),
        (ReportStatus::Published, 1)
    );
    // The publication's commit saw the alert the review missed and queued the next round.
    let reviews: Vec<(String, String, String)> = job_rows(
        dir.path(),
        "SELECT kind, key, state FROM jobs WHERE report_id = ?1 AND kind = 'review'",
        first.report_id,
    );
    assert_eq!(
        reviews,
        vec![(
            "review".to_string(),
            format!("review:{}-r1", first.report_id),
            "pending".to_string()
        )]
    );

    // A step run again over a publication already recorded (as an earlier version, which
    // committed publications on their own, could leave it) gets it back unchanged.
    let mut recompiled = store
        .compile_report(first.report_id)
        .await
        .unwrap()
        .unwrap();
    recompiled.result = Some(ReviewResult::unclassified("x"));
    let (again, effects) = deepalert_local::store::collect_deferred(async {
        store
            .record_publication(&recompiled, &pid, clock.now())
            .await
    })
    .await;
    assert_eq!(again.unwrap().publications, 1);
    assert!(effects.is_empty());
}

/// Holds the first review until released; says how many alerts each review saw.
struct GatedReviewer {
    calls: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl Reviewer for GatedReviewer {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.gate.acquire().await.unwrap().forget();
        }
        Ok(Some(ReviewResult::unclassified(format!(
            "{} alert(s)",
            report.alerts.len()
        ))))
    }
}

/// The engine with review jobs, this reviewer and one emitter that collects what it gets.
fn run_reviewed_by(reviewer: Arc<dyn Reviewer>) -> (Running, Arc<CollectingEmitter>) {
    let emitted = Arc::new(CollectingEmitter::default());
    let plugins = Plugins {
        reviewer,
        emitters: vec![EmitterEntry {
            name: "collect".into(),
            max_attempts: 1,
            plugin: emitted.clone(),
        }],
        ..Plugins::default()
    };
    let run = run_engine_with(plugins, PipelineSettings::default(), Duration::ZERO);
    (run, emitted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_joins_during_the_review_is_published_in_the_next_round() {
    let reviewer = Arc::new(GatedReviewer {
        calls: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
    });
    let (run, emitted) = run_reviewed_by(reviewer.clone());
    let first = run
        .engine
        .receive(&alert("first", vec![ip("192.0.2.1")]))
        .await
        .unwrap();
    for _ in 0..200 {
        if reviewer.calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reviewer.calls.load(Ordering::SeqCst), 1, "review started");
    let second = run
        .engine
        .receive(&alert("second", vec![ip("192.0.2.2")]))
        .await
        .unwrap();
    assert_eq!(second.report_id, first.report_id);
    reviewer.gate.add_permits(1);

    let report = wait_published(&run.engine, first.report_id, 2).await;
    assert_eq!(report.alerts.len(), 2);
    assert_eq!(report.result.unwrap().reason, "2 alert(s)");
    // Until the report's work is done and every publication was emitted.
    let pending = || {
        job_rows::<i64, i64, i64>(
            run._dir.path(),
            "SELECT count(*), 0, 0 FROM jobs WHERE report_id = ?1 AND state = 'pending'",
            first.report_id,
        )[0]
        .0
    };
    let published = || {
        job_rows::<i64, i64, i64>(
            run._dir.path(),
            "SELECT count(*), 0, 0 FROM publications WHERE report_id = ?1",
            first.report_id,
        )[0]
        .0 as usize
    };
    for _ in 0..250 {
        if pending() == 0 && emitted.0.lock().unwrap().len() == published() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent: Vec<(u32, usize)> = emitted
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.publications, r.alerts.len()))
        .collect();
    assert_eq!(sent[..2], [(1, 1), (2, 2)], "{sent:?}");
    // The second alert's own dispatch may run after the second round was published and
    // ask for one more (its inspections could have found more): same alerts, next number.
    for (i, later) in sent.iter().enumerate().skip(2) {
        assert_eq!(*later, (i as u32 + 1, 2), "{sent:?}");
    }

    // Emitters get each publication exactly as stored, though it is served from memory.
    let stored: Vec<(String, String, i64)> = job_rows(
        run._dir.path(),
        "SELECT snapshot, publication_id, number FROM publications WHERE report_id = ?1 ORDER BY number",
        first.report_id,
    );
    let stored: Vec<Report> = stored
        .iter()
        .map(|(json, _, _)| serde_json::from_str(json).unwrap())
        .collect();
    assert_eq!(*emitted.0.lock().unwrap(), stored);
}

#[tokio::test]
async fn the_reviewed_report_carries_flow_steps_and_not_the_pipeline_log() {
    let (_dir, store) = open_store();
    let wf = RecordingWorkflow::default();
    let clock = FakeClock::at("2026-11-22T00:00:00Z");
    let r = receive_alert(
        &store,
        &wf,
        &clock,
        &PipelineSettings::default(),
        &alert("a", vec![]),
    )
    .await
    .unwrap();
    let step = TimelineEntry {
        at: clock.now(),
        kind: TimelineEntry::FLOW.into(),
        message: "isolate: notify done".into(),
        detail: serde_json::json!({"flow": "isolate"}),
    };
    store
        .append_timeline(r.report_id, std::slice::from_ref(&step))
        .await
        .unwrap();

    let everything = store.compile_report(r.report_id).await.unwrap().unwrap();
    let kinds: Vec<&str> = everything
        .timeline
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["alert", "flow"],
        "the store keeps the whole log"
    );

    let reviewed = store
        .compile_report_for_review(r.report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reviewed.timeline, vec![step]);
    assert_eq!(
        Report {
            timeline: vec![],
            ..reviewed
        },
        Report {
            timeline: vec![],
            ..everything
        },
        "only the timeline differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_and_emitters_get_no_pipeline_log_and_the_store_keeps_it() {
    struct TimelineReviewer(Mutex<Vec<usize>>);
    #[async_trait]
    impl Reviewer for TimelineReviewer {
        async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
            self.0.lock().unwrap().push(report.timeline.len());
            Ok(Some(ReviewResult::unclassified("seen")))
        }
    }
    let reviewer = Arc::new(TimelineReviewer(Mutex::default()));
    let (run, emitted) = run_reviewed_by(reviewer.clone());
    let r = run
        .engine
        .receive(&alert("a", vec![ip("192.0.2.1")]))
        .await
        .unwrap();
    wait_published(&run.engine, r.report_id, 1).await;
    for _ in 0..100 {
        if !emitted.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*reviewer.0.lock().unwrap(), vec![0]);
    let sent = emitted.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].timeline.is_empty(), "{:?}", sent[0].timeline);
    let log = run
        .engine
        .store()
        .compile_report(r.report_id)
        .await
        .unwrap()
        .unwrap()
        .timeline;
    for kind in ["alert", "review", "publication"] {
        assert!(
            log.iter().any(|e| e.kind == kind),
            "{kind} missing from the stored timeline {log:?}"
        );
    }
}
