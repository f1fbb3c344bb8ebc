//! `exec`: any program, run as plug-ins are run (locally only, in the configuration
//! file's directory). It gets the report as
//! JSON on stdin, and in its environment DEEPALERT_REPORT_ID, DEEPALERT_FLOW and
//! DEEPALERT_TARGETS (the targets' ids, comma-separated); exit 0 is done, its last line
//! of output the timeline's message; anything else fails with its stderr.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use deepalert_core::Report;
use tokio::io::AsyncWriteExt;

pub async fn run(
    cwd: &Path,
    command: &Path,
    args: &[String],
    timeout: Duration,
    report: &Report,
    flow: &str,
    targets: &[String],
) -> Result<String, String> {
    let shown = command.display().to_string();
    let mut child = tokio::process::Command::new(command)
        .args(args)
        .current_dir(cwd)
        .env("DEEPALERT_REPORT_ID", report.id.to_string())
        .env("DEEPALERT_FLOW", flow)
        .env("DEEPALERT_TARGETS", targets.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let input = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input is not an error.
        let _ = stdin.write_all(&input).await;
    }
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| format!("{shown}: {e}"))?,
        Err(_) => {
            return Err(format!(
                "{shown} did not finish within {}s and was killed",
                timeout.as_secs()
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if out.status.success() {
        Ok(if last.is_empty() {
            format!("{shown} succeeded")
        } else {
            last.chars().take(500).collect()
        })
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            stderr.chars().take(500).collect::<String>()
        ))
    }
}
