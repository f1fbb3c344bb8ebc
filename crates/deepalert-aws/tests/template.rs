//! `template.yaml` is consistent with the code: cfn-lint clean, each function's
//! environment is exactly what its `main.rs` reads, and the state machine only runs
//! functions of the template and only goes to states it has.

mod common;
mod deploy;

use std::collections::{BTreeSet, HashMap};

use common::{getatt_target, template, yaml_to_json};
use deepalert_testkit::aws_stack::deploy;
use deepalert_testkit::deploy::{env_reads, parameter_overrides};
use deepalert_testkit::moto::run_venv_tool;
use deepalert_testkit::repo_root;
use serde_yaml::Value;

#[test]
fn cfn_lint_is_clean() {
    let (ok, output) = run_venv_tool("cfn-lint", &["template.yaml"]);
    assert!(ok, "cfn-lint template.yaml:\n{output}");
}

/// Function logical id → binary name (from `CodeUri: target/lambda/<name>/bootstrap.zip`).
fn functions(t: &Value) -> HashMap<String, String> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| {
            let uri = r["Properties"]["CodeUri"].as_str().expect("CodeUri");
            let bin = uri
                .strip_prefix("target/lambda/")
                .and_then(|u| u.strip_suffix("/bootstrap.zip"))
                .unwrap_or_else(|| panic!("unexpected CodeUri {uri}"));
            (id.as_str().unwrap().to_string(), bin.to_string())
        })
        .collect()
}

#[test]
fn function_environments_are_exactly_what_the_code_reads() {
    let t = template();
    let fns = functions(&t);
    assert_eq!(
        fns.values().cloned().collect::<BTreeSet<_>>(),
        [
            "dispatcher",
            "emitter-publisher",
            "event-router",
            "flow-runner",
            "inspector-gateway",
            "receptor",
            "review-invoker"
        ]
        .map(String::from)
        .into(),
    );
    for (logical, bin) in &fns {
        let main = repo_root().join(format!("crates/lambda-{bin}/src/main.rs"));
        let mut source =
            std::fs::read_to_string(&main).unwrap_or_else(|e| panic!("{}: {e}", main.display()));
        // The functions that store alerts read their shared part through `Intake`.
        if source.contains("Intake::from_env") {
            source +=
                &std::fs::read_to_string(repo_root().join("crates/deepalert-aws/src/intake.rs"))
                    .unwrap();
        }
        let reads = env_reads(&source);
        let set: BTreeSet<String> =
            t["Resources"][logical.as_str()]["Properties"]["Environment"]["Variables"]
                .as_mapping()
                .map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
        assert_eq!(
            set,
            reads,
            "{logical} ({}): template sets ≠ code reads",
            main.display()
        );
    }
}

#[test]
fn state_machine_runs_only_template_functions_and_is_well_formed() {
    let t = template();
    let fns = functions(&t);
    let props = &t["Resources"]["Workflow"]["Properties"];
    assert_eq!(
        t["Resources"]["Workflow"]["Type"],
        "AWS::StepFunctions::StateMachine"
    );
    // The task resource is `${LambdaInvoke}`: the partition's, never a literal `arn:aws:`.
    assert_eq!(
        yaml_to_json(&props["DefinitionSubstitutions"]["LambdaInvoke"]),
        serde_json::json!({"!Sub": "arn:${AWS::Partition}:states:::lambda:invoke"})
    );
    let subs: HashMap<String, String> = props["DefinitionSubstitutions"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != Some("LambdaInvoke"))
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                getatt_target(v).expect("!GetAtt X.Arn"),
            )
        })
        .collect();
    let states = props["Definition"]["States"].as_mapping().unwrap();
    let names: BTreeSet<&str> = states.keys().map(|k| k.as_str().unwrap()).collect();
    let mut invoked = BTreeSet::new();
    let mut targets: Vec<&str> = vec![props["Definition"]["StartAt"].as_str().unwrap()];
    for (name, state) in states {
        let name = name.as_str().unwrap();
        if state["Type"] == "Task" {
            assert_eq!(state["Resource"], "${LambdaInvoke}", "{name}");
            let f = state["Parameters"]["FunctionName"].as_str().unwrap();
            let key = f
                .strip_prefix("${")
                .and_then(|f| f.strip_suffix('}'))
                .expect("${Substitution}");
            let logical = &subs[key];
            assert!(
                fns.contains_key(logical),
                "{name} runs {logical}, not a function of the template"
            );
            invoked.insert(fns[logical].clone());
        }
        for key in ["Next", "Default"] {
            if let Some(n) = state[key].as_str() {
                targets.push(n);
            }
        }
        for list in ["Choices", "Catch"] {
            for item in state[list].as_sequence().into_iter().flatten() {
                targets.push(item["Next"].as_str().unwrap());
            }
        }
    }
    for target in &targets {
        assert!(
            names.contains(target),
            "transition to missing state {target}"
        );
    }
    let reached: BTreeSet<&str> = targets.into_iter().collect();
    assert_eq!(reached, names, "every state is reachable");
    assert_eq!(invoked, ["emitter-publisher"].map(String::from).into());
}

