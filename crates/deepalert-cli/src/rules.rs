//! `deepalert rules test|eval` and `deepalert events send`: try rules locally, and feed
//! cloud events to a running server.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Utc};
use deepalert_core::rules::RuleSet;
use deepalert_core::rules::stream::read_events;
use deepalert_local::Config;
use deepalert_plugins::rules::RegoRule;
use serde_json::{Value, json};

use crate::client::{ServerArgs, answer, client};

/// Runs a directory of Rego rules' `test_*` rules and `tests/*.json` fixtures.
pub fn test(dir: &Path) -> Result<ExitCode, String> {
    let rule = RegoRule::load(dir, Value::Null, vec![]).map_err(|e| e.to_string())?;
    let cases = rule.test().map_err(|e| e.to_string())?;
    crate::policy::report(dir, &cases)
}

/// `deepalert rules eval` options.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// A configuration file (its [[rule]]s and [findings]) or a directory of Rego rules.
    pub rules: PathBuf,
    /// Event files: an event, an array of events, a CloudTrail log file
    /// ({"Records": [...]}) or JSON lines; gzipped or not; of any size.
    #[arg(required = true)]
    pub events: Vec<PathBuf>,
    /// `table`: one line per alert, then a summary (on stderr); `json`: one document
    /// with the alerts, the errors and the summary.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only events at or after this time (RFC 3339, or a date: 2026-11-20).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339, or a date: the day before it is the last).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| {
            format!("{s:?} is not an RFC 3339 time (2026-11-20T03:00:00Z) or a date (2026-11-20)")
        })
}

/// What a run saw, for the summary.
#[derive(Default, serde::Serialize)]
struct Summary {
    files: usize,
    events: usize,
    /// Events outside --since/--until, or without a time while one is given.
    filtered: usize,
    alerts: usize,
    alerts_by_rule: BTreeMap<String, usize>,
    /// Rule → why it could not read an event → how many times.
    skipped: BTreeMap<String, BTreeMap<String, usize>>,
    errors: usize,
    seconds: f64,
    events_per_second: f64,
    /// The process's peak memory (VmHWM), where the system says it.
    peak_rss_mib: Option<f64>,
}

