//! Shared harness for the tests against moto: SDK clients and resources, and the stack of
//! `template.yaml` deployed as it ships with its real Lambda binaries
//! (`deepalert_testkit::aws_stack`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use deepalert_core::{InspectionReport, Report, Task};
use deepalert_testkit::aws_stack::{Deployed, LambdaService, PackageDocuments, binary, deploy};
use deepalert_testkit::moto::Moto;
use deepalert_testkit::repo_root;
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
             try:\n    print(iam.create_role(RoleName='deepalert-test', AssumeRolePolicyDocument=doc)['Role']['Arn'])\n\
             except iam.exceptions.EntityAlreadyExistsException:\n    print(iam.get_role(RoleName='deepalert-test')['Role']['Arn'])",
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

// ---- The stack of template.yaml, deployed and run ----

/// The whole stack on moto: `template.yaml` deployed resource by resource, its five
/// functions run by their real binaries, its event source mappings by pollers, plus what
/// a user adds next to it (inspectors on the task topic, an emitter queue on the report
/// topic, a reviewer function).
pub struct Stack {
    pub aws: Aws,
    pub lambda: LambdaService,
    pub deployed: Deployed,
    pub table: String,
    pub alert_topic: String,
    pub task_topic: String,
    pub report_topic: String,
    pub alert_queue: String,
    pub alert_dlq: String,
    pub inspection_queue: String,
    pub inspection_dlq: String,
    pub dispatch_dlq: String,
    pub emitter_queue: String,
    pub state_machine: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &self.tasks {
            p.abort();
        }
    }
}

/// A user's inspector: which attribute types it subscribes to (SNS filter policy) and
/// what it sends back on the inspection queue for a task (message bodies).
pub struct UserInspector {
    pub name: &'static str,
    pub attribute_types: &'static [&'static str],
    pub answer: fn(&Task) -> Vec<Value>,
}

pub struct StackOptions {
    /// The reviewer Lambda (`ReviewerLambdaArn`): a binary of the workspace, or a
    /// stand-in that fails.
    pub reviewer: Reviewer,
    /// The Review task's function fails itself (the state machine's Catch is tested).
    pub failing_review_step: bool,
    /// Template parameters besides the delays.
    pub parameters: Value,
    /// The rules and flows documents `make deploy` would put in the functions' zips.
    pub documents: PackageDocuments,
    pub inspection_delay: u64,
    pub review_delay: u64,
    /// Run the event source mappings and the user's inspectors.
    pub pollers: bool,
    pub inspectors: Vec<UserInspector>,
}

pub enum Reviewer {
    Binary(&'static str),
    Failing,
    /// Always answers this (a DeepAlert reviewer's `{"severity": ""}`, say).
    Answers(Value),
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            reviewer: Reviewer::Binary("example-reviewer"),
            failing_review_step: false,
            parameters: json!({}),
            documents: PackageDocuments::default(),
            inspection_delay: 1,
            review_delay: 2,
            pollers: true,
            inspectors: vec![example_inspector()],
        }
    }
}

/// The example inspector of `examples/rust`, answering in our shape.
pub fn example_inspector() -> UserInspector {
    UserInspector {
        name: "example-inspector",
        attribute_types: &["ipaddr", "username"],
        answer: |task| {
            let output = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(deepalert_examples::inspect(task.clone()))
            })
            .expect("example inspector");
            vec![json!(InspectionReport {
                report_id: task.report_id,
                author: "example-inspector".into(),
                attribute: task.attribute.clone(),
                output,
                error: None,
            })]
        },
    }
}

pub const STACK: &str = "deepalert";

