//! Built without the `aws` feature (as `make serve` builds): every piece that would call
//! EC2, IAM or SSM refuses at start-up with an error saying how to get it, and the rest
//! works. `make test` runs this with `--no-default-features`; with the feature on there
//! is nothing to test here.
#![cfg(not(feature = "aws"))]

use std::collections::HashMap;

use deepalert_core::flows::{FlowConfig, FlowSet};
use deepalert_plugins::builtin::{self, Context};
use deepalert_plugins::responses::{self, Responder};
use deepalert_plugins::{BUILT_WITHOUT_AWS, SecretSource, Secrets};
use serde_json::json;

fn offline_sdk() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build()
}

#[tokio::test]
async fn the_aws_context_inspector_refuses_to_start() {
    let secrets = Secrets::new(|_| None, Some(offline_sdk()));
    let sdk = offline_sdk();
    let ctx = Context {
        base_dir: std::path::Path::new("."),
        secret: &secrets,
        aws: Some(&sdk),
    };
    let err = builtin::inspector("aws-context", json!({}), &ctx)
        .await
        .err()
        .expect("aws-context cannot start without the aws feature");
    assert!(err.to_string().starts_with("aws-context: "), "{err}");
    assert!(err.to_string().contains(BUILT_WITHOUT_AWS), "{err}");
    assert!(BUILT_WITHOUT_AWS.contains("SERVE_FEATURES=aws"));
}

#[tokio::test]
async fn an_ssm_secret_is_refused_and_a_plain_one_still_works() {
    let vars: HashMap<String, String> = [
        ("SLACK_URL_SSM_PARAMETER", "/deepalert/slack"),
        ("VT_KEY", "k-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let secrets = Secrets::new(move |k| vars.get(k).cloned(), Some(offline_sdk()));
    let err = secrets.secret("SLACK_URL").await.unwrap_err().to_string();
    assert!(
        err.contains("SLACK_URL_SSM_PARAMETER names an SSM parameter")
            && err.contains(BUILT_WITHOUT_AWS),
        "{err}"
    );
    assert_eq!(secrets.secret("VT_KEY").await.unwrap(), "k-1");
}

#[test]
fn flow_steps_that_call_aws_stop_start_up_naming_the_step() {
    let prepare = |steps: serde_json::Value| {
        let flows: Vec<FlowConfig> =
            serde_json::from_value(json!([{"name": "contain", "steps": steps}])).unwrap();
        let set = FlowSet::new(flows, &[], responses::CHECKS, responses::REMEDIATIONS).unwrap();
        let mut r = Responder::new(
            HashMap::new(),
            HashMap::new(),
            Some(offline_sdk()),
            std::env::temp_dir(),
            true,
        );
        r.prepare(&set).map_err(|e| e.to_string())
    };
    for (steps, label) in [
        (json!([{"remediate": "iam-user"}]), "remediate iam-user"),
        (
            json!([{"check": "instance-running"}]),
            "check instance-running",
        ),
        (
            json!([{"wait": "1m"}, {"remediate": "ec2-instance"}]),
            "remediate ec2-instance",
        ),
        (
            json!([{"check": "rego", "options": {"policy": "package x\nresult := true", "lookup": ["iam-user"]}}]),
            "check rego",
        ),
    ] {
        let err = prepare(steps).expect_err(label);
        assert!(
            err.contains("contain") && err.contains(label) && err.contains(BUILT_WITHOUT_AWS),
            "{err}"
        );
    }
    // What does not call AWS is unaffected.
    prepare(json!([
        {"check": "rego", "options": {"policy": "package deepalert.check\nresult := true"}},
        {"remediate": "exec", "options": {"command": "./contain.sh"}}
    ]))
    .unwrap();
}
