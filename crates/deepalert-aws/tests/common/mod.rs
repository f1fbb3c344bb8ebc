//! Shared harness for the tests against moto: SDK clients, resources, the state machine
//! taken from `template.yaml`, a Lambda Invoke endpoint hosting the real handlers, and
//! pollers standing in for Lambda's SQS event source mappings.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::post;
use deepalert_aws::handlers::{self, PublisherDeps, ReceptorDeps, TaskDeps};
use deepalert_aws::{DynamoStore, LambdaReviewer, SfnWorkflow, SnsEmitter, SnsTaskBus};
use deepalert_core::ports::SystemClock;
use deepalert_core::services::PipelineSettings;
use deepalert_core::{InspectionReport, Report, Task};
use deepalert_testkit::moto::Moto;
use deepalert_testkit::{free_port, repo_root};
use serde_json::{Value, json};

pub const REGION: &str = "us-east-1";

pub struct Aws {
    pub moto: Moto,
    pub sdk: SdkConfig,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub lambda: aws_sdk_lambda::Client,
}

impl Aws {
    pub async fn start(lambda_forward: Option<&str>) -> Aws {
        let moto = Moto::start(lambda_forward).await;
        let sdk = moto.sdk().await;
        Aws {
            ddb: aws_sdk_dynamodb::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            moto,
            sdk,
        }
    }

    /// The table as `template.yaml` declares it: string keys pk / sk.
    pub async fn create_table(&self, name: &str) -> String {
        deepalert_testkit::moto::create_table(&self.ddb, name).await
    }

    pub async fn create_topic(&self, name: &str) -> String {
        self.sns
            .create_topic()
            .name(name)
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .unwrap()
    }

    /// (url, arn). With `dlq`, messages received `max_receive` times move there.
    pub async fn create_queue(
        &self,
        name: &str,
        visibility_secs: u32,
        dlq: Option<(&str, u32)>,
    ) -> (String, String) {
        let mut req = self.sqs.create_queue().queue_name(name).attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        );
        if let Some((arn, max)) = dlq {
            req = req.attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string(),
            );
        }
        let url = req.send().await.expect("create queue").queue_url.unwrap();
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue arn")
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        (url, arn)
    }

    pub async fn subscribe_queue(
        &self,
        topic: &str,
        queue_arn: &str,
        raw: bool,
        filter: Option<Value>,
    ) {
        let mut req = self
            .sns
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", raw.to_string());
        if let Some(f) = filter {
            req = req.attributes("FilterPolicy", f.to_string());
        }
        req.send().await.expect("subscribe");
    }

    /// Receives (and deletes) what is on a queue now, waiting up to `wait` for the first.
    pub async fn drain(&self, url: &str, wait: Duration) -> Vec<Message> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            for m in &got {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("delete");
            }
            let empty = got.is_empty();
            out.extend(got);
            if (empty && !out.is_empty()) || Instant::now() > deadline {
                return out;
            }
        }
    }

    /// A role Lambda functions can be created with (moto checks it exists in IAM).
    pub fn create_role(&self) -> String {
        let script = format!(
            "import boto3, json\n\
             iam = boto3.client('iam', endpoint_url='{}', region_name='{REGION}', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             doc = json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Principal': {{'Service': 'lambda.amazonaws.com'}}, 'Action': 'sts:AssumeRole'}}]}})\n\
             print(iam.create_role(RoleName='deepalert-test', AssumeRolePolicyDocument=doc)['Role']['Arn'])",
            self.moto.endpoint
        );
        let out = std::process::Command::new(deepalert_testkit::moto::venv_tool("python"))
            .args(["-c", &script])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "create role: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A Lambda function in moto; its invocations go to the handler host.
    pub async fn create_function(&self, name: &str, role: &str) -> String {
        self.lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(minimal_zip()))
                    .build(),
            )
            .send()
            .await
            .expect("create function")
            .function_arn
            .unwrap()
    }
}

/// An empty zip archive: moto wants code, and never runs it here.
fn minimal_zip() -> Vec<u8> {
    let mut z = vec![0x50, 0x4b, 0x05, 0x06];
    z.extend([0u8; 18]);
    z
}

pub fn template() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml parses")
}

/// The state machine definition from `template.yaml`, with its substitutions resolved to
/// the given function ARNs (by the function's logical id).
pub fn state_machine_definition(function_arns: &HashMap<String, String>) -> String {
    let t = template();
    let props = &t["Resources"]["Workflow"]["Properties"];
    let mut definition =
        serde_json::to_string(&yaml_to_json(&props["Definition"])).expect("definition to JSON");
    let subs = props["DefinitionSubstitutions"]
        .as_mapping()
        .expect("substitutions");
    for (key, value) in subs {
        let key = key.as_str().unwrap();
        let logical = getatt_target(value).unwrap_or_else(|| panic!("{key} is not !GetAtt X.Arn"));
        let arn = function_arns
            .get(&logical)
            .unwrap_or_else(|| panic!("no ARN given for {logical}"));
        definition = definition.replace(&format!("${{{key}}}"), arn);
    }
    definition
}