impl Stack {
    pub async fn start(opts: StackOptions) -> Stack {
        let lambda = LambdaService::start().await;
        let aws = Aws::start(Some(&lambda.url)).await;
        aws.moto.execute_state_machines().await;
        lambda.set_aws_env(aws.moto.env_signed_as("stack"));

        // The user's reviewer function, whose ARN the stack is given.
        let role = aws.create_role();
        let reviewer_arn = aws.create_function("reviewer", &role).await;
        match opts.reviewer {
            Reviewer::Binary(bin) => {
                lambda
                    .host_binary(
                        "reviewer",
                        &binary(bin),
                        &HashMap::new(),
                        Duration::from_secs(30),
                        1,
                    )
                    .await
            }
            Reviewer::Failing => lambda.host_fn("reviewer", |_| {
                Err("policy bundle failed to load: unexpected token at line 3".into())
            }),
            Reviewer::Answers(answer) => lambda.host_fn("reviewer", move |_| Ok(answer.clone())),
        }

        let mut parameters = json!({
            "InspectionDelay": opts.inspection_delay,
            "ReviewDelay": opts.review_delay,
            "ReviewerLambdaArn": reviewer_arn,
        });
        for (k, v) in opts.parameters.as_object().into_iter().flatten() {
            parameters[k] = v.clone();
        }
        let deployed = deploy(
            &aws.moto,
            &repo_root().join("template.yaml"),
            STACK,
            &parameters,
            &json!({}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", aws.moto.log()));
        lambda.host_stack_with(&deployed, 2, &opts.documents).await;
        if opts.failing_review_step {
            let name = deployed.function("ReviewInvokerFunction")["name"]
                .as_str()
                .unwrap()
                .to_string();
            lambda.host_fn(&name, |_| {
                Err("policy bundle failed to load: unexpected token at line 3".into())
            });
        }

        let queue = |logical: &str| deployed.physical(logical);
        // The template's 180 s visibility would make a retried message wait minutes; the
        // tests lower it (only it) so retries and the DLQ happen within a test.
        for logical in [
            "AlertQueue",
            "DispatchQueue",
            "InspectionQueue",
            "EventQueue",
            "TrailQueue",
        ] {
            if deployed.json["resources"].get(logical).is_none() {
                continue; // a conditional queue this stack does not have
            }
            aws.sqs
                .set_queue_attributes()
                .queue_url(queue(logical))
                .attributes(QueueAttributeName::VisibilityTimeout, "2")
                .send()
                .await
                .expect("lower visibility");
        }

        // A user's emitter, without raw delivery: message attributes in the envelope.
        let (emitter_queue, emitter_arn) = aws.create_queue("example-emitter", 30, None).await;
        aws.subscribe_queue(&deployed.physical("ReportTopic"), &emitter_arn, false, None)
            .await;

        let mut stack = Stack {
            table: deployed.physical("Table"),
            alert_topic: deployed.physical("AlertTopic"),
            task_topic: deployed.physical("TaskTopic"),
            report_topic: deployed.physical("ReportTopic"),
            alert_queue: deployed.physical("AlertQueue"),
            alert_dlq: deployed.physical("AlertDeadLetterQueue"),
            inspection_queue: deployed.physical("InspectionQueue"),
            inspection_dlq: deployed.physical("InspectionDeadLetterQueue"),
            state_machine: deployed.physical("Workflow"),
            dispatch_dlq: deployed.physical("DispatchDeadLetterQueue"),
            emitter_queue,
            aws,
            lambda,
            deployed,
            tasks: vec![],
        };
        if opts.pollers {
            stack.tasks = stack.lambda.poll_mappings(&stack.deployed, &stack.aws.sqs);
            for inspector in opts.inspectors {
                stack.start_inspector(inspector).await;
            }
        }
        stack
    }

    /// A user's inspector: a queue subscribed to the task topic with a filter policy on
    /// `attribute_type`, and a poller that answers on the inspection queue (what its
    /// Lambda would do).
    pub async fn start_inspector(&mut self, inspector: UserInspector) {
        let url = self
            .subscribe_tasks(inspector.name, inspector.attribute_types)
            .await;
        let sqs = self.aws.sqs.clone();
        let answer_to = self.inspection_queue.clone();
        let answer = inspector.answer;
        self.tasks.push(tokio::spawn(async move {
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
                for m in out.messages.unwrap_or_default() {
                    let body = deepalert_aws::handlers::unwrap_sns_envelope(m.body().unwrap_or(""))
                        .into_owned();
                    let task: Task = serde_json::from_str(&body).expect("task JSON");
                    for message in answer(&task) {
                        sqs.send_message()
                            .queue_url(&answer_to)
                            .message_body(message.to_string())
                            .send()
                            .await
                            .expect("send to the inspection queue");
                    }
                    let _ = sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        }));
    }

    /// A queue subscribed to the task topic for these attribute types (SNS envelope, as
    /// an inspector's Lambda gets it); returns its URL.
    pub async fn subscribe_tasks(&self, name: &str, attribute_types: &[&str]) -> String {
        self.subscribe_tasks_filtered(name, Some(json!({ "attribute_type": attribute_types })))
            .await
    }

    /// A queue subscribed to the task topic with this filter policy (none: every task).
    pub async fn subscribe_tasks_filtered(&self, name: &str, filter: Option<Value>) -> String {
        let (url, arn) = self
            .aws
            .create_queue(&format!("{name}-tasks"), 30, None)
            .await;
        self.aws
            .subscribe_queue(&self.task_topic, &arn, false, filter)
            .await;
        url
    }

    /// Tasks on a subscribed queue so far: (attribute type, value), sorted.
    pub async fn tasks_seen(&self, url: &str, wait: Duration) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = self
            .aws
            .drain(url, wait)
            .await
            .iter()
            .map(|m| {
                let body = deepalert_aws::handlers::unwrap_sns_envelope(m.body().unwrap_or(""))
                    .into_owned();
                let task: Value = serde_json::from_str(&body).expect("task JSON");
                (
                    task["attribute"]["type"].as_str().unwrap_or("").to_string(),
                    task["attribute"]["value"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        seen.sort();
        seen
    }

    /// The physical name of one of the stack's functions.
    pub fn function_name(&self, logical: &str) -> String {
        self.deployed.function(logical)["name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Published reports on the emitter queue: (report JSON, SNS message attributes).
    pub async fn published_json(&self, wait: Duration) -> Vec<(Value, Value)> {
        self.aws
            .drain(&self.emitter_queue, wait)
            .await
            .into_iter()
            .map(|m| {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap()).expect("SNS envelope");
                let report: Value = serde_json::from_str(envelope["Message"].as_str().unwrap())
                    .expect("report JSON");
                (report, envelope["MessageAttributes"].clone())
            })
            .collect()
    }

    /// Published reports, decoded: (report, SNS message attributes).
    pub async fn published(&self, wait: Duration) -> Vec<(Report, Value)> {
        self.published_json(wait)
            .await
            .into_iter()
            .map(|(r, a)| (serde_json::from_value(r).expect("a report"), a))
            .collect()
    }

    /// Waits up to `secs` for a published report (status `published`) on the emitter
    /// queue; returns everything that arrived meanwhile, raw: (report, attributes).
    pub async fn wait_published_json(&self, secs: u64) -> Vec<(Value, Value)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut all = Vec::new();
        loop {
            all.extend(self.published_json(Duration::from_secs(2)).await);
            if all.iter().any(|(r, _)| r["status"] == "published") || Instant::now() > deadline {
                return all;
            }
        }
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

    /// For assertion messages: executions, the functions' logs and moto's.
    pub async fn diagnostics(&self) -> String {
        format!(
            "{}\n{}\n--- moto ---\n{}",
            self.executions_report().await,
            self.lambda.logs(),
            self.aws.moto.log()
        )
    }

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
