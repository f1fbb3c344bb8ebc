//! A SAM template deployed into moto as it ships, with its Lambda functions run by their
//! real binaries and its SQS event source mappings run by pollers.
//!
//! - [`deploy`] runs `tests/moto/deploy_template.py`: AWS's SAM translator expands the
//!   template, and every resource (topics, queues and their policies, subscriptions with
//!   raw delivery and filter policies, the table, the state machine, roles, alarms…) is
//!   created in moto with the template's own properties.
//! - [`LambdaService`] stands in for Lambda: it serves the Invoke API (moto forwards every
//!   invocation to it — the state machine's tasks included, see `tests/moto/launcher.py`)
//!   and runs each function as its real binary from `target/debug`, with exactly the
//!   environment the template gives it, through a Lambda Runtime API.
//! - [`LambdaService::poll_mappings`] runs each event source mapping of the template as
//!   Lambda does: batches of at most `BatchSize` messages, and with
//!   `ReportBatchItemFailures` only the reported messages stay on the queue (the others
//!   are deleted); an invocation that fails leaves the whole batch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::lambda_runtime::RuntimeApi;
use crate::moto::{Moto, REGION, venv_tool};
use crate::repo_root;

/// What `deploy_template.py` created.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub json: Value,
}

impl Deployed {
    /// An output's value.
    pub fn output(&self, key: &str) -> String {
        self.json["outputs"][key]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("no output {key} in {}", self.json["outputs"]))
            .to_string()
    }

    /// Export name → value, for a stack that imports them.
    pub fn exports(&self) -> Value {
        let mut out = serde_json::Map::new();
        for o in self.json["outputs"].as_object().into_iter().flatten() {
            if let Some(name) = o.1["export"].as_str() {
                out.insert(name.to_string(), o.1["value"].clone());
            }
        }
        Value::Object(out)
    }

    /// The `Ref` value of a resource (topic ARN, queue URL, table name…).
    pub fn physical(&self, logical: &str) -> String {
        self.json["resources"][logical]["physical_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no resource {logical} was created"))
            .to_string()
    }

    pub fn attribute(&self, logical: &str, attr: &str) -> String {
        self.json["resources"][logical]["attributes"][attr]
            .as_str()
            .unwrap_or_else(|| panic!("no attribute {logical}.{attr}"))
            .to_string()
    }

    /// The resolved properties of a resource, as created.
    pub fn properties(&self, logical: &str) -> &Value {
        &self.json["resources"][logical]["properties"]
    }

    pub fn function(&self, logical: &str) -> &Value {
        let f = &self.json["functions"][logical];
        assert!(f.is_object(), "no function {logical}");
        f
    }
}

/// Deploys `template` into `moto` as stack `name` (see the module docs).
pub async fn deploy(
    moto: &Moto,
    template: &Path,
    name: &str,
    parameters: &Value,
    exports: &Value,
) -> Result<Deployed, String> {
    deploy_in(moto, REGION, template, name, parameters, exports).await
}

