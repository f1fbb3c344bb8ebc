//! Properties, and "fuzzing" on stable: every parser of outside input (alerts, inspector
//! output, verdicts, cloud events) takes arbitrary bytes and arbitrary JSON without
//! panicking — it answers or refuses with a message. `make test` runs a few hundred cases
//! per property; `make fuzz` runs many more (PROPTEST_CASES).

use deepalert_core::rules::parse_events;
use deepalert_core::{
    AlertId, AttrContext, AttrType, Attribute, InspectorOutput, ReportId, Task, parse_alert,
    parse_verdict,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        // Values that look like the real thing, to get past the first checks.
        prop_oneof![
            Just("ipaddr"),
            Just("username"),
            Just("remote"),
            Just("2026-11-20T09:15:03Z"),
            Just("0001-01-01T00:00:00Z"),
            Just("host"),
            Just("urgent"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("detector".to_string()),
                    Just("rule_id".to_string()),
                    Just("alert_key".to_string()),
                    Just("attributes".to_string()),
                    Just("type".to_string()),
                    Just("key".to_string()),
                    Just("value".to_string()),
                    Just("context".to_string()),
                    Just("timestamp".to_string()),
                    Just("findings".to_string()),
                    Just("content".to_string()),
                    Just("report_id".to_string()),
                    Just("severity".to_string()),
                    Just("reason".to_string()),
                    Just("detail".to_string()),
                    Just("Records".to_string()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid alert with one field replaced by anything.
fn mutated_alert() -> impl Strategy<Value = Value> {
    let base = json!({
        "detector": "d", "rule_id": "r", "alert_key": "k", "description": "x",
        "timestamp": "2026-11-20T09:15:03Z",
        "attributes": [{"type": "ipaddr", "key": "src", "value": "198.51.100.1", "context": ["remote"]}],
        "body": {"a": 1}
    });
    (
        prop_oneof![
            Just("detector"),
            Just("rule_id"),
            Just("alert_key"),
            Just("timestamp"),
            Just("attributes"),
            Just("body"),
            Just("description"),
        ],
        arb_json(),
    )
        .prop_map(move |(field, v)| {
            let mut a = base.clone();
            a[field] = v;
            a
        })
}

fn task() -> Task {
    Task {
        report_id: "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11"
            .parse::<ReportId>()
            .unwrap(),
        attribute: Attribute::new(
            AttrType::Ipaddr,
            "src",
            "198.51.100.1",
            &[AttrContext::Remote],
        ),
        detector: "d".into(),
        rule_id: "r".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn alert_id_is_a_function_of_detector_rule_and_key(
        d in ".{0,20}", r in ".{0,20}", k in ".{0,20}", other in ".{0,20}",
    ) {
        prop_assert_eq!(AlertId::new(&d, &r, &k), AlertId::new(&d, &r, &k));
        if other != d {
            prop_assert_ne!(AlertId::new(&d, &r, &k), AlertId::new(&other, &r, &k));
        }
        if other != r {
            prop_assert_ne!(AlertId::new(&d, &r, &k), AlertId::new(&d, &other, &k));
        }
        if other != k {
            prop_assert_ne!(AlertId::new(&d, &r, &k), AlertId::new(&d, &r, &other));
        }
    }

    #[test]
    fn alert_id_fields_cannot_be_shifted_into_each_other(a in "[a-z:]{0,8}", b in "[a-z:]{0,8}", c in "[a-z:]{0,8}") {
        // "a:b" + "c" is not "a" + "b:c": the fields are encoded before joining.
        let joined = format!("{a}:{b}");
        if !b.is_empty() || !c.is_empty() {
            prop_assert_ne!(AlertId::new(&joined, &c, "k"), AlertId::new(&a, &format!("{b}:{c}"), "k"));
        }
    }

    #[test]
    fn attribute_identity_ignores_context_order_duplicates_and_time(
        value in ".{0,30}", key in ".{0,10}", contexts in prop::sample::subsequence(AttrContext::KNOWN.to_vec(), 0..5),
        other in ".{0,30}",
    ) {
        let a = Attribute::new(AttrType::Domain, &key, &value, &contexts);
        let mut shuffled: Vec<AttrContext> = contexts.iter().rev().cloned().collect();
        shuffled.extend(contexts.iter().cloned());
        let mut b = Attribute::new(AttrType::Domain, &key, &value, &shuffled);
        b.timestamp = Some(chrono::Utc::now());
        prop_assert_eq!(a.identity(), b.identity());
        if other != value {
            prop_assert_ne!(a.identity(), Attribute::new(AttrType::Domain, &key, &other, &contexts).identity());
        }
        if other != key {
            prop_assert_ne!(a.identity(), Attribute::new(AttrType::Domain, &other, &value, &contexts).identity());
        }
        prop_assert_ne!(a.identity(), Attribute::new(AttrType::Ipaddr, &key, &value, &contexts).identity());
    }

    #[test]
    fn alerts_from_any_bytes_are_parsed_or_refused_with_a_message(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Err(e) = parse_alert(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn alerts_from_any_json_are_parsed_or_refused_with_a_message(v in prop_oneof![arb_json(), mutated_alert()]) {
        match parse_alert(v.to_string().as_bytes()) {
            Ok(alert) => {
                // What is accepted survives a round trip and keeps its AlertID.
                let again = parse_alert(&serde_json::to_vec(&alert).unwrap()).unwrap();
                prop_assert_eq!(again.alert_id(), alert.alert_id());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn inspector_output_from_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Err(e) = InspectorOutput::from_plugin_output(&task(), &bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn inspector_output_from_any_json_lines_never_panics(docs in prop::collection::vec(arb_json(), 0..4)) {
        let text: Vec<String> = docs.iter().map(Value::to_string).collect();
        if let Err(e) = InspectorOutput::from_plugin_output(&task(), text.join("\n").as_bytes()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn verdicts_and_events_from_any_json_never_panic(v in arb_json()) {
        let bytes = v.to_string();
        if let Err(e) = parse_verdict(bytes.as_bytes()) {
            prop_assert!(!e.is_empty());
        }
        match parse_events(bytes.as_bytes()) {
            Ok(events) => for e in events.into_iter().flatten() { let _ = e; },
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Any event shape: a real CloudTrail event with one field (at any depth) replaced by
    /// arbitrary JSON or removed. Every rule answers — alerts, nothing, or a skip saying
    /// why — and none fails the event (a failure would send it to the DLQ on AWS).
    #[test]
    fn no_event_shape_makes_a_preset_panic_or_fail_the_event(
        fixture in 0usize..7,
        path in prop::collection::vec(0usize..12, 1..4),
        replacement in prop::option::of(arb_json()),
    ) {
        let mut event = cloud_event(fixture);
        mutate(&mut event, &path, replacement);
        let Ok(event) = deepalert_core::rules::Event::from_eventbridge(event) else {
            return Ok(()); // no longer an event at all: refused as one, not a rule's business
        };
        let out = presets_set().evaluate(&event);
        prop_assert!(out.errors.is_empty(), "{:?}", out.errors);
        for a in &out.alerts {
            prop_assert!(!a.alert_key.is_empty());
            prop_assert!(deepalert_core::validate_alert(a).is_ok());
        }
    }
}

fn cloud_event(i: usize) -> Value {
    let name = [
        "signin-root.json",
        "signin-alice.json",
        "iam-createuser.json",
        "ec2-runinstances.json",
        "signin-root-failed.json",
        "guardduty-ssh-bruteforce.json",
        "securityhub-network.json",
    ][i];
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Follows `path` (each step picks a key or element by index, modulo their number) and
/// replaces what it reaches (`None`: removes it).
fn mutate(v: &mut Value, path: &[usize], replacement: Option<Value>) {
    let (step, rest) = (path[0], &path[1..]);
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).unwrap().clone();
            if rest.is_empty() || !matches!(map[&key], Value::Object(_) | Value::Array(_)) {
                match replacement {
                    Some(r) => {
                        map.insert(key, r);
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            } else {
                mutate(map.get_mut(&key).unwrap(), rest, replacement);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = step % items.len();
            if rest.is_empty() || !matches!(items[i], Value::Object(_) | Value::Array(_)) {
                match replacement {
                    Some(r) => items[i] = r,
                    None => {
                        items.remove(i);
                    }
                }
            } else {
                mutate(&mut items[i], rest, replacement);
            }
        }
        other => *other = replacement.unwrap_or(Value::Null),
    }
}

fn presets_set() -> deepalert_core::rules::RuleSet {
    use deepalert_core::rules::presets::build;
    deepalert_core::rules::RuleSet::new(vec![
        build("root-login", Value::Null).unwrap(),
        build("suspicious-login-hour", Value::Null).unwrap(),
        build(
            "suspicious-login-ip",
            json!({"trusted_cidrs": ["10.0.0.0/8", "::ffff:203.0.113.0/120"]}),
        )
        .unwrap(),
        build(
            "non-compliant-user-created",
            json!({"user_name_pattern": "[a-z]+"}),
        )
        .unwrap(),
        build("unauthorized-instance-created", Value::Null).unwrap(),
        std::sync::Arc::new(deepalert_core::rules::findings::GuardDuty),
        std::sync::Arc::new(deepalert_core::rules::findings::SecurityHub {
            skip_guardduty: true,
        }),
    ])
}
