//! `make deploy` as a user runs it, against moto: `tools/deploy.py` (the build aside: the
//! zips are stand-ins whose `bootstrap` runs the debug binary) runs the real `aws
//! cloudformation package` and `deploy`, with the packaged template over CloudFormation's
//! 51,200 bytes inline; moto's CloudFormation API does the stack's work through
//! `tests/moto/cfn_patch.py`. Then the functions run as Lambda would run them — each from
//! the zip CloudFormation created it with, with the environment the Lambda API holds —
//! and an alert gets through. A second deploy updates the stack with a 100 KB rules
//! document, a KMS alias and changed parameters; `make remove YES=1` deletes the stacks.
//!
//! AWS's behaviour that moto lacks is checked here or in the launcher: the 4 KB
//! environment (read back from every function and measured), name lengths, parameter
//! sizes; moto itself refuses a TemplateBody over 51,200 bytes, as AWS does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use deepalert_testkit::aws_stack::LambdaService;
use deepalert_testkit::moto::{Moto, run_venv_tool_env, venv_tool};
use deepalert_testkit::repo_root;
use serde_json::{Value, json};

const REGION: &str = "eu-west-1";
const BINARIES: [&str; 7] = [
    "receptor",
    "dispatcher",
    "inspector-gateway",
    "review-invoker",
    "emitter-publisher",
    "event-router",
    "flow-runner",
];

/// Stand-in zips for `make build`'s: `bootstrap` runs the workspace's debug binary.
fn stand_in_zips(dir: &Path) {
    let script = format!(
        r#"
import os, zipfile
for name in {names:?}:
    os.makedirs(os.path.join({dir:?}, name), exist_ok=True)
    with zipfile.ZipFile(os.path.join({dir:?}, name, "bootstrap.zip"), "w") as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        z.writestr(info, '#!/bin/sh\nexec {bin}/%s "$@"\n' % name)
"#,
        names = BINARIES,
        dir = dir.display().to_string(),
        bin = deepalert_testkit::aws_stack::binary("receptor")
            .parent()
            .unwrap()
            .display(),
    );
    let (ok, out) = run_venv_tool_env("python", &["-c", &script], &[]);
    assert!(ok, "stand-in zips: {out}");
}

