//! Cloud events on AWS: `PutEvents` → the stack's EventBridge rule → the event queue → the
//! real `event-router` binary → a report on the report topic; a malformed event reaches
//! the DLQ. Also how stack.jsonnet's Rules become the rule's pattern and the router's
//! configuration, and the forwarding stack of another region.

mod common;

use std::time::Duration;

use common::{Stack, StackOptions};
use deepalert_testkit::aws_stack::{PackageDocuments, deploy_in};
use deepalert_testkit::deploy::{deploy_dry_run, deploy_dry_run_documents, override_values};
use deepalert_testkit::moto::run_venv_tool;
use deepalert_testkit::repo_root;
use serde_json::{Value, json};

fn event(name: &str) -> Value {
    deepalert_testkit::read_json(&repo_root().join("tests/fixtures/events").join(name))
}

/// `events.put_events` with boto3 (the Rust SDK's EventBridge client is not a dependency).
fn put_events(endpoint: &str, events: &[Value]) {
    let entries: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "Source": e["source"], "DetailType": e["detail-type"],
                "Detail": e["detail"].to_string(), "Resources": e["resources"],
            })
        })
        .collect();
    let script = format!(
        "import boto3, json\nc = boto3.client('events', endpoint_url={endpoint:?}, region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\nr = c.put_events(Entries=json.loads({entries:?}))\nassert r['FailedEntryCount'] == 0, r\n",
        entries = serde_json::to_string(&entries).unwrap()
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "put_events: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_events_through_the_stacks_rule_to_a_report() {
    let rules = json!({
        "rules": [
            {"preset": "root-login"},
            {"preset": "non-compliant-user-created", "options": {"user_name_pattern": "[a-z]+\\.[a-z]+"}}
        ],
        "findings": {"guardduty": true, "securityhub": false}
    });
    let stack = Stack::start(StackOptions {
        inspectors: vec![common::example_inspector()],
        documents: PackageDocuments {
            rules: rules.to_string(),
            ..PackageDocuments::default()
        },
        parameters: json!({
            "EventSources": "aws.signin,aws.iam,aws.guardduty",
            "EventDetailTypes": "AWS Console Sign In via CloudTrail,AWS API Call via CloudTrail,GuardDuty Finding",
        }),
        ..StackOptions::default()
    })
    .await;

    put_events(&stack.aws.moto.endpoint, &[event("signin-root.json")]);
    let published = stack.wait_published(60).await;
    assert_eq!(published.len(), 1, "{}", stack.diagnostics().await);
    let (report, attributes) = &published[0];
    assert_eq!(attributes["detector"]["Value"], "aws-cloudtrail");
    assert_eq!(attributes["rule_id"]["Value"], "root-login");
    let alert = &report.alerts[0];
    assert_eq!(alert.alert_key, "123456789012", "{alert:?}");
    assert!(
        alert
            .description
            .contains("signed in to the console from 203.0.113.50")
    );
    assert!(
        report.attributes.iter().any(|a| a.value == "203.0.113.50"),
        "{report:?}"
    );

    // A GuardDuty finding through the same rule; an event no rule reads is not delivered.
    put_events(
        &stack.aws.moto.endpoint,
        &[
            event("guardduty-ssh-bruteforce.json"),
            event("securityhub-network.json"),
        ],
    );
    let published = stack.wait_published(60).await;
    assert_eq!(published.len(), 1, "{}", stack.diagnostics().await);
    assert_eq!(published[0].1["detector"]["Value"], "aws-guardduty");
    assert_eq!(
        published[0].0.alerts[0].rule_id,
        "UnauthorizedAccess:EC2/SSHBruteForce"
    );

    // A CreateUser without its parameters: the rule cannot read it and skips it, with a
    // log line naming the rule and why; the event is not failed (no DLQ), and the good
    // event of the same batch is stored.
    let mut broken = event("iam-createuser.json");
    broken["detail"]["requestParameters"] = Value::Null;
    let mut fine = event("iam-createuser.json");
    fine["detail"]["requestParameters"]["userName"] = json!("BadName2");
    put_events(&stack.aws.moto.endpoint, &[broken, fine]);
    let published = stack.wait_published(60).await;
    assert!(
        published
            .iter()
            .any(|(r, _)| r.alerts[0].alert_key == "BadName2"),
        "the good event's alert: {published:?}"
    );
    let logs = stack.lambda.logs();
    assert!(
        logs.contains("rule skipped an event")
            && logs.contains("CreateUser without requestParameters.userName"),
        "{logs}"
    );
    let dlq = stack.deployed.physical("EventDeadLetterQueue");
    assert!(
        stack
            .aws
            .drain(&dlq, Duration::from_secs(3))
            .await
            .is_empty()
    );
}

