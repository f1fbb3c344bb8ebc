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
//! - the same burst with `durability = "full"`, and a long burst (BENCH_LONG_ALERTS,
//!   default 100,000; 0 skips it) whose first and last 10 % show whether it slows down as
//!   the database grows; durable writes per alert and transactions per second for each.
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

// As `deepalert serve` (crates/deepalert-cli/src/main.rs), so the bench measures its allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// CPU time used so far by each live thread of this process, in clock ticks (USER_HZ, 100
/// per second on Linux): (thread id, group) → ticks, the group named from the thread: the
/// store's writer, its readers, tokio's workers, the rest. Per thread, so a thread that ends
/// during a burst (a stopped engine's writer) does not skew its group. CPU per alert varies
/// much less from run to run than alerts per second.
fn cpu_ticks_by_thread() -> HashMap<(String, &'static str), u64> {
    let mut ticks = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return ticks;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: the name may hold spaces, so split after its `)`.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); 12 and 13 after the `)`.
        let used: u64 = fields
            .get(11..13)
            .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
        let group = if name.starts_with("sqlite-writer") {
            "writer"
        } else if name.starts_with("sqlite-reader") {
            "readers"
        } else if name.starts_with("tokio-rt-worker") {
            "workers"
        } else {
            "other"
        };
        ticks.insert(
            (task.file_name().to_string_lossy().into_owned(), group),
            used,
        );
    }
    ticks
}

