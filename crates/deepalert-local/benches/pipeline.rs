//! `make bench`: the embedded engine end to end with delays at zero.
//!
//! - throughput: a burst of N alerts (3 attributes each, unique AlertIDs) through receive →
//!   dispatch → 3 inspections → review → publish → emit; alerts/s from first receive to
//!   last emit;
//! - overhead: alerts sent one at a time, each waiting for its emit; p50/p99 of
//!   receive-to-emit (pure pipeline overhead: delays are zero, plug-ins in process);
//! - baseline: raw durable SQLite inserts (one row per transaction) on the same disk with
//!   the same pragmas, measured in the same run.
//!
//! Env: BENCH_ALERTS (default 5000), BENCH_LATENCY_ALERTS (default 300),
//! BENCH_CONCURRENCY (default 64, concurrent receivers in the burst).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deepalert_core::finding::ContentHost;
use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use deepalert_core::{
    Alert, AttrContext, AttrType, Attribute, FindingContent, InspectorOutput, Report, ReportId,
    Task,
};
use deepalert_local::plugins::{
    EmitterEntry, EmitterPlugin, InspectorEntry, InspectorPlugin, PluginError, Plugins,
};
use deepalert_local::store::configure_connection;
use deepalert_local::{Durability, Engine, RuntimeSettings, SqliteStore};
use tokio::sync::Notify;

/// Stands in for the example inspector, in process: one host finding per attribute.
struct InProcessInspector;

#[async_trait]
impl InspectorPlugin for InProcessInspector {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        Ok(InspectorOutput {
            findings: vec![FindingContent::Host(ContentHost {
                ipaddr: vec![task.attribute.value.clone()],
                owner: vec!["bench".into()],
                ..Default::default()
            })],
            attributes: vec![],
        })
    }
}

#[derive(Default)]
struct Stopwatch {
    emitted: Mutex<HashMap<ReportId, Instant>>,
    signal: Notify,
}

#[async_trait]
impl EmitterPlugin for Stopwatch {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        self.emitted
            .lock()
            .unwrap()
            .insert(report.id, Instant::now());
        self.signal.notify_waiters();
        Ok(())
    }
}