/// What the rules would make of the events in `events`; nothing is stored. Files are read
/// as streams: memory is bounded by the largest record, not by the file.
pub fn eval(args: &EvalArgs) -> Result<ExitCode, String> {
    let set = if args.rules.is_dir() {
        let rule = RegoRule::load(&args.rules, Value::Null, vec![]).map_err(|e| e.to_string())?;
        RuleSet::new(vec![std::sync::Arc::new(rule)])
    } else {
        let config = Config::load(&args.rules).map_err(|e| e.to_string())?;
        config.rule_set().map_err(|e| e.to_string())?
    };
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let table = args.format == Format::Table;
    for file in &args.events {
        summary.files += 1;
        let name = file.display().to_string();
        let mut index = 0usize;
        let read = open_events(file).and_then(|reader| {
            read_events(reader, |event| {
                let i = index;
                index += 1;
                summary.events += 1;
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        summary.errors += 1;
                        errors.push(json!({"file": name, "event": i, "error": e.to_string()}));
                        return;
                    }
                };
                let in_window = match event.time() {
                    Some(t) => {
                        args.since.is_none_or(|s| t >= s) && args.until.is_none_or(|u| t < u)
                    }
                    None => args.since.is_none() && args.until.is_none(),
                };
                if !in_window {
                    summary.filtered += 1;
                    return;
                }
                let evaluation = set.evaluate(&event);
                for e in evaluation.skipped {
                    *summary
                        .skipped
                        .entry(e.rule)
                        .or_default()
                        .entry(e.message)
                        .or_default() += 1;
                }
                for e in evaluation.errors {
                    summary.errors += 1;
                    errors.push(
                        json!({"file": name, "event": i, "rule": e.rule, "error": e.message}),
                    );
                }
                for alert in evaluation.alerts {
                    summary.alerts += 1;
                    *summary
                        .alerts_by_rule
                        .entry(alert.rule_id.clone())
                        .or_default() += 1;
                    if table {
                        // A closed pipe (`| head`) is not an error worth a panic.
                        let _ = writeln!(
                            out,
                            "{}  {:<30} {:<24} {}",
                            alert
                                .timestamp
                                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                                .unwrap_or_else(|| "(no time)".into()),
                            alert.rule_id,
                            alert.alert_key,
                            alert.description.lines().next().unwrap_or("")
                        );
                    } else {
                        alerts.push(json!({"file": name, "event": i, "alert": alert}));
                    }
                }
            })
            .map_err(|e| format!("{name}: {e}"))
        });
        if let Err(e) = read {
            summary.errors += 1;
            errors.push(json!({"file": name, "error": e}));
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.events_per_second = summary.events as f64 / summary.seconds.max(1e-9);
    summary.peak_rss_mib = peak_rss_mib();
    if table {
        let _ = out.flush();
        drop(out);
        for e in &errors {
            eprintln!(
                "error: {} event {}: {}{}",
                e["file"].as_str().unwrap_or("?"),
                e["event"],
                e["rule"]
                    .as_str()
                    .map(|r| format!("rule {r}: "))
                    .unwrap_or_default(),
                e["error"].as_str().unwrap_or("?")
            );
        }
        print_summary(&summary);
    } else {
        let doc = json!({"alerts": alerts, "errors": errors, "summary": summary});
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
    }
    Ok(if summary.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(s: &Summary) {
    eprintln!(
        "{} event(s) in {} file(s): {} alert(s), {} error(s){}",
        s.events,
        s.files,
        s.alerts,
        s.errors,
        if s.filtered > 0 {
            format!(", {} outside --since/--until", s.filtered)
        } else {
            String::new()
        }
    );
    for (rule, n) in &s.alerts_by_rule {
        eprintln!("  {n:>8}  alerts of {rule}");
    }
    for (rule, why) in &s.skipped {
        for (reason, n) in why {
            eprintln!("  {n:>8}  skipped by {rule}: {reason}");
        }
    }
    eprintln!(
        "  {:.2} s, {:.0} events/s{}",
        s.seconds,
        s.events_per_second,
        s.peak_rss_mib
            .map(|m| format!(", peak memory {m:.1} MiB"))
            .unwrap_or_default()
    );
}

/// VmHWM of this process, from /proc (Linux); `None` elsewhere.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A file as a stream of bytes, gunzipped if it is gzip (CloudTrail writes its log files
/// so; recognised by its first bytes, not by its name).
fn open_events(path: &Path) -> Result<Box<dyn Read>, String> {
    let mut file = std::io::BufReader::new(
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let head = file
        .fill_buf()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}

/// Batches of events under `limit` bytes as JSON, from a stream of events: what goes in
/// one request. Each batch is (index of its first event in the file, events).
struct Batcher {
    limit: usize,
    next: usize,
    start: usize,
    part: Vec<Value>,
    size: usize,
}

impl Batcher {
    fn new(limit: usize) -> Self {
        Batcher {
            limit,
            next: 0,
            start: 0,
            part: Vec::new(),
            size: 2,
        }
    }

    /// Adds one event; gives back the batch it closes, if it closes one.
    fn push(&mut self, event: Value) -> Option<(usize, Vec<Value>)> {
        let n = serde_json::to_vec(&event).map(|b| b.len()).unwrap_or(0) + 1;
        let full = (!self.part.is_empty() && self.size + n > self.limit).then(|| self.take());
        if self.part.is_empty() {
            self.start = self.next;
        }
        self.next += 1;
        self.size += n;
        self.part.push(event);
        full
    }

    /// Counts an event that is not sent (it is no event), keeping indexes true.
    fn skip(&mut self) -> Option<(usize, Vec<Value>)> {
        let out = (!self.part.is_empty()).then(|| self.take());
        self.next += 1;
        out
    }

    fn take(&mut self) -> (usize, Vec<Value>) {
        self.size = 2;
        (self.start, std::mem::take(&mut self.part))
    }

    fn finish(mut self) -> Option<(usize, Vec<Value>)> {
        (!self.part.is_empty()).then(|| self.take())
    }
}

enum Piece {
    Batch(usize, Vec<Value>),
    NotAnEvent(usize, String),
    Unreadable(String),
}

/// Posts the files' events to a running server, in parts under its body limit; files are
/// read as streams (any size; gzipped or not).
pub async fn send(server: &ServerArgs, files: &[PathBuf]) -> Result<ExitCode, String> {
    let client = client()?;
    let mut failed = 0usize;
    for file in files {
        let name = file.display().to_string();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(4);
        let path = file.clone();
        // Reading is blocking work; the requests go out while the next part is read.
        let reader = tokio::task::spawn_blocking(move || {
            let send = |p: Piece| tx.blocking_send(p).is_ok();
            // Leave room under the server's 1 MiB for the envelope.
            let mut batcher = Batcher::new(900 * 1024);
            let read = open_events(&path).and_then(|r| {
                read_events(r, |event| {
                    let closed = match event {
                        Ok(e) => batcher.push(e.value().clone()),
                        Err(e) => {
                            let i = batcher.next;
                            let closed = batcher.skip();
                            if let Some((start, part)) = closed {
                                send(Piece::Batch(start, part));
                            }
                            send(Piece::NotAnEvent(i, e.to_string()));
                            None
                        }
                    };
                    if let Some((start, part)) = closed {
                        send(Piece::Batch(start, part));
                    }
                })
                .map_err(|e| e.to_string())
            });
            if let Some((start, part)) = batcher.finish() {
                send(Piece::Batch(start, part));
            }
            if let Err(e) = read {
                send(Piece::Unreadable(e));
            }
        });
        let mut matched = 0usize;
        while let Some(piece) = rx.recv().await {
            let (start, part) = match piece {
                Piece::Batch(start, part) => (start, part),
                Piece::NotAnEvent(i, e) => {
                    failed += 1;
                    eprintln!("{name}: event {i}: {e}");
                    continue;
                }
                Piece::Unreadable(e) => {
                    failed += 1;
                    eprintln!("{name}: {e}");
                    continue;
                }
            };
            let resp = server
                .request(&client, reqwest::Method::POST, "/api/v1/events")
                .json(&part)
                .send()
                .await;
            let body = match answer(server, resp).await {
                Ok(body) => body,
                Err(e) => {
                    eprintln!("{name}: events {start}-{}: {e}", start + part.len() - 1);
                    failed += 1;
                    continue;
                }
            };
            for a in body["alerts"].as_array().into_iter().flatten() {
                matched += 1;
                println!(
                    "{name}: {} {} {} → report {} ({})",
                    a["detector"].as_str().unwrap_or("?"),
                    a["rule_id"].as_str().unwrap_or("?"),
                    a["alert_key"].as_str().unwrap_or(""),
                    a["report_id"].as_str().unwrap_or("?"),
                    a["status"].as_str().unwrap_or("?")
                );
            }
            for e in body["errors"].as_array().into_iter().flatten() {
                failed += 1;
                eprintln!(
                    "{name}: event {}: {}",
                    start + e["event"].as_u64().unwrap_or(0) as usize,
                    e["error"].as_str().unwrap_or("?")
                );
            }
            for e in body["skipped"].as_array().into_iter().flatten() {
                eprintln!(
                    "{name}: event {}: skipped by rule {}: {}",
                    start + e["event"].as_u64().unwrap_or(0) as usize,
                    e["rule"].as_str().unwrap_or("?"),
                    e["reason"].as_str().unwrap_or("?")
                );
            }
        }
        reader
            .await
            .map_err(|e| format!("{name}: reading stopped: {e}"))?;
        if matched == 0 {
            println!("{name}: no rule matched");
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_go_in_parts_under_the_limit() {
        let event = json!({"source": "aws.iam", "detail": {"eventName": "x".repeat(100)}});
        let mut b = Batcher::new(1000);
        let mut parts = Vec::new();
        for i in 0..50 {
            if i == 10 {
                parts.extend(b.skip());
            }
            parts.extend(b.push(event.clone()));
        }
        parts.extend(b.finish());
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(|(_, p)| p.len()).sum::<usize>(), 50);
        assert!(
            parts
                .iter()
                .all(|(_, p)| serde_json::to_vec(p).unwrap().len() <= 1000)
        );
        // Indexes count the skipped one: the batch after it starts at 11.
        assert!(
            parts.iter().any(|(start, _)| *start == 11),
            "{:?}",
            parts.iter().map(|p| p.0).collect::<Vec<_>>()
        );
    }
}
