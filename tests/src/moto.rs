//! moto (the AWS emulator) from the project's `.venv`, on a free port, with Lambda
//! invocations forwarded to an HTTP endpoint (see `tests/moto/launcher.py`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// The project's Python tools; `make venv` (run by `make test`) creates them.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` (it installs moto and cfn-lint from tools/test-requirements.txt into .venv; `make test` does it first)",
        path.display()
    );
    path
}

pub const REGION: &str = "us-east-1";

/// A table as deepalert's tables are keyed: string keys `pk` (hash) and `sk` (range).
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create table");
    name.to_string()
}

pub struct Moto {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto; `lambda_forward` is the base URL of a Lambda Invoke API endpoint.
    pub async fn start(lambda_forward: Option<&str>) -> Moto {
        let python = venv_tool("python");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("moto.log");
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(repo_root().join("tests/moto/launcher.py"))
            .arg(port.to_string())
            .stdout(Stdio::from(std::fs::File::create(&log).expect("moto log")))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("moto.err")).expect("moto log"),
            ));
        if let Some(url) = lambda_forward {
            cmd.env("DEEPALERT_LAMBDA_FORWARD", url);
        }
        let child = cmd.spawn().expect("cannot start moto from .venv");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(format!("{}/moto-api/data.json", moto.endpoint))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start within 30 s:\n{}",
                moto.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Makes moto really execute state machines (Wait, Choice, Task, Catch…).
    pub async fn execute_state_machines(&self) {
        let resp = reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.endpoint))
            .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .await
            .expect("moto config");
        assert!(resp.status().is_success(), "moto config: {}", resp.status());
    }

    /// SDK configuration for clients of this moto (region us-east-1, test credentials).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        self.sdk_via(&self.endpoint).await
    }

    /// The same, signed with another access key id (`stack`: counted by the launcher).
    pub async fn sdk_signed_as(&self, access_key: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                access_key, "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// The same in another region.
    pub async fn sdk_in(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// The same, through another endpoint in front of moto (a fault proxy).
    pub async fn sdk_via(&self, endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// The environment a child process needs to reach this moto with the same identity.
    pub fn env(&self) -> [(&'static str, String); 4] {
        self.env_signed_as("testing")
    }

    /// The same with another access key id. The launcher counts the requests signed
    /// `stack` (what the stack's functions cost); the tests' own use `testing`.
    pub fn env_signed_as(&self, access_key: &str) -> [(&'static str, String); 4] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", access_key.into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
        ]
    }

    /// The environment of a process in `region`, signed with `access_key`.
    pub fn env_in(&self, region: &str, access_key: &str) -> [(&'static str, String); 4] {
        let mut env = self.env_signed_as(access_key);
        env[3].1 = region.to_string();
        env
    }

    /// What the stack asked of AWS since the last reset (see `tests/moto/launcher.py`).
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        reqwest::Client::new()
            .get(format!("{}/moto-api/deepalert/requests", self.endpoint))
            .send()
            .await
            .expect("moto request log")
            .json()
            .await
            .expect("moto request log JSON")
    }

    pub async fn reset_requests(&self) {
        reqwest::Client::new()
            .post(format!("{}/moto-api/deepalert/reset", self.endpoint))
            .send()
            .await
            .expect("reset moto request log");
    }

    pub fn log(&self) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let err = self.log.with_file_name("moto.err");
        format!("{}{}", read(self.log.clone()), read(err))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `.venv` tool to completion: (success, stdout + stderr).
pub fn run_venv_tool(name: &str, args: &[&str]) -> (bool, String) {
    run_venv_tool_env(name, args, &[])
}

/// The same, with these environment variables set.
pub fn run_venv_tool_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(venv_tool(name))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