/// `!GetAtt X.Arn` → `X`.
pub fn getatt_target(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Tagged(t) if t.tag == "GetAtt" || t.tag == "!GetAtt" => {
            let s = t.value.as_str()?;
            s.strip_suffix(".Arn").map(str::to_string)
        }
        _ => None,
    }
}

pub fn yaml_to_json(v: &serde_yaml::Value) -> Value {
    serde_json::to_value(v).expect("plain YAML converts to JSON")
}

/// Redrive maxReceiveCount of a queue in the template.
pub fn template_max_receive(queue: &str) -> u32 {
    template()["Resources"][queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        .as_u64()
        .expect("maxReceiveCount") as u32
}

// ---- The handlers, hosted on the Lambda Invoke API ----

pub struct Deps {
    pub store: DynamoStore,
    pub bus: SnsTaskBus,
    pub emitter: SnsEmitter,
    pub workflow: SfnWorkflow,
    pub reviewer: LambdaReviewer,
    pub settings: PipelineSettings,
}

#[derive(Clone)]
pub struct Host {
    pub url: String,
    pub deps: Arc<OnceLock<Deps>>,
    pub invocations: Arc<std::sync::Mutex<Vec<String>>>,
}

type Invoked = Result<Value, String>;

async fn invoke(
    State(host): State<Host>,
    Path(name): Path<String>,
    body: Bytes,
) -> (HeaderMap, String) {
    host.invocations.lock().unwrap().push(name.clone());
    let deps = host
        .deps
        .get()
        .expect("deps are set before anything is invoked");
    let result: Invoked = async {
        let parse = |b: &Bytes| -> Result<Value, String> {
            serde_json::from_slice(b).map_err(|e| e.to_string())
        };
        match name.as_str() {
            "dispatcher" => {
                let input = serde_json::from_value(parse(&body)?).map_err(|e| e.to_string())?;
                let d = TaskDeps {
                    store: &deps.store,
                    bus: &deps.bus,
                    clock: &SystemClock,
                    settings: &deps.settings,
                };
                handlers::dispatcher(&d, input)
                    .await
                    .map(|o| json!(o))
                    .map_err(|e| e.to_string())
            }
            "review-invoker" => {
                let input = serde_json::from_value(parse(&body)?).map_err(|e| e.to_string())?;
                handlers::review_invoker(&deps.store, &deps.reviewer, input)
                    .await
                    .map(|o| json!(o))
                    .map_err(|e| e.to_string())
            }
            "emitter-publisher" => {
                let input = serde_json::from_value(parse(&body)?).map_err(|e| e.to_string())?;
                let d = PublisherDeps {
                    store: &deps.store,
                    emitter: &deps.emitter,
                    clock: &SystemClock,
                };
                handlers::emitter_publisher(&d, input)
                    .await
                    .map(|o| json!(o))
                    .map_err(|e| e.to_string())
            }
            "reviewer" => {
                let report: Report =
                    serde_json::from_value(parse(&body)?).map_err(|e| e.to_string())?;
                // The example reviewer, as its Lambda entry point would run it.
                deepalert_examples::review(report)
                    .await
                    .map(|v| json!(v))
                    .map_err(|e| e.to_string())
            }
            "failing-reviewer" => {
                Err("policy bundle failed to load: unexpected token at line 3".into())
            }
            other => Err(format!("no handler named {other}")),
        }
    }
    .await;
    let mut headers = HeaderMap::new();
    match result {
        Ok(v) => (headers, v.to_string()),
        Err(e) => {
            headers.insert(
                "X-Amz-Function-Error",
                HeaderValue::from_static("Unhandled"),
            );
            (
                headers,
                json!({"errorType": "HandlerError", "errorMessage": e}).to_string(),
            )
        }
    }
}

impl Host {
    pub async fn start() -> Host {
        let port = free_port();
        let host = Host {
            url: format!("http://127.0.0.1:{port}"),
            deps: Arc::new(OnceLock::new()),
            invocations: Arc::default(),
        };
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(host.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind host");
        tokio::spawn(async move { axum::serve(listener, app).await });
        host
    }
}

// ---- Event source mappings ----

pub fn sqs_event(queue_arn: &str, messages: &[Message]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("SQS event")
}

/// Polls a queue and hands batches to `handler`, deleting what it did not report failed,
/// as Lambda's SQS event source mapping with ReportBatchItemFailures does.
pub fn poll<F, Fut>(
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    handler: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = SqsBatchResponse> + Send,
{
    tokio::spawn(async move {
        loop {
            let Ok(out) = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
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
            let response = handler(sqs_event(&arn, &messages)).await;
            for m in &messages {
                let failed = response
                    .batch_item_failures
                    .iter()
                    .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
                if !failed {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        }
    })
}

/// The whole stack on moto, wired as `template.yaml` wires it.
pub struct Stack {
    pub aws: Aws,
    pub host: Host,
    pub table: String,
    pub alert_topic: String,
    pub task_topic: String,
    pub report_topic: String,
    pub alert_queue: (String, String),
    pub alert_dlq: (String, String),
    pub inspection_queue: (String, String),
    pub inspector_queue: (String, String),
    pub emitter_queue: (String, String),
    pub state_machine: String,
    pollers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &self.pollers {
            p.abort();
        }
    }
}

pub struct StackOptions {
    pub reviewer_function: &'static str,
    /// What the state machine's Review task invokes (normally "review-invoker").
    pub review_function: &'static str,
    pub inspection_delay: u64,
    pub review_delay: u64,
    /// Run the pollers (receptor, gateway, example inspector).
    pub pollers: bool,
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Stack {
        let host = Host::start().await;
        let aws = Aws::start(Some(&host.url)).await;
        aws.moto.execute_state_machines().await;

        let table = aws.create_table("deepalert").await;
        let alert_topic = aws.create_topic("alerts").await;
        let task_topic = aws.create_topic("tasks").await;
        let report_topic = aws.create_topic("reports").await;

        let alert_dlq = aws.create_queue("alerts-dlq", 30, None).await;
        // Visibility 1 s instead of the template's 180 s, so a refused alert reaches the
        // DLQ within the test; maxReceiveCount as in the template.
        let alert_queue = aws
            .create_queue(
                "alerts",
                1,
                Some((&alert_dlq.1, template_max_receive("AlertQueue"))),
            )
            .await;
        let raw = template()["Resources"]["AlertSubscription"]["Properties"]["RawMessageDelivery"]
            .as_bool()
            .unwrap_or(false);
        aws.subscribe_queue(&alert_topic, &alert_queue.1, raw, None)
            .await;
        let inspection_dlq = aws.create_queue("inspection-dlq", 30, None).await;
        let inspection_queue = aws
            .create_queue(
                "inspection",
                1,
                Some((&inspection_dlq.1, template_max_receive("InspectionQueue"))),
            )
            .await;
        // A user's inspector: subscribed with a filter policy on attribute_type.
        let inspector_queue = aws.create_queue("example-inspector", 30, None).await;
        aws.subscribe_queue(
            &task_topic,
            &inspector_queue.1,
            false,
            Some(json!({"attribute_type": ["ipaddr", "username"]})),
        )
        .await;
        // A user's emitter, without raw delivery: message attributes in the envelope.
        let emitter_queue = aws.create_queue("example-emitter", 30, None).await;
        aws.subscribe_queue(&report_topic, &emitter_queue.1, false, None)
            .await;

        let role = aws.create_role();
        let mut arns = HashMap::new();
        for (logical, name) in [
            ("DispatcherFunction", "dispatcher"),
            ("ReviewInvokerFunction", opts.review_function),
            ("EmitterPublisherFunction", "emitter-publisher"),
        ] {
            arns.insert(logical.to_string(), aws.create_function(name, &role).await);
        }
        let reviewer_arn = aws.create_function(opts.reviewer_function, &role).await;
        let state_machine = aws
            .sfn
            .create_state_machine()
            .name("deepalert")
            .definition(state_machine_definition(&arns))
            .role_arn("arn:aws:iam::123456789012:role/deepalert-workflow")
            .send()
            .await
            .expect("create state machine")
            .state_machine_arn;

        let store = DynamoStore::new(aws.ddb.clone(), &table, chrono::Duration::days(30));
        let deps = Deps {
            store: store.clone(),
            bus: SnsTaskBus::new(aws.sns.clone(), &task_topic),
            emitter: SnsEmitter::new(aws.sns.clone(), &report_topic),
            workflow: SfnWorkflow::new(
                aws.sfn.clone(),
                &state_machine,
                Duration::from_secs(opts.inspection_delay),
                Duration::from_secs(opts.review_delay),
            ),
            reviewer: LambdaReviewer::new(aws.lambda.clone(), reviewer_arn),
            settings: PipelineSettings::default(),
        };
        assert!(host.deps.set(deps).is_ok());

        let mut stack = Stack {
            aws,
            host,
            table,
            alert_topic,
            task_topic,
            report_topic,
            alert_queue,
            alert_dlq,
            inspection_queue,
            inspector_queue,
            emitter_queue,
            state_machine,
            pollers: vec![],
        };
        if opts.pollers {
            stack.start_pollers();
        }
        stack
    }

    pub fn deps(&self) -> &Deps {
        self.host.deps.get().unwrap()
    }

    pub fn start_pollers(&mut self) {
        let deps = self.host.deps.clone();
        self.pollers.push(poll(
            self.aws.sqs.clone(),
            self.alert_queue.0.clone(),
            self.alert_queue.1.clone(),
            move |event| {
                let deps = deps.clone();
                async move {
                    let d = deps.get().unwrap();
                    let r = ReceptorDeps {
                        store: &d.store,
                        workflow: &d.workflow,
                        clock: &SystemClock,
                        settings: &d.settings,
                    };
                    handlers::receptor(&r, event).await
                }
            },
        ));
        let deps = self.host.deps.clone();
        self.pollers.push(poll(
            self.aws.sqs.clone(),
            self.inspection_queue.0.clone(),
            self.inspection_queue.1.clone(),
            move |event| {
                let deps = deps.clone();
                async move {
                    let d = deps.get().unwrap();
                    let g = TaskDeps {
                        store: &d.store,
                        bus: &d.bus,
                        clock: &SystemClock,
                        settings: &d.settings,
                    };
                    handlers::inspector_gateway(&g, event).await
                }
            },
        ));
        // The example inspector: task topic → its queue → answer on the inspection queue.
        let sqs = self.aws.sqs.clone();
        let answer_to = self.inspection_queue.0.clone();
        self.pollers.push(poll(
            self.aws.sqs.clone(),
            self.inspector_queue.0.clone(),
            self.inspector_queue.1.clone(),
            move |event| {
                let sqs = sqs.clone();
                let answer_to = answer_to.clone();
                async move {
                    for record in &event.records {
                        let body =
                            handlers::unwrap_sns_envelope(record.body.as_deref().unwrap_or(""));
                        let task: Task = serde_json::from_str(&body).expect("task JSON");
                        let answer = InspectionReport {
                            report_id: task.report_id,
                            author: "example-inspector".into(),
                            attribute: task.attribute.clone(),
                            output: deepalert_examples::inspect(task.clone())
                                .await
                                .expect("example inspector"),
                            error: None,
                        };
                        sqs.send_message()
                            .queue_url(&answer_to)
                            .message_body(serde_json::to_string(&answer).unwrap())
                            .send()
                            .await
                            .expect("send inspection");
                    }
                    SqsBatchResponse::default()
                }
            },
        ));
    }

    /// Published reports on the emitter queue: (report, SNS message attributes).
    pub async fn published(&self, wait: Duration) -> Vec<(Report, Value)> {
        self.aws
            .drain(&self.emitter_queue.0, wait)
            .await
            .into_iter()
            .map(|m| {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap()).expect("SNS envelope");
                let report: Report = serde_json::from_str(envelope["Message"].as_str().unwrap())
                    .expect("report JSON");
                (report, envelope["MessageAttributes"].clone())
            })
            .collect()
    }

    /// Waits up to `secs` for publications to arrive on the emitter queue.
    pub async fn wait_published(&self, secs: u64) -> Vec<(Report, Value)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.published(Duration::from_secs(2)).await;
            if !got.is_empty() || Instant::now() > deadline {
                return got;
            }
        }
    }

    pub async fn publish_alert(&self, alert: &Value) {
        self.aws
            .sns
            .publish()
            .topic_arn(&self.alert_topic)
            .message(alert.to_string())
            .send()
            .await
            .expect("publish alert");
    }
}

impl Stack {
    /// Every execution with its status and events, for failure messages.
    pub async fn executions_report(&self) -> String {
        let mut out = String::new();
        let Ok(list) = self
            .aws
            .sfn
            .list_executions()
            .state_machine_arn(&self.state_machine)
            .send()
            .await
        else {
            return "cannot list executions".into();
        };
        for e in list.executions {
            out.push_str(&format!("execution {} {:?}\n", e.name, e.status));
            if let Ok(h) = self
                .aws
                .sfn
                .get_execution_history()
                .execution_arn(&e.execution_arn)
                .send()
                .await
            {
                for ev in h.events {
                    out.push_str(&format!("  {:?}", ev.r#type));
                    if let Some(d) = ev.task_failed_event_details {
                        out.push_str(&format!(" {:?} {:?}", d.error, d.cause));
                    }
                    if let Some(d) = ev.execution_failed_event_details {
                        out.push_str(&format!(" {:?} {:?}", d.error, d.cause));
                    }
                    if let Some(d) = ev.lambda_function_failed_event_details {
                        out.push_str(&format!(" {:?} {:?}", d.error, d.cause));
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}