/// What tools/deploy.py makes of stack.jsonnet's Rules and Findings: the event rule's
/// sources and detail-types, the router's rules document (in its zip), the Rego rules
/// built in, and a forwarding stack per other region.
#[test]
fn rules_in_stack_jsonnet_become_the_event_rule_and_the_router_config() {
    let deploy = "{ StackName: 'sec', Region: 'eu-west-1', CodeS3Bucket: 'b', CodeS3Prefix: 'p', Regions: ['eu-west-1', 'us-east-1', 'ap-northeast-1'] }";
    let rules_dir = repo_root().join("examples/rules");
    let stack = format!(
        "{{ Rules: [ {{ preset: 'root-login' }}, {{ preset: 'unauthorized-instance-created', options: {{ regions: ['eu-west-1'] }} }},
                     {{ policies: '{}', sources: ['aws.signin'] }}, {{ preset: 'suspicious-login-ip', enabled: false }} ],
           Findings: {{ securityhub: false }} }}",
        rules_dir.display()
    );
    let (ok, out, documents) =
        deploy_dry_run_documents(&[], deploy, Some(("stack.jsonnet", &stack)), &[]);
    assert!(ok, "{out}");
    let values = override_values(&out);
    let get = |k: &str| {
        values
            .get(k)
            .unwrap_or_else(|| panic!("{k} in {values:?}"))
            .clone()
    };
    assert_eq!(get("EventSources"), "aws.ec2,aws.guardduty,aws.signin");
    assert_eq!(
        get("EventDetailTypes"),
        "",
        "a Rego rule reads every detail-type"
    );
    assert!(
        !values.contains_key("RulesConfig"),
        "the rules are no parameter"
    );
    assert!(
        out.contains("# document deepalert/rules.json =")
            && out.contains("in the zips of: event-router)"),
        "{out}"
    );
    let config: Value = serde_json::from_str(&documents["rules"]).unwrap();
    assert_eq!(
        config["findings"],
        json!({"guardduty": true, "securityhub": false})
    );
    assert_eq!(config["rules"].as_array().unwrap().len(), 4);
    assert!(
        out.contains(&format!(
            "DEEPALERT_RULE_POLICY_DIR={}",
            rules_dir.display()
        )),
        "{out}"
    );
    // Forwarders in the other regions, to eu-west-1.
    let forwarders: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("forwarder.yaml"))
        .collect();
    assert_eq!(forwarders.len(), 2, "{out}");
    assert!(
        forwarders[0].contains("--region us-east-1")
            && forwarders[1].contains("--region ap-northeast-1")
    );
    assert!(forwarders.iter().all(|f| f.contains("MainRegion=eu-west-1") && f.contains("--stack-name sec-forwarder")));

    // Presets only: detail-types are known.
    let (ok, out) = deploy_dry_run(
        &[],
        deploy,
        Some(("stack.jsonnet", "{ Rules: [{ preset: 'root-login' }] }")),
    );
    assert!(ok, "{out}");
    assert_eq!(
        override_values(&out)["EventDetailTypes"],
        "AWS Console Sign In via CloudTrail,GuardDuty Finding,Security Hub Findings - Imported"
    );
    // Mistakes, named.
    for (stack, expected) in [
        (
            "{ Rules: [{ preset: 'root-logins' }] }",
            "no preset 'root-logins'",
        ),
        (
            &format!("{{ Rules: [{{ policies: '{}' }}] }}", rules_dir.display()),
            "a Rego rule needs sources",
        ),
        (
            "{ Rules: [{ policies: '/nonexistent', sources: ['aws.s3'] }] }",
            "is not a directory of .rego files",
        ),
        (
            "{ Findings: { inspector: true } }",
            "Findings is {guardduty",
        ),
        (
            "{ RulesConfig: '{}' }",
            "RulesConfig is written from Rules and Findings (into the functions' zips)",
        ),
    ] {
        let (ok, out) = deploy_dry_run(&[], deploy, Some(("stack.jsonnet", stack)));
        assert!(!ok && out.contains(expected), "{stack}: {out}");
    }
}

/// tools/deploy.py knows where each preset's events come from; the presets say it too.
#[test]
fn deploy_py_knows_the_presets_sources() {
    use deepalert_core::rules::presets;
    let (ok, out) = run_venv_tool(
        "python",
        &[
            "-c",
            "import sys, json; sys.path.insert(0, 'tools'); import deploy; print(json.dumps(deploy.PRESET_SOURCES))",
        ],
    );
    assert!(ok, "{out}");
    let table: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(table.as_object().unwrap().len(), presets::PRESETS.len());
    let options = |name: &str| match name {
        "suspicious-login-ip" => json!({"trusted_cidrs": ["10.0.0.0/8"]}),
        "non-compliant-user-created" => json!({"user_name_pattern": "x"}),
        _ => Value::Null,
    };
    for name in presets::PRESETS {
        let rule = presets::build(name, options(name)).unwrap();
        let ours: Vec<Value> = rule
            .sources()
            .iter()
            .map(|s| json!([s.source, s.detail_type]))
            .collect();
        assert_eq!(table[name], json!(ours), "{name}");
    }
}