/// Every export a user imports, deployed in moto and resolved: ours, and DeepAlert's
/// names (`<stack>-TaskTopic`, `-ContentQueue`…) pointing at the same resources; a stack
/// written for DeepAlert deploys against them and passes cfn-lint next to ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deepalert_export_names_resolve_to_our_resources() {
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let stack = deploy(
        &moto,
        &repo_root().join("template.yaml"),
        "da-prod",
        &serde_json::json!({}),
        &serde_json::json!({}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let exports = stack.exports();
    let queue_url = stack.physical("InspectionQueue");
    let expected = [
        ("da-prod-AlertTopicArn", stack.physical("AlertTopic")),
        ("da-prod-TaskTopicArn", stack.physical("TaskTopic")),
        ("da-prod-ReportTopicArn", stack.physical("ReportTopic")),
        ("da-prod-InspectionQueueUrl", queue_url.clone()),
        (
            "da-prod-InspectionQueueArn",
            stack.attribute("InspectionQueue", "Arn"),
        ),
        ("da-prod-AlertTopic", stack.physical("AlertTopic")),
        ("da-prod-TaskTopic", stack.physical("TaskTopic")),
        ("da-prod-ReportTopic", stack.physical("ReportTopic")),
        ("da-prod-ContentQueue", queue_url.clone()),
        ("da-prod-FindingQueue", queue_url.clone()),
        ("da-prod-AttributeQueue", queue_url.clone()),
    ];
    for (name, value) in &expected {
        assert_eq!(
            exports[name].as_str(),
            Some(value.as_str()),
            "{name}: {exports:#}"
        );
    }

    // A DeepAlert-style inspector stack, importing by DeepAlert's names.
    let user = repo_root().join("examples/aws/deepalert-style-inspector.yaml");
    let theirs = deploy(
        &moto,
        &user,
        "their-inspector",
        &serde_json::json!({"DeepAlertStackName": "da-prod"}),
        &exports,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let env = &theirs.function("Inspector")["environment"];
    for var in ["FINDING_QUEUE", "CONTENT_QUEUE", "ATTRIBUTE_QUEUE"] {
        assert_eq!(env[var], queue_url.as_str(), "{var}");
    }
    let (ok, output) = run_venv_tool(
        "cfn-lint",
        &[
            "template.yaml",
            "examples/aws/deepalert-style-inspector.yaml",
        ],
    );
    assert!(ok, "cfn-lint:\n{output}");
}

fn deploy_dry_run(deploy: &str, stack: Option<&str>) -> (bool, String) {
    deepalert_testkit::deploy::deploy_dry_run(&[], deploy, stack.map(|s| ("stack.jsonnet", s)))
}

const DEPLOY: &str = "{ StackName: 'da-test', Region: 'eu-west-1', CodeS3Bucket: 'code-bucket', CodeS3Prefix: 'fn' }";

#[test]
fn deploy_renders_the_jsonnet_files_into_parameters() {
    let (ok, out) = deploy_dry_run(DEPLOY, None);
    assert!(ok, "{out}");
    assert!(
        out.contains("--stack-name da-test") && out.contains("--region eu-west-1"),
        "{out}"
    );
    assert!(
        out.contains("--s3-bucket code-bucket --s3-prefix fn"),
        "{out}"
    );
    // Every parameter in the shipped stack.jsonnet exists in the template and is passed.
    let t = template();
    let params: BTreeSet<String> = t["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let (overrides, passed) = parameter_overrides(&out);
    assert_eq!(
        passed, params,
        "stack.jsonnet documents every template parameter"
    );
    assert!(
        overrides.contains("InspectionDelay=300") && overrides.contains("AggregationWindow=10800")
    );

    assert!(
        !out.contains("DEEPALERT_POLICY_DIR"),
        "no policies by default: {out}"
    );

    // Policies are a build setting: handed to `make build`, not to the template.
    let policies = repo_root().join("examples/policies");
    let (ok, out) = deploy_dry_run(
        DEPLOY,
        Some(&format!("{{ ReviewerPolicies: '{}' }}", policies.display())),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("DEEPALERT_POLICY_DIR={} make", policies.display())),
        "{out}"
    );
    assert!(
        !out.split("--parameter-overrides")
            .nth(1)
            .unwrap()
            .contains("ReviewerPolicies"),
        "{out}"
    );
    let (ok, out) = deploy_dry_run(
        DEPLOY,
        Some("{ ReviewerPolicies: '/nonexistent/policies' }"),
    );
    assert!(!ok);
    assert!(out.contains("is not a directory of .rego files"), "{out}");

    let (ok, out) = deploy_dry_run(DEPLOY, Some("{ InspectionDelay: 5, ReviewDely: 10 }"));
    assert!(!ok);
    assert!(
        out.contains("ReviewDely is not a parameter of template.yaml"),
        "{out}"
    );
    let (ok, out) = deploy_dry_run(DEPLOY, Some("{ InspectionDelay: 'soon' }"));
    assert!(!ok);
    assert!(out.contains("InspectionDelay must be a number"), "{out}");
    let (ok, out) = deploy_dry_run(&DEPLOY.replace("code-bucket", "REPLACE-ME"), None);
    assert!(!ok);
    assert!(out.contains("set CodeS3Bucket"), "{out}");
    let (ok, out) = deploy_dry_run("{ StackName: 'x', Region: 'r' ", None);
    assert!(!ok);
    assert!(out.contains("deploy.jsonnet"), "{out}");
}

/// What AWS would refuse, deploy.py refuses first, saying what to change: a stack name
/// too long for the names derived from it, a KmsKey that is no key of the stack's region,
/// a parameter over CloudFormation's 4,096 bytes.
#[test]
fn deploy_refuses_what_aws_would_refuse_before_calling_it() {
    let named = |name: &str| DEPLOY.replace("da-test", name);
    // 72 characters fit: `<name>-reviews` is a state machine's 80.
    let (ok, out) = deploy_dry_run(&named(&"s".repeat(72)), None);
    assert!(ok, "{out}");
    let (ok, out) = deploy_dry_run(&named(&"s".repeat(73)), None);
    assert!(!ok, "{out}");
    assert!(
        out.contains("StackName")
            && out.contains("must fit in 80 characters")
            && out.contains("at most 72"),
        "{out}"
    );
    let (ok, out) = deploy_dry_run(&named("9lives"), None);
    assert!(
        !ok && out.contains("is not a CloudFormation stack name"),
        "{out}"
    );

    for (key, says) in [
        (
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "is a key in us-east-1",
        ),
        (
            "my-key",
            "KmsKey must be 'none', 'create', or a KMS key in eu-west-1",
        ),
        ("arn:aws:sns:eu-west-1:123456789012:topic", "KmsKey must be"),
    ] {
        let (ok, out) = deploy_dry_run(DEPLOY, Some(&format!("{{ KmsKey: '{key}' }}")));
        assert!(!ok && out.contains(says), "{key}: {out}");
    }
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (ok, out) = deploy_dry_run(DEPLOY, Some(&format!("{{ KmsKey: '{key}' }}")));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("KmsKey={key}")), "{out}");
    // An alias is resolved at deploy time (make deploy's test on moto does it); the dry
    // run says so.
    let (ok, out) = deploy_dry_run(DEPLOY, Some("{ KmsKey: 'alias/security' }"));
    assert!(ok && out.contains("resolves it to its key's ARN"), "{out}");

    let many: Vec<String> = (0..500).map(|i| format!("'{:012}'", i)).collect();
    let (ok, out) = deploy_dry_run(
        DEPLOY,
        Some(&format!("{{ TrustedAccountIds: [{}] }}", many.join(","))),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("TrustedAccountIds takes 6499 bytes; CloudFormation takes at most 4096"),
        "{out}"
    );
}

