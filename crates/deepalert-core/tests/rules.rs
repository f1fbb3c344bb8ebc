//! The presets and the findings mappings against events as AWS delivers them
//! (`tests/fixtures/events`), and their variants.

use std::path::PathBuf;
use std::sync::Arc;

use deepalert_core::rules::findings::{GuardDuty, SecurityHub};
use deepalert_core::rules::{Event, EventSource, Rule, RuleSet, parse_events, presets};
use deepalert_core::{Alert, AttrType};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn event(v: Value) -> Event {
    Event::from_eventbridge(v).unwrap()
}

fn preset(name: &str, options: Value) -> Arc<dyn Rule> {
    presets::build(name, options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run(rule: &Arc<dyn Rule>, v: Value) -> Vec<Alert> {
    let alerts = rule.evaluate(&event(v)).unwrap();
    for a in &alerts {
        deepalert_core::validate_alert(a).unwrap();
    }
    alerts
}

fn values(a: &Alert, t: &str) -> Vec<String> {
    a.attributes
        .iter()
        .filter(|x| x.attr_type.as_str() == t)
        .map(|x| x.value.clone())
        .collect()
}

/// The sign-in of alice, moved to `time` (UTC).
fn alice_at(time: &str) -> Value {
    let mut e = fixture("signin-alice.json");
    e["time"] = json!(time);
    e["detail"]["eventTime"] = json!(time);
    e
}

#[test]
fn root_login_successful_or_failed_says_which() {
    let rule = preset("root-login", Value::Null);
    let a = run(&rule, fixture("signin-root.json"));
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!(
        (a.detector.as_str(), a.rule_id.as_str()),
        ("aws-cloudtrail", "root-login")
    );
    assert_eq!(a.alert_key, "123456789012");
    assert!(a.description.contains("succeeded"), "{}", a.description);
    assert_eq!(
        a.timestamp.unwrap().to_rfc3339(),
        "2026-11-20T09:15:03+00:00"
    );
    assert_eq!(values(a, "ipaddr"), vec!["203.0.113.50"]);
    assert_eq!(values(a, "username"), vec!["root@123456789012"]);
    let body = a.body.as_ref().unwrap();
    assert_eq!(
        (body["account"].as_str(), body["region"].as_str()),
        (Some("123456789012"), Some("us-east-1"))
    );

    let failed = run(&rule, fixture("signin-root-failed.json"));
    assert!(
        failed[0]
            .description
            .contains("failed: Failed authentication"),
        "{}",
        failed[0].description
    );
    assert_eq!(values(&failed[0], "ipaddr"), vec!["198.51.100.77"]);
    assert!(
        run(&rule, fixture("signin-alice.json")).is_empty(),
        "not root"
    );
    assert!(
        run(&rule, fixture("iam-createuser.json")).is_empty(),
        "not a sign-in"
    );
}

#[test]
fn login_hours_use_the_events_own_time_in_the_configured_zone() {
    let utc = preset("suspicious-login-hour", Value::Null);
    // Fri 02:14 UTC: outside 08:00-20:00.
    let a = run(&utc, alice_at("2026-11-20T02:14:00Z"));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].alert_key, "alice");
    assert!(
        a[0].description.contains("Fri 2026-11-20 02:14"),
        "{}",
        a[0].description
    );
    assert!(a[0].description.contains("weekday hours 08:00-20:00"));
    assert!(
        run(&utc, alice_at("2026-11-20T12:00:00Z")).is_empty(),
        "inside hours"
    );

    // The same instant is 11:14 in Tokyo: inside working hours there.
    let tokyo = preset("suspicious-login-hour", json!({"time_zone": "Asia/Tokyo"}));
    assert!(run(&tokyo, alice_at("2026-11-20T02:14:00Z")).is_empty());
    // Fri 23:30 UTC is Sat 08:30 in Tokyo: a weekend, with no weekend hours configured.
    let a = run(&tokyo, alice_at("2026-11-20T23:30:00Z"));
    assert_eq!(a.len(), 1);
    assert!(
        a[0].description.contains("Sat 2026-11-21 08:30")
            && a[0].description.contains("no weekend hours"),
        "{}",
        a[0].description
    );
    // Sat 02:00 UTC is Fri 18:00 in Los Angeles: a weekday, inside hours.
    let la = preset(
        "suspicious-login-hour",
        json!({"time_zone": "America/Los_Angeles"}),
    );
    assert!(run(&la, alice_at("2026-11-21T02:00:00Z")).is_empty());
    // Weekend hours, when given, are honoured; a range across midnight works.
    let weekend = preset(
        "suspicious-login-hour",
        json!({"weekday_hours": "22:00-06:00", "weekend_hours": "10:00-16:00"}),
    );
    assert!(run(&weekend, alice_at("2026-11-21T12:00:00Z")).is_empty());
    assert_eq!(run(&weekend, alice_at("2026-11-21T17:00:00Z")).len(), 1);
    assert!(
        run(&weekend, alice_at("2026-11-20T02:14:00Z")).is_empty(),
        "night shift"
    );
    // Ten sign-ins at night are one report: the same AlertID.
    let ids: std::collections::BTreeSet<_> = ["2026-11-20T02:14:00Z", "2026-11-20T03:40:00Z"]
        .iter()
        .map(|t| run(&utc, alice_at(t))[0].alert_id())
        .collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn login_ip_outside_trusted_networks() {
    let rule = preset(
        "suspicious-login-ip",
        json!({"trusted_cidrs": ["203.0.113.0/24", "2001:db8::/32"]}),
    );
    let a = run(&rule, fixture("signin-alice.json"));
    assert_eq!(a.len(), 1);
    assert!(
        a[0].description.contains("from 198.51.100.23"),
        "{}",
        a[0].description
    );
    assert_eq!(values(&a[0], "username"), vec!["alice"]);
    assert!(
        run(&rule, fixture("signin-root.json")).is_empty(),
        "203.0.113.50 is trusted"
    );
    let single = preset(
        "suspicious-login-ip",
        json!({"trusted_cidrs": ["198.51.100.23"]}),
    );
    assert!(
        run(&single, fixture("signin-alice.json")).is_empty(),
        "a bare address is a /32"
    );
}

#[test]
fn created_users_must_match_the_whole_pattern() {
    let rule = preset(
        "non-compliant-user-created",
        json!({"user_name_pattern": "[a-z]+\\.[a-z]+"}),
    );
    let a = run(&rule, fixture("iam-createuser.json"));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].alert_key, "BobAdmin1");
    assert_eq!(values(&a[0], "username"), vec!["BobAdmin1", "alice"]);
    assert!(
        a[0].description
            .contains("alice created IAM user BobAdmin1")
    );

    let mut compliant = fixture("iam-createuser.json");
    compliant["detail"]["requestParameters"]["userName"] = json!("bob.smith");
    assert!(run(&rule, compliant).is_empty());
    // Responder matched any part of the name: `[a-z]+_[a-z]+` let bob_smith_2 through.
    let underscore = preset(
        "non-compliant-user-created",
        json!({"user_name_pattern": "[a-z]+_[a-z]+"}),
    );
    let mut partial = fixture("iam-createuser.json");
    partial["detail"]["requestParameters"]["userName"] = json!("bob_smith_2");
    assert_eq!(run(&underscore, partial).len(), 1);
    // A call that failed created nobody.
    let mut failed = fixture("iam-createuser.json");
    failed["detail"]["errorCode"] = json!("AccessDenied");
    assert!(run(&rule, failed).is_empty());
}

