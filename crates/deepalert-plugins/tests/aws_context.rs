//! The AWS context inspector against moto: EC2 instances with tags, IAM users with keys.

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use deepalert_core::ports::InspectorPlugin;
use deepalert_core::{AttrType, FindingContent};
use deepalert_plugins::inspectors::aws_context::{AwsContext, Options};
use deepalert_sdk::testing::task;
use deepalert_testkit::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ips_become_instances_and_user_names_iam_users() {
    let moto = Moto::start(None).await;
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", "web-1"))
                .tags(tag("Owner", "alice"))
                .tags(tag("Environment", "production"))
                .build(),
        )
        .send()
        .await
        .expect("run instance");
    let instance = &run.instances()[0];
    let private_ip = instance.private_ip_address().unwrap().to_string();
    let instance_id = instance.instance_id().unwrap().to_string();

    let iam = aws_sdk_iam::Client::new(&sdk);
    iam.create_user()
        .user_name("alice")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("payments")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("alice")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key.unwrap().access_key_id;
    iam.update_access_key()
        .user_name("alice")
        .access_key_id(&key_id)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .unwrap();

    let options: Options = serde_json::from_value(serde_json::json!({})).unwrap();
    let insp = AwsContext::new(&sdk, options);

    let out = insp
        .inspect(&task(AttrType::Ipaddr, &private_ip))
        .await
        .unwrap();
    let FindingContent::Host(host) = &out.findings[0] else {
        panic!("{out:?}")
    };
    assert_eq!(host.hostname[0], "web-1");
    assert_eq!(host.owner, vec!["alice"]);
    assert_eq!(host.environment, vec!["production"]);
    let action = &host.activities[0].action;
    assert!(
        action.contains(&instance_id)
            && action.contains("t3.micro")
            && action.contains("Owner=alice"),
        "{action}"
    );
    assert_eq!(host.activities[0].target, instance_id);

    assert!(
        insp.inspect(&task(AttrType::Ipaddr, "192.0.2.99"))
            .await
            .unwrap()
            .findings
            .is_empty(),
        "not ours"
    );

    let out = insp
        .inspect(&task(AttrType::Username, "alice"))
        .await
        .unwrap();
    let FindingContent::User(user) = &out.findings[0] else {
        panic!("{out:?}")
    };
    let actions: Vec<&str> = user.activities.iter().map(|a| a.action.as_str()).collect();
    assert!(
        actions[0].contains("IAM user alice") && actions[0].contains("team=payments"),
        "{actions:?}"
    );
    assert!(actions.contains(&"MFA: none"), "{actions:?}");
    assert!(
        actions.contains(&format!("access key {key_id} Inactive").as_str()),
        "{actions:?}"
    );

    assert!(
        insp.inspect(&task(AttrType::Username, "mallory"))
            .await
            .unwrap()
            .findings
            .is_empty(),
        "no such user"
    );
}
