//! `deepalert policy test|eval`, and a policy directory as the reviewer of `serve`.

use std::path::Path;
use std::process::Command;

use deepalert_testkit::{Server, ServerSpec, example, free_port, python, read_json};

const BIN: &str = env!("CARGO_BIN_EXE_deepalert");

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn copy_policies(to: &Path) {
    std::fs::create_dir_all(to.join("tests")).unwrap();
    for entry in ["review.rego", "review_test.rego"] {
        std::fs::copy(example(&format!("policies/{entry}")), to.join(entry)).unwrap();
    }
    for entry in std::fs::read_dir(example("policies/tests")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join("tests").join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn policy_test_passes_on_the_examples_and_fails_on_a_wrong_expectation() {
    let dir = example("policies");
    let (ok, out) = run(&["policy", "test", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("6 passed, 0 failed"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    copy_policies(tmp.path());
    let fixture = tmp.path().join("tests/nothing-known.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    std::fs::write(
        &fixture,
        text.replace("\"expect\": \"safe\"", "\"expect\": \"urgent\""),
    )
    .unwrap();
    let (ok, out) = run(&["policy", "test", tmp.path().to_str().unwrap()]);
    assert!(!ok, "a wrong expectation must fail:\n{out}");
    assert!(
        out.contains("FAIL")
            && out.contains("nothing-known.json")
            && out.contains("expected urgent, got safe"),
        "{out}"
    );
    assert!(out.contains("5 passed, 1 failed"), "{out}");
}

#[test]
fn policy_eval_prints_the_verdict() {
    let dir = example("policies");
    let fixture = example("policies/tests/ssh-bruteforce-on-our-host.json");
    let (ok, out) = run(&[
        "policy",
        "eval",
        dir.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let verdict: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verdict["severity"], "urgent");
}

#[test]
fn serve_refuses_a_policy_with_a_syntax_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("policies")).unwrap();
    std::fs::write(
        tmp.path().join("policies/broken.rego"),
        "package deepalert\n\nverdict contains x if {\n\tx := \n}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("deepalert.toml"),
        "[reviewer]\npolicies = \"policies\"\n",
    )
    .unwrap();
    let config = tmp.path().join("deepalert.toml");
    let (ok, out) = run(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data",
        tmp.path().join("data").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        out.contains("reviewer.policies") && out.contains("broken.rego:"),
        "{out}"
    );
}

#[test]
fn serve_reviews_with_policies() {
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    copy_policies(&tmp.path().join("policies"));
    let config = tmp.path().join("deepalert.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\ninspection_delay = \"100ms\"\nreview_delay = \"1s\"\n\n[[inspector]]\nname = \"example-intel\"\ncommand = [\"{py}\", \"{}\"]\n\n[reviewer]\npolicies = \"policies\"\n",
            example("plugins/inspector.py").display()
        ),
    )
    .unwrap();
    let server = Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&config),
        data: &tmp.path().join("data"),
        port: free_port(),
        api_key: None,
    });
    let (_, receipt) =
        server.post_alert(&read_json(&example("alerts/guardduty-ssh-bruteforce.json")));
    let id = receipt["report_id"].as_str().unwrap();
    let report = server.wait_report(id, 30, |r| r["status"] == "published");
    assert_eq!(report["result"]["severity"], "urgent", "{report:#}");
    assert_eq!(
        report["result"]["reason"],
        "threat-listed 198.51.100.23 reached our host web-1"
    );
}

#[test]
fn serve_with_builtin_plugins_only() {
    let tmp = tempfile::tempdir().unwrap();
    // The shipped example configuration, pointed at this test's output file.
    let config_text = std::fs::read_to_string(example("builtins.toml"))
        .unwrap()
        .replace("inspection_delay = \"1s\"", "inspection_delay = \"100ms\"")
        .replace("review_delay = \"3s\"", "review_delay = \"1s\"")
        .replace(
            "path = \"emitted.jsonl\"",
            &format!("path = \"{}\"", tmp.path().join("out.jsonl").display()),
        );
    let config = example("").join(format!("builtins-test-{}.toml", std::process::id()));
    std::fs::write(&config, config_text).unwrap();
    let server = Server::start(ServerSpec {
        binary: Path::new(BIN),
        config: Some(&config),
        data: &tmp.path().join("data"),
        port: free_port(),
        api_key: None,
    });
    std::fs::remove_file(&config).unwrap();
    let (_, receipt) =
        server.post_alert(&read_json(&example("alerts/guardduty-ssh-bruteforce.json")));
    let id = receipt["report_id"].as_str().unwrap();
    let report = server.wait_report(id, 30, |r| r["status"] == "published");
    let section = |v: &str| {
        report["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["attribute"]["value"] == v)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(section("198.51.100.23")["hosts"][0]["author"], "blocklists");
    assert_eq!(
        section("198.51.100.23")["hosts"][0]["activities"][0]["target"],
        "example blocklist"
    );
    assert_eq!(
        section("10.0.1.23")["hosts"][0]["owner"],
        serde_json::json!(["alice"])
    );
    assert_eq!(
        section("10.0.1.23")["hosts"][0]["environment"],
        serde_json::json!(["production"])
    );
    assert_eq!(report["result"]["severity"], "urgent", "{report:#}");
    assert!(deepalert_testkit::eventually(
        10,
        || deepalert_testkit::json_lines(&tmp.path().join("out.jsonl")).len() == 1
    ));
}

#[test]
fn builtin_misconfiguration_stops_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    for (text, expected) in [
        (
            "[[emitter]]\nname = \"s\"\nbuiltin = \"slack\"\n[emitter.options]\nwebhook_url_env = \"DA_TEST_NO_SUCH_VAR\"\n",
            "DA_TEST_NO_SUCH_VAR is not set: set DA_TEST_NO_SUCH_VAR, DA_TEST_NO_SUCH_VAR_SECRET_ARN (Secrets Manager) or DA_TEST_NO_SUCH_VAR_SSM_PARAMETER (SSM Parameter Store)",
        ),
        (
            "[[inspector]]\nname = \"x\"\nbuiltin = \"virus-scanner\"\n",
            "no built-in inspector \"virus-scanner\"",
        ),
        (
            "[[inspector]]\nname = \"t\"\nbuiltin = \"threat-list\"\n[inspector.options]\nfils = []\n",
            "unknown field `fils`",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let (ok, out) = run(&[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data",
            tmp.path().join("d").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        assert!(!ok, "{text}");
        assert!(out.contains(expected), "{text}: {out}");
    }
}