/// The same, in another region.
pub async fn deploy_in(
    moto: &Moto,
    region: &str,
    template: &Path,
    name: &str,
    parameters: &Value,
    exports: &Value,
) -> Result<Deployed, String> {
    let out = tokio::process::Command::new(venv_tool("python"))
        .arg(repo_root().join("tests/moto/deploy_template.py"))
        .arg(template)
        .arg(name)
        .arg(&moto.endpoint)
        .arg("--parameters")
        .arg(parameters.to_string())
        .arg("--exports")
        .arg(exports.to_string())
        .env("AWS_DEFAULT_REGION", region)
        .current_dir(repo_root())
        .output()
        .await
        .map_err(|e| format!("cannot run deploy_template.py: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "deploying {} failed:\n{}",
            template.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("deploy_template.py printed no JSON: {e}"))?;
    Ok(Deployed { json })
}

/// A debug binary of the workspace, built by `cargo test` next to the test executables.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: the AWS stack tests run the real Lambda binaries; build them with \
         `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// The documents `make deploy` adds to the functions' zips (tools/deploy.py), for a
/// stack deployed straight from the checkout: the rules (`RULES_CONFIG_FILE`) and the
/// flows (`FLOWS_CONFIG_FILE`), written where each function's environment says.
#[derive(Debug, Clone)]
pub struct PackageDocuments {
    pub rules: String,
    pub flows: String,
}

impl Default for PackageDocuments {
    /// What `make deploy` writes for a stack.jsonnet without Rules, Findings or Flows.
    fn default() -> Self {
        PackageDocuments {
            rules: json!({"rules": [], "findings": {"guardduty": true, "securityhub": true}})
                .to_string(),
            flows: String::new(),
        }
    }
}

impl PackageDocuments {
    fn for_variable(&self, name: &str) -> Option<&str> {
        match name {
            "RULES_CONFIG_FILE" => Some(&self.rules),
            "FLOWS_CONFIG_FILE" => Some(&self.flows),
            _ => None,
        }
    }
}

/// A function the service hosts: a real binary, or a stand-in written in the test.
enum Host {
    Binary {
        runtime: RuntimeApi,
        timeout: Duration,
        _children: Vec<tokio::process::Child>,
        log: PathBuf,
        _task_root: Option<tempfile::TempDir>,
        _shipper: Option<AbortOnDrop>,
    },
    InProcess(Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>),
}

#[derive(Default)]
struct Hosted {
    by_name: HashMap<String, Arc<Mutex<Host>>>,
    invocations: Vec<String>,
}

/// Lambda, for the tests: see the module docs.
#[derive(Clone)]
pub struct LambdaService {
    pub url: String,
    hosted: Arc<Mutex<Hosted>>,
    logs: Arc<tempfile::TempDir>,
    moto_env: Arc<Mutex<Vec<(String, String)>>>,
}

/// What an invocation gave: the payload, or the function's error.
pub type Invoked = Result<String, String>;

async fn invoke_api(
    State(service): State<LambdaService>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let payload = if body.is_empty() {
        "{}".to_string()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let mut headers = HeaderMap::new();
    match service.invoke(&name, payload).await {
        Ok(v) => (StatusCode::OK, headers, v),
        Err(e) => {
            headers.insert(
                "X-Amz-Function-Error",
                HeaderValue::from_static("Unhandled"),
            );
            let body = serde_json::from_str::<Value>(&e)
                .ok()
                .filter(|v| v.get("errorMessage").is_some())
                .unwrap_or_else(|| json!({"errorType": "HandlerError", "errorMessage": e}));
            (StatusCode::OK, headers, body.to_string())
        }
    }
}

impl LambdaService {
    pub async fn start() -> LambdaService {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the Lambda service");
        let port = listener.local_addr().unwrap().port();
        let service = LambdaService {
            url: format!("http://127.0.0.1:{port}"),
            hosted: Arc::default(),
            logs: Arc::new(tempfile::tempdir().expect("tempdir")),
            moto_env: Arc::default(),
        };
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
            .with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        service
    }

    /// The AWS environment every hosted binary gets (moto's endpoint and identity).
    pub fn set_aws_env(&self, env: impl IntoIterator<Item = (&'static str, String)>) {
        *self.moto_env.lock().unwrap() = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    }

    /// Runs `binary` as the function `name` (its physical name in moto), `instances`
    /// processes, with `environment` on top of the AWS one, in an empty task root.
    pub async fn host_binary(
        &self,
        name: &str,
        binary: &Path,
        environment: &HashMap<String, String>,
        timeout: Duration,
        instances: usize,
    ) {
        let root = tempfile::tempdir().expect("task root");
        let place = Placement {
            task_root: root,
            log_group: None,
        };
        self.host_in(name, binary, environment, timeout, instances, place)
            .await
    }

    /// The same in `task_root` (the function's code, as Lambda unpacks it in
    /// `/var/task`): its working directory and `LAMBDA_TASK_ROOT`.
    async fn host_in(
        &self,
        name: &str,
        binary: &Path,
        environment: &HashMap<String, String>,
        timeout: Duration,
        instances: usize,
        place: Placement,
    ) {
        let Placement {
            task_root,
            log_group,
        } = place;
        let arn = format!("arn:aws:lambda:{REGION}:123456789012:function:{name}");
        let runtime = RuntimeApi::serve(&arn).await;
        let log = self.logs.path().join(format!("{name}.log"));
        let mut children = Vec::new();
        for _ in 0..instances.max(1) {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("function log");
            // Only what Lambda would set: nothing leaks from the test's environment.
            let mut cmd = std::process::Command::new(binary);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("LAMBDA_TASK_ROOT", task_root.path())
                .current_dir(task_root.path())
                .envs(runtime.lambda_env(name))
                .envs(self.moto_env.lock().unwrap().iter().cloned())
                .envs(environment)
                .stdout(Stdio::from(file.try_clone().expect("log")))
                .stderr(Stdio::from(file));
            let mut cmd = tokio::process::Command::from(cmd);
            cmd.kill_on_drop(true);
            children.push(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display())),
            );
        }
        self.hosted.lock().unwrap().by_name.insert(
            name.to_string(),
            Arc::new(Mutex::new(Host::Binary {
                runtime,
                timeout,
                _children: children,
                _shipper: log_group.map(|g| g.ship(log.clone(), name)),
                log,
                _task_root: Some(task_root),
            })),
        );
    }

    /// A function written in the test (a reviewer that fails, say).
    pub fn host_fn(
        &self,
        name: &str,
        f: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.hosted.lock().unwrap().by_name.insert(
            name.to_string(),
            Arc::new(Mutex::new(Host::InProcess(Arc::new(f)))),
        );
    }

    /// Every function of a stack deployed from the checkout, as its binary, with the
    /// template's environment and the default package documents.
    pub async fn host_stack(&self, stack: &Deployed, instances: usize) {
        self.host_stack_with(stack, instances, &PackageDocuments::default())
            .await
    }

    /// The same with these documents in each function's task root, where its
    /// environment names them (as `make deploy` puts them in its zip).
    pub async fn host_stack_with(
        &self,
        stack: &Deployed,
        instances: usize,
        documents: &PackageDocuments,
    ) {
        for (_, f) in stack.json["functions"].as_object().into_iter().flatten() {
            let env: HashMap<String, String> = f["environment"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let root = tempfile::tempdir().expect("task root");
            for (var, relative) in &env {
                if let Some(text) = documents.for_variable(var) {
                    let path = root.path().join(relative);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, text).unwrap();
                }
            }
            self.host_in(
                f["name"].as_str().unwrap(),
                &binary(f["binary"].as_str().unwrap()),
                &env,
                Duration::from_secs(f["timeout"].as_u64().unwrap_or(30)),
                instances,
                Placement {
                    task_root: root,
                    log_group: None,
                },
            )
            .await;
        }
    }

    /// Every function of a stack that `aws cloudformation deploy` made in `moto` (see
    /// `tests/moto/cfn_patch.py`), as Lambda runs it: its zip, downloaded from the S3
    /// object the function was created from (checked against the function's
    /// `CodeSha256`) and unpacked into a task root, runs its `bootstrap`, with the
    /// environment and timeout read back from the Lambda API. Returns the deployment.
    pub async fn host_deployed(
        &self,
        moto: &Moto,
        region: &str,
        stack: &str,
        instances: usize,
    ) -> Result<Deployed, String> {
        let described = reqwest::get(format!(
            "{}/moto-api/deepalert/stacks/{region}/{stack}",
            moto.endpoint
        ))
        .await
        .map_err(|e| e.to_string())?;
        if !described.status().is_success() {
            return Err(format!("moto holds no stack {stack} in {region}"));
        }
        let json: Value = described.json().await.map_err(|e| e.to_string())?;
        let mut roots = HashMap::new();
        let mut dirs = serde_json::Map::new();
        for (logical, _) in json["functions"].as_object().into_iter().flatten() {
            let root = tempfile::tempdir().map_err(|e| e.to_string())?;
            dirs.insert(logical.clone(), json!(root.path()));
            roots.insert(logical.clone(), root);
        }
        let out = tokio::process::Command::new(venv_tool("python"))
            .arg(repo_root().join("tests/moto/unpack_functions.py"))
            .arg(&moto.endpoint)
            .arg(region)
            .arg(json["functions"].to_string())
            .arg(Value::Object(dirs).to_string())
            .output()
            .await
            .map_err(|e| format!("cannot run unpack_functions.py: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "unpacking the functions' code failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let functions: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        for (logical, f) in functions.as_object().into_iter().flatten() {
            let env: HashMap<String, String> = f["environment"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let root = roots.remove(logical).expect("a task root per function");
            let bootstrap = root.path().join("bootstrap");
            let log_group = json["functions"][logical]["log_group"]
                .as_str()
                .map(|group| LogGroup {
                    endpoint: moto.endpoint.clone(),
                    region: region.to_string(),
                    group: group.to_string(),
                });
            self.host_in(
                f["name"].as_str().unwrap(),
                &bootstrap,
                &env,
                Duration::from_secs(f["timeout"].as_u64().unwrap_or(3)),
                instances,
                Placement {
                    task_root: root,
                    log_group,
                },
            )
            .await;
        }
        Ok(Deployed { json })
    }

    /// Invokes a hosted function synchronously.
    pub async fn invoke(&self, name: &str, payload: String) -> Invoked {
        let host = {
            let mut hosted = self.hosted.lock().unwrap();
            hosted.invocations.push(name.to_string());
            hosted.by_name.get(name).cloned()
        };
        let Some(host) = host else {
            return Err(format!("Function not found: {name}"));
        };
        let (runtime, timeout) = {
            let h = host.lock().unwrap();
            match &*h {
                Host::InProcess(f) => {
                    let f = f.clone();
                    let input: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
                    return f(input).map(|v| v.to_string());
                }
                // Cloned out of the lock, so invocations of one function overlap as on Lambda.
                Host::Binary {
                    runtime, timeout, ..
                } => (runtime.clone(), *timeout),
            }
        };
        let answer = runtime
            .invoke(payload, timeout + Duration::from_secs(5))
            .await?;
        if answer.kind == "response" {
            Ok(answer.body)
        } else {
            Err(answer.body)
        }
    }

    /// Names of the functions invoked so far, in order.
    pub fn invocations(&self) -> Vec<String> {
        self.hosted.lock().unwrap().invocations.clone()
    }

    pub fn reset_invocations(&self) {
        self.hosted.lock().unwrap().invocations.clear();
    }

    /// Every hosted binary's log (stdout and stderr), for failure messages.
    pub fn logs(&self) -> String {
        let hosted = self.hosted.lock().unwrap();
        let mut out = String::new();
        for (name, host) in &hosted.by_name {
            if let Host::Binary { log, .. } = &*host.lock().unwrap() {
                out.push_str(&format!(
                    "--- {name} ---\n{}\n",
                    std::fs::read_to_string(log).unwrap_or_default()
                ));
            }
        }
        out
    }

    /// Runs the stack's SQS event source mappings (see the module docs).
    pub fn poll_mappings(
        &self,
        stack: &Deployed,
        sqs: &aws_sdk_sqs::Client,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut pollers = Vec::new();
        for m in stack.json["event_source_mappings"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let logical = m["function"].as_str().expect("mapping's function");
            let function = stack.function(logical)["name"]
                .as_str()
                .unwrap()
                .to_string();
            let arn = m["event_source_arn"].as_str().unwrap().to_string();
            pollers.push(self.poll(
                sqs.clone(),
                &arn,
                function,
                m["batch_size"].as_u64().unwrap_or(10) as i32,
                m["report_batch_item_failures"].as_bool().unwrap_or(false),
            ));
        }
        pollers
    }

    /// One event source mapping: queue `arn` → function `name`.
    pub fn poll(
        &self,
        sqs: aws_sdk_sqs::Client,
        arn: &str,
        function: String,
        batch_size: i32,
        report_failures: bool,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let arn = arn.to_string();
        tokio::spawn(async move {
            let queue_name = arn.rsplit(':').next().unwrap().to_string();
            let url = loop {
                match sqs.get_queue_url().queue_name(&queue_name).send().await {
                    Ok(o) => break o.queue_url.unwrap_or_default(),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            loop {
                let Ok(out) = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(batch_size.clamp(1, 10))
                    .wait_time_seconds(1)
                    .message_system_attribute_names(
                        aws_sdk_sqs::types::MessageSystemAttributeName::All,
                    )
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let messages = out.messages.unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let event = sqs_event(&arn, &messages);
                let failed: Option<Vec<String>> =
                    match service.invoke(&function, event.to_string()).await {
                        Err(_) => None,
                        Ok(_) if !report_failures => Some(vec![]),
                        Ok(payload) => Some(
                            serde_json::from_str::<Value>(&payload)
                                .ok()
                                .and_then(|v| v["batchItemFailures"].as_array().cloned())
                                .unwrap_or_default()
                                .iter()
                                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                                .collect(),
                        ),
                    };
                let Some(failed) = failed else { continue };
                for m in &messages {
                    if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                        continue;
                    }
                    let _ = sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        })
    }
}

/// Where a hosted function runs: its task root (its code, as Lambda unpacks it), and the
/// log group its output goes to, if any.
struct Placement {
    task_root: tempfile::TempDir,
    log_group: Option<LogGroup>,
}

/// A function's CloudWatch log group in moto: what the function prints goes there, as
/// Lambda sends it (one event per line), so tools that read the logs can be tested.
pub struct LogGroup {
    pub endpoint: String,
    pub region: String,
    pub group: String,
}

/// Aborts its task when dropped (with the function it serves).
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LogGroup {
    /// Sends each new line of `log` to the group, every 300 ms.
    fn ship(self, log: PathBuf, function: &str) -> AbortOnDrop {
        let stream = format!("{function}/{}", std::process::id());
        AbortOnDrop(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // moto routes by the credential scope of the signature; it does not check it.
            let call = |target: &'static str, body: Value| {
                client
                    .post(format!("{}/", self.endpoint))
                    .header("Content-Type", "application/x-amz-json-1.1")
                    .header("X-Amz-Target", format!("Logs_20140328.{target}"))
                    .header(
                        "Authorization",
                        format!(
                            "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/logs/aws4_request, SignedHeaders=host, Signature=0",
                            self.region
                        ),
                    )
                    .body(body.to_string())
                    .send()
            };
            let _ = call(
                "CreateLogStream",
                json!({"logGroupName": self.group, "logStreamName": stream}),
            )
            .await;
            let mut offset = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let Ok(text) = std::fs::read(&log) else {
                    continue;
                };
                let Some(end) = text[offset.min(text.len())..]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map(|i| offset + i + 1)
                else {
                    continue;
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let events: Vec<Value> = String::from_utf8_lossy(&text[offset..end])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| json!({"timestamp": now, "message": l}))
                    .collect();
                offset = end;
                if !events.is_empty() {
                    let _ = call(
                        "PutLogEvents",
                        json!({"logGroupName": self.group, "logStreamName": stream, "logEvents": events}),
                    )
                    .await;
                }
            }
        }))
    }
}

/// The event Lambda hands a function for a batch of SQS messages.
pub fn sqs_event(queue_arn: &str, messages: &[aws_sdk_sqs::types::Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone())))
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}
