//! `examples/aws/builtins.yaml` is consistent with the `builtin` binary: cfn-lint clean;
//! each function sets only variables the binary reads (or secret references for the
//! secrets its options name), and its options build the built-in they configure.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use deepalert_core::ports::{PluginState, PortResult};
use deepalert_plugins::secrets::{SECRET_ARN_SUFFIX, SSM_PARAMETER_SUFFIX};
use deepalert_plugins::{BuiltinError, SecretSource, builtin};
use deepalert_testkit::deploy::{deploy_dry_run, env_reads, parameter_overrides};
use deepalert_testkit::moto::run_venv_tool;
use deepalert_testkit::repo_root;
use serde_yaml::Value;

const TEMPLATE: &str = "examples/aws/builtins.yaml";

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join(TEMPLATE)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// The names `main.rs` reads through `deepalert_aws::env`, plus the SDK's queue variable.
fn read_by_binary() -> BTreeSet<String> {
    let main =
        std::fs::read_to_string(repo_root().join("crates/lambda-builtin/src/main.rs")).unwrap();
    let mut names = env_reads(&main);
    names.insert(deepalert_sdk::INSPECTION_QUEUE_URL.to_string());
    names
}

/// Stands in for the secrets: every one is "x" (only the options' shape is checked).
struct AnySecret;

#[async_trait]
impl SecretSource for AnySecret {
    async fn secret(&self, _: &str) -> Result<String, BuiltinError> {
        Ok("x".into())
    }
}

struct NoState;

#[async_trait]
impl PluginState for NoState {
    async fn get(&self, _: &str) -> PortResult<Option<String>> {
        Ok(None)
    }
    async fn put(&self, _: &str, _: &str) -> PortResult<()> {
        Ok(())
    }
}

#[test]
fn cfn_lint_is_clean() {
    let (ok, output) = run_venv_tool("cfn-lint", &[TEMPLATE]);
    assert!(ok, "cfn-lint {TEMPLATE}:\n{output}");
}

