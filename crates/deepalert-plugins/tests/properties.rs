//! The Rego reviewer's input is the report, which carries outside data (alert bodies,
//! inspector findings): any JSON, however shaped, gets a verdict, no verdict, or an error
//! with a message — never a panic. `make fuzz` runs many more cases (PROPTEST_CASES).

use deepalert_plugins::PolicyReviewer;
use deepalert_testkit::example;
use proptest::prelude::*;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        prop_oneof![
            Just("198.51.100.23"),
            Just("urgent"),
            Just("ipaddr"),
            Just("host")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("alerts".to_string()),
                    Just("sections".to_string()),
                    Just("attributes".to_string()),
                    Just("hosts".to_string()),
                    Just("content".to_string()),
                    Just("activities".to_string()),
                    Just("value".to_string()),
                    Just("type".to_string()),
                    Just("detector".to_string()),
                    Just("rule_id".to_string()),
                    Just("body".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_report_shape_gets_an_answer_from_the_example_policies(v in arb_json(), field in prop_oneof![Just("alerts"), Just("sections"), Just("attributes"), Just("result")]) {
        let reviewer = PolicyReviewer::load(&example("policies")).unwrap();
        // Whole documents of anything, and a real report with one part replaced.
        let mut report = json!({"id": "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11", "alerts": [], "sections": [], "attributes": [], "status": "new"});
        report[field] = v.clone();
        for input in [v, report] {
            if let Err(e) = reviewer.evaluate(&input) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