fn alert(run: &str, i: usize) -> Alert {
    let attr = |t: AttrType, v: String, c: AttrContext| Attribute::new(t, "k", &v, &[c]);
    Alert {
        detector: "bench".into(),
        rule_id: "rule".into(),
        rule_name: "bench rule".into(),
        alert_key: format!("{run}-{i}"),
        description: "benchmark alert".into(),
        timestamp: None,
        attributes: vec![
            attr(
                AttrType::Ipaddr,
                format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                AttrContext::Remote,
            ),
            attr(
                AttrType::Domain,
                format!("host-{i}.example.com"),
                AttrContext::Server,
            ),
            attr(
                AttrType::Username,
                format!("user-{i}"),
                AttrContext::Subject,
            ),
        ],
        body: Some(serde_json::json!({"seq": i})),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One row per autocommit transaction, the same pragmas as the store.
fn raw_insert_rate(dir: &std::path::Path, durability: Durability, n: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join(format!("raw-{durability:?}.db"))).unwrap();
    configure_connection(&conn, durability).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, body TEXT NOT NULL)",
    )
    .unwrap();
    let body = "x".repeat(300);
    let start = Instant::now();
    let mut stmt = conn
        .prepare("INSERT INTO t (k, body) VALUES (?1, ?2)")
        .unwrap();
    for i in 0..n {
        stmt.execute(rusqlite::params![format!("key-{i}"), body])
            .unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn wait_emitted(watch: &Stopwatch, ids: &[ReportId], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let notified = watch.signal.notified();
        {
            let done = watch.emitted.lock().unwrap();
            if ids.iter().all(|id| done.contains_key(id)) {
                return;
            }
        }
        if Instant::now() > deadline {
            panic!("not every report was emitted within {limit:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

fn main() {
    let n = env_usize("BENCH_ALERTS", 5000);
    let latency_n = env_usize("BENCH_LATENCY_ALERTS", 300);
    let concurrency = env_usize("BENCH_CONCURRENCY", 64);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let watch = Arc::new(Stopwatch::default());
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "in-process".into(),
            attribute_types: None,
            plugin: Arc::new(InProcessInspector),
        }],
        emitters: vec![EmitterEntry {
            name: "stopwatch".into(),
            max_attempts: 1,
            plugin: watch.clone(),
        }],
        ..Plugins::default()
    };
    let store = SqliteStore::open(&dir.path().join("engine"), Durability::Normal).unwrap();
    let runtime = RuntimeSettings {
        inspection_delay: Duration::ZERO,
        review_delay: Duration::ZERO,
        max_concurrent_jobs: env_usize(
            "BENCH_JOBS",
            RuntimeSettings::default().max_concurrent_jobs,
        ),
        ..RuntimeSettings::default()
    };
    let engine = Engine::new(
        store,
        plugins,
        PipelineSettings::default(),
        runtime,
        Arc::new(SystemClock),
    );

    rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(engine.clone().run(async {
            let _ = stop_rx.await;
        }));

        // Throughput: a burst.
        let start = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let engine = engine.clone();
            handles.push(tokio::spawn(async move {
                let t = Instant::now();
                let receipt = engine.receive(&alert("burst", i)).await.expect("receive");
                drop(permit);
                (receipt.report_id, t.elapsed())
            }));
        }
        let mut ids = Vec::with_capacity(n);
        let mut accept = Vec::with_capacity(n);
        for h in handles {
            let (id, took) = h.await.unwrap();
            ids.push(id);
            accept.push(took);
        }
        let accepted_in = start.elapsed();
        wait_emitted(&watch, &ids, Duration::from_secs(600)).await;
        let last = ids.iter().map(|id| watch.emitted.lock().unwrap()[id]).max().unwrap();
        let total = last - start;
        accept.sort();

        // Overhead: one at a time.
        let mut overhead = Vec::with_capacity(latency_n);
        for i in 0..latency_n {
            let t = Instant::now();
            let receipt = engine.receive(&alert("latency", i)).await.expect("receive");
            wait_emitted(&watch, &[receipt.report_id], Duration::from_secs(30)).await;
            overhead.push(watch.emitted.lock().unwrap()[&receipt.report_id] - t);
        }
        overhead.sort();

        let _ = stop_tx.send(());
        let _ = runner.await;

        let raw_normal = raw_insert_rate(dir.path(), Durability::Normal, 20_000);
        let raw_full = raw_insert_rate(dir.path(), Durability::Full, 2_000);

        println!("deepalert embedded engine, delays 0, 3 attributes/alert, 1 in-process inspector, 1 emitter");
        println!("  burst of {n} alerts ({concurrency} concurrent receivers):");
        println!("    end to end (first receive → last emit): {:>9.0} alerts/s  ({:.2} s)", n as f64 / total.as_secs_f64(), total.as_secs_f64());
        println!("    accepted (receive calls):               {:>9.0} alerts/s  (p50 {:.2} ms, p99 {:.2} ms per call)",
            n as f64 / accepted_in.as_secs_f64(),
            percentile(&accept, 0.5).as_secs_f64() * 1e3,
            percentile(&accept, 0.99).as_secs_f64() * 1e3);
        println!("  pipeline overhead, {latency_n} alerts one at a time (receive → emit, 7+ durable steps):");
        println!("    p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            percentile(&overhead, 0.5).as_secs_f64() * 1e3,
            percentile(&overhead, 0.99).as_secs_f64() * 1e3,
            overhead.last().unwrap().as_secs_f64() * 1e3);
        println!("  raw SQLite inserts, one row per transaction, same disk and pragmas:");
        println!("    durability=normal (default): {raw_normal:>9.0} rows/s");
        println!("    durability=full:             {raw_full:>9.0} rows/s");
        println!("  peak RSS: {:.1} MiB", peak_rss_mib());
    });
}
