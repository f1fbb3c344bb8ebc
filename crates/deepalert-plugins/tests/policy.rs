//! The Rego reviewer on the example policies and on small policies made here.

use std::path::{Path, PathBuf};

use deepalert_core::Severity;
use deepalert_plugins::PolicyReviewer;
use deepalert_plugins::policy::NO_VERDICT;
use serde_json::json;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn example_policies_give_the_expected_severities() {
    let reviewer = PolicyReviewer::load(&examples()).unwrap();
    for (fixture, expected) in [
        ("ssh-bruteforce-on-our-host.json", Severity::Urgent),
        (
            "login-from-threat-listed-address.json",
            Severity::Unclassified,
        ),
        ("nothing-known.json", Severity::Safe),
    ] {
        let text = std::fs::read_to_string(examples().join("tests").join(fixture)).unwrap();
        let fixture_json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let verdict = reviewer.evaluate(&fixture_json["report"]).unwrap().unwrap();
        assert_eq!(verdict.severity, expected, "{fixture}: {}", verdict.reason);
    }
    // The bundled test_* rules and fixtures all pass.
    let cases = reviewer.test().unwrap();
    assert_eq!(cases.len(), 6, "{cases:?}");
    assert!(cases.iter().all(|c| c.outcome.is_ok()), "{cases:?}");
}

#[test]
fn a_wrong_expectation_fails_the_tests() {
    let fixture = std::fs::read_to_string(examples().join("tests/nothing-known.json")).unwrap();
    let dir = policy_dir(&[
        (
            "review.rego",
            &std::fs::read_to_string(examples().join("review.rego")).unwrap(),
        ),
        (
            "tests/wrong.json",
            &fixture.replace("\"expect\": \"safe\"", "\"expect\": \"urgent\""),
        ),
        (
            "extra_test.rego",
            "package extra_test\n\nimport data.deepalert\n\ntest_always_urgent if {\n\tsome v in deepalert.verdict with input as {\"sections\": []}\n\tv.severity == \"urgent\"\n}\n",
        ),
    ]);
    let cases = PolicyReviewer::load(dir.path()).unwrap().test().unwrap();
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.outcome.is_err())
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed.len(), 2, "{cases:?}");
    assert!(failed.iter().any(|n| n.ends_with("wrong.json")));
    assert!(failed.iter().any(|n| n.contains("test_always_urgent")));
    let wrong = cases
        .iter()
        .find(|c| c.name.ends_with("wrong.json"))
        .unwrap();
    assert!(
        wrong
            .outcome
            .as_ref()
            .unwrap_err()
            .contains("expected urgent, got safe"),
        "{wrong:?}"
    );
}

#[test]
fn policies_built_into_a_binary_review_like_a_directory() {
    let review = std::fs::read_to_string(examples().join("review.rego")).unwrap();
    let built = PolicyReviewer::from_sources(&[("review.rego", &review)]).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join("tests/ssh-bruteforce-on-our-host.json")).unwrap(),
    )
    .unwrap();
    let verdict = built.evaluate(&fixture["report"]).unwrap().unwrap();
    assert_eq!(verdict.severity, Severity::Urgent);
    assert!(
        PolicyReviewer::from_sources(&[]).is_err(),
        "no policies is a mistake"
    );
    let err = PolicyReviewer::from_sources(&[(
        "bad.rego",
        "package deepalert\nverdict contains x if {\n",
    )])
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("bad.rego"), "{err}");
}

#[test]
fn a_syntax_error_is_rejected_with_file_and_line() {
    let dir = policy_dir(&[(
        "broken.rego",
        "package deepalert\n\nverdict contains {\"severity\": \"urgent\"} if {\n\tinput.x ==\n}\n",
    )]);
    let err = PolicyReviewer::load(dir.path())
        .err()
        .expect("must not load")
        .to_string();
    assert!(err.contains("broken.rego"), "{err}");
    assert!(err.contains(":5:") || err.contains(":4:"), "line in {err}");
}

#[test]
fn the_most_severe_verdict_wins_and_keeps_its_reasons() {
    let dir = policy_dir(&[(
        "p.rego",
        r#"package deepalert

verdict contains {"severity": "safe", "reason": "known scanner"} if input.scanner
verdict contains {"severity": "urgent", "reason": "root login"} if input.root
verdict contains {"severity": "urgent", "reason": "from Tor"} if input.tor
verdict contains {"severity": "unclassified", "reason": "odd hour"} if input.night
"#,
    )]);
    let r = PolicyReviewer::load(dir.path()).unwrap();
    let v = r
        .evaluate(&json!({"scanner": true, "root": true, "tor": true, "night": true}))
        .unwrap()
        .unwrap();
    assert_eq!(v.severity, Severity::Urgent);
    assert!(
        v.reason.contains("root login") && v.reason.contains("from Tor"),
        "{}",
        v.reason
    );
    assert!(!v.reason.contains("scanner"));
    let v = r
        .evaluate(&json!({"scanner": true, "night": true}))
        .unwrap()
        .unwrap();
    assert_eq!(
        (v.severity, v.reason.as_str()),
        (Severity::Unclassified, "odd hour")
    );
    assert_eq!(r.evaluate(&json!({})).unwrap(), None, "no rule matched");
}

#[test]
fn a_verdict_with_a_bad_severity_is_an_error() {
    let dir = policy_dir(&[(
        "p.rego",
        "package deepalert\n\nverdict contains {\"severity\": \"critical\"} if true\n",
    )]);
    let err = PolicyReviewer::load(dir.path())
        .unwrap()
        .evaluate(&json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("critical"), "{err}");
}

#[tokio::test]
async fn as_a_reviewer_no_verdict_is_unclassified() {
    use deepalert_core::ports::Reviewer;
    let dir = policy_dir(&[(
        "p.rego",
        "package deepalert\n\nverdict contains {\"severity\": \"urgent\"} if input.never\n",
    )]);
    let r = PolicyReviewer::load(dir.path()).unwrap();
    let report: deepalert_core::Report = serde_json::from_value(json!({
        "id": "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11", "alerts": [], "attributes": [], "sections": [],
        "result": null, "status": "new", "created_at": "2026-11-22T00:00:00Z"
    }))
    .unwrap();
    let v = r.review(&report).await.unwrap().unwrap();
    assert_eq!(
        (v.severity, v.reason.as_str()),
        (Severity::Unclassified, NO_VERDICT)
    );
}