struct User {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl User {
    fn new(moto: &Moto) -> User {
        let dir = tempfile::tempdir().unwrap();
        stand_in_zips(&dir.path().join("lambda"));
        let mut env: Vec<(String, String)> = moto
            .env_in(REGION, "testing")
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        env.push((
            "DEEPALERT_CLI".into(),
            deepalert_testkit::aws_stack::binary("deepalert")
                .display()
                .to_string(),
        ));
        env.push((
            "DEEPALERT_DEPLOY_DIR".into(),
            dir.path().join("deploy").display().to_string(),
        ));
        // The CLI reads its region from the configuration, as a user's would.
        env.push(("AWS_DEFAULT_REGION".into(), REGION.into()));
        User { dir, env }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `make deploy`, the build aside.
    fn deploy(&self, stack_jsonnet: &str) -> (bool, String) {
        let deploy = self.write(
            "deploy.jsonnet",
            "{ StackName: 'sec', Region: 'eu-west-1', CodeS3Bucket: 'sec-code', CodeS3Prefix: 'deepalert' }",
        );
        let stack = self.write("stack.jsonnet", stack_jsonnet);
        let lambda_dir = self.dir.path().join("lambda").display().to_string();
        self.run(
            venv_tool("python").to_str().unwrap(),
            &[
                "tools/deploy.py",
                "--no-build",
                "--lambda-dir",
                &lambda_dir,
                "--deploy",
                &deploy,
                "--stack",
                &stack,
            ],
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let venv_bin = repo_root().join(".venv/bin");
        let out = std::process::Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv_bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .current_dir(repo_root())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// boto3 against moto: `script` sets `out`, printed as JSON.
    fn boto(&self, script: &str) -> Value {
        let program = format!(
            "import json, boto3\nkw = dict(aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             def c(name, region={REGION:?}):\n    return boto3.client(name, region_name=region, **kw)\n\
             out = {{}}\n{script}\nprint(json.dumps(out, default=str))\n"
        );
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (ok, out) = run_venv_tool_env("python", &["-c", &program], &env);
        assert!(ok, "{out}");
        serde_json::from_str(out.trim().lines().last().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

/// Every function's environment as the Lambda API holds it, with its size as Lambda
/// measures it (the variables as a JSON object; at most 4 KB: AWS's limit, not moto's).
fn environments(user: &User, stack: &Value) -> BTreeMap<String, (usize, Value)> {
    let names: Vec<&str> = stack["functions"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let got = user.boto(&format!(
        "for n in {names:?}:\n    out[n] = c('lambda').get_function_configuration(FunctionName=n)['Environment']['Variables']"
    ));
    got.as_object()
        .unwrap()
        .iter()
        .map(|(name, vars)| {
            let size = serde_json::to_string(vars).unwrap().len();
            (name.clone(), (size, vars.clone()))
        })
        .collect()
}

async fn wait_for_report(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    wait: Duration,
    want: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in got.messages.unwrap_or_default() {
            let report: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            if want(&report) {
                return Some(report);
            }
        }
    }
    None
}

fn stack_jsonnet(extra: &str) -> String {
    format!(
        "{{ InspectionDelay: 1, ReviewDelay: 2,
           Rules: [{{ preset: 'root-login' }},
                   {{ preset: 'non-compliant-user-created', options: {{ user_name_pattern: '[a-z]+\\\\.[a-z]+' }} }}],
           {extra} }}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn make_deploy_creates_updates_and_removes_the_stack_on_moto() {
    let lambda = LambdaService::start().await;
    let moto = Moto::start(Some(&lambda.url)).await;
    moto.execute_state_machines().await;
    lambda.set_aws_env(moto.env_in(REGION, "stack"));
    let user = User::new(&moto);
    user.boto(
        "c('s3').create_bucket(Bucket='sec-code', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n\
         key = c('kms').create_key(Description='sec')['KeyMetadata']\n\
         c('kms').create_alias(AliasName='alias/sec-deepalert', TargetKeyId=key['KeyId'])\n\
         out['key'] = key['Arn']",
    );

    // ---- The first deploy: a create ----
    let (ok, out) = user.deploy(&stack_jsonnet(""));
    assert!(ok, "make deploy:\n{out}\n{}", moto.log());
    let size: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("deploy: packaged template: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the packaged template's size in:\n{out}"));
    assert!(
        size > 51_200,
        "the packaged template ({size} bytes) is over the inline limit, so this proves the S3 path"
    );
    // The IAM preset's events arrive in us-east-1 only: a forwarder there, said so.
    assert!(
        out.contains("non-compliant-user-created")
            && out.contains("CloudTrail delivers in us-east-1 only"),
        "{out}"
    );
    let status = user.boto(
        "for r, n in [('eu-west-1', 'sec'), ('us-east-1', 'sec-forwarder')]:\n    \
         out[n] = c('cloudformation', r).describe_stacks(StackName=n)['Stacks'][0]['StackStatus']\n\
         fwd = c('cloudformation', 'us-east-1').describe_stack_resources(StackName='sec-forwarder')['StackResources']\n\
         rule = [x['PhysicalResourceId'] for x in fwd if x['LogicalResourceId'] == 'ForwardRule'][0]\n\
         out['forwarded'] = json.loads(c('events', 'us-east-1').describe_rule(Name=rule)['EventPattern'])\n\
         out['machines'] = sorted(m['name'] for m in c('stepfunctions').list_state_machines()['stateMachines'])\n\
         out['functions'] = len(c('lambda').list_functions()['Functions'])",
    );
    assert_eq!(status["sec"], "CREATE_COMPLETE", "{status}");
    assert_eq!(status["sec-forwarder"], "CREATE_COMPLETE", "{status}");
    assert_eq!(
        status["forwarded"]["source"],
        json!(["aws.iam", "aws.signin"]),
        "the added forwarder forwards the global events alone (no GuardDuty): {status}"
    );
    assert_eq!(status["machines"], json!(["sec-flows", "sec-reviews"]));
    assert_eq!(status["functions"], 7);

    let stack = lambda
        .host_deployed(&moto, REGION, "sec", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", moto.log()));
    let envs = environments(&user, &stack.json);
    assert_eq!(envs.len(), 7);
    for (name, (size, _)) in &envs {
        assert!(*size <= 4096, "{name}'s environment is {size} bytes");
    }

    // An alert published to the alert topic is reviewed and published.
    let sdk = moto.sdk_in(REGION).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let reports = sqs
        .create_queue()
        .queue_name("user-emitter")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let reports_arn = format!("arn:aws:sqs:{REGION}:123456789012:user-emitter");
    sns.subscribe()
        .topic_arn(stack.output("ReportTopicArn"))
        .protocol("sqs")
        .endpoint(&reports_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    // The alert queue's 180 s visibility would make a refused alert's five receives take
    // 15 minutes: lowered here only (before the pollers start, which read it per receive).
    let alert_queue = stack.physical("AlertQueue");
    sqs.set_queue_attributes()
        .queue_url(&alert_queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .unwrap();
    let pollers = lambda.poll_mappings(&stack, &sqs);
    sns.publish()
        .topic_arn(stack.output("AlertTopicArn"))
        .message(
            json!({"detector": "made-by-hand", "rule_id": "deploy-test", "alert_key": "k1",
                   "attributes": [{"type": "ipaddr", "key": "src", "value": "198.51.100.7", "context": ["remote"]}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let report = wait_for_report(&sqs, &reports, Duration::from_secs(60), |r| {
        r["status"] == "published" && r["alerts"][0]["rule_id"] == "deploy-test"
    })
    .await;
    assert!(
        report.is_some(),
        "no published report:\n{}\n{}",
        lambda.logs(),
        moto.log()
    );

    // A refused alert ends in the alert DLQ after its receives; `deepalert aws dlq` says
    // why (the receptor's log line, from CloudWatch Logs) and moves it back.
    sns.publish()
        .topic_arn(stack.output("AlertTopicArn"))
        .message(json!({"rule_id": "no-detector"}).to_string())
        .send()
        .await
        .unwrap();
    let dlq = stack.physical("AlertDeadLetterQueue");
    let count = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default()
                .values()
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(dlq.clone()).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for p in pollers {
        p.abort();
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the last log lines reach CloudWatch
    let cli = deepalert_testkit::aws_stack::binary("deepalert");
    let cli = cli.to_str().unwrap();
    let (ok, out) = user.run(
        cli,
        &[
            "aws", "dlq", "list", "--stack", "sec", "--region", REGION, "--json",
        ],
    );
    assert!(ok, "deepalert aws dlq list: {out}");
    let listed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed.len(),
        1,
        "{out}\n{}\n{:?}",
        lambda.logs(),
        sqs.get_queue_attributes()
            .queue_url(&alert_queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
    );
    assert_eq!(listed[0]["queue"], "alert");
    assert!(listed[0]["receives"].as_u64().unwrap() >= 5, "{out}");
    let reason = listed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("alert refused") && reason.contains("detector"),
        "the receptor's reason: {reason}"
    );
    let (ok, out) = user.run(
        cli,
        &[
            "aws", "dlq", "redrive", "--stack", "sec", "--region", REGION,
        ],
    );
    assert!(ok && out.contains("1 message(s) moved back"), "{out}");
    assert_eq!(count(dlq.clone()).await, 0);
    assert_eq!(
        count(alert_queue.clone()).await,
        1,
        "back on the alert queue"
    );

    // ---- The second deploy: an update, with a 100 KB rules document, an alias as
    // KmsKey and changed parameters ----
    let cidrs: Vec<String> = (0..6500)
        .map(|i| format!("'10.{}.{}.0/24'", i / 256, i % 256))
        .collect();
    let big = second_stack(&cidrs);
    let (ok, out) = user.deploy(&big);
    assert!(ok, "the update:\n{out}\n{}", moto.log());
    let document = out
        .lines()
        .find(|l| l.starts_with("# document deepalert/rules.json"))
        .unwrap_or_else(|| panic!("the rules document in:\n{out}"));
    let bytes: usize = document
        .split(" (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(bytes > 100_000, "a 100 KB rules document: {document}");
    assert!(
        out.contains("KmsKey 'alias/sec-deepalert' is the key"),
        "the alias is resolved, said so: {out}"
    );
    let after = user.boto(&format!(
        "out['status'] = c('cloudformation').describe_stacks(StackName='sec')['Stacks'][0]['StackStatus']\n\
         out['topic_key'] = c('sns').get_topic_attributes(TopicArn={topic:?})['Attributes'].get('KmsMasterKeyId')\n\
         out['key'] = c('kms').describe_key(KeyId='alias/sec-deepalert')['KeyMetadata']['Arn']",
        topic = stack.output("AlertTopicArn"),
    ));
    assert_eq!(after["status"], "UPDATE_COMPLETE", "{after}");
    assert_eq!(
        after["topic_key"], after["key"],
        "the stack got the key's ARN, not the alias"
    );
    let stack = lambda
        .host_deployed(&moto, REGION, "sec", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", moto.log()));
    let envs = environments(&user, &stack.json);
    for (name, (size, vars)) in &envs {
        assert!(*size <= 4096, "{name}'s environment is {size} bytes");
        if vars.get("INSPECTION_DELAY_SECONDS").is_some() {
            assert_eq!(vars["INSPECTION_DELAY_SECONDS"], "0", "{name}: {vars}");
        }
        assert!(
            !serde_json::to_string(vars)
                .unwrap()
                .contains("trusted_cidrs"),
            "the rules stay out of {name}'s environment"
        );
    }

    // The 100 KB rules are the ones the event router runs: a sign-in from an untrusted
    // address alerts, one from the last trusted network does not.
    let pollers = lambda.poll_mappings(&stack, &sqs);
    let signin = |ip: &str, user_name: &str| {
        let mut e: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("tests/fixtures/events/signin-alice.json"))
                .unwrap(),
        )
        .unwrap();
        e["detail"]["sourceIPAddress"] = json!(ip);
        e["detail"]["userIdentity"]["userName"] = json!(user_name);
        e["detail"]["userIdentity"]["arn"] =
            json!(format!("arn:aws:iam::123456789012:user/{user_name}"));
        e
    };
    let entries: Vec<Value> = [signin("203.0.113.9", "mallory"), signin("10.23.111.5", "alice")]
        .iter()
        .map(|e| {
            json!({"Source": e["source"], "DetailType": e["detail-type"], "Detail": e["detail"].to_string()})
        })
        .collect();
    user.boto(&format!(
        "r = c('events').put_events(Entries=json.loads({entries:?}))\nassert r['FailedEntryCount'] == 0, r",
        entries = serde_json::to_string(&entries).unwrap()
    ));
    let report = wait_for_report(&sqs, &reports, Duration::from_secs(60), |r| {
        r["status"] == "published" && r["alerts"][0]["rule_id"] == "suspicious-login-ip"
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no suspicious-login-ip report:\n{}\n{}",
            lambda.logs(),
            moto.log()
        )
    });
    assert_eq!(report["alerts"][0]["alert_key"], "mallory", "{report}");
    assert!(
        wait_for_report(
            &sqs,
            &reports,
            Duration::from_secs(8),
            |r| r["alerts"][0]["alert_key"] == "alice"
        )
        .await
        .is_none(),
        "a sign-in from a trusted network of the 100 KB document alerted"
    );
    for p in pollers {
        p.abort();
    }

    // ---- make remove YES=1: the stacks go, the table stays (DeletionPolicy Retain) ----
    let deploy = user.dir.path().join("deploy.jsonnet");
    let (ok, out) = user.run(
        "make",
        &[
            "-s",
            "remove",
            "YES=1",
            &format!("ARGS=--deploy {}", deploy.display()),
        ],
    );
    assert!(ok, "make remove:\n{out}");
    assert!(
        out.contains("sec-forwarder in us-east-1") && out.contains("AWS::DynamoDB::Table"),
        "it says what it deletes and what it keeps:\n{out}"
    );
    let gone = user.boto(
        "for r, n in [('eu-west-1', 'sec'), ('us-east-1', 'sec-forwarder')]:\n    \
         try:\n        out[n] = c('cloudformation', r).describe_stacks(StackName=n)['Stacks'][0]['StackStatus']\n    \
         except Exception as e:\n        out[n] = 'gone'\n\
         out['tables'] = c('dynamodb').list_tables()['TableNames']\n\
         out['functions'] = len(c('lambda').list_functions()['Functions'])",
    );
    assert_eq!(gone["sec"], "gone", "{gone}");
    assert_eq!(gone["sec-forwarder"], "gone", "{gone}");
    assert_eq!(gone["functions"], 0, "{gone}");
    assert_eq!(gone["tables"].as_array().unwrap().len(), 1, "{gone}");
}

/// The stack file of the second deploy: changed parameters, a KMS alias, and a third rule
/// whose 6,500 trusted networks make the rules document over 100 KB.
fn second_stack(cidrs: &[String]) -> String {
    format!(
        "{{ InspectionDelay: 0, ReviewDelay: 2, LogLevel: 'debug', KmsKey: 'alias/sec-deepalert',
           Rules: [{{ preset: 'root-login' }},
                   {{ preset: 'non-compliant-user-created', options: {{ user_name_pattern: '[a-z]+\\\\.[a-z]+' }} }},
                   {{ preset: 'suspicious-login-ip', options: {{ trusted_cidrs: [{}] }} }}] }}",
        cidrs.join(",")
    )
}
