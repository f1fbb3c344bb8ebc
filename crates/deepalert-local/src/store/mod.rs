//! The embedded store: SQLite (WAL) holding reports, alerts, attributes, findings, notes,
//! publications and the durable job queue that replaces Step Functions locally.
//!
//! Writes go to one writer thread that commits them in groups (one transaction, one
//! savepoint per write), so under load many writes share a commit; each caller is answered
//! after the commit that holds its write. Reads use their own connection from
//! `spawn_blocking`, so the async runtime never waits on disk.

pub(crate) mod jobs;
mod writer;

pub use writer::WriteStats;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deepalert_core::flows::{FlowRun, FlowRunKey};
use deepalert_core::ports::{
    AlertReceipt, AttributeClaim, ClaimOutcome, NewAlert, PluginState, PortError, PortResult,
    ReportHead, Store, StoredAlert,
};
use deepalert_core::{
    Alert, AttrHash, Attribute, Finding, FindingContent, Note, Report, ReportId, ReportStatus,
    ReviewResult, SectionsBuilder, Severity, TimelineEntry, sha256_hex,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::Notify;

pub use jobs::{JobKind, LeasedJob, NewJob};

/// How hard each commit pushes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a committed alert survives a crash of the process;
    /// a power loss can lose the last commits. SQLite's recommended WAL setting.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced; survives power loss, much slower.
    Full,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot start a database thread: {source}")]
    Thread { source: std::io::Error },
}

/// Writes a job makes that need no answer, applied with the job's completion.
#[derive(Default)]
pub struct DeferredWrites(Vec<DeferredWrite>);

type DeferredWrite = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

impl DeferredWrites {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn apply(self, c: &Connection) -> rusqlite::Result<()> {
        self.0.into_iter().try_for_each(|w| w(c))
    }
}

tokio::task_local! {
    static DEFERRED: std::cell::RefCell<DeferredWrites>;
}

/// Runs `work` keeping the writes it makes that need no answer (jobs enqueued, findings,
/// notes, "dispatched" marks) instead of writing them; pass them to
/// [`SqliteStore::finish`] so a job's effects and its completion are one write. A job that
/// does not finish loses them with it and runs again, as if it had never run.
pub async fn collect_deferred<F: std::future::Future>(work: F) -> (F::Output, DeferredWrites) {
    DEFERRED
        .scope(std::cell::RefCell::new(DeferredWrites::default()), async {
            let out = work.await;
            let writes = DEFERRED.with(|d| d.take());
            (out, writes)
        })
        .await
}

/// Read connections: WAL readers do not block each other or the writer.
const READERS: usize = 2;

/// A read, run on a reader thread.
type ReadOp = Box<dyn FnOnce(&Connection) + Send>;

/// Each read connection has its own thread, fed by a channel: reads from hundreds of jobs
/// queue there instead of parking as many blocking-pool threads on a connection's lock.
fn spawn_reader(conn: Connection, n: usize) -> std::io::Result<std::sync::mpsc::Sender<ReadOp>> {
    let (tx, rx) = std::sync::mpsc::channel::<ReadOp>();
    std::thread::Builder::new()
        .name(format!("sqlite-reader-{n}"))
        .spawn(move || {
            // Ends when every store handle (sender) is dropped.
            while let Ok(op) = rx.recv() {
                // A panicking read drops its answer (its caller gets an error); the
                // thread serves the next one.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&conn)));
            }
        })?;
    Ok(tx)
}

/// Publications recorded lately by this process, so an emit job need not read back and
/// parse the snapshot its review job has just written. Bounded; a miss reads the database.
#[derive(Default)]
struct RecentPublications {
    snapshots: HashMap<String, Report>,
    order: VecDeque<String>,
}

const RECENT_PUBLICATIONS: usize = 512;

impl RecentPublications {
    fn insert(&mut self, publication_id: &str, snapshot: &Report) {
        let replaced = self
            .snapshots
            .insert(publication_id.to_string(), snapshot.clone());
        if replaced.is_none() {
            self.order.push_back(publication_id.to_string());
        }
        while self.order.len() > RECENT_PUBLICATIONS {
            if let Some(old) = self.order.pop_front() {
                self.snapshots.remove(&old);
            }
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: std::sync::mpsc::Sender<writer::Op>,
    stats: Arc<writer::WriteStats>,
    readers: Arc<[std::sync::mpsc::Sender<ReadOp>]>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    /// Woken whenever a job becomes due now, so the runner does not poll.
    job_signal: Arc<Notify>,
    /// Held only so the checkpointer thread ends with the last store handle.
    _checkpointer: std::sync::mpsc::Sender<()>,
    /// Set by the engine: storing an alert also queues its run's dispatch job, this long
    /// after, in the same commit (see [`SqliteStore::with_run_jobs`]).
    run_delay: Option<std::time::Duration>,
    /// Set by the engine: a publication recorded by a review job commits with the job's
    /// completion, and queues the next round's review (due this long after) when alerts
    /// joined during the review (see [`SqliteStore::with_review_jobs`]).
    review_delay: Option<std::time::Duration>,
    recent: Arc<std::sync::Mutex<RecentPublications>>,
}

/// WAL frames (pages) past which the checkpointer restarts the WAL: 256 MiB of 4 KiB pages.
/// A restart locks the writer out for ~20-100 ms on this project's test machine; under a
/// sustained burst the WAL grows ~150 MiB/s. At 128 MiB a burst of 5,000 alerts ended in a
/// restart that held the next alert ~80 ms; at 256 MiB such a burst's WAL is copied and
/// started over without one (SQLite restarts a fully copied WAL at the next write).
const WAL_RESTART_FRAMES: i64 = 65_536;

/// WAL frames not yet copied below which the checkpointer may RESTART (which copies them
/// with the writer locked out): 4 MiB.
const RESTART_LEFTOVER_FRAMES: i64 = 1_024;

/// A PASSIVE checkpoint: (frames in the WAL, frames of it not copied yet).
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let (frames, copied): (i64, i64) = (r.get(1)?, r.get(2)?);
        Ok((frames, frames - copied))
    })
}