#[test]
fn instances_of_denied_types_one_alert_each() {
    let default = preset("unauthorized-instance-created", Value::Null);
    let a = run(&default, fixture("ec2-runinstances.json"));
    assert_eq!(
        a.iter().map(|a| a.alert_key.as_str()).collect::<Vec<_>>(),
        vec!["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"]
    );
    assert!(
        a[0].description
            .contains("p3.8xlarge is not an allowed type"),
        "{}",
        a[0].description
    );
    assert_eq!(values(&a[0], "instanceid"), vec!["i-0aaaaaaaaaaaaaaa1"]);
    assert_eq!(values(&a[1], "ipaddr"), vec!["10.0.1.42", "198.51.100.23"]);
    assert_eq!(values(&a[0], "username"), vec!["Developer/alice"]);

    let allowed = preset(
        "unauthorized-instance-created",
        json!({"allowed_instance_types": ["p3\\..*"]}),
    );
    assert!(run(&allowed, fixture("ec2-runinstances.json")).is_empty());
    // The deny list wins over the allow list.
    let denied = preset(
        "unauthorized-instance-created",
        json!({"allowed_instance_types": ["p3\\..*"], "denied_instance_types": [".*\\.8xlarge"]}),
    );
    let a = run(&denied, fixture("ec2-runinstances.json"));
    assert_eq!(a.len(), 2);
    assert!(a[0].description.contains("is denied"));
    // Patterns are anchored: "p3" alone does not allow p3.8xlarge.
    let anchored = preset(
        "unauthorized-instance-created",
        json!({"allowed_instance_types": ["p3"]}),
    );
    assert_eq!(run(&anchored, fixture("ec2-runinstances.json")).len(), 2);
    // Regions: an allow-list.
    let regions = preset(
        "unauthorized-instance-created",
        json!({"allowed_instance_types": ["p3\\..*"], "regions": ["us-east-1"]}),
    );
    let a = run(&regions, fixture("ec2-runinstances.json"));
    assert!(
        a[0].description
            .contains("region eu-west-1 is not one of the allowed regions")
    );
    // A small type, and a failed call: nothing.
    let mut small = fixture("ec2-runinstances.json");
    small["detail"]["requestParameters"]["instanceType"] = json!("t3.micro");
    assert!(run(&default, small).is_empty());
    let mut failed = fixture("ec2-runinstances.json");
    failed["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
    assert!(run(&default, failed).is_empty());
}

#[test]
fn guardduty_findings_of_three_resource_kinds() {
    let rule: Arc<dyn Rule> = Arc::new(GuardDuty);
    let a = run(&rule, fixture("guardduty-ssh-bruteforce.json"));
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!(
        (a.detector.as_str(), a.rule_id.as_str()),
        ("aws-guardduty", "UnauthorizedAccess:EC2/SSHBruteForce")
    );
    assert_eq!(a.alert_key, "i-0123456789abcdef0");
    assert!(
        a.description.contains("severity 5 medium"),
        "{}",
        a.description
    );
    assert_eq!(
        values(a, "ipaddr"),
        vec!["198.51.100.23", "10.0.1.23", "54.0.0.10"]
    );
    assert_eq!(values(a, "instanceid"), vec!["i-0123456789abcdef0"]);
    let remote = a
        .attributes
        .iter()
        .find(|x| x.value == "198.51.100.23")
        .unwrap();
    assert_eq!(remote.context, vec![deepalert_core::AttrContext::Remote]);

    let a = run(&rule, fixture("guardduty-iam-anomalous.json"));
    assert_eq!(a[0].alert_key, "AKIAEXAMPLEBOB12345");
    assert_eq!(values(&a[0], "username"), vec!["bob"]);
    assert_eq!(values(&a[0], "ipaddr"), vec!["203.0.113.99"]);
    assert_eq!(values(&a[0], "domain"), vec!["vpn.example-anon.net"]);
    assert!(a[0].description.contains("severity 8 high"));

    let a = run(&rule, fixture("guardduty-s3.json"));
    assert_eq!(a[0].rule_id, "Exfiltration:S3/AnomalousBehavior");
    assert_eq!(
        a[0].alert_key, "ASIAEXAMPLECAROL",
        "the access key used, before the buckets"
    );
    assert_eq!(values(&a[0], "s3bucket"), vec!["payroll-exports"]);
    assert_eq!(values(&a[0], "username"), vec!["carol"]);

    let mut archived = fixture("guardduty-ssh-bruteforce.json");
    archived["detail"]["service"]["archived"] = json!(true);
    assert!(run(&rule, archived).is_empty());
}

#[test]
fn security_hub_one_alert_per_live_finding() {
    let rule: Arc<dyn Rule> = Arc::new(SecurityHub {
        skip_guardduty: true,
    });
    let a = run(&rule, fixture("securityhub-network.json"));
    assert_eq!(a.len(), 1, "the suppressed finding yields nothing");
    let a = &a[0];
    assert_eq!(
        (a.detector.as_str(), a.rule_id.as_str()),
        ("aws-securityhub", "EC2.19")
    );
    assert_eq!(
        a.alert_key,
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0fedcba9876543210"
    );
    assert!(a.description.contains("severity CRITICAL"));
    assert_eq!(values(a, "ipaddr"), vec!["203.0.113.10", "10.0.2.15"]);
    assert_eq!(values(a, "domain"), vec!["scanner.example.org"]);
    assert_eq!(values(a, "instanceid"), vec!["i-0fedcba9876543210"]);
    assert_eq!(
        a.body.as_ref().unwrap()["detail"]["findings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let mut resolved = fixture("securityhub-network.json");
    resolved["detail"]["findings"][0]["Workflow"]["Status"] = json!("RESOLVED");
    assert!(run(&rule, resolved).is_empty());
    let mut from_guardduty = fixture("securityhub-network.json");
    from_guardduty["detail"]["findings"][0]["ProductName"] = json!("GuardDuty");
    assert!(run(&rule, from_guardduty.clone()).is_empty());
    let keep: Arc<dyn Rule> = Arc::new(SecurityHub {
        skip_guardduty: false,
    });
    assert_eq!(run(&keep, from_guardduty).len(), 1);
}

#[test]
fn a_cloudtrail_log_file_with_a_bad_record_loses_nothing_else() {
    let text = serde_json::to_vec(&fixture("cloudtrail-log.json")).unwrap();
    let events = parse_events(&text).unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        events[1]
            .as_ref()
            .unwrap_err()
            .0
            .contains("not a CloudTrail record")
    );
    let set = RuleSet::new(vec![
        preset("root-login", Value::Null),
        preset(
            "non-compliant-user-created",
            json!({"user_name_pattern": "[a-z]+"}),
        ),
    ]);
    let alerts: Vec<Alert> = events
        .iter()
        .filter_map(|e| e.as_ref().ok())
        .flat_map(|e| set.evaluate(e).alerts)
        .collect();
    assert_eq!(
        alerts
            .iter()
            .map(|a| a.rule_id.as_str())
            .collect::<Vec<_>>(),
        vec!["root-login", "non-compliant-user-created"]
    );
    let sources = set.sources().unwrap();
    assert_eq!(
        sources.into_iter().collect::<Vec<_>>(),
        vec![
            EventSource::new("aws.iam", "AWS API Call via CloudTrail"),
            EventSource::new("aws.signin", "AWS Console Sign In via CloudTrail"),
        ]
    );
}

#[test]
fn a_rule_that_cannot_read_an_event_skips_it_named_and_the_others_still_count() {
    let set = RuleSet::new(vec![
        preset(
            "non-compliant-user-created",
            json!({"user_name_pattern": "[a-z]+"}),
        ),
        preset("root-login", Value::Null),
    ]);
    let mut broken = fixture("iam-createuser.json");
    broken["detail"]["requestParameters"] = Value::Null;
    let out = set.evaluate(&event(broken));
    assert!(out.alerts.is_empty());
    // It cannot read what it needs: a skip, said so, not a failure of the event.
    assert!(out.errors.is_empty());
    assert_eq!(out.skipped.len(), 1);
    assert!(
        out.skipped[0]
            .to_string()
            .contains("rule non-compliant-user-created"),
        "{}",
        out.skipped[0]
    );
    let _ = AttrType::Ipaddr;
}

// ---- Every shape CloudTrail delivers ----

/// The hour is the event's (`detail.eventTime`), not the envelope's (`time`, when
/// EventBridge saw it): here the two lie across an hour boundary, and the verdict follows
/// the event's.
#[test]
fn login_hour_is_judged_on_the_events_time_not_the_envelopes() {
    let rule = preset(
        "suspicious-login-hour",
        json!({"time_zone": "UTC", "weekday_hours": "08:00-20:00"}),
    );
    // A Friday: at 19:58 inside hours; EventBridge stamped it 20:03.
    let mut inside = alice_at("2026-11-20T19:58:00Z");
    inside["time"] = json!("2026-11-20T20:03:00Z");
    assert!(
        run(&rule, inside).is_empty(),
        "judged on the envelope's time"
    );
    // At 07:57 outside; the envelope says 08:02.
    let mut outside = alice_at("2026-11-20T07:57:00Z");
    outside["time"] = json!("2026-11-20T08:02:00Z");
    let a = run(&rule, outside);
    assert_eq!(a.len(), 1);
    assert!(a[0].description.contains("07:57"), "{}", a[0].description);
    assert_eq!(
        a[0].timestamp.unwrap().to_rfc3339(),
        "2026-11-20T07:57:00+00:00",
        "the alert's time is the event's"
    );
    // The envelope's time counts when the event has none.
    let mut no_own = alice_at("2026-11-20T03:00:00Z");
    no_own["detail"]
        .as_object_mut()
        .unwrap()
        .remove("eventTime");
    assert_eq!(run(&rule, no_own).len(), 1);
}

/// Records replayed from a file or another tool come without an envelope `time`: every
/// rule still runs; a root sign-in alerts; the hour rule, with no time at all, says it
/// skipped the event.
#[test]
fn events_without_an_envelope_time_are_evaluated_by_every_rule() {
    let mut root = fixture("signin-root.json");
    root.as_object_mut().unwrap().remove("time");
    let a = run(&preset("root-login", Value::Null), root.clone());
    assert_eq!(a.len(), 1);
    assert!(a[0].timestamp.is_some(), "the event's own eventTime");
    // Neither time: the root sign-in still alerts (without a time); the hour rule skips.
    root["detail"].as_object_mut().unwrap().remove("eventTime");
    let set = RuleSet::new(vec![
        preset("root-login", Value::Null),
        preset("suspicious-login-hour", Value::Null),
    ]);
    let out = set.evaluate(&event(root));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].timestamp, None);
    assert!(out.errors.is_empty());
    assert_eq!(out.skipped.len(), 1);
    assert!(
        out.skipped[0].message.contains("without a time"),
        "{}",
        out.skipped[0]
    );
    // A bare CloudTrail record without eventTime is an event too.
    let record = fixture("signin-root.json")["detail"].clone();
    let mut record = record.as_object().unwrap().clone();
    record.remove("eventTime");
    assert!(Event::from_cloudtrail(Value::Object(record)).is_ok());
}

