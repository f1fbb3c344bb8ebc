//! `make bench`: `deepalert rules eval` (the binary, built with the bench's profile) on a
//! gzipped CloudTrail file with Responder's five presets configured — gunzip, stream,
//! parse, evaluate, print — and the figures its summary gives: events/s, peak memory.
//! `BENCH_TRAIL_RECORDS` (default 200,000) sets the file's size.

use std::process::Command;
use std::time::Instant;

const PRESETS: &str = r#"
[[rule]]
preset = "root-login"

[[rule]]
preset = "suspicious-login-hour"
[rule.options]
time_zone = "Europe/Paris"

[[rule]]
preset = "suspicious-login-ip"
[rule.options]
trusted_cidrs = ["203.0.113.0/24", "10.0.0.0/8"]

[[rule]]
preset = "non-compliant-user-created"
[rule.options]
user_name_pattern = "[a-z]+\\.[a-z]+"

[[rule]]
preset = "unauthorized-instance-created"

[findings]
guardduty = false
securityhub = false
"#;

fn main() {
    let records: usize = std::env::var("BENCH_TRAIL_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("presets.toml");
    std::fs::write(&config, PRESETS).expect("config");
    let trail = dir.path().join("trail.json.gz");
    let made = Instant::now();
    deepalert_testkit::trail::write_trail(&trail, records);
    let size = std::fs::metadata(&trail).expect("trail").len();
    println!(
        "trail file: {records} records, {:.1} MB gzipped (written in {:.1} s)",
        size as f64 / 1e6,
        made.elapsed().as_secs_f64()
    );
    for run in 1..=3 {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_deepalert"))
            .args(["rules", "eval", "--format", "json"])
            .arg(&config)
            .arg(&trail)
            .output()
            .expect("deepalert rules eval");
        let wall = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let s = &v["summary"];
        println!(
            "rules eval, five presets, run {run}: {:>7.0} events/s end to end ({:.2} s wall, process start included), {} alerts, peak RSS {:.1} MiB",
            records as f64 / wall,
            wall,
            s["alerts"],
            s["peak_rss_mib"].as_f64().unwrap_or(0.0)
        );
    }
}
