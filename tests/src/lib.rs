//! Harness for deepalert's end-to-end tests: free ports, a `deepalert serve` process
//! that is killed when dropped, a small blocking API client, and paths to the examples.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod aws_stack;
pub mod deploy;
pub mod faults;
pub mod http;
pub mod lambda_runtime;
pub mod moto;
pub mod smtp;
pub mod trail;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn example(rel: &str) -> PathBuf {
    repo_root().join("examples").join(rel)
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

/// Python 3 runs the example plug-ins; fail loudly rather than skip.
pub fn python() -> &'static str {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 is required by the example plug-ins used in this test: install Python 3 (apt-get install python3)"
    );
    "python3"
}

/// A running `deepalert serve`, killed (SIGKILL, like a crash) on drop.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    log_path: PathBuf,
    api_key: Option<String>,
}

pub struct ServerSpec<'a> {
    pub binary: &'a Path,
    pub config: Option<&'a Path>,
    pub data: &'a Path,
    pub port: u16,
    pub api_key: Option<&'a str>,
}

impl Server {
    pub fn start(spec: ServerSpec<'_>) -> Server {
        Server::start_with_env(spec, &[])
    }

    /// The same, with these environment variables (`DEEPALERT_FAULT`…).
    pub fn start_with_env(spec: ServerSpec<'_>, env: &[(&str, &str)]) -> Server {
        let log_path = spec.data.with_extension(format!("{}.log", spec.port));
        let log = std::fs::File::create(&log_path).expect("create server log");
        let mut cmd = Command::new(spec.binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", spec.port))
            .arg("--data")
            .arg(spec.data)
            .env("DEEPALERT_LOG", "info,deepalert_core=debug")
            .env_remove("DEEPALERT_API_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(config) = spec.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(key) = spec.api_key {
            cmd.env("DEEPALERT_API_KEY", key);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", spec.binary.display()));
        let mut server = Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{}", spec.port),
            log_path,
            api_key: spec.api_key.map(str::to_string),
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = http();
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "deepalert serve exited ({status}) before becoming healthy:\n{}",
                    self.log()
                );
            }
            if client
                .get(format!("{}/healthz", self.base))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "deepalert serve did not answer /healthz within 20 s:\n{}",
            self.log()
        );
    }

    /// Resident memory of the server process in KiB (Linux `VmRSS`), for figures.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits up to `secs` for the process to end by itself; whether it did.
    pub fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            match self.child.as_mut().map(|c| c.try_wait()) {
                None | Some(Ok(Some(_))) => {
                    self.child = None;
                    return true;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    /// POSTs an alert; `None` when the server did not answer (it died, say).
    pub fn try_post_alert(&self, alert: &Value) -> Option<(u16, Value)> {
        let resp = self
            .auth(http().post(format!("{}/api/v1/alerts", self.base)))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(alert).expect("serialize alert"))
            .send()
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().unwrap_or(Value::Null)))
    }

    /// Kills the process without letting it clean up, as a crash or power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn auth(&self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// POSTs raw bytes as an alert; returns status and JSON body.
    pub fn post_alert_bytes(&self, body: Vec<u8>) -> (u16, Value) {
        self.post_bytes("/api/v1/alerts", body)
    }

    /// POSTs raw bytes (JSON) to `path`; returns status and JSON body.
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .auth(http().post(format!("{}{path}", self.base)))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    pub fn post_alert(&self, alert: &Value) -> (u16, Value) {
        self.post_alert_bytes(serde_json::to_vec(alert).expect("serialize alert"))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .auth(http().get(format!("{}{path}", self.base)))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    pub fn report(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/reports/{id}"));
        assert_eq!(status, 200, "GET report {id}: {body}");
        body
    }

    /// Polls the report until `done` holds; panics with the report and log after `secs`.
    pub fn wait_report(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let report = self.report(id);
            if done(&report) {
                return report;
            }
            if Instant::now() > deadline {
                panic!(
                    "report {id} did not reach the expected state within {secs} s:\n{}\n--- server log ---\n{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Lines of a JSON-lines file (missing file: none).
pub fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad line in {}: {e}", path.display()))
        })
        .collect()
}

/// Waits for `cond` up to `secs`; false if it never held.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}