/// `::ffff:203.0.113.5` is 203.0.113.5: it is in 203.0.113.0/24, and an IPv4 address is in
/// `::ffff:203.0.113.0/120`; non-addresses are in no network, and never break the rule.
#[test]
fn ipv4_mapped_addresses_match_ipv4_networks_and_the_other_way_round() {
    let from = |ip: &str| {
        let mut e = fixture("signin-alice.json");
        e["detail"]["sourceIPAddress"] = json!(ip);
        e
    };
    let v4 = preset(
        "suspicious-login-ip",
        json!({"trusted_cidrs": ["203.0.113.0/24", "2001:db8::/32"]}),
    );
    assert!(run(&v4, from("::ffff:203.0.113.5")).is_empty());
    assert!(run(&v4, from("203.0.113.5")).is_empty());
    assert!(run(&v4, from("2001:db8::7")).is_empty());
    let a = run(&v4, from("::ffff:198.51.100.7"));
    assert_eq!(a.len(), 1);
    assert_eq!(
        values(&a[0], "ipaddr"),
        vec!["198.51.100.7"],
        "one host, one form of its address"
    );
    let mapped = preset(
        "suspicious-login-ip",
        json!({"trusted_cidrs": ["::ffff:203.0.113.0/120", "::ffff:198.51.100.9"]}),
    );
    assert!(run(&mapped, from("203.0.113.77")).is_empty());
    assert!(run(&mapped, from("198.51.100.9")).is_empty());
    assert_eq!(run(&mapped, from("198.51.100.10")).len(), 1);
    for not_an_ip in ["AWS Internal", "cloudtrail.amazonaws.com", "", "::ffff:"] {
        let a = run(&v4, from(not_an_ip));
        assert_eq!(a.len(), 1, "{not_an_ip:?} is in no trusted network");
        assert!(values(&a[0], "ipaddr").is_empty(), "{not_an_ip:?}");
    }
    let mut odd = fixture("signin-alice.json");
    odd["detail"]["sourceIPAddress"] = json!(42);
    assert_eq!(run(&v4, odd).len(), 1);
}

