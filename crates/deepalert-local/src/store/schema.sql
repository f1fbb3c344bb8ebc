-- deepalert embedded store. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE IF NOT EXISTS reports (
    id           TEXT PRIMARY KEY,
    alert_id     TEXT NOT NULL,
    detector     TEXT NOT NULL,
    rule_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    result       TEXT,
    published_at INTEGER,
    publications INTEGER NOT NULL DEFAULT 0,
    attr_count   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS reports_by_alert_id ON reports (alert_id, created_at);
CREATE INDEX IF NOT EXISTS reports_by_updated ON reports (updated_at);
CREATE INDEX IF NOT EXISTS reports_by_created ON reports (created_at);

-- One row per alert message per report; (report_id, alert_ref) is the idempotency key.
CREATE TABLE IF NOT EXISTS alerts (
    seq         INTEGER PRIMARY KEY,
    report_id   TEXT NOT NULL,
    alert_ref   TEXT NOT NULL,
    joined_as   TEXT NOT NULL,
    run_review  INTEGER NOT NULL,
    body        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- Its run sent its attributes to the inspectors (a repeated run does not again).
    dispatched  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (report_id, alert_ref)
);

-- Claimed attributes: one row per attribute identity per report.
CREATE TABLE IF NOT EXISTS attributes (
    seq       INTEGER PRIMARY KEY,
    report_id TEXT NOT NULL,
    attr_hash TEXT NOT NULL,
    depth     INTEGER NOT NULL,
    claimer   TEXT NOT NULL,
    body      TEXT NOT NULL,
    UNIQUE (report_id, attr_hash)
);

CREATE TABLE IF NOT EXISTS findings (
    seq          INTEGER PRIMARY KEY,
    report_id    TEXT NOT NULL,
    finding_hash TEXT NOT NULL,
    attr_hash    TEXT NOT NULL,
    author       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    attribute    TEXT NOT NULL,
    content      TEXT NOT NULL,
    UNIQUE (report_id, finding_hash)
);

CREATE TABLE IF NOT EXISTS notes (
    seq        INTEGER PRIMARY KEY,
    report_id  TEXT NOT NULL,
    note_hash  TEXT NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (report_id, note_hash)
);

-- The report exactly as published, per publication: what emitters receive.
CREATE TABLE IF NOT EXISTS publications (
    publication_id TEXT PRIMARY KEY,
    report_id      TEXT NOT NULL,
    number         INTEGER NOT NULL,
    snapshot       TEXT NOT NULL,
    published_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS publications_by_report ON publications (report_id);

-- Small key/value state of built-in plug-ins (what an emitter last sent…).
CREATE TABLE IF NOT EXISTS plugin_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Durable timers and queues: dispatch, review, inspect and emit work.
-- Finished jobs are kept a while so a repeated `key` is recognised and not run twice.
CREATE TABLE IF NOT EXISTS jobs (
    id           INTEGER PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    report_id    TEXT,
    payload      TEXT NOT NULL,
    due_at       INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    leased_until INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, due_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_report ON jobs (report_id);

-- What happened to each report, append-only: response flows' steps and the pipeline's.
CREATE TABLE IF NOT EXISTS timeline (
    seq       INTEGER PRIMARY KEY,
    report_id TEXT NOT NULL,
    at        INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_report ON timeline (report_id, seq);

-- Response flow runs: each step's state, so a step runs at most once across restarts.
CREATE TABLE IF NOT EXISTS flow_runs (
    name       TEXT PRIMARY KEY,
    report_id  TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_runs_by_report ON flow_runs (report_id);
