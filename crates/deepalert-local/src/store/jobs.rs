//! The durable job queue: what Step Functions and SNS/SQS do on AWS. A job is due at a
//! time, leased while it runs, finished (kept a while so its key is not run again),
//! retried later, or given up.

use chrono::{DateTime, Utc};
use deepalert_core::ports::PortResult;
use deepalert_core::{ReportId, TimelineEntry};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{CachedSql, DeferredWrites, SqliteStore, from_ms, ms, parse_report_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Send a stored alert's attributes to the inspectors (after the inspection delay).
    Dispatch,
    /// Compile, review and publish a report (after the review delay).
    Review,
    /// One task for one inspector.
    Inspect,
    /// One published report for one emitter.
    Emit,
    /// Move a flow run on (at its start, and when a wait ends).
    Flow,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Dispatch => "dispatch",
            JobKind::Review => "review",
            JobKind::Inspect => "inspect",
            JobKind::Emit => "emit",
            JobKind::Flow => "flow",
        }
    }

    fn parse(s: &str) -> Option<JobKind> {
        Some(match s {
            "dispatch" => JobKind::Dispatch,
            "review" => JobKind::Review,
            "inspect" => JobKind::Inspect,
            "emit" => JobKind::Emit,
            "flow" => JobKind::Flow,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    /// Enqueuing a key that exists (pending or finished recently) does nothing.
    pub key: String,
    pub kind: JobKind,
    pub report_id: Option<ReportId>,
    pub payload: String,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: i64,
    pub key: String,
    pub kind: JobKind,
    pub report_id: Option<ReportId>,
    pub payload: String,
    /// Including this one.
    pub attempts: u32,
}

impl SqliteStore {
    pub async fn enqueue(&self, jobs: Vec<NewJob>, now: DateTime<Utc>) -> PortResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.write_or_defer("enqueue jobs", move |c| {
            let tx = c;
            insert_jobs(tx, &jobs, ms(now))
        })
        .await?;
        // Deferred, they are due when the job finishes, which signals then.
        self.job_signal.notify_one();
        Ok(())
    }

    /// Leases up to `limit` due jobs until `lease_until`.
    pub async fn lease_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<LeasedJob>> {
        let (now, until) = (ms(now), ms(lease_until));
        self.write("lease jobs", move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE jobs SET leased_until = ?2, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM jobs
                              WHERE state = 'pending' AND due_at <= ?1 AND leased_until <= ?1
                              ORDER BY due_at, id LIMIT ?3)
                 RETURNING id, key, kind, report_id, payload, attempts",
            )?;
            let rows = stmt.query_map(params![now, until, limit as i64], |r| {
                let kind: String = r.get(2)?;
                let report_id: Option<String> = r.get(3)?;
                Ok(LeasedJob {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    kind: JobKind::parse(&kind).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Text,
                            format!("unknown job kind {kind:?}").into(),
                        )
                    })?,
                    report_id: report_id.map(|s| parse_report_id(3, &s)).transpose()?,
                    payload: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// When the next pending job that is not running is due, if any.
    pub async fn next_due(&self) -> PortResult<Option<DateTime<Utc>>> {
        self.read("find next due job", |c| {
            c.row(
                "SELECT due_at FROM jobs WHERE state = 'pending' AND leased_until = 0
                 ORDER BY due_at LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .await
        .map(|v| v.map(from_ms))
    }

    /// Marks a job done and enqueues its follow-ups in the same transaction, so a crash
    /// either re-runs the job or has both.
    /// `effects` (the job's deferred writes) and `event` (a timeline entry) commit with it.
    pub async fn finish(
        &self,
        id: i64,
        followups: Vec<NewJob>,
        effects: DeferredWrites,
        event: Option<(ReportId, TimelineEntry)>,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let has_followups = !followups.is_empty() || !effects.is_empty();
        self.write("finish job", move |c| {
            let tx = c;
            effects.apply(tx)?;
            tx.exec(
                "UPDATE jobs SET state = 'done', finished_at = ?2, leased_until = 0 WHERE id = ?1",
                params![id, ms(now)],
            )?;
            if let Some((rid, e)) = &event {
                super::record(tx, &rid.to_string(), e)?;
            }
            insert_jobs(tx, &followups, ms(now))
        })
        .await?;
        if has_followups {
            self.job_signal.notify_one();
        }
        Ok(())
    }

    pub async fn retry_at(&self, id: i64, at: DateTime<Utc>, error: &str) -> PortResult<()> {
        let error = error.to_string();
        self.write("reschedule job", move |c| {
            c.exec(
                "UPDATE jobs SET due_at = ?2, leased_until = 0, last_error = ?3 WHERE id = ?1",
                params![id, ms(at), error],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn give_up(
        &self,
        id: i64,
        error: &str,
        event: Option<(ReportId, TimelineEntry)>,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let error = error.to_string();
        self.write("fail job", move |c| {
            c.exec(
                "UPDATE jobs SET state = 'failed', last_error = ?2, finished_at = ?3, leased_until = 0
                 WHERE id = ?1",
                params![id, error, ms(now)],
            )?;
            if let Some((rid, e)) = &event {
                super::record(c, &rid.to_string(), e)?;
            }
            Ok(())
        })
        .await
    }

    /// Leases belong to the process that took them; a new process owns every pending job.
    pub async fn release_all_leases(&self) -> PortResult<usize> {
        self.write("release leases", |c| {
            c.exec(
                "UPDATE jobs SET leased_until = 0 WHERE state = 'pending' AND leased_until > 0",
                [],
            )
        })
        .await
    }

    /// Forgets finished jobs older than `before` (their keys can then be enqueued again).
    pub async fn purge_finished(&self, before: DateTime<Utc>) -> PortResult<usize> {
        self.write("purge finished jobs", move |c| {
            c.exec(
                "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?1 AND state = 'done'",
                [ms(before)],
            )
        })
        .await
    }

    /// Deletes up to `batch` published reports untouched since `before` — with their
    /// alerts, attributes, findings, notes, publications, timeline, flow runs, finished
    /// jobs and emitters' memory of them — unless work is still pending for them.
    /// Returns how many reports went.
    pub async fn purge_reports(&self, before: DateTime<Utc>, batch: usize) -> PortResult<usize> {
        let purged = self.write("purge old reports", move |c| {
            c.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY); DELETE FROM doomed;",
            )?;
            let n = c.exec(
                "INSERT INTO doomed (id)
                 SELECT r.id FROM reports r
                 WHERE r.updated_at < ?1 AND r.status = 'published'
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.report_id = r.id AND j.state = 'pending')
                 ORDER BY r.updated_at LIMIT ?2",
                params![ms(before), batch as i64],
            )?;
            if n == 0 {
                return Ok(0);
            }
            c.execute_batch(
                "DELETE FROM alerts WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM attributes WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM findings WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM notes WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM publications WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM timeline WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM flow_runs WHERE report_id IN (SELECT id FROM doomed);
                 DELETE FROM jobs WHERE report_id IN (SELECT id FROM doomed) AND state != 'pending';
                 DELETE FROM plugin_state WHERE key LIKE 'sent:%' AND substr(key, -36) IN (SELECT id FROM doomed);
                 DELETE FROM reports WHERE id IN (SELECT id FROM doomed);
                 DELETE FROM doomed;",
            )?;
            Ok(n)
        })
        .await?;
        if purged > 0 {
            // Deleted publications must not be served from memory either.
            self.forget_recent_publications();
        }
        Ok(purged)
    }

    /// Failed jobs with their last error, newest first (for operators and tests).
    pub async fn failed_jobs(&self) -> PortResult<Vec<(String, String)>> {
        self.read("list failed jobs", |c| {
            let mut stmt = c.prepare(
                "SELECT key, coalesce(last_error, '') FROM jobs WHERE state = 'failed' ORDER BY id DESC",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}

/// What a review job carries: the report, and the id its publication will have.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReviewJob {
    pub report_id: ReportId,
    pub publication_id: String,
}

/// The review job of a report's round, due at `due_at`; one per review name.
pub fn review_job(run: &deepalert_core::ports::ReviewRun, due_at: DateTime<Utc>) -> NewJob {
    NewJob {
        key: format!("review:{}", run.name),
        kind: JobKind::Review,
        report_id: Some(run.report_id),
        payload: serde_json::to_string(&ReviewJob {
            report_id: run.report_id,
            publication_id: run.name.clone(),
        })
        .expect("a review job always serializes"),
        due_at,
    }
}

/// The dispatch job of an alert's run, due at `due_at`; one per run name.
pub(super) fn run_job(run: &deepalert_core::ports::WorkflowRun, due_at: DateTime<Utc>) -> NewJob {
    NewJob {
        key: format!("run:{}", run.name),
        kind: JobKind::Dispatch,
        report_id: Some(run.report_id),
        payload: serde_json::to_string(run).expect("a run always serializes"),
        due_at,
    }
}

pub(super) fn insert_jobs(
    tx: &rusqlite::Connection,
    jobs: &[NewJob],
    now: i64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO jobs (key, kind, report_id, payload, due_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for j in jobs {
        stmt.execute(params![
            j.key,
            j.kind.as_str(),
            j.report_id.map(|r| r.to_string()),
            j.payload,
            ms(j.due_at),
            now
        ])?;
    }
    Ok(())
}