/// A launch from a launch template names no type in the request: each instance is judged
/// on its own type from the response.
#[test]
fn launch_template_instances_are_judged_on_their_own_types() {
    let rule = preset("unauthorized-instance-created", Value::Null);
    let mut e = fixture("ec2-runinstances.json");
    let d = &mut e["detail"];
    d["requestParameters"] = json!({"launchTemplate": {"launchTemplateId": "lt-0abc", "version": "3"}, "minCount": 2, "maxCount": 2});
    d["responseElements"]["instancesSet"]["items"][0]["instanceType"] = json!("t3.micro");
    d["responseElements"]["instancesSet"]["items"][1]["instanceType"] = json!("p4d.24xlarge");
    let a = run(&rule, e.clone());
    assert_eq!(a.len(), 1, "the t3.micro is allowed, the p4d is not");
    assert_eq!(a[0].alert_key, "i-0aaaaaaaaaaaaaaa2");
    assert!(
        a[0].description
            .contains("p4d.24xlarge is not an allowed type"),
        "{}",
        a[0].description
    );
    // An instance whose type cannot be read at all alerts, saying so.
    e["detail"]["responseElements"]["instancesSet"]["items"][0]
        .as_object_mut()
        .unwrap()
        .remove("instanceType");
    let a = run(&rule, e.clone());
    assert_eq!(a.len(), 2);
    assert!(
        a[0].description.contains("could not be checked"),
        "{}",
        a[0].description
    );
    // Nothing to read at all: skipped, said so; not an error.
    e["detail"]["responseElements"] = Value::Null;
    let out = RuleSet::new(vec![rule]).evaluate(&event(e));
    assert!(out.alerts.is_empty() && out.errors.is_empty());
    assert!(
        out.skipped[0]
            .message
            .contains("neither requestParameters.instanceType")
    );
}