/// Every function's environment as deploy.py estimates it (each resource's name or ARN
/// at its longest) is what moto holds after a deploy, or more: the check before
/// CloudFormation never lets through what Lambda would refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_estimate_is_an_upper_bound_of_what_lambda_holds() {
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let stack = deploy(
        &moto,
        &repo_root().join("template.yaml"),
        "a-stack-name-of-a-length-that-people-do-use",
        &serde_json::json!({"KmsKey": "create"}),
        &serde_json::json!({}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let script = format!(
        r#"
import json, sys
sys.path.insert(0, "tools")
import deploy
t = deploy.load_template("template.yaml")
params = {{k: v["default"] for k, v in deploy.template_parameters("template.yaml").items()}}
params["KmsKey"] = "create"
params = {{k: (v.split(",") if k in ("EventSources", "EventDetailTypes", "FlowActions", "FlowSecretArns", "FlowTopicArns", "TrustedAccountIds") else v) for k, v in params.items()}}
print(json.dumps(deploy.check_environments(t, params, {name:?}, "us-east-1", "template.yaml")))
"#,
        name = "a-stack-name-of-a-length-that-people-do-use"
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "{out}");
    let estimated: HashMap<String, usize> = serde_json::from_str(out.trim()).unwrap();
    for (logical, f) in stack.json["functions"].as_object().unwrap() {
        let actual = serde_json::to_string(&f["environment"]).unwrap().len();
        assert!(
            estimated[logical] >= actual,
            "{logical}: estimated {} < {actual} bytes",
            estimated[logical]
        );
        assert!(estimated[logical] <= 4096, "{logical}");
    }
}

/// `aws cloudformation deploy` keeps the previous value of a parameter that is left out on
/// an update: deploy.py passes every parameter, from stack.jsonnet or the template's
/// default, so what is deployed is what the files say (and an empty file works).
#[test]
fn every_parameter_is_passed_on_every_deploy() {
    let params: BTreeSet<String> = template()["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let (ok, out) = deploy_dry_run(DEPLOY, Some("{}"));
    assert!(ok, "an empty stack.jsonnet deploys the defaults: {out}");
    let (overrides, passed) = parameter_overrides(&out);
    assert_eq!(passed, params);
    for default in [
        "InspectionDelay=300",
        "ReviewDelay=600",
        "AggregationWindow=10800",
        "ReviewerLambdaArn=",
        "PublishUnreviewed=false",
        "ReportSections=grouped",
        "LogLevel=info",
    ] {
        assert!(
            overrides.split_whitespace().any(|kv| kv == default),
            "{default} in {overrides}"
        );
    }

    let (ok, out) = deploy_dry_run(DEPLOY, Some("{ InspectionDelay: 5, LogLevel: 'debug' }"));
    assert!(ok, "{out}");
    let (overrides, passed) = parameter_overrides(&out);
    assert_eq!(passed, params);
    assert!(overrides.contains("InspectionDelay=5 "), "{overrides}");
    assert!(overrides.contains("LogLevel=debug"), "{overrides}");
    assert!(overrides.contains("ReviewDelay=600 "), "{overrides}");
}

/// `make deploy` ships code: packaged by the AWS CLI (against moto's S3), every function's
/// artifact is its own zip with a bootstrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packaging_ships_each_function_its_binary() {
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let (ok, out, packaged) =
        deepalert_testkit::deploy::package_and_verify(&moto.endpoint, "template.yaml", &text);
    assert!(ok, "{out}");
    let uris: BTreeSet<&str> = functions(&template())
        .keys()
        .map(|f| {
            packaged["Resources"][f]["Properties"]["CodeUri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        uris.iter().all(|u| u.starts_with("s3://code/fn/")),
        "{uris:?}"
    );
}

/// What moto holds after a deploy, read back with boto3: alarms, keys, encryption,
/// policies, backups, logging and tracing.
fn read_back(endpoint: &str, stack: &deepalert_testkit::aws_stack::Deployed) -> serde_json::Value {
    let script = format!(
        r##"
import json, boto3
kw = dict(endpoint_url={endpoint:?}, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
c = lambda n: boto3.client(n, **kw)
out = {{}}
out["alarms"] = sorted(a["AlarmName"] for a in c("cloudwatch").describe_alarms()["MetricAlarms"] if a["AlarmName"].startswith({name:?} + "-"))
out["alarm_actions"] = sorted({{x for a in c("cloudwatch").describe_alarms()["MetricAlarms"] if a["AlarmName"].startswith({name:?} + "-") for x in a.get("AlarmActions", [])}})
out["topic_key"] = c("sns").get_topic_attributes(TopicArn={alert_topic:?})["Attributes"].get("KmsMasterKeyId")
out["topic_policy"] = json.loads(c("sns").get_topic_attributes(TopicArn={alert_topic:?})["Attributes"]["Policy"])
q = c("sqs").get_queue_attributes(QueueUrl={queue:?}, AttributeNames=["All"])["Attributes"]
out["queue_key"] = q.get("KmsMasterKeyId")
out["queue_managed_sse"] = q.get("SqsManagedSseEnabled")
out["queue_policy"] = json.loads(q["Policy"]) if "Policy" in q else None
out["table_sse"] = c("dynamodb").describe_table(TableName={table:?})["Table"].get("SSEDescription")
out["pitr"] = c("dynamodb").describe_continuous_backups(TableName={table:?})["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
out["log_retention"] = {{g["logGroupName"]: g.get("retentionInDays") for g in c("logs").describe_log_groups()["logGroups"] if {name:?} in g["logGroupName"]}}
out["log_keys"] = {{g["logGroupName"]: g.get("kmsKeyId") for g in c("logs").describe_log_groups()["logGroups"] if {name:?} in g["logGroupName"]}}
sm = c("stepfunctions").describe_state_machine(stateMachineArn={machine:?})
out["sfn_logging"] = sm.get("loggingConfiguration", {{}}).get("level")
out["sfn_tracing"] = sm.get("tracingConfiguration", {{}}).get("enabled")
out["fn_tracing"] = c("lambda").get_function_configuration(FunctionName={function:?}).get("TracingConfig", {{}}).get("Mode")
print(json.dumps(out, default=str))
"##,
        name = stack.json["stack"].as_str().unwrap(),
        alert_topic = stack.physical("AlertTopic"),
        queue = stack.physical("InspectionQueue"),
        table = stack.physical("Table"),
        machine = stack.physical("Workflow"),
        function = stack.physical("ReceptorFunction"),
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Every alarm of the template, by logical id.
const ALARMS: [&str; 17] = [
    "AlertDeadLetterAlarm",
    "AlertDeadLetterQueueAgeAlarm",
    "DispatchDeadLetterAlarm",
    "DispatchDeadLetterQueueAgeAlarm",
    "DispatcherErrorsAlarm",
    "EmitterPublisherErrorsAlarm",
    "EventDeadLetterAlarm",
    "EventDeadLetterQueueAgeAlarm",
    "EventRouterErrorsAlarm",
    "FlowRunnerErrorsAlarm",
    "FlowsFailedAlarm",
    "InspectionDeadLetterAlarm",
    "InspectionDeadLetterQueueAgeAlarm",
    "InspectorGatewayErrorsAlarm",
    "ReceptorErrorsAlarm",
    "ReviewInvokerErrorsAlarm",
    "ReviewsFailedAlarm",
];

/// The operator's parameters create what they say; by default, no encryption key and
/// alarms to the stack's own topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_parameters_deploy_what_they_say() {
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let sns = aws_sdk_sns::Client::new(&moto.sdk().await);
    let alarms = sns
        .create_topic()
        .name("ops-alarms")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();

    let plain = deploy(
        &moto,
        &repo_root().join("template.yaml"),
        "plain",
        &serde_json::json!({}),
        &serde_json::json!({}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got = read_back(&moto.endpoint, &plain);
    // Operable by default: the alarms exist and go to the stack's own topic.
    assert_eq!(
        got["alarms"].as_array().unwrap().len(),
        ALARMS.len(),
        "{got}"
    );
    assert_eq!(
        got["alarm_actions"],
        serde_json::json!([plain.physical("AlarmTopic")]),
        "{got}"
    );
    assert_eq!(plain.output("AlarmTopicArn"), plain.physical("AlarmTopic"));
    assert!(plain.physical("AlarmTopic").ends_with(":plain-alarms"));
    assert!(
        got["topic_key"].is_null() && got["queue_key"].is_null(),
        "{got}"
    );
    assert_eq!(got["queue_managed_sse"], "true");
    assert!(
        got["queue_policy"].is_null(),
        "no other account may send: {got}"
    );
    assert_eq!(got["pitr"], "ENABLED");
    assert_eq!(got["sfn_logging"], "ERROR");
    assert_eq!(got["sfn_tracing"], false);
    assert_eq!(got["fn_tracing"], "PassThrough");
    assert!(
        got["log_retention"]
            .as_object()
            .unwrap()
            .values()
            .all(|d| d == 30),
        "{got}"
    );
    assert_eq!(
        got["log_retention"].as_object().unwrap().len(),
        9,
        "7 functions and the 2 state machines: {got}"
    );
    // EventBridge rules of the account may publish alerts.
    let statements = got["topic_policy"]["Statement"].as_array().unwrap();
    assert!(
        statements
            .iter()
            .any(|s| s["Principal"]["Service"] == "events.amazonaws.com")
    );

    let ops = deploy(
        &moto,
        &repo_root().join("template.yaml"),
        "ops",
        &serde_json::json!({
            "AlarmTopicArn": alarms,
            "KmsKey": "create",
            "TrustedAccountIds": "111122223333,444455556666",
            "PointInTimeRecovery": "false",
            "XRayTracing": "true",
            "LogRetentionDays": 90,
            "StateMachineLogLevel": "ALL",
        }),
        &serde_json::json!({}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got = read_back(&moto.endpoint, &ops);
    let names: Vec<&str> = got["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().trim_start_matches("ops-"))
        .collect();
    assert_eq!(names, ALARMS.to_vec());
    assert_eq!(got["alarm_actions"], serde_json::json!([alarms]));
    assert!(
        ops.json["resources"].get("AlarmTopic").is_none(),
        "with AlarmTopicArn the stack makes no topic of its own"
    );
    let key = ops.attribute("Key", "Arn");
    assert_eq!(got["topic_key"], key.as_str());
    assert_eq!(got["queue_key"], key.as_str());
    assert_eq!(got["table_sse"]["KMSMasterKeyArn"], key.as_str(), "{got}");
    let key_policy = ops.properties("Key")["KeyPolicy"].to_string();
    assert!(
        key_policy.contains("sns.amazonaws.com") && key_policy.contains("events.amazonaws.com"),
        "SNS→SQS and EventBridge→SNS delivery may use the key: {key_policy}"
    );
    assert!(
        key_policy.contains("logs.us-east-1.amazonaws.com")
            && key_policy.contains("cloudwatch.amazonaws.com"),
        "the log groups and the alarms may use the key: {key_policy}"
    );
    assert!(
        got["log_keys"]
            .as_object()
            .unwrap()
            .values()
            .all(|k| k == key.as_str()),
        "every log group is encrypted with the stack's key: {got}"
    );
    assert!(key_policy.contains("111122223333"));
    let trusted = serde_json::json!(["111122223333", "444455556666"]);
    let statements = got["topic_policy"]["Statement"].as_array().unwrap();
    assert!(
        statements
            .iter()
            .any(|s| s["Principal"]["AWS"] == trusted && s["Action"] == "sns:Publish"),
        "{got}"
    );
    assert_eq!(
        got["queue_policy"]["Statement"][0]["Principal"]["AWS"],
        trusted
    );
    assert_eq!(got["pitr"], "DISABLED");
    assert_eq!(got["sfn_logging"], "ALL");
    assert_eq!(got["sfn_tracing"], true);
    assert_eq!(got["fn_tracing"], "Active");
    assert!(
        got["log_retention"]
            .as_object()
            .unwrap()
            .values()
            .all(|d| d == 90),
        "{got}"
    );
    assert_eq!(ops.output("KmsKeyArn"), key);
    for output in [
        "StateMachineArn",
        "TableName",
        "AlertDeadLetterQueueUrl",
        "DispatchDeadLetterQueueUrl",
        "InspectionDeadLetterQueueUrl",
    ] {
        assert!(!ops.output(output).is_empty(), "{output}");
    }
}

/// `make test` builds one function for arm64 and checks its zip with `deploy.py
/// --check-zip`; the check refuses a zip for another architecture or without bootstrap.
#[test]
fn the_zip_check_knows_an_arm64_bootstrap_from_others() {
    let dir = tempfile::tempdir().unwrap();
    let host = deepalert_testkit::aws_stack::binary("receptor");
    let script = format!(
        r##"
import zipfile
def make(path, name, data, mode=0o755):
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        z.writestr(info, data)
make({dir:?} + "/x86.zip", "bootstrap", open({host:?}, "rb").read())
make({dir:?} + "/none.zip", "main", b"#!/bin/sh")
"##,
        dir = dir.path().display().to_string(),
        host = host.display().to_string(),
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "{out}");
    let check = |zip: &str, arch: &str| {
        run_venv_tool(
            "python",
            &[
                "tools/deploy.py",
                "--check-zip",
                &dir.path().join(zip).display().to_string(),
                "--arch",
                arch,
            ],
        )
    };
    let (ok, out) = check("x86.zip", "arm64");
    assert!(!ok && out.contains("ELF machine 0x3e, not arm64"), "{out}");
    let (ok, out) = check("x86.zip", "x86_64");
    assert!(ok, "{out}");
    let (ok, out) = check("none.zip", "arm64");
    assert!(!ok && out.contains("has no bootstrap"), "{out}");
}

/// The README's subscription snippets are `examples/aws/subscribe.yaml`: it passes
/// cfn-lint, deploys against our exports with the stack name as a parameter, and
/// subscribes with the filter policies, on-failure destinations and maximum concurrency
/// it shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn your_inspector_and_emitter_subscribe_as_the_readme_says() {
    let example = "examples/aws/subscribe.yaml";
    let (ok, output) = run_venv_tool("cfn-lint", &[example]);
    assert!(ok, "cfn-lint:\n{output}");
    let text = std::fs::read_to_string(repo_root().join(example)).unwrap();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let resources = &text[text.find("Resources:").unwrap()..];
    assert!(
        readme.contains(resources.trim_end()),
        "README.md shows examples/aws/subscribe.yaml's Resources as they are"
    );

    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let ours = deploy(
        &moto,
        &repo_root().join("template.yaml"),
        "sec-prod",
        &serde_json::json!({}),
        &serde_json::json!({}),
    )
    .await
    .unwrap();
    let theirs = deploy(
        &moto,
        &repo_root().join(example),
        "my-plugins",
        &serde_json::json!({"DeepalertStack": "sec-prod", "InspectorConcurrency": 3}),
        &ours.exports(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        theirs.function("MyInspector")["environment"]["INSPECTION_QUEUE_URL"],
        ours.physical("InspectionQueue").as_str()
    );
    assert_eq!(theirs.function("MyInspector")["reserved_concurrency"], 3);
    let script = format!(
        r#"
import json, boto3
kw = dict(endpoint_url={endpoint:?}, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
sns, lam = boto3.client("sns", **kw), boto3.client("lambda", **kw)
out = {{}}
for topic in [{tasks:?}, {reports:?}]:
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        out[sub["Endpoint"].rsplit(":", 1)[-1]] = json.loads(attrs.get("FilterPolicy", "null"))
for f in ["my-plugins-MyInspector", "my-plugins-MyEmitter"]:
    c = lam.get_function_event_invoke_config(FunctionName=f)
    out[f + ".on_failure"] = c["DestinationConfig"]["OnFailure"]["Destination"]
    out[f + ".retries"] = c["MaximumRetryAttempts"]
print(json.dumps(out))
"#,
        endpoint = moto.endpoint,
        tasks = ours.physical("TaskTopic"),
        reports = ours.physical("ReportTopic"),
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "{out}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        got["my-plugins-MyInspector"],
        serde_json::json!({"attribute_type": ["ipaddr", "username"]})
    );
    assert_eq!(
        got["my-plugins-MyEmitter"],
        serde_json::json!({"status": ["published"], "severity": ["urgent"]})
    );
    assert_eq!(
        got["my-plugins-MyInspector.on_failure"],
        theirs.attribute("MyInspectorFailures", "Arn").as_str()
    );
    assert_eq!(
        got["my-plugins-MyEmitter.on_failure"],
        theirs.attribute("MyEmitterFailures", "Arn").as_str()
    );
    assert_eq!(got["my-plugins-MyInspector.retries"], 2);
}

/// Every ARN the three templates make, deployed (into moto) in aws-cn and aws-us-gov, is
/// in that partition: the templates write `${AWS::Partition}`, never `arn:aws:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_deploy_in_every_partition() {
    for file in [
        "template.yaml",
        "forwarder.yaml",
        "examples/aws/builtins.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(!text.contains("arn:aws:"), "{file} has a literal arn:aws:");
    }
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    for (region, partition) in [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")] {
        let secret =
            format!("arn:{partition}:secretsmanager:{region}:123456789012:secret:vt-AbCdEf");
        let main = deepalert_testkit::aws_stack::deploy_in(
            &moto,
            region,
            &repo_root().join("template.yaml"),
            "sec",
            &serde_json::json!({"KmsKey": "create", "TrustedAccountIds": "111122223333"}),
            &serde_json::json!({}),
        )
        .await
        .unwrap_or_else(|e| panic!("{region}: {e}"));
        let forwarder = deepalert_testkit::aws_stack::deploy_in(
            &moto,
            region,
            &repo_root().join("forwarder.yaml"),
            "sec-forwarder",
            &serde_json::json!({"MainRegion": region, "EventSources": "aws.signin"}),
            &serde_json::json!({}),
        )
        .await
        .unwrap_or_else(|e| panic!("{region}: {e}"));
        let builtins = deepalert_testkit::aws_stack::deploy_in(
            &moto,
            region,
            &repo_root().join("examples/aws/builtins.yaml"),
            "sec-builtins",
            &serde_json::json!({"DeepalertStack": "sec", "VirusTotalKeySecretArn": secret}),
            &main.exports(),
        )
        .await
        .unwrap_or_else(|e| panic!("{region}: {e}"));
        let mut arns = Vec::new();
        for d in [&main, &forwarder, &builtins] {
            collect_arns(&d.json["resources"], &mut arns);
        }
        assert!(arns.len() > 50, "{region}: {} ARNs", arns.len());
        let foreign: Vec<&String> = arns
            .iter()
            .filter(|a| !a.starts_with(&format!("arn:{partition}:")))
            .collect();
        assert!(
            foreign.is_empty(),
            "{region}: ARNs of another partition: {foreign:?}"
        );
        // The state machines' task resource is the partition's.
        let definition = main.properties("Workflow").to_string();
        assert!(
            definition.contains(&format!("arn:{partition}:states:::lambda:invoke")),
            "{definition}"
        );
    }
}

/// Every string in `v` that contains an ARN (inside JSON text too), from `arn:` on.
fn collect_arns(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => {
            for (i, _) in s.match_indices("arn:") {
                let arn: String = s[i..]
                    .chars()
                    .take_while(|c| !matches!(c, '"' | ' ' | ',' | '\\'))
                    .collect();
                // `arn:` inside a condition key or a word is not an ARN.
                if arn.split(':').count() >= 3 && !s[..i].ends_with(|c: char| c.is_alphanumeric()) {
                    out.push(arn);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_arns(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| collect_arns(x, out)),
        _ => {}
    }
}
