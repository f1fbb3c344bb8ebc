//! Exec plug-ins: any program. It gets one JSON document on stdin and answers on stdout.
//! The command is an argument vector run directly (no shell, no interpolation), with a
//! timeout; a program still running at the timeout is killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use deepalert_core::ports::{PortError, PortResult, Reviewer};
use deepalert_core::{InspectorOutput, Report, ReviewResult, SectionFormat, Task};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{EmitterPlugin, InspectorPlugin, PluginError};

/// Keep this much of a failing plug-in's stderr in the error (the end, where errors are).
const STDERR_TAIL: usize = 1000;
/// What is read of stdout by default: a plug-in printing without end must not grow the
/// server (`[pipeline] max_plugin_output`).
pub const DEFAULT_MAX_OUTPUT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ExecCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub timeout: Duration,
    /// Bytes of stdout read at most; more kills the plug-in.
    pub max_output: usize,
}

impl ExecCommand {
    /// Runs the program with `input` on stdin; returns its stdout if it exits 0.
    pub async fn run(&self, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| PluginError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        // Write stdin concurrently with reading stdout, or a plug-in that answers before
        // reading all its input would deadlock with us. A plug-in that ignores stdin
        // closes the pipe: that write error is not the plug-in's failure.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // stderr on its own task: it must not hold us up when stdout overflows, nor when
        // a grandchild keeps it open after the plug-in exited.
        let stderr = tokio::spawn(read_tail(stderr, STDERR_TAIL));
        let limit = self.max_output;
        let work = async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map_err(|e| PluginError::Failed(format!("reading plug-in output: {e}")))?;
            if out.len() > limit {
                return Err(PluginError::OutputTooLarge(limit));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| PluginError::Failed(format!("waiting for plug-in: {e}")))?;
            Ok((status, out))
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| PluginError::Timeout(self.timeout))
            .and_then(|r| r);
        let (status, stdout) = match result {
            Ok(done) => done,
            Err(e) => {
                // Killed; closing the pipes also stops what it started (SIGPIPE).
                let _ = child.start_kill();
                stderr.abort();
                writer.abort();
                return Err(e);
            }
        };
        let stderr = tokio::time::timeout(Duration::from_secs(1), stderr)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        writer.abort();
        if !status.success() {
            return Err(PluginError::Exit {
                status: status.to_string(),
                stderr: stderr_tail(&stderr),
            });
        }
        Ok(stdout)
    }

    /// Runs with `input` as JSON and reads stdout with `read`; a refusal shows the start
    /// of what the plug-in printed.
    async fn run_json<I: serde::Serialize, O>(
        &self,
        input: &I,
        read: impl FnOnce(&[u8]) -> Result<O, String>,
    ) -> Result<O, PluginError> {
        let input = serde_json::to_vec(input).expect("domain types always serialize");
        let out = self.run(&input).await?;
        read(&out).map_err(|e| {
            let shown = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
            PluginError::BadOutput(format!("{e} in {shown:?}"))
        })
    }
}

/// Reads to the end, keeping only the last `keep` bytes (and a little more, to cut at a
/// character boundary later).
async fn read_tail(mut from: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                let cap = keep * 4 + 8192;
                if kept.len() > cap {
                    kept.drain(..kept.len() - keep * 4);
                }
            }
        }
    }
}

fn stderr_tail(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        return String::new();
    }
    let start = stderr
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| stderr.len() - i <= STDERR_TAIL)
        .unwrap_or(0);
    format!(": {}", &stderr[start..])
}

/// stdin: a task `{"report_id", "attribute"}`; stdout: `{"findings": [...],
/// "attributes": [...]}`, or DeepAlert's finding / new-attribute messages one per line
/// (empty output or `null`: nothing found).
pub struct ExecInspector(pub ExecCommand);

#[async_trait]
impl InspectorPlugin for ExecInspector {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        self.0
            .run_json(task, |out| {
                InspectorOutput::from_plugin_output(task, out).map_err(|e| e.to_string())
            })
            .await
    }
}