/// Each field a preset reads, missing, null or of another type in turn: the rule answers
/// (an alert, nothing, or a skip saying why), never fails the event, and an alert's key is
/// never empty.
#[test]
fn a_wrong_typed_field_never_fails_the_event() {
    let set = RuleSet::new(vec![
        preset("root-login", Value::Null),
        preset("suspicious-login-hour", Value::Null),
        preset(
            "suspicious-login-ip",
            json!({"trusted_cidrs": ["10.0.0.0/8"]}),
        ),
        preset(
            "non-compliant-user-created",
            json!({"user_name_pattern": "[a-z]+"}),
        ),
        preset("unauthorized-instance-created", Value::Null),
    ]);
    let fields = [
        "/detail/userIdentity",
        "/detail/userIdentity/type",
        "/detail/userIdentity/userName",
        "/detail/userIdentity/arn",
        "/detail/sourceIPAddress",
        "/detail/responseElements",
        "/detail/requestParameters",
        "/detail/requestParameters/userName",
        "/detail/requestParameters/instanceType",
        "/detail/responseElements/instancesSet",
        "/detail/responseElements/instancesSet/items",
        "/detail/eventTime",
        "/detail/errorCode",
        "/account",
        "/region",
    ];
    for name in [
        "signin-root.json",
        "signin-alice.json",
        "iam-createuser.json",
        "ec2-runinstances.json",
    ] {
        for field in fields {
            for replacement in [
                None,
                Some(Value::Null),
                Some(json!(7)),
                Some(json!([1])),
                Some(json!({"x": true})),
                Some(json!("text")),
            ] {
                let mut e = fixture(name);
                let (parent, key) = field.rsplit_once('/').unwrap();
                let Some(obj) = e.pointer_mut(parent).and_then(Value::as_object_mut) else {
                    continue;
                };
                match &replacement {
                    None => {
                        obj.remove(key);
                    }
                    Some(v) => {
                        obj.insert(key.to_string(), v.clone());
                    }
                }
                let out = set.evaluate(&event(e));
                assert!(
                    out.errors.is_empty(),
                    "{name} {field}={replacement:?}: {:?}",
                    out.errors
                );
                for a in &out.alerts {
                    assert!(
                        !a.alert_key.is_empty(),
                        "{name} {field}={replacement:?}: {a:?}"
                    );
                }
            }
        }
    }
    // Without userIdentity, the key is what the event has.
    let mut e = fixture("signin-alice.json");
    e["detail"].as_object_mut().unwrap().remove("userIdentity");
    let a = run(
        &preset(
            "suspicious-login-ip",
            json!({"trusted_cidrs": ["10.0.0.0/8"]}),
        ),
        e,
    );
    assert_eq!(a[0].alert_key, "account 123456789012");
}