/// The forwarding stack of another region: a rule on the same pattern whose target is the
/// main region's default bus, with a role that may put events there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_sends_another_regions_events_to_the_main_bus() {
    let (ok, output) = run_venv_tool("cfn-lint", &["forwarder.yaml"]);
    assert!(ok, "cfn-lint forwarder.yaml:\n{output}");
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let fwd = deploy_in(
        &moto,
        "ap-northeast-1",
        &repo_root().join("forwarder.yaml"),
        "sec-forwarder",
        &json!({"MainRegion": "eu-west-1", "EventSources": "aws.signin,aws.guardduty", "EventDetailTypes": "AWS Console Sign In via CloudTrail,GuardDuty Finding"}),
        &json!({}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let script = format!(
        "import boto3, json\nc = boto3.client('events', endpoint_url={endpoint:?}, region_name='ap-northeast-1', aws_access_key_id='testing', aws_secret_access_key='testing')\nname = {rule:?}\nprint(json.dumps({{'pattern': json.loads(c.describe_rule(Name=name)['EventPattern']), 'targets': c.list_targets_by_rule(Rule=name)['Targets']}}))\n",
        endpoint = moto.endpoint,
        rule = fwd.physical("ForwardRule"),
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "{out}");
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        got["pattern"]["source"],
        json!(["aws.signin", "aws.guardduty"])
    );
    assert_eq!(
        got["targets"][0]["Arn"],
        "arn:aws:events:eu-west-1:123456789012:event-bus/default"
    );
    assert_eq!(
        got["targets"][0]["RoleArn"],
        fwd.attribute("ForwardRole", "Arn").as_str()
    );
    let policy = fwd.properties("ForwardRole")["Policies"][0]["PolicyDocument"].to_string();
    assert!(
        policy.contains("events:PutEvents")
            && policy.contains("arn:aws:events:eu-west-1:123456789012:event-bus/default"),
        "{policy}"
    );
}

/// IAM, STS and console sign-in events reach EventBridge in one region of the partition
/// only (us-east-1; cn-north-1, us-gov-west-1): a rule on them, deployed elsewhere and
/// without that region in Regions, gets a forwarder of those events there, said so.
#[test]
fn rules_on_global_events_get_a_forwarder_in_the_partitions_global_region() {
    let forwarders = |deploy: &str, rules: &str| {
        let (ok, out) = deploy_dry_run(
            &[],
            deploy,
            Some(("stack.jsonnet", &format!("{{ Rules: {rules} }}"))),
        );
        assert!(ok, "{out}");
        let lines: Vec<String> = out
            .lines()
            .filter(|l| l.contains("forwarder.yaml"))
            .map(str::to_string)
            .collect();
        (lines, out)
    };
    let eu = "{ StackName: 'sec', Region: 'eu-west-1', CodeS3Bucket: 'b', CodeS3Prefix: 'p' }";
    let (lines, out) = forwarders(
        eu,
        "[{ preset: 'root-login' }, { preset: 'unauthorized-instance-created' }]",
    );
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("--region us-east-1")
            && lines[0].contains("EventSources=aws.signin ")
            && lines[0].contains("MainRegion=eu-west-1"),
        "the sign-in events alone, not EC2's or the findings: {}",
        lines[0]
    );
    assert!(
        out.contains("Rules[0] (root-login) reads aws.signin events, which CloudTrail delivers in us-east-1 only"),
        "{out}"
    );
    // Regional events only: no forwarder; in us-east-1 itself: none either.
    let (lines, _) = forwarders(eu, "[{ preset: 'unauthorized-instance-created' }]");
    assert!(lines.is_empty(), "{lines:?}");
    let (lines, _) = forwarders(
        &eu.replace("eu-west-1", "us-east-1"),
        "[{ preset: 'root-login' }]",
    );
    assert!(lines.is_empty(), "{lines:?}");
    // A Rego rule on IAM events counts too; in China the global region is cn-north-1.
    let rules_dir = repo_root().join("examples/rules");
    let (lines, out) = forwarders(
        &eu.replace("eu-west-1", "cn-northwest-1"),
        &format!(
            "[{{ policies: '{}', sources: ['aws.iam', 'aws.s3'] }}]",
            rules_dir.display()
        ),
    );
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("--region cn-north-1") && lines[0].contains("EventSources=aws.iam "),
        "{}",
        lines[0]
    );
    // Regions across partitions cannot forward.
    let (ok, out) = deploy_dry_run(
        &[],
        "{ StackName: 'sec', Region: 'eu-west-1', CodeS3Bucket: 'b', CodeS3Prefix: 'p', Regions: ['cn-north-1'] }",
        None,
    );
    assert!(!ok && out.contains("within a partition only"), "{out}");
}