/// stdin: the compiled report; stdout: `{"severity": "...", "reason": "..."}` (empty
/// output or `null`: no verdict).
pub struct ExecReviewer(pub ExecCommand);

#[async_trait]
impl Reviewer for ExecReviewer {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
        self.0
            .run_json(report, deepalert_core::parse_verdict)
            .await
            .map_err(|e| PortError::with_source("exec reviewer", e))
    }
}

/// stdin: the published report, sections written as `sections` says; exit status 0
/// means delivered. stdout is ignored.
pub struct ExecEmitter {
    pub command: ExecCommand,
    pub sections: SectionFormat,
}

#[async_trait]
impl EmitterPlugin for ExecEmitter {
    async fn emit(&self, report: &Report) -> Result<(), PluginError> {
        let input = report.to_wire(self.sections).to_string();
        self.command.run(input.as_bytes()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> ExecCommand {
        ExecCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::new(),
            cwd: None,
            timeout: Duration::from_millis(timeout_ms),
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    #[tokio::test]
    async fn passes_stdin_and_reads_stdout() {
        let out = sh("cat", 5000).run(b"hello").await.unwrap();
        assert_eq!(out, b"hello");
    }

    #[tokio::test]
    async fn arguments_are_not_interpolated() {
        let cmd = ExecCommand {
            program: "/bin/echo".into(),
            args: vec!["$HOME; rm -rf /".into()],
            env: BTreeMap::new(),
            cwd: None,
            timeout: Duration::from_secs(5),
            max_output: DEFAULT_MAX_OUTPUT,
        };
        assert_eq!(cmd.run(b"").await.unwrap(), b"$HOME; rm -rf /\n");
    }

    #[tokio::test]
    async fn a_plugin_printing_without_end_is_killed_at_the_limit() {
        let mut cmd = sh("yes 'a finding that never ends'", 30_000);
        cmd.max_output = 64 * 1024;
        let started = std::time::Instant::now();
        let err = cmd.run(b"").await.unwrap_err();
        assert!(matches!(err, PluginError::OutputTooLarge(65536)), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "killed, not timed out"
        );
        // Exactly the limit is fine.
        let mut cmd = sh("head -c 1000 /dev/zero", 5_000);
        cmd.max_output = 1000;
        assert_eq!(cmd.run(b"").await.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn endless_stderr_keeps_only_its_tail() {
        let err = sh(
            "yes noise | head -c 5000000 >&2; echo the-real-error >&2; exit 3",
            30_000,
        )
        .run(b"")
        .await
        .unwrap_err();
        let PluginError::Exit { stderr, .. } = err else {
            panic!("{err}")
        };
        assert!(stderr.ends_with("the-real-error"), "{stderr}");
        assert!(stderr.len() <= STDERR_TAIL + 2, "{}", stderr.len());
    }

    #[tokio::test]
    async fn timeout_kills() {
        let err = sh("sleep 5", 100).run(b"").await.unwrap_err();
        assert!(matches!(err, PluginError::Timeout(_)), "{err}");
    }

    #[tokio::test]
    async fn nonzero_exit_carries_stderr() {
        let err = sh("echo boom >&2; exit 3", 5000)
            .run(b"")
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("exit status: 3") && msg.contains("boom"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let mut cmd = sh("", 1000);
        cmd.program = "/nonexistent/inspector".into();
        let err = cmd.run(b"").await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/inspector"), "{err}");
    }

    #[tokio::test]
    async fn bad_json_is_bad_output() {
        let insp = ExecInspector(sh("echo '{not json'", 5000));
        let task: Task = serde_json::from_str(
            r#"{"report_id":"6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11","attribute":{"type":"ipaddr","value":"192.0.2.1"}}"#,
        )
        .unwrap();
        let err = insp.inspect(&task).await.unwrap_err();
        assert!(matches!(err, PluginError::BadOutput(_)), "{err}");
        let empty = ExecInspector(sh("cat >/dev/null", 5000));
        assert_eq!(
            empty.inspect(&task).await.unwrap(),
            InspectorOutput::default()
        );
    }
}