#[tokio::test]
async fn each_function_is_configured_as_the_binary_reads_it() {
    let t = template();
    let read = read_by_binary();
    assert!(
        read.contains("DEEPALERT_BUILTIN") && read.contains("STATE_TABLE"),
        "{read:?}"
    );

    let mut seen = 0;
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        seen += 1;
        let id = id.as_str().unwrap();
        // `aws cloudformation package` reads CodeUri per function, never from Globals.
        assert_eq!(
            r["Properties"]["CodeUri"].as_str(),
            Some("../../target/lambda/builtin/bootstrap.zip"),
            "{id}"
        );
        let vars = r["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .unwrap();
        let names: BTreeSet<String> = vars
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let kind = vars[&Value::from("DEEPALERT_BUILTIN")].as_str().unwrap();
        let options: serde_json::Value =
            serde_json::from_str(vars[&Value::from("DEEPALERT_OPTIONS")].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{id}: DEEPALERT_OPTIONS: {e}"));

        // Secrets the options name, each given by exactly one reference.
        let secrets: Vec<String> = options
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.ends_with("_env"))
            .map(|(_, v)| v.as_str().unwrap().to_string())
            .collect();
        let mut allowed = read.clone();
        for s in &secrets {
            let refs = [
                s.clone(),
                format!("{s}{SECRET_ARN_SUFFIX}"),
                format!("{s}{SSM_PARAMETER_SUFFIX}"),
            ];
            let set = refs.iter().filter(|r| names.contains(*r)).count();
            assert_eq!(set, 1, "{id}: secret {s} is given {set} ways");
            allowed.extend(refs);
        }
        let unknown: Vec<_> = names.difference(&allowed).collect();
        assert!(
            unknown.is_empty(),
            "{id} sets variables nothing reads: {unknown:?}"
        );

        let ctx = builtin::Context {
            base_dir: &repo_root(),
            secret: &AnySecret,
            aws: None,
        };
        if builtin::is_inspector(kind) {
            assert!(names.contains("INSPECTION_QUEUE_URL"), "{id}");
            builtin::inspector(kind, options, &ctx)
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        } else {
            assert!(builtin::is_emitter(kind), "{id}: {kind} is not a built-in");
            assert!(names.contains("STATE_TABLE"), "{id}");
            builtin::emitter(id, kind, options, &ctx, Arc::new(NoState))
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }
    assert_eq!(seen, 2, "an inspector and an emitter");
}

fn deploy_builtins_dry_run(stack: &str) -> (bool, String) {
    deploy_dry_run(
        &["--builtins"],
        "{ StackName: 'da-test', Region: 'eu-west-1', CodeS3Bucket: 'code-bucket', CodeS3Prefix: 'fn' }",
        Some(("builtins.jsonnet", stack)),
    )
}

#[test]
fn deploy_builtins_builds_the_binary_and_deploys_next_to_the_stack() {
    let shipped = std::fs::read_to_string(repo_root().join("builtins.jsonnet")).unwrap();
    // As shipped, the placeholder stops the deployment and says what to set.
    let (ok, out) = deploy_builtins_dry_run(&shipped);
    assert!(!ok, "{out}");
    assert!(
        out.contains("builtins.jsonnet: set VirusTotalKeySecretArn"),
        "{out}"
    );

    let filled = shipped.replace(
        "REPLACE-WITH-YOUR-SECRET-ARN",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:vt-AbCdEf",
    );
    let (ok, out) = deploy_builtins_dry_run(&filled);
    assert!(ok, "{out}");
    assert!(out.contains("build LAMBDAS=builtin\n"), "{out}");
    // `package` gets a copy of builtins.yaml whose CodeUris name the zips to upload, and
    // the packaged template goes through the code bucket, as the main stack's does.
    assert!(
        out.contains("/da-test-builtins/template.yaml --s3-bucket code-bucket"),
        "{out}"
    );
    let deploy_line = out
        .lines()
        .find(|l| l.starts_with("aws cloudformation deploy"))
        .unwrap();
    assert!(
        deploy_line.contains("--stack-name da-test-builtins")
            && deploy_line.contains("--s3-bucket code-bucket --s3-prefix fn"),
        "{deploy_line}"
    );
    // Every template parameter is documented in builtins.jsonnet (DeepalertStack comes
    // from deploy.jsonnet's StackName).
    let (overrides, passed) = parameter_overrides(&out);
    let params: BTreeSet<String> = template()["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(passed, params);
    assert!(overrides.contains("DeepalertStack=da-test "), "{out}");

    let (ok, out) = deploy_builtins_dry_run("{ RetentionDays: 7 }");
    assert!(!ok);
    assert!(
        out.contains("set VirusTotalKeySecretArn (parameters of builtins.yaml without a default)"),
        "{out}"
    );
    let (ok, out) = deploy_builtins_dry_run("{ VirusTotalKeySecretArn: 'arn', ReviewDelay: 5 }");
    assert!(!ok);
    assert!(
        out.contains("ReviewDelay is not a parameter of builtins.yaml"),
        "{out}"
    );
}

/// `make deploy-builtins` ships code: packaged as `make deploy` packages it (the AWS CLI,
/// against moto's S3), every function's artifact is the `builtin` zip with its bootstrap.
/// With CodeUri in Globals only — the defect this guards against — `package` uploads the
/// template's folder instead, and deploy.py stops before deploying it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packaging_ships_the_binary_to_every_function() {
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let shipped = std::fs::read_to_string(repo_root().join(TEMPLATE)).unwrap();
    let (ok, out, packaged) =
        deepalert_testkit::deploy::package_and_verify(&moto.endpoint, TEMPLATE, &shipped);
    assert!(ok, "{out}");
    for f in ["VirusTotalInspector", "SlackEmitter"] {
        let uri = packaged["Resources"][f]["Properties"]["CodeUri"]
            .as_str()
            .unwrap();
        assert!(uri.starts_with("s3://code/fn/"), "{f}: {uri}");
    }

    let globals_only = shipped
        .replace(
            "      CodeUri: ../../target/lambda/builtin/bootstrap.zip\n",
            "",
        )
        .replace(
            "    Timeout: 60\n",
            "    Timeout: 60\n    CodeUri: ../../target/lambda/builtin/bootstrap.zip\n",
        );
    assert_ne!(globals_only, shipped);
    let (ok, out, _) =
        deepalert_testkit::deploy::package_and_verify(&moto.endpoint, TEMPLATE, &globals_only);
    assert!(!ok, "{out}");
    assert!(
        out.contains("VirusTotalInspector has no CodeUri of its own"),
        "{out}"
    );
}

/// The stack deploys with no reserved concurrency by default (new accounts have a limit
/// of 10), and reserves it when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_is_a_parameter_off_by_default() {
    use deepalert_testkit::aws_stack::deploy;
    let moto = deepalert_testkit::moto::Moto::start(None).await;
    let main = deploy(
        &moto,
        &repo_root().join("template.yaml"),
        "deepalert",
        &serde_json::json!({}),
        &serde_json::json!({}),
    )
    .await
    .unwrap();
    let params = serde_json::json!({"VirusTotalKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:vt"});
    let default = deploy(
        &moto,
        &repo_root().join(TEMPLATE),
        "b1",
        &params,
        &main.exports(),
    )
    .await
    .unwrap();
    assert!(default.function("VirusTotalInspector")["reserved_concurrency"].is_null());
    let mut reserved = params.clone();
    reserved["VirusTotalReservedConcurrency"] = serde_json::json!(1);
    let one = deploy(
        &moto,
        &repo_root().join(TEMPLATE),
        "b2",
        &reserved,
        &main.exports(),
    )
    .await
    .unwrap();
    assert_eq!(
        one.function("VirusTotalInspector")["reserved_concurrency"],
        1
    );
}
