//! Checks and remediations against moto: what they change (and, in dry run or refused by
//! a guard, that they change nothing), and the order of IAM calls.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_iam::types::StatusType;
use deepalert_core::flows::{FlowConfig, FlowSet, StepOutcome, StepRunner};
use deepalert_core::{Report, Severity};
use deepalert_plugins::responses::{self, Responder};
use deepalert_testkit::moto::Moto;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";

fn report(severity: Option<Severity>, attributes: Value, body: Value) -> Report {
    let mut r: Report = serde_json::from_value(json!({
        "id": "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11",
        "alerts": [{"detector": "aws-cloudtrail", "rule_id": "iam-user-naming", "alert_key": "k",
                    "attributes": attributes, "body": body}],
        "status": "published", "created_at": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    r.result = severity.map(|s| deepalert_core::ReviewResult {
        severity: s,
        reason: "test".into(),
    });
    r
}

fn user_report(names: &[&str]) -> Report {
    let attrs: Vec<Value> = names
        .iter()
        .map(|n| json!({"type": "username", "key": "created user", "value": n, "context": ["object"]}))
        .chain([json!({"type": "username", "key": "creator", "value": "admin", "context": ["subject"]})])
        .collect();
    report(
        Some(Severity::Urgent),
        json!(attrs),
        json!({"account": ACCOUNT, "region": "us-east-1"}),
    )
}

fn instance_report(id: &str, region: &str) -> Report {
    report(
        Some(Severity::Urgent),
        json!([{"type": "instanceid", "key": "instance", "value": id, "context": ["object", "local"]}]),
        json!({"account": ACCOUNT, "region": region}),
    )
}

fn flow() -> FlowConfig {
    serde_json::from_value(json!({"name": "respond", "steps": [{"notify": "x"}]})).unwrap()
}

async fn responder(moto: &Moto, flows: Value) -> Responder {
    // Signed `stack`, so the launcher records the calls it makes.
    let sdk = moto.sdk_signed_as("stack").await;
    let mut r = Responder::new(
        HashMap::new(),
        HashMap::new(),
        Some(sdk),
        std::env::temp_dir(),
        true,
    );
    let flows: Vec<FlowConfig> = serde_json::from_value(flows).unwrap();
    let set = FlowSet::new(flows, &[], responses::CHECKS, responses::REMEDIATIONS).unwrap();
    r.prepare(&set).unwrap();
    r
}

async fn make_user(iam: &aws_sdk_iam::Client, name: &str) -> String {
    iam.create_user().user_name(name).send().await.unwrap();
    iam.create_login_profile()
        .user_name(name)
        .password("Correct-Horse-1")
        .send()
        .await
        .unwrap();
    iam.create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap()
        .access_key_id
}

async fn key_status(iam: &aws_sdk_iam::Client, name: &str) -> Vec<String> {
    iam.list_access_keys()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .access_key_metadata()
        .iter()
        .map(|k| k.status().unwrap().as_str().to_string())
        .collect()
}

async fn has_login_profile(iam: &aws_sdk_iam::Client, name: &str) -> bool {
    iam.get_login_profile().user_name(name).send().await.is_ok()
}

async fn inline_policies(iam: &aws_sdk_iam::Client, name: &str) -> Vec<String> {
    iam.list_user_policies()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec()
}

/// IAM actions the responder asked for, in order, mutating ones only.
async fn iam_writes(moto: &Moto) -> Vec<String> {
    moto.requests()
        .await
        .into_iter()
        .filter(|r| r["service"] == "iam")
        .map(|r| r["action"].as_str().unwrap().to_string())
        .filter(|a| !a.starts_with("Get") && !a.starts_with("List"))
        .collect()
}

fn reviewed() -> FlowConfig {
    flow()
}

#[tokio::test]
async fn iam_user_is_contained_reversibly_and_dry_run_changes_nothing() {
    let moto = Moto::start(None).await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    make_user(&iam, "tmp-alice").await;
    let r = responder(&moto, json!([])).await;

    // Dry run (the default): the plan, nothing changed, no write call made.
    let out = r
        .remediate(
            "iam-user",
            &json!({}),
            &user_report(&["tmp-alice"]),
            &reviewed(),
        )
        .await
        .unwrap();
    let StepOutcome::DryRun(plan) = out else {
        panic!("{out:?}")
    };
    assert!(
        plan.contains("tmp-alice: would attach inline deny-all policy deepalert-deny-all")
            && plan.contains("deactivate access key AKIA")
            && plan.contains("delete the console login profile"),
        "{plan}"
    );
    assert_eq!(key_status(&iam, "tmp-alice").await, vec!["Active"]);
    assert!(has_login_profile(&iam, "tmp-alice").await);
    assert!(inline_policies(&iam, "tmp-alice").await.is_empty());
    assert_eq!(iam_writes(&moto).await, Vec::<String>::new());

    // For real: deny first, then keys, then the console password. The creator (subject)
    // is not a target.
    let out = r
        .remediate(
            "iam-user",
            &json!({"dry_run": false}),
            &user_report(&["tmp-alice"]),
            &reviewed(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&out, StepOutcome::Done(m) if m.starts_with("tmp-alice: attach inline deny-all")),
        "{out:?}"
    );
    assert_eq!(key_status(&iam, "tmp-alice").await, vec!["Inactive"]);
    assert!(!has_login_profile(&iam, "tmp-alice").await);
    assert_eq!(
        inline_policies(&iam, "tmp-alice").await,
        vec!["deepalert-deny-all"]
    );
    let doc = iam
        .get_user_policy()
        .user_name("tmp-alice")
        .policy_name("deepalert-deny-all")
        .send()
        .await
        .unwrap()
        .policy_document;
    let doc: Value = serde_json::from_str(&urlencoding_decode(&doc)).unwrap();
    assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    assert_eq!(doc["Statement"][0]["Action"], "*");
    assert_eq!(
        iam_writes(&moto).await,
        vec!["PutUserPolicy", "UpdateAccessKey", "DeleteLoginProfile"]
    );
    assert!(
        iam.get_user().user_name("admin").send().await.is_err(),
        "admin was never created nor touched"
    );
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn destructive_deletes_the_user_after_everything_it_holds_in_iams_order() {
    let moto = Moto::start(None).await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    make_user(&iam, "tmp-carol").await;
    iam.put_user_policy()
        .user_name("tmp-carol")
        .policy_name("inline")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let managed = iam
        .create_policy()
        .policy_name("managed")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    iam.attach_user_policy()
        .user_name("tmp-carol")
        .policy_arn(&managed)
        .send()
        .await
        .unwrap();
    iam.create_group().group_name("devs").send().await.unwrap();
    iam.add_user_to_group()
        .group_name("devs")
        .user_name("tmp-carol")
        .send()
        .await
        .unwrap();
    let mfa = iam
        .create_virtual_mfa_device()
        .virtual_mfa_device_name("carol-phone")
        .send()
        .await
        .unwrap()
        .virtual_mfa_device
        .unwrap()
        .serial_number;
    iam.enable_mfa_device()
        .user_name("tmp-carol")
        .serial_number(&mfa)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();

    let r = responder(&moto, json!([])).await;
    let out = r
        .remediate(
            "iam-user",
            &json!({"dry_run": false, "destructive": true, "accounts": [ACCOUNT]}),
            &user_report(&["tmp-carol"]),
            &reviewed(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&out, StepOutcome::Done(m) if m.ends_with("delete the user")),
        "{out:?}"
    );
    assert!(
        iam.get_user().user_name("tmp-carol").send().await.is_err(),
        "user deleted"
    );
    let writes = iam_writes(&moto).await;
    assert_eq!(
        writes.last().map(String::as_str),
        Some("DeleteUser"),
        "{writes:?}"
    );
    for before in [
        "DeleteLoginProfile",
        "DeleteAccessKey",
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",
        "DeleteUserPolicy",
        "DetachUserPolicy",
        "RemoveUserFromGroup",
    ] {
        let at = writes.iter().position(|w| w == before);
        assert!(
            at.is_some_and(|i| i < writes.len() - 1),
            "{before} before DeleteUser: {writes:?}"
        );
    }
    // Deactivated before deleted: IAM refuses to delete an MFA device still in use.
    let pos = |a: &str| writes.iter().position(|w| w == a).unwrap();
    assert!(pos("DeactivateMFADevice") < pos("DeleteVirtualMFADevice"));
    // The managed policy itself is left alone.
    assert!(iam.get_policy().policy_arn(&managed).send().await.is_ok());
}

#[tokio::test]
async fn guards_refuse_and_say_why_and_touch_nothing() {
    let moto = Moto::start(None).await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    for u in ["tmp-dave", "breakglass", "tmp-erin", "tmp-tagged"] {
        make_user(&iam, u).await;
    }
    iam.tag_user()
        .user_name("tmp-tagged")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("deepalert:protected")
                .value("yes")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let r = responder(&moto, json!([])).await;
    let go = |extra: Value| {
        let mut o = json!({"dry_run": false});
        o.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        o
    };
    let guarded = |out: StepOutcome| match out {
        StepOutcome::Guarded(m) => m,
        other => panic!("not guarded: {other:?}"),
    };

    let m = guarded(
        r.remediate(
            "iam-user",
            &go(json!({"protected_principals": ["breakglass", "arn:aws:iam::*:user/root-*"]})),
            &user_report(&["breakglass"]),
            &reviewed(),
        )
        .await
        .unwrap(),
    );
    assert!(
        m.contains("breakglass is protected (protected_principals \"breakglass\")"),
        "{m}"
    );
    let m = guarded(
        r.remediate(
            "iam-user",
            &go(json!({"accounts": ["999999999999"]})),
            &user_report(&["tmp-dave"]),
            &reviewed(),
        )
        .await
        .unwrap(),
    );
    assert!(
        m.contains("account 123456789012 is not in the allow-list (999999999999)"),
        "{m}"
    );
    let m = guarded(
        r.remediate(
            "iam-user",
            &go(json!({})),
            &user_report(&["tmp-tagged"]),
            &reviewed(),
        )
        .await
        .unwrap(),
    );
    assert!(
        m.contains("protected by its tag deepalert:protected"),
        "{m}"
    );
    let m = guarded(
        r.remediate(
            "iam-user",
            &go(json!({})),
            &user_report(&["tmp-dave", "tmp-erin"]),
            &reviewed(),
        )
        .await
        .unwrap(),
    );
    assert!(
        m.contains("2 targets (tmp-dave, tmp-erin), more than max_targets = 1"),
        "{m}"
    );
    let mut unclassified = user_report(&["tmp-dave"]);
    unclassified.result.as_mut().unwrap().severity = Severity::Unclassified;
    let m = guarded(
        r.remediate("iam-user", &go(json!({})), &unclassified, &reviewed())
            .await
            .unwrap(),
    );
    assert!(
        m.contains("verdict unclassified is below min_severity urgent"),
        "{m}"
    );
    let no_account = report(
        Some(Severity::Urgent),
        json!([{"type": "username", "value": "tmp-dave", "context": ["object"]}]),
        json!({}),
    );
    let m = guarded(
        r.remediate(
            "iam-user",
            &go(json!({"accounts": [ACCOUNT]})),
            &no_account,
            &reviewed(),
        )
        .await
        .unwrap(),
    );
    assert!(m.contains("its account is unknown"), "{m}");
    let m = guarded(
        r.remediate(
            "iam-user",
            &go(json!({})),
            &report(Some(Severity::Urgent), json!([]), json!({})),
            &reviewed(),
        )
        .await
        .unwrap(),
    );
    assert!(m.contains("no target"), "{m}");

    for u in ["tmp-dave", "breakglass", "tmp-erin", "tmp-tagged"] {
        assert_eq!(key_status(&iam, u).await, vec!["Active"], "{u} untouched");
        assert!(has_login_profile(&iam, u).await);
    }
    assert_eq!(iam_writes(&moto).await, Vec::<String>::new());
}

async fn launch(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

async fn state(ec2: &aws_sdk_ec2::Client, id: &str) -> (String, Vec<String>) {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    (
        i.state().unwrap().name().unwrap().as_str().to_string(),
        i.security_groups()
            .iter()
            .map(|g| g.group_id().unwrap().to_string())
            .collect(),
    )
}

#[tokio::test]
async fn instances_are_stopped_quarantined_or_snapshotted_and_dry_run_asks_aws() {
    let moto = Moto::start(None).await;
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk().await);
    let r = responder(&moto, json!([])).await;
    let a = launch(&ec2).await;

    // The check sees it running; a dry run asks AWS (DryRun) and changes nothing.
    let (running, why) = r
        .check(
            "instance-running",
            &json!({}),
            &instance_report(&a, "us-east-1"),
        )
        .await
        .unwrap();
    assert!(running, "{why}");
    let out = r
        .remediate(
            "ec2-instance",
            &json!({}),
            &instance_report(&a, "us-east-1"),
            &reviewed(),
        )
        .await
        .unwrap();
    assert_eq!(out, StepOutcome::DryRun(format!("would stop {a}")));
    assert_eq!(state(&ec2, &a).await.0, "running");

    // Out of the region allow-list: refused.
    let out = r
        .remediate(
            "ec2-instance",
            &json!({"dry_run": false, "regions": ["eu-west-1"]}),
            &instance_report(&a, "us-east-1"),
            &reviewed(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&out, StepOutcome::Guarded(m) if m.contains("region us-east-1 is not in the allow-list")),
        "{out:?}"
    );
    assert_eq!(state(&ec2, &a).await.0, "running");

    let out = r
        .remediate(
            "ec2-instance",
            &json!({"dry_run": false}),
            &instance_report(&a, "us-east-1"),
            &reviewed(),
        )
        .await
        .unwrap();
    assert_eq!(out, StepOutcome::Done(format!("stopped {a}")));
    assert_eq!(state(&ec2, &a).await.0, "stopped");
    let (running, why) = r
        .check(
            "instance-running",
            &json!({}),
            &instance_report(&a, "us-east-1"),
        )
        .await
        .unwrap();
    assert!(!running && why.contains("stopped"), "{why}");

    // Quarantine: the instance's groups become the quarantine group alone.
    let b = launch(&ec2).await;
    let sg = ec2
        .create_security_group()
        .group_name("quarantine")
        .description("no traffic")
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let out = r
        .remediate(
            "ec2-instance",
            &json!({"dry_run": false, "mode": "quarantine", "quarantine_security_group": sg}),
            &instance_report(&b, "us-east-1"),
            &reviewed(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&out, StepOutcome::Done(m) if m.contains(&format!("moved {b} to security group {sg}"))),
        "{out:?}"
    );
    assert_eq!(
        state(&ec2, &b).await,
        ("running".to_string(), vec![sg.clone()])
    );

    // Snapshot then stop: one snapshot per EBS volume, described with the report.
    let c = launch(&ec2).await;
    let out = r
        .remediate(
            "ec2-instance",
            &json!({"dry_run": false, "mode": "snapshot-stop"}),
            &instance_report(&c, "us-east-1"),
            &reviewed(),
        )
        .await
        .unwrap();
    let StepOutcome::Done(m) = out else {
        panic!("{out:?}")
    };
    assert!(
        m.contains("snapshot snap-") && m.ends_with(&format!("stopped {c}")),
        "{m}"
    );
    let snaps = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert!(
        snaps
            .snapshots()
            .iter()
            .any(|s| s.description().is_some_and(|d| d.contains(&c))),
        "{snaps:?}"
    );
    assert_eq!(state(&ec2, &c).await.0, "stopped");

    // Terminate needs destructive; protected tag refuses.
    let d = launch(&ec2).await;
    ec2.create_tags()
        .resources(&d)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Environment")
                .value("prod")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = r.remediate("ec2-instance", &json!({"dry_run": false, "mode": "terminate", "destructive": true, "protected_tags": ["Environment=prod"]}), &instance_report(&d, "us-east-1"), &reviewed()).await.unwrap();
    assert!(
        matches!(&out, StepOutcome::Guarded(m) if m.contains("protected by its tag Environment=prod")),
        "{out:?}"
    );
    assert_eq!(state(&ec2, &d).await.0, "running");
    let out = r
        .remediate(
            "ec2-instance",
            &json!({"dry_run": false, "mode": "terminate", "destructive": true}),
            &instance_report(&d, "us-east-1"),
            &reviewed(),
        )
        .await
        .unwrap();
    assert_eq!(out, StepOutcome::Done(format!("terminated {d}")));
    assert_eq!(state(&ec2, &d).await.0, "terminated");
}

#[tokio::test]
async fn checks_look_again_at_aws() {
    let moto = Moto::start(None).await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let key = make_user(&iam, "tmp-frank").await;
    let policy = r#"package deepalert.check
import rego.v1
# Still a problem while the user can sign in with a password or an active key.
usable contains "password" if {
    some _, u in input.aws.users
    u.login_profile
}
usable contains "active access key" if {
    some _, u in input.aws.users
    some k in u.access_keys
    k.status == "Active"
}
reason := concat(", ", sort(usable)) if count(usable) > 0
else := "nothing usable"
result := {"result": count(usable) > 0, "reason": reason}"#;
    let r = responder(
        &moto,
        json!([{"name": "f", "steps": [{"check": "rego", "options": {"policy": policy, "lookup": ["iam-user"]}}]}]),
    )
    .await;
    let rep = user_report(&["tmp-frank"]);
    assert_eq!(
        r.check("iam-user-exists", &json!({}), &rep).await.unwrap(),
        (true, "tmp-frank exists".into())
    );
    let (active, why) = r
        .check("access-key-active", &json!({}), &rep)
        .await
        .unwrap();
    assert!(active && why.contains(&key), "{why}");
    let opts = json!({"policy": policy, "lookup": ["iam-user"]});
    assert_eq!(
        r.check("rego", &opts, &rep).await.unwrap(),
        (true, "active access key, password".into())
    );

    iam.update_access_key()
        .user_name("tmp-frank")
        .access_key_id(&key)
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();
    iam.delete_login_profile()
        .user_name("tmp-frank")
        .send()
        .await
        .unwrap();
    let (active, why) = r
        .check("access-key-active", &json!({}), &rep)
        .await
        .unwrap();
    assert!(!active, "{why}");
    assert_eq!(
        r.check("rego", &opts, &rep).await.unwrap(),
        (false, "nothing usable".into())
    );
    let gone = user_report(&["tmp-nobody"]);
    assert_eq!(
        r.check("iam-user-exists", &json!({}), &gone).await.unwrap(),
        (false, "tmp-nobody does not exist".into())
    );
    // A check with nothing to look at fails, naming why.
    let err = r
        .check("instance-running", &json!({}), &rep)
        .await
        .unwrap_err();
    assert!(err.contains("no instanceid attribute"), "{err}");
}

#[tokio::test]
async fn invalid_step_options_stop_start_up_naming_the_step() {
    let bad = |steps: Value| {
        let flows: Vec<FlowConfig> =
            serde_json::from_value(json!([{"name": "bad-flow", "steps": steps}])).unwrap();
        let set = FlowSet::new(
            flows,
            &["slack".into()],
            responses::CHECKS,
            responses::REMEDIATIONS,
        )
        .unwrap();
        let mut r = Responder::new(
            HashMap::new(),
            HashMap::from([(
                "slack".to_string(),
                Arc::new(NoEmitter) as Arc<dyn deepalert_core::ports::EmitterPlugin>,
            )]),
            None,
            std::env::temp_dir(),
            false,
        );
        r.prepare(&set).unwrap_err().to_string()
    };
    let e = bad(
        json!([{"notify": "slack"}, {"remediate": "ec2-instance", "options": {"mode": "terminate"}}]),
    );
    assert!(
        e.contains(
            "flow \"bad-flow\": step 1: options of ec2-instance: mode terminate cannot be undone"
        ),
        "{e}"
    );
    let e = bad(json!([{"check": "rego", "options": {"policy": "package x\nbroken :="}}]));
    assert!(e.contains("step 0: rego check"), "{e}");
    let e = bad(json!([{"remediate": "exec", "options": {"command": "./x.sh"}}]));
    assert!(
        e.contains("exec runs programs under `deepalert serve` only"),
        "{e}"
    );
    let e = bad(json!([{"notify": "slack", "template": "{{ x"}]));
    assert!(e.contains("template"), "{e}");
}

struct NoEmitter;

#[async_trait::async_trait]
impl deepalert_core::ports::EmitterPlugin for NoEmitter {
    async fn emit(&self, _: &Report) -> Result<(), deepalert_core::ports::PluginError> {
        Ok(())
    }
}