/// One row per autocommit transaction, the same pragmas as the store.
fn raw_insert_rate(dir: &std::path::Path, durability: Durability, n: usize) -> f64 {
    let mut conn = rusqlite::Connection::open(dir.join(format!("raw-{durability:?}.db"))).unwrap();
    configure_connection(&mut conn, durability).unwrap();
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
    // A cursor, not a scan of every id per emit: that is quadratic, and on 2 cores the
    // harness would take a core from the engine it measures.
    let mut waiting = 0;
    loop {
        let notified = watch.signal.notified();
        {
            let done = watch.emitted.lock().unwrap();
            while waiting < ids.len() && done.contains_key(&ids[waiting]) {
                waiting += 1;
            }
            if waiting == ids.len() {
                return;
            }
        }
        if Instant::now() > deadline {
            panic!("not every report was emitted within {limit:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

struct Bench {
    engine: Arc<Engine>,
    watch: Arc<Stopwatch>,
    stop: tokio::sync::oneshot::Sender<()>,
    runner: tokio::task::JoinHandle<deepalert_core::ports::PortResult<()>>,
}

/// The engine as `deepalert serve` runs it, with the example Rego policies as reviewer.
fn start_engine(dir: &std::path::Path, durability: Durability) -> Bench {
    let watch = Arc::new(Stopwatch::default());
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let reviewer = deepalert_plugins::PolicyReviewer::load(&policies).expect("example policies");
    let plugins = Plugins {
        inspectors: vec![InspectorEntry {
            name: "in-process".into(),
            attribute_types: None,
            plugin: Arc::new(InProcessInspector),
        }],
        reviewer: Arc::new(reviewer),
        emitters: vec![EmitterEntry {
            name: "stopwatch".into(),
            max_attempts: 1,
            plugin: watch.clone(),
        }],
        ..Plugins::default()
    };
    let store = SqliteStore::open(dir, durability).unwrap();
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
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(engine.clone().run(async {
        let _ = stop_rx.await;
    }));
    Bench {
        engine,
        watch,
        stop,
        runner,
    }
}

impl Bench {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.runner.await;
    }
}

struct Burst {
    total: Duration,
    accepted_in: Duration,
    accept: Vec<Duration>,
    writes: u64,
    transactions: u64,
    /// CPU ticks per thread group during the burst.
    cpu: HashMap<&'static str, u64>,
}

async fn burst(b: &Bench, run: &str, n: usize, concurrency: usize) -> Burst {
    let (w0, t0) = b.engine.store().write_stats();
    let cpu0 = cpu_ticks_by_thread();
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    // Finished receive tasks are reaped as the burst goes: a JoinHandle keeps its task's
    // memory, and 100,000 of them would be the harness's RSS, not the engine's.
    let mut running = tokio::task::JoinSet::new();
    let mut ids = Vec::with_capacity(n);
    let mut accept = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let engine = b.engine.clone();
        let run = run.to_string();
        running.spawn(async move {
            let t = Instant::now();
            let receipt = engine.receive(&alert(&run, i)).await.expect("receive");
            drop(permit);
            (receipt.report_id, t.elapsed())
        });
        while let Some(done) = running.try_join_next() {
            let (id, took) = done.unwrap();
            ids.push(id);
            accept.push(took);
        }
    }
    while let Some(done) = running.join_next().await {
        let (id, took) = done.unwrap();
        ids.push(id);
        accept.push(took);
    }
    let accepted_in = start.elapsed();
    wait_emitted(&b.watch, &ids, Duration::from_secs(3600)).await;
    let mut emits: Vec<Instant> = {
        let done = b.watch.emitted.lock().unwrap();
        ids.iter().map(|id| done[id]).collect()
    };
    emits.sort();
    let total = *emits.last().unwrap() - start;
    accept.sort();
    let (w1, t1) = b.engine.store().write_stats();
    let mut cpu: HashMap<&'static str, u64> = HashMap::new();
    for (thread, t) in cpu_ticks_by_thread() {
        let before = cpu0.get(&thread).copied().unwrap_or(0);
        *cpu.entry(thread.1).or_default() += t.saturating_sub(before);
    }
    Burst {
        cpu,
        total,
        accepted_in,
        accept,
        writes: w1 - w0,
        transactions: t1 - t0,
    }
}

fn print_burst(label: &str, n: usize, r: &Burst) {
    println!("  {label}:");
    println!(
        "    end to end (first receive → last emit): {:>9.0} alerts/s  ({:.2} s)",
        n as f64 / r.total.as_secs_f64(),
        r.total.as_secs_f64()
    );
    println!(
        "    accepted (receive calls):               {:>9.0} alerts/s  (p50 {:.2} ms, p99 {:.2} ms per call)",
        n as f64 / r.accepted_in.as_secs_f64(),
        percentile(&r.accept, 0.5).as_secs_f64() * 1e3,
        percentile(&r.accept, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "    durable writes per alert: {:.1}   transactions/s: {:.0}   writes per transaction: {:.1}",
        r.writes as f64 / n as f64,
        r.transactions as f64 / r.total.as_secs_f64(),
        r.writes as f64 / r.transactions.max(1) as f64
    );
    // Ticks are 10 ms: 1e4 µs per tick.
    let per_alert = |group: &str| r.cpu.get(group).copied().unwrap_or(0) as f64 * 1e4 / n as f64;
    let total: f64 = ["writer", "readers", "workers", "other"]
        .iter()
        .map(|g| per_alert(g))
        .sum();
    println!(
        "    CPU per alert: {total:.0} µs (sqlite writer {:.0}, readers {:.0}, tokio workers {:.0}, other {:.0})",
        per_alert("writer"),
        per_alert("readers"),
        per_alert("workers"),
        per_alert("other")
    );
}

fn main() {
    let n = env_usize("BENCH_ALERTS", 5000);
    let latency_n = env_usize("BENCH_LATENCY_ALERTS", 300);
    let concurrency = env_usize("BENCH_CONCURRENCY", 64);
    let long_n = env_usize("BENCH_LONG_ALERTS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    rt.block_on(async {
        println!("deepalert embedded engine, delays 0, 3 attributes/alert, 1 in-process inspector, Rego reviewer (examples/policies), 1 emitter");

        let b = start_engine(&dir.path().join("normal"), Durability::Normal);
        let normal = burst(&b, "burst", n, concurrency).await;
        print_burst(&format!("burst of {n} alerts, durability=normal ({concurrency} concurrent receivers)"), n, &normal);

        // Overhead: one at a time.
        let mut overhead = Vec::with_capacity(latency_n);
        for i in 0..latency_n {
            let t = Instant::now();
            let receipt = b.engine.receive(&alert("latency", i)).await.expect("receive");
            wait_emitted(&b.watch, &[receipt.report_id], Duration::from_secs(30)).await;
            overhead.push(b.watch.emitted.lock().unwrap()[&receipt.report_id] - t);
        }
        overhead.sort();
        println!("  pipeline overhead, {latency_n} alerts one at a time (receive → emit, 7+ durable steps):");
        println!("    p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            percentile(&overhead, 0.5).as_secs_f64() * 1e3,
            percentile(&overhead, 0.99).as_secs_f64() * 1e3,
            overhead.last().unwrap().as_secs_f64() * 1e3);
        b.stop().await;

        let b = start_engine(&dir.path().join("full"), Durability::Full);
        let full = burst(&b, "full", n, concurrency).await;
        print_burst(&format!("burst of {n} alerts, durability=full"), n, &full);
        b.stop().await;

        if long_n > 0 {
            let b = start_engine(&dir.path().join("long"), Durability::Normal);
            // Ten bursts of a tenth each, one after the other, on the same growing
            // database: the first and the last tenth measured the same way. (Within one
            // burst the last emits only drain a backlog, which says nothing of growth.)
            let tenth = (long_n / 10).max(1);
            let (mut writes, mut transactions, mut total) = (0, 0, Duration::ZERO);
            let mut rates = Vec::new();
            for part in 0..10 {
                let r = burst(&b, &format!("long{part}"), tenth, concurrency).await;
                writes += r.writes;
                transactions += r.transactions;
                total += r.total;
                rates.push(tenth as f64 / r.total.as_secs_f64());
            }
            let n = tenth * 10;
            println!("  {n} alerts, ten bursts of {tenth} in a row (the database grows):");
            println!("    end to end: {:>9.0} alerts/s  ({:.2} s)   durable writes per alert: {:.1}   transactions/s: {:.0}",
                n as f64 / total.as_secs_f64(), total.as_secs_f64(),
                writes as f64 / n as f64, transactions as f64 / total.as_secs_f64());
            println!("    first 10 %: {:>9.0} alerts/s   last 10 %: {:>9.0} alerts/s",
                rates[0], rates[9]);
            // All ten: a tenth that includes a WAL restart (which holds the writer for tens
            // of ms) is slower, whatever the database's size; the first starts with none.
            let each: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            println!("    each tenth (alerts/s): {}", each.join(" "));
            let wal = std::fs::metadata(dir.path().join("long/deepalert.db-wal")).map_or(0, |m| m.len());
            println!("    WAL file after the run: {:.1} MiB", wal as f64 / 1048576.0);
            b.stop().await;
        }

        let raw_normal = raw_insert_rate(dir.path(), Durability::Normal, 20_000);
        let raw_full = raw_insert_rate(dir.path(), Durability::Full, 2_000);
        println!("  raw SQLite inserts, one row per transaction, same disk and pragmas:");
        println!("    durability=normal (default): {raw_normal:>9.0} rows/s");
        println!("    durability=full:             {raw_full:>9.0} rows/s");
        println!("  peak RSS: {:.1} MiB", peak_rss_mib());
    });
}
