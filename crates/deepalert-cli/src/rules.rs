//! `deepalert rules test|eval` and `deepalert events send`: try rules locally, and feed
//! cloud events to a running server.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use deepalert_core::rules::{RuleSet, parse_events};
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

/// What the rules of a configuration file (its `[[rule]]`s and `[findings]`) or of a
/// directory of Rego rules would make of the events in `events`; nothing is stored.
pub fn eval(rules: &Path, events: &Path) -> Result<ExitCode, String> {
    let set = if rules.is_dir() {
        let rule = RegoRule::load(rules, Value::Null, vec![]).map_err(|e| e.to_string())?;
        RuleSet::new(vec![std::sync::Arc::new(rule)])
    } else {
        let config = Config::load(rules).map_err(|e| e.to_string())?;
        config.rule_set().map_err(|e| e.to_string())?
    };
    let bytes = read_maybe_gzip(events)?;
    let parsed = parse_events(&bytes).map_err(|e| format!("{}: {e}", events.display()))?;
    let mut out = Vec::new();
    let mut failed = false;
    for (i, event) in parsed.iter().enumerate() {
        match event {
            Err(e) => {
                failed = true;
                out.push(json!({"event": i, "error": e.to_string()}));
            }
            Ok(event) => {
                let evaluation = set.evaluate(event);
                failed |= !evaluation.errors.is_empty();
                out.push(json!({
                    "event": i,
                    "alerts": evaluation.alerts,
                    "errors": evaluation.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                }));
            }
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_default()
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A file, gunzipped if it is gzip (CloudTrail writes its log files so).
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: not a readable gzip file: {e}", path.display()))?;
        return Ok(out);
    }
    Ok(bytes)
}

/// Splits a document of events into requests under the server's body limit: a CloudTrail
/// log file or an array of events goes in parts; one event goes whole.
fn requests(doc: Value, limit: usize) -> Vec<Value> {
    type Wrap = fn(Vec<Value>) -> Value;
    let (items, wrap): (Vec<Value>, Wrap) = match doc {
        Value::Object(mut o) if o.get("Records").is_some_and(Value::is_array) => (
            match o.remove("Records") {
                Some(Value::Array(r)) => r,
                _ => vec![],
            },
            |part| json!({ "Records": part }),
        ),
        Value::Array(items) => (items, Value::Array),
        other => return vec![other],
    };
    let mut out = Vec::new();
    let mut part = Vec::new();
    let mut size = 0;
    for item in items {
        let n = serde_json::to_vec(&item).map(|b| b.len()).unwrap_or(0) + 1;
        if !part.is_empty() && size + n > limit {
            out.push(wrap(std::mem::take(&mut part)));
            size = 0;
        }
        size += n;
        part.push(item);
    }
    if !part.is_empty() || out.is_empty() {
        out.push(wrap(part));
    }
    out
}

pub async fn send(server: &ServerArgs, files: &[PathBuf]) -> Result<ExitCode, String> {
    let client = client()?;
    let mut failed = 0usize;
    for file in files {
        let name = file.display();
        let doc = read_maybe_gzip(file).and_then(|b| {
            serde_json::from_slice::<Value>(&b).map_err(|e| format!("invalid JSON: {e}"))
        });
        let doc = match doc {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{name}: {e}");
                failed += 1;
                continue;
            }
        };
        // Leave room under the server's 1 MiB for the envelope.
        for part in requests(doc, 900 * 1024) {
            let resp = server
                .request(&client, reqwest::Method::POST, "/api/v1/events")
                .json(&part)
                .send()
                .await;
            let body = match answer(server, resp).await {
                Ok(body) => body,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    failed += 1;
                    continue;
                }
            };
            let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
            for a in &alerts {
                println!(
                    "{name}: {} {} {} → report {} ({})",
                    a["detector"].as_str().unwrap_or("?"),
                    a["rule_id"].as_str().unwrap_or("?"),
                    a["alert_key"].as_str().unwrap_or(""),
                    a["report_id"].as_str().unwrap_or("?"),
                    a["status"].as_str().unwrap_or("?")
                );
            }
            if alerts.is_empty() {
                println!("{name}: no rule matched");
            }
            for e in body["errors"].as_array().into_iter().flatten() {
                failed += 1;
                eprintln!(
                    "{name}: event {}: {}",
                    e["event"],
                    e["error"].as_str().unwrap_or("?")
                );
            }
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
        let record = json!({"eventName": "x".repeat(100)});
        let file = json!({"Records": vec![record.clone(); 50]});
        let parts = requests(file, 1000);
        assert!(parts.len() > 1);
        let total: usize = parts
            .iter()
            .map(|p| p["Records"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 50);
        assert!(
            parts
                .iter()
                .all(|p| serde_json::to_vec(p).unwrap().len() < 1200)
        );
        assert_eq!(requests(json!({"source": "aws.iam"}), 10).len(), 1);
        assert_eq!(
            requests(json!([1, 2, 3]), 1_000_000),
            vec![json!([1, 2, 3])]
        );
    }
}