/// Trail files from S3 (`TrailBucket`): CloudTrail's gzipped log file put into the bucket
/// notifies the stack's trail queue; the event router reads the object as a stream and
/// stores every record's alerts. The same object delivered again makes no second alert
/// (each record is marked by its eventID once its alerts are stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trail_files_put_into_the_bucket_become_alerts_once() {
    let rules = json!({
        "rules": [
            {"preset": "root-login"},
            {"preset": "non-compliant-user-created", "options": {"user_name_pattern": "[a-z]+\\.[a-z]+"}}
        ],
        "findings": {"guardduty": false, "securityhub": false}
    });
    let stack = Stack::start(StackOptions {
        inspectors: vec![],
        documents: PackageDocuments {
            rules: rules.to_string(),
            ..PackageDocuments::default()
        },
        parameters: json!({
            "TrailBucket": "org-trail",
            "EventSources": "aws.signin,aws.iam",
            "EventDetailTypes": "AWS Console Sign In via CloudTrail,AWS API Call via CloudTrail",
        }),
        ..StackOptions::default()
    })
    .await;
    let queue_arn = stack.deployed.output("TrailQueueArn");
    let router = stack.deployed.function("EventRouterFunction");
    assert_eq!(router["environment"]["TRAIL_BUCKET"], "org-trail");
    let policy = stack
        .deployed
        .properties("EventRouterFunctionRole")
        .to_string();
    assert!(
        policy.contains("s3:GetObject") && policy.contains("arn:aws:s3:::org-trail/*"),
        "{policy}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.json.gz");
    let (roots, users) = deepalert_testkit::trail::write_trail(&file, 2_500);
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/20/123456789012_CloudTrail_us-east-1_20261120T1200Z_abc.json.gz";
    let put = |note: &str| {
        let script = format!(
            r#"
import boto3
s3 = boto3.client("s3", endpoint_url={endpoint:?}, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
{note}
s3.upload_file({file:?}, "org-trail", {key:?})
"#,
            endpoint = stack.aws.moto.endpoint,
            file = file.display().to_string(),
        );
        let (ok, out) = run_venv_tool("python", &["-c", &script]);
        assert!(ok, "{out}");
    };
    // The bucket (in real life another account's) and its notification to our queue.
    put(&format!(
        "s3.create_bucket(Bucket='org-trail')\n\
         s3.put_bucket_notification_configuration(Bucket='org-trail', NotificationConfiguration={{'QueueConfigurations': [{{'QueueArn': {queue_arn:?}, 'Events': ['s3:ObjectCreated:*']}}]}})"
    ));
    let alerts = |ddb: aws_sdk_dynamodb::Client, table: String| async move {
        let mut n = 0;
        let mut start = None;
        loop {
            let page = ddb
                .scan()
                .table_name(&table)
                .filter_expression("begins_with(sk, :a)")
                .expression_attribute_values(
                    ":a",
                    aws_sdk_dynamodb::types::AttributeValue::S("alert#".into()),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            n += page.count;
            start = page.last_evaluated_key;
            if start.is_none() {
                return n as usize;
            }
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while alerts(stack.aws.ddb.clone(), stack.table.clone()).await < roots + users
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        alerts(stack.aws.ddb.clone(), stack.table.clone()).await,
        roots + users,
        "{}",
        stack.lambda.logs()
    );
    // The same object again: read, every alerting record found marked, nothing stored.
    put("");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let read_twice = || {
        stack
            .lambda
            .logs()
            .lines()
            .filter(|l| l.contains("trail file read"))
            .count()
            >= 2
    };
    while !read_twice() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logs = stack.lambda.logs();
    let second = logs
        .lines()
        .filter(|l| l.contains("trail file read"))
        .nth(1)
        .unwrap_or_else(|| panic!("the object was not read twice:\n{logs}"));
    let line: Value = serde_json::from_str(second).unwrap();
    assert_eq!(line["fields"]["records"], 2_500, "{second}");
    assert_eq!(line["fields"]["repeated"], roots + users, "{second}");
    assert_eq!(line["fields"]["alerts"], 0, "{second}");
    assert_eq!(
        alerts(stack.aws.ddb.clone(), stack.table.clone()).await,
        roots + users
    );
    // Their reports are published as any alert's.
    let published = stack.wait_published(60).await;
    assert!(
        published
            .iter()
            .any(|(r, _)| r.alerts[0].rule_id == "root-login"),
        "{published:?}"
    );
    let trail_dlq = stack.deployed.physical("TrailDeadLetterQueue");
    assert!(
        stack
            .aws
            .drain(&trail_dlq, Duration::from_secs(1))
            .await
            .is_empty()
    );
}