/// How often the checkpointer copies the WAL into the database. A page rewritten by many
/// commits in between (an index's interior pages, the job queue's) is copied once: every
/// 250 ms instead cost ~15 µs more CPU per alert in the bench. Durability does not depend
/// on it (a commit is in the WAL before it is answered).
const CHECKPOINT_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// Copies the WAL into the database from its own connection, every `period`: the writer
/// never checkpoints itself, so a checkpoint's copying and fsyncs no longer stall every
/// write queued behind it.
fn spawn_checkpointer(
    conn: Connection,
    period: std::time::Duration,
) -> std::io::Result<std::sync::mpsc::Sender<()>> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpointer".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                // PASSIVE copies what no reader still needs and waits for no one, but the
                // writer appends all the while, so the WAL would never be found fully copied
                // and would grow without end. Past `WAL_RESTART_FRAMES` a RESTART makes the
                // writer wait for the little PASSIVE left, so the next write starts the WAL
                // over (and `journal_size_limit` cuts the file back).
                let restarted = passive(&conn).and_then(|(frames, mut left)| {
                    if frames <= WAL_RESTART_FRAMES {
                        return Ok(());
                    }
                    // The RESTART copies and syncs what is left with the writer locked out:
                    // what was appended while PASSIVE copied the rest, up to a second of
                    // writes. Passes of PASSIVE first bring that down to a few MiB (a pass
                    // copies faster than the writer appends).
                    for _ in 0..8 {
                        if left <= RESTART_LEFTOVER_FRAMES {
                            break;
                        }
                        left = passive(&conn)?.1;
                    }
                    conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                });
                if let Err(e) = restarted {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
                }
            }
        })?;
    Ok(tx)
}

/// Which reports to list; empty fields match every report.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub status: Option<ReportStatus>,
    pub severity: Option<SeverityFilter>,
    pub detector: Option<String>,
    /// Case-insensitive, in the rule id or name, an alert key or an attribute value.
    pub text: Option<String>,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeverityFilter {
    Is(Severity),
    /// No verdict yet.
    Unreviewed,
}

/// A line in the report list.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReportSummary {
    pub id: ReportId,
    pub status: ReportStatus,
    pub detector: String,
    pub rule_id: String,
    pub rule_name: String,
    /// The first alert's.
    #[serde(default)]
    pub alert_key: String,
    pub alerts: u32,
    pub result: Option<ReviewResult>,
    pub publications: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Statements through the connection's prepared-statement cache: parsing the same SQL
/// again for every write was a tenth of the writer thread's time.
pub(crate) trait CachedSql {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl CachedSql for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Applies deepalert's pragmas; also used by the benchmark's raw-insert baseline so both
/// measure the same durability.
pub fn configure_connection(conn: &mut Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // A bigger page cache and rarer checkpoints: hot pages (job queue, indexes) are
    // rewritten many times between checkpoints and copied to the database once.
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8_000)?;
    // Every write runs in its own savepoint (see writer.rs), whose undo pages go to a
    // statement journal: in memory, not a temporary file per transaction.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // More distinct statements than rusqlite's default of 16 are in use.
    conn.set_prepared_statement_cache_capacity(256);
    conn.busy_handler(Some(wait_briefly))?;
    Ok(())
}

/// Waits for a lock in steps of 1 ms, up to ~10 s. SQLite's own busy timeout sleeps up to
/// 100 ms a step: the checkpointer's WAL restart, which must find a moment without
/// readers, starved for seconds with the writer locked out all that time, and the writer
/// then slept on after the checkpoint was done.
fn wait_briefly(attempt: i32) -> bool {
    std::thread::sleep(std::time::Duration::from_millis(1));
    attempt < 10_000
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn sql_err(what: &'static str) -> impl FnOnce(rusqlite::Error) -> PortError {
    move |e| PortError::with_source(format!("sqlite: {what}"), e)
}

fn json_col<T: serde::de::DeserializeOwned>(idx: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain types always serialize")
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/deepalert.db`.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("deepalert.db");
        let open = |p: &Path| -> Result<Connection, OpenError> {
            let mut conn = Connection::open(p).map_err(|source| OpenError::Open {
                path: p.to_path_buf(),
                source,
            })?;
            configure_connection(&mut conn, durability).map_err(|source| OpenError::Open {
                path: p.to_path_buf(),
                source,
            })?;
            Ok(conn)
        };
        let writer = open(&path)?;
        writer
            .execute_batch(include_str!("schema.sql"))
            .and_then(|()| migrate(&writer))
            .map_err(|source| OpenError::Open {
                path: path.clone(),
                source,
            })?;
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            // A reset WAL is cut back to this size, so one burst does not keep it large.
            .and_then(|()| writer.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024))
            .map_err(|source| OpenError::Open {
                path: path.clone(),
                source,
            })?;
        let checkpointer = spawn_checkpointer(open(&path)?, CHECKPOINT_PERIOD)
            .map_err(|source| OpenError::Thread { source })?;
        let readers = (0..READERS)
            .map(|n| spawn_reader(open(&path)?, n).map_err(|source| OpenError::Thread { source }))
            .collect::<Result<Vec<_>, _>>()?;
        let stats = Arc::new(writer::WriteStats::default());
        Ok(SqliteStore {
            writer: writer::spawn(writer, stats.clone()),
            stats,
            readers: readers.into(),
            next_reader: Arc::default(),
            job_signal: Arc::new(Notify::new()),
            _checkpointer: checkpointer,
            run_delay: None,
            review_delay: None,
            recent: Arc::default(),
        })
    }

    /// This handle queues each stored alert's dispatch job `delay` after it, in the alert's
    /// own commit: one write per alert instead of two, and no stored alert without its run.
    pub fn with_run_jobs(mut self, delay: std::time::Duration) -> Self {
        self.run_delay = Some(delay);
        self
    }

    /// In a review job, this handle records the publication with the job's completion (one
    /// write instead of two), and there checks whether alerts joined the report while it was
    /// reviewed: if so the next round's review is queued, due `delay` later, in that same
    /// commit. (Alerts stored after it find the report published and ask for their own.)
    pub fn with_review_jobs(mut self, delay: std::time::Duration) -> Self {
        self.review_delay = Some(delay);
        self
    }

    pub(crate) fn forget_recent_publications(&self) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        *recent = RecentPublications::default();
    }

    fn recent_publication(&self, publication_id: &str) -> Option<Report> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.snapshots.get(publication_id).cloned()
    }

    /// Called on every attempt: in a review job the publication commits with the job, so
    /// an attempt that does not commit is replaced by the one that does (attempts run one
    /// after another), and an emit job exists only once one has.
    fn remember_publication(&self, publication_id: &str, snapshot: &Report) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(publication_id, snapshot);
    }

    /// (writes, transactions) committed since the store opened.
    pub fn write_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.stats.writes.load(Relaxed),
            self.stats.transactions.load(Relaxed),
        )
    }

    pub(crate) fn job_signal(&self) -> Arc<Notify> {
        self.job_signal.clone()
    }

    /// Runs `f` on the writer thread inside its own savepoint of the current batch, and
    /// answers once the batch is committed: an Ok is durable (see [`Durability`]).
    async fn write<T, F>(&self, what: &'static str, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<PortResult<T>>();
        let op: writer::Op = Box::new(move |conn| {
            let Some(conn) = conn else {
                return writer::Ran::failed(move |e| {
                    let _ = reply.send(Err(PortError::new(format!("sqlite: {what}: {e}"))));
                });
            };
            match f(conn) {
                Ok(value) => writer::Ran::ok(move |commit: Result<(), String>| {
                    let _ = reply.send(commit.map(|()| value).map_err(|e| {
                        PortError::new(format!("sqlite: {what}: commit failed: {e}"))
                    }));
                }),
                Err(e) => writer::Ran::failed(move |_| {
                    let _ = reply.send(Err(sql_err(what)(e)));
                }),
            }
        });
        self.writer
            .send(op)
            .map_err(|_| PortError::new("sqlite writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| PortError::new("sqlite writer thread has stopped"))?
    }

    /// A write that returns nothing: inside [`collect_deferred`] it is kept for the job's
    /// completion (one write, one commit, with it); elsewhere it is written now.
    async fn write_or_defer<F>(&self, what: &'static str, f: F) -> PortResult<()>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        let mut pending = Some(f);
        // Outside a job's scope `try_with` fails and the write stays pending.
        let _ = DEFERRED.try_with(|d| {
            if let Some(f) = pending.take() {
                d.borrow_mut().0.push(Box::new(f));
            }
        });
        match pending {
            None => Ok(()),
            Some(f) => self.write(what, f).await,
        }
    }

    async fn read<T, F>(&self, what: &'static str, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pick = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.readers.len();
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.readers[pick]
            .send(Box::new(move |c: &Connection| {
                let _ = answer.send(f(c));
            }))
            .map_err(|_| PortError::new("sqlite reader thread has stopped"))?;
        answered
            .await
            .map_err(|_| PortError::new(format!("sqlite read failed (it panicked): {what}")))?
            .map_err(sql_err(what))
    }

    /// Newest (most recently changed) first; among reports changed in the same millisecond,
    /// the last created first (report ids are UUID v7, ordered by creation).
    pub async fn list_reports(&self, filter: &ReportFilter) -> PortResult<Vec<ReportSummary>> {
        let f = filter.clone();
        self.read("list reports", move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.id, r.status, r.result, r.publications, r.created_at, r.updated_at,
                        (SELECT body FROM alerts a WHERE a.report_id = r.id ORDER BY seq LIMIT 1),
                        (SELECT count(*) FROM alerts a WHERE a.report_id = r.id)
                 FROM reports r
                 WHERE (?1 IS NULL OR r.status = ?1)
                   AND (?2 IS NULL OR (?2 = 'unreviewed' AND r.result IS NULL)
                        OR json_extract(r.result, '$.severity') = ?2)
                   AND (?3 IS NULL OR r.detector = ?3)
                   AND (?4 IS NULL OR instr(lower(r.rule_id), ?4) > 0 OR EXISTS (
                        SELECT 1 FROM alerts a WHERE a.report_id = r.id AND (
                            instr(lower(json_extract(a.body, '$.rule_name')), ?4) > 0
                            OR instr(lower(json_extract(a.body, '$.alert_key')), ?4) > 0
                            OR EXISTS (SELECT 1 FROM json_each(a.body, '$.attributes') t
                                       WHERE instr(lower(json_extract(t.value, '$.value')), ?4) > 0))))
                 ORDER BY r.updated_at DESC, r.id DESC LIMIT ?5 OFFSET ?6",
            )?;
            let severity = f.severity.map(|s| match s {
                SeverityFilter::Unreviewed => "unreviewed",
                SeverityFilter::Is(s) => s.as_str(),
            });
            let text = f.text.as_deref().map(str::to_lowercase);
            let args = params![
                f.status.map(|s| s.as_str()),
                severity,
                f.detector,
                text,
                f.limit,
                f.offset
            ];
            let rows = stmt.query_map(args, |row| {
                let first: Option<String> = row.get(6)?;
                let first: Option<Alert> = first.as_deref().map(|b| json_col(6, b)).transpose()?;
                let result: Option<String> = row.get(2)?;
                Ok(ReportSummary {
                    id: parse_report_id(0, &row.get::<_, String>(0)?)?,
                    status: parse_status(1, &row.get::<_, String>(1)?)?,
                    detector: first
                        .as_ref()
                        .map(|a| a.detector.clone())
                        .unwrap_or_default(),
                    rule_id: first
                        .as_ref()
                        .map(|a| a.rule_id.clone())
                        .unwrap_or_default(),
                    rule_name: first
                        .as_ref()
                        .map(|a| a.rule_name.clone())
                        .unwrap_or_default(),
                    alert_key: first.map(|a| a.alert_key).unwrap_or_default(),
                    alerts: row.get(7)?,
                    result: result.as_deref().map(|r| json_col(2, r)).transpose()?,
                    publications: row.get(3)?,
                    created_at: from_ms(row.get(4)?),
                    updated_at: from_ms(row.get(5)?),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Reports created since `since`, by severity (`unreviewed` for those without a verdict).
    pub async fn severity_counts(&self, since: DateTime<Utc>) -> PortResult<Vec<(String, u64)>> {
        let since = ms(since);
        self.read("count reports by severity", move |c| {
            c.prepare_cached(
                "SELECT coalesce(json_extract(result, '$.severity'), 'unreviewed'), count(*)
                 FROM reports WHERE created_at >= ?1 GROUP BY 1",
            )?
            .query_map([since], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect()
        })
        .await
    }

    /// Every detector that has a report, for filters.
    pub async fn detectors(&self) -> PortResult<Vec<String>> {
        self.read("list detectors", |c| {
            c.prepare_cached("SELECT DISTINCT detector FROM reports ORDER BY 1 LIMIT 500")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .await
    }

    /// The report's timeline, oldest first; `None` if there is no such report.
    pub async fn report_timeline(&self, id: ReportId) -> PortResult<Option<Vec<TimelineEntry>>> {
        let rid = id.to_string();
        self.read("load timeline", move |c| {
            let exists = c
                .prepare_cached("SELECT 1 FROM reports WHERE id = ?1")?
                .exists([&rid])?;
            if !exists {
                return Ok(None);
            }
            timeline(c, &rid, Timeline::Everything).map(Some)
        })
        .await
    }

    /// The report exactly as emitted for a publication.
    pub async fn publication(&self, publication_id: &str) -> PortResult<Option<Report>> {
        if let Some(recent) = self.recent_publication(publication_id) {
            return Ok(Some(recent));
        }
        let id = publication_id.to_string();
        self.read("load publication", move |c| {
            c.row(
                "SELECT snapshot FROM publications WHERE publication_id = ?1",
                [id],
                |row| json_col(0, &row.get::<_, String>(0)?),
            )
            .optional()
        })
        .await
    }

    /// Row counts, for health checks and tests.
    pub async fn counts(&self) -> PortResult<HashMap<String, i64>> {
        self.read("count rows", |c| {
            let mut out = HashMap::new();
            for table in [
                "reports",
                "alerts",
                "attributes",
                "findings",
                "notes",
                "publications",
            ] {
                let n: i64 = c.row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                out.insert(table.to_string(), n);
            }
            let pending: i64 = c.row(
                "SELECT count(*) FROM jobs WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?;
            out.insert("pending_jobs".into(), pending);
            Ok(out)
        })
        .await
    }
}

/// Brings a database made by an earlier version up to `schema.sql` (whose `CREATE … IF NOT
/// EXISTS` leaves existing tables as they were).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_dispatched = conn
        .prepare("SELECT 1 FROM pragma_table_info('alerts') WHERE name = 'dispatched'")?
        .exists([])?;
    if !has_dispatched {
        conn.execute_batch("ALTER TABLE alerts ADD COLUMN dispatched INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

fn parse_report_id(idx: usize, s: &str) -> rusqlite::Result<ReportId> {
    s.parse().map_err(|e: uuid::Error| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_status(idx: usize, s: &str) -> rusqlite::Result<ReportStatus> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

#[async_trait]
impl PluginState for SqliteStore {
    async fn get(&self, key: &str) -> PortResult<Option<String>> {
        let key = key.to_string();
        self.read("load plug-in state", move |c| {
            c.row(
                "SELECT value FROM plugin_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn put(&self, key: &str, value: &str) -> PortResult<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write("store plug-in state", move |c| {
            c.exec(
                "INSERT INTO plugin_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_timeline(
        &self,
        report_id: ReportId,
        entries: &[TimelineEntry],
    ) -> PortResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rid = report_id.to_string();
        let rows: Vec<(i64, String)> = entries.iter().map(|e| (ms(e.at), to_json(e))).collect();
        self.write("append to timeline", move |c| {
            let mut stmt =
                c.prepare_cached("INSERT INTO timeline (report_id, at, body) VALUES (?1, ?2, ?3)")?;
            for (at, body) in &rows {
                stmt.execute(params![rid, at, body])?;
            }
            Ok(())
        })
        .await
    }

    async fn get_flow_run(&self, key: &FlowRunKey) -> PortResult<Option<FlowRun>> {
        let name = key.name();
        self.read("load flow run", move |c| {
            c.row("SELECT body FROM flow_runs WHERE name = ?1", [name], |r| {
                json_col(0, &r.get::<_, String>(0)?)
            })
            .optional()
        })
        .await
    }

    async fn put_flow_run(&self, run: &FlowRun) -> PortResult<()> {
        let (name, rid, body) = (run.key.name(), run.key.report_id.to_string(), to_json(run));
        let now = ms(Utc::now());
        self.write("store flow run", move |c| {
            c.exec(
                "INSERT INTO flow_runs (name, report_id, body, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![name, rid, body, now],
            )
            .map(|_| ())
        })
        .await
    }

    async fn put_alert(&self, req: NewAlert<'_>) -> PortResult<AlertReceipt> {
        let alert_id = req.alert_id.to_string();
        let alert_ref = req.alert_ref.to_string();
        let body = to_json(req.alert);
        let now = ms(req.now);
        let window_start = ms(req.now - req.window);
        let candidate = req.candidate_report.to_string();
        let (detector, rule_id) = (req.alert.detector.clone(), req.alert.rule_id.clone());
        let received = |how: &str| {
            let a = req.alert;
            let title = if a.rule_name.is_empty() {
                &a.rule_id
            } else {
                &a.rule_name
            };
            entry(
                req.now,
                "alert",
                format!(
                    "alert received{how}: {title} ({}, key {:?})",
                    a.detector, a.alert_key
                ),
                serde_json::json!({"alert_ref": req.alert_ref, "attributes": a.attributes.len()}),
            )
        };
        let run_due = self
            .run_delay
            .map(|d| req.now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
        let (first, more, after_publication) = (
            received(""),
            received(", added to the report"),
            received(" after publication; the report will be reviewed and published again"),
        );
        self.write("store alert", move |c| {
            let tx = c;
            let open: Option<(String, String)> = tx
                .row(
                    "SELECT id, status FROM reports WHERE alert_id = ?1 AND created_at > ?2
                     ORDER BY created_at DESC LIMIT 1",
                    params![alert_id, window_start],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let receipt = match open {
                Some((report_id, report_status)) => {
                    let existing: Option<(String, bool)> = tx
                        .row(
                            "SELECT joined_as, run_review FROM alerts WHERE report_id = ?1 AND alert_ref = ?2",
                            params![report_id, alert_ref],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    let id = parse_report_id(0, &report_id)?;
                    if let Some((joined_as, review)) = existing {
                        AlertReceipt {
                            report_id: id,
                            status: parse_status(0, &joined_as)?,
                            duplicate: true,
                            review,
                        }
                    } else {
                        let late = report_status == ReportStatus::Published.as_str();
                        tx.exec(
                            "INSERT INTO alerts (report_id, alert_ref, joined_as, run_review, body, received_at)
                             VALUES (?1, ?2, 'more', ?3, ?4, ?5)",
                            params![report_id, alert_ref, late, body, now],
                        )?;
                        tx.exec(
                            "UPDATE reports SET status = 'more', updated_at = ?2 WHERE id = ?1",
                            params![report_id, now],
                        )?;
                        record(tx, &report_id, if late { &after_publication } else { &more })?;
                        AlertReceipt {
                            report_id: id,
                            status: ReportStatus::More,
                            duplicate: false,
                            review: late,
                        }
                    }
                }
                None => {
                    tx.exec(
                        "INSERT INTO reports (id, alert_id, detector, rule_id, status, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, 'new', ?5, ?5)",
                        params![candidate, alert_id, detector, rule_id, now],
                    )?;
                    tx.exec(
                        "INSERT INTO alerts (report_id, alert_ref, joined_as, run_review, body, received_at)
                         VALUES (?1, ?2, 'new', 1, ?3, ?4)",
                        params![candidate, alert_ref, body, now],
                    )?;
                    record(tx, &candidate, &first)?;
                    AlertReceipt {
                        report_id: parse_report_id(0, &candidate)?,
                        status: ReportStatus::New,
                        duplicate: false,
                        review: true,
                    }
                }
            };
            if let Some(due_at) = run_due {
                // As the workflow would: a redelivered alert restarts the same run, which
                // is a no-op while its job is remembered.
                let run = deepalert_core::ports::WorkflowRun {
                    name: deepalert_core::services::run_name(receipt.report_id, &alert_ref),
                    report_id: receipt.report_id,
                    alert_ref: alert_ref.clone(),
                    review: receipt.review,
                };
                jobs::insert_jobs(tx, &[jobs::run_job(&run, due_at)], now)?;
            }
            Ok(receipt)
        })
        .await
        .inspect(|_| {
            if run_due.is_some() {
                self.job_signal.notify_one();
            }
        })
    }

    async fn get_alert(
        &self,
        report_id: ReportId,
        alert_ref: &str,
    ) -> PortResult<Option<StoredAlert>> {
        let (rid, aref) = (report_id.to_string(), alert_ref.to_string());
        self.read("load alert", move |c| {
            c.row(
                "SELECT body, dispatched FROM alerts WHERE report_id = ?1 AND alert_ref = ?2",
                params![rid, aref],
                |r| {
                    Ok(StoredAlert {
                        alert: json_col(0, &r.get::<_, String>(0)?)?,
                        dispatched: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn mark_dispatched(&self, report_id: ReportId, alert_ref: &str) -> PortResult<()> {
        let (rid, aref) = (report_id.to_string(), alert_ref.to_string());
        self.write_or_defer("mark alert dispatched", move |c| {
            c.exec(
                "UPDATE alerts SET dispatched = 1 WHERE report_id = ?1 AND alert_ref = ?2",
                params![rid, aref],
            )
            .map(|_| ())
        })
        .await
    }

    async fn claim_attributes(
        &self,
        report_id: ReportId,
        claims: &[AttributeClaim],
        claimer: &str,
        max_attributes: u32,
    ) -> PortResult<ClaimOutcome> {
        let rid = report_id.to_string();
        let claimer = claimer.to_string();
        let claims: Vec<(String, u32, Attribute)> = claims
            .iter()
            .map(|c| (c.attribute.identity().0, c.depth, c.attribute.clone()))
            .collect();
        self.write("claim attributes", move |c| {
            let tx = c;
            let mut outcome = ClaimOutcome::default();
            let mut count: u32 = tx.row(
                "SELECT attr_count FROM reports WHERE id = ?1",
                [&rid],
                |r| r.get(0),
            )?;
            for (hash, depth, attribute) in claims {
                let owner: Option<String> = tx
                    .row(
                        "SELECT claimer FROM attributes WHERE report_id = ?1 AND attr_hash = ?2",
                        params![rid, hash],
                        |r| r.get(0),
                    )
                    .optional()?;
                match owner {
                    Some(owner) if owner == claimer => outcome.claimed.push(attribute),
                    Some(_) => {}
                    None if count >= max_attributes => outcome.over_limit.push(attribute),
                    None => {
                        tx.exec(
                            "INSERT INTO attributes (report_id, attr_hash, depth, claimer, body)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![rid, hash, depth, claimer, to_json(&attribute)],
                        )?;
                        count += 1;
                        outcome.claimed.push(attribute);
                    }
                }
            }
            tx.exec(
                "UPDATE reports SET attr_count = ?2 WHERE id = ?1",
                params![rid, count],
            )?;
            Ok(outcome)
        })
        .await
    }

    async fn attribute_depth(
        &self,
        report_id: ReportId,
        attr: &AttrHash,
    ) -> PortResult<Option<u32>> {
        let (rid, hash) = (report_id.to_string(), attr.0.clone());
        self.read("load attribute depth", move |c| {
            c.row(
                "SELECT depth FROM attributes WHERE report_id = ?1 AND attr_hash = ?2",
                params![rid, hash],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn put_findings(&self, findings: &[Finding]) -> PortResult<()> {
        if findings.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = findings
            .iter()
            .map(|f| {
                let (kind, content) = f.content.to_parts();
                (
                    (
                        f.report_id.to_string(),
                        f.identity(),
                        f.attribute.identity().0,
                        f.author.clone(),
                        kind,
                        to_json(&f.attribute),
                        content,
                    ),
                    f.attribute.value.clone(),
                )
            })
            .collect();
        // One timeline entry per inspector and attribute, counting the findings that were new.
        let mut answers: Vec<(String, String, String, usize)> = vec![];
        for f in findings {
            let answer = (
                f.report_id.to_string(),
                f.author.clone(),
                f.attribute.value.clone(),
                0,
            );
            if !answers
                .iter()
                .any(|a| a.0 == answer.0 && a.1 == answer.1 && a.2 == answer.2)
            {
                answers.push(answer);
            }
        }
        let now = Utc::now();
        self.write_or_defer("store findings", move |c| {
            {
                let mut stmt = c.prepare_cached(
                    "INSERT OR IGNORE INTO findings
                     (report_id, finding_hash, attr_hash, author, kind, attribute, content)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (r, value) in &rows {
                    if stmt.execute(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6])? > 0
                        && let Some(a) = answers
                            .iter_mut()
                            .find(|a| a.0 == r.0 && a.1 == r.3 && &a.2 == value)
                    {
                        a.3 += 1;
                    }
                }
            }
            for (rid, author, value, n) in answers.iter().filter(|a| a.3 > 0) {
                let e = entry(
                    now,
                    "inspection",
                    format!("{author} found {n} result(s) about {value:?}"),
                    serde_json::json!({"inspector": author, "attribute": value, "findings": n}),
                );
                record(c, rid, &e)?;
            }
            Ok(())
        })
        .await
    }

    async fn put_note(&self, report_id: ReportId, note: &Note) -> PortResult<()> {
        let rid = report_id.to_string();
        let hash = sha256_hex(
            to_json(&(
                &note.author,
                note.attribute.as_ref().map(|a| a.identity()),
                &note.message,
            ))
            .as_bytes(),
        );
        let body = to_json(note);
        let noted = entry(
            note.created_at,
            "note",
            format!("{}: {}", note.author, note.message),
            serde_json::Value::Null,
        );
        self.write_or_defer("store note", move |c| {
            let added = c.exec(
                "INSERT OR IGNORE INTO notes (report_id, note_hash, body) VALUES (?1, ?2, ?3)",
                params![rid, hash, body],
            )?;
            if added > 0 {
                record(c, &rid, &noted)?;
            }
            Ok(())
        })
        .await
    }

    async fn report_head(&self, report_id: ReportId) -> PortResult<Option<ReportHead>> {
        let rid = report_id.to_string();
        self.read("load report status", move |c| {
            c.row(
                "SELECT status, detector, rule_id, publications,
                        (SELECT count(*) FROM alerts a WHERE a.report_id = r.id)
                 FROM reports r WHERE id = ?1",
                [rid],
                |r| {
                    Ok(ReportHead {
                        status: parse_status(0, &r.get::<_, String>(0)?)?,
                        detector: r.get(1)?,
                        rule_id: r.get(2)?,
                        publications: r.get(3)?,
                        alerts: r.get(4)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn compile_report(&self, report_id: ReportId) -> PortResult<Option<Report>> {
        self.read("compile report", move |c| {
            compile(c, report_id, Timeline::Everything)
        })
        .await
    }

    async fn compile_report_for_review(&self, report_id: ReportId) -> PortResult<Option<Report>> {
        self.read("compile report", move |c| {
            compile(c, report_id, Timeline::FlowSteps)
        })
        .await
    }

    async fn record_publication(
        &self,
        report: &Report,
        publication_id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Report> {
        match self.review_delay {
            Some(delay) if self.publication_queues_next_round() => {
                self.record_publication_with_job(report, publication_id, now, delay)
                    .await
            }
            _ => {
                self.record_publication_now(report, publication_id, now)
                    .await
            }
        }
    }

    /// In a review job (see `with_review_jobs`).
    fn publication_queues_next_round(&self) -> bool {
        self.review_delay.is_some() && DEFERRED.try_with(|_| ()).is_ok()
    }
}

/// The timeline entries of a publication: the verdict, then the publication itself.
fn publication_entries(
    snapshot: &Report,
    publication_id: &str,
    now: DateTime<Utc>,
) -> [TimelineEntry; 2] {
    let review = match &snapshot.result {
        Some(r) if r.reason.is_empty() => format!("reviewed: {}", r.severity),
        Some(r) => format!("reviewed: {} — {}", r.severity, r.reason),
        None => "not reviewed (no verdict)".to_string(),
    };
    let number = snapshot.publications;
    [
        entry(now, "review", review, serde_json::json!(snapshot.result)),
        entry(
            now,
            "publication",
            format!("published (publication {number})"),
            serde_json::json!({"publication_id": publication_id, "number": number}),
        ),
    ]
}

/// Marks the report published with its verdict; returns its publication count, this one
/// included.
fn mark_published(
    c: &Connection,
    rid: &str,
    result: Option<&str>,
    now: DateTime<Utc>,
) -> rusqlite::Result<u32> {
    c.row(
        "UPDATE reports SET status = 'published', result = ?2, published_at = ?3,
                updated_at = ?3, publications = publications + 1
         WHERE id = ?1 RETURNING publications",
        params![rid, result, ms(now)],
        |r| r.get(0),
    )
}

/// Stores the snapshot emitters will get, with its timeline entries.
fn insert_publication(
    c: &Connection,
    pid: &str,
    rid: &str,
    number: u32,
    snapshot_json: &str,
    entries: &[TimelineEntry],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    c.exec(
        "INSERT INTO publications (publication_id, report_id, number, snapshot, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![pid, rid, number, snapshot_json, ms(now)],
    )?;
    entries.iter().try_for_each(|e| record(c, rid, e))
}

/// A publication's number differed from the one its review job expected: another
/// publication of the report was recorded meanwhile. The job's commit fails and the review
/// runs again.
#[derive(Debug, thiserror::Error)]
#[error(
    "publication {publication_id} would be number {stored}, not {expected}: the report was published meanwhile; reviewing again"
)]
struct PublicationRaced {
    publication_id: String,
    stored: u32,
    expected: u32,
}

impl SqliteStore {
    /// In a review job: the publication is one of the job's deferred writes. Its number is
    /// the compiled report's count plus one (reviews of a report are rounds, one after the
    /// other, and the commit checks it). Also serializes the snapshot here rather than on
    /// the writer thread.
    async fn record_publication_with_job(
        &self,
        report: &Report,
        publication_id: &str,
        now: DateTime<Utc>,
        review_delay: std::time::Duration,
    ) -> PortResult<Report> {
        let pid = publication_id.to_string();
        // Recorded already (by a version that committed publications on their own, which
        // left the report published): it stays what it was, as in `record_publication_now`.
        // A report compiled unpublished cannot hold this round's publication: no read.
        let recorded = if report.status != ReportStatus::Published {
            None
        } else {
            let pid = pid.clone();
            self.read("load publication", move |c| {
                c.row(
                    "SELECT snapshot FROM publications WHERE publication_id = ?1",
                    [&pid],
                    |r| json_col::<Report>(0, &r.get::<_, String>(0)?),
                )
                .optional()
            })
            .await?
        };
        if let Some(recorded) = recorded {
            self.remember_publication(publication_id, &recorded);
            return Ok(recorded);
        }
        let mut snapshot = report.clone();
        snapshot.status = ReportStatus::Published;
        snapshot.published_at = Some(now);
        snapshot.publications = report.publications + 1;
        let number = snapshot.publications;
        let body = to_json(&snapshot);
        let result = snapshot.result.as_ref().map(to_json);
        let entries = publication_entries(&snapshot, &pid, now);
        let rid = report.id.to_string();
        let compiled_alerts = report.alerts.len() as i64;
        let next_round = jobs::review_job(
            &deepalert_core::ports::ReviewRun::new(report.id, number),
            now + chrono::Duration::from_std(review_delay).unwrap_or(chrono::Duration::MAX),
        );
        self.write_or_defer("record publication", move |c| {
            if c.row(
                "SELECT 1 FROM publications WHERE publication_id = ?1",
                [&pid],
                |_| Ok(()),
            )
            .optional()?
            .is_some()
            {
                return Ok(());
            }
            let stored = mark_published(c, &rid, result.as_deref(), now)?;
            if stored != number {
                return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(
                    PublicationRaced {
                        publication_id: pid,
                        stored,
                        expected: number,
                    },
                )));
            }
            insert_publication(c, &pid, &rid, number, &body, &entries, now)?;
            let alerts: i64 = c.row(
                "SELECT count(*) FROM alerts WHERE report_id = ?1",
                [&rid],
                |r| r.get(0),
            )?;
            if alerts > compiled_alerts {
                jobs::insert_jobs(c, &[next_round], ms(now))?;
            }
            Ok(())
        })
        .await?;
        self.remember_publication(publication_id, &snapshot);
        Ok(snapshot)
    }

    /// Outside a review job (tests, tools): the publication is its own write, now.
    async fn record_publication_now(
        &self,
        report: &Report,
        publication_id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Report> {
        let mut snapshot = report.clone();
        let pid = publication_id.to_string();
        self.write("record publication", move |c| {
            let tx = c;
            let existing: Option<String> = tx
                .row(
                    "SELECT snapshot FROM publications WHERE publication_id = ?1",
                    [&pid],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(existing) = existing {
                return json_col(0, &existing);
            }
            let rid = snapshot.id.to_string();
            let result = snapshot.result.as_ref().map(to_json);
            let number = mark_published(tx, &rid, result.as_deref(), now)?;
            snapshot.status = ReportStatus::Published;
            snapshot.published_at = Some(now);
            snapshot.publications = number;
            let entries = publication_entries(&snapshot, &pid, now);
            insert_publication(tx, &pid, &rid, number, &to_json(&snapshot), &entries, now)?;
            Ok(snapshot)
        })
        .await
        .inspect(|snapshot| self.remember_publication(publication_id, snapshot))
    }
}

/// Appends inside the caller's transaction, so a step and its timeline entry commit together
/// and the timeline costs no extra commit.
fn record(c: &Connection, rid: &str, entry: &TimelineEntry) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO timeline (report_id, at, body) VALUES (?1, ?2, ?3)")?
        .execute(params![rid, ms(entry.at), to_json(entry)])
        .map(|_| ())
}

fn entry(
    at: DateTime<Utc>,
    kind: &str,
    message: String,
    detail: serde_json::Value,
) -> TimelineEntry {
    TimelineEntry {
        at,
        kind: kind.into(),
        message,
        detail,
    }
}

/// Which timeline entries to read.
#[derive(Clone, Copy)]
enum Timeline {
    Everything,
    /// As reviewed and published (see `Store::compile_report_for_review`). Filtered in
    /// SQL: parsing the pipeline's entries only to drop them was a tenth of a review's cost.
    FlowSteps,
}

fn timeline(c: &Connection, rid: &str, scope: Timeline) -> rusqlite::Result<Vec<TimelineEntry>> {
    let sql = match scope {
        Timeline::Everything => "SELECT body FROM timeline WHERE report_id = ?1 ORDER BY seq",
        Timeline::FlowSteps => {
            "SELECT body FROM timeline WHERE report_id = ?1 AND json_extract(body, '$.kind') = ?2
             ORDER BY seq"
        }
    };
    let mut stmt = c.prepare_cached(sql)?;
    let rows = match scope {
        Timeline::Everything => stmt.query([rid])?,
        Timeline::FlowSteps => stmt.query([rid, TimelineEntry::FLOW])?,
    };
    rows.mapped(|r| json_col::<TimelineEntry>(0, &r.get::<_, String>(0)?))
        .collect()
}

fn compile(
    c: &Connection,
    report_id: ReportId,
    scope: Timeline,
) -> rusqlite::Result<Option<Report>> {
    let rid = report_id.to_string();
    let head = c
        .row(
            "SELECT status, created_at, result, published_at, publications FROM reports WHERE id = ?1",
            [&rid],
            |r| {
                let result: Option<String> = r.get(2)?;
                Ok((
                    parse_status(0, &r.get::<_, String>(0)?)?,
                    from_ms(r.get(1)?),
                    result.as_deref().map(|s| json_col::<ReviewResult>(2, s)).transpose()?,
                    r.get::<_, Option<i64>>(3)?.map(from_ms),
                    r.get::<_, u32>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((status, created_at, result, published_at, publications)) = head else {
        return Ok(None);
    };

    let alerts = c
        .prepare_cached("SELECT body FROM alerts WHERE report_id = ?1 ORDER BY seq")?
        .query_map([&rid], |r| json_col::<Alert>(0, &r.get::<_, String>(0)?))?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let attributes = c
        .prepare_cached("SELECT body FROM attributes WHERE report_id = ?1 ORDER BY seq")?
        .query_map([&rid], |r| {
            json_col::<Attribute>(0, &r.get::<_, String>(0)?)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut sections = SectionsBuilder::new(&attributes);
    {
        let mut stmt = c.prepare_cached(
            "SELECT attribute, author, kind, content FROM findings WHERE report_id = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([&rid])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(2)?;
            let content =
                FindingContent::from_parts(&kind, &r.get::<_, String>(3)?).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        3,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?;
            sections.add(json_col(0, &r.get::<_, String>(0)?)?, r.get(1)?, content);
        }
    }

    let notes = c
        .prepare_cached("SELECT body FROM notes WHERE report_id = ?1 ORDER BY seq")?
        .query_map([&rid], |r| json_col::<Note>(0, &r.get::<_, String>(0)?))?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    Ok(Some(Report {
        id: report_id,
        alerts,
        attributes,
        sections: sections.finish(),
        notes,
        result,
        status,
        created_at,
        published_at,
        publications,
        timeline: timeline(c, &rid, scope)?,
    }))
}
