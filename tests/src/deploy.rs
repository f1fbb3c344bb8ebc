//! What the template tests share: the environment a Lambda `main.rs` reads, and
//! `tools/deploy.py --dry-run` on throwaway configuration files.

use std::collections::BTreeSet;

use crate::moto::run_venv_tool;

/// Names passed to `env::var`, `env::optional`, `env::number`, `env::seconds`,
/// `env::flag`, `env::parsed`, `env::document`.
pub fn env_reads(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for helper in [
        "env::var(\"",
        "env::optional(\"",
        "env::number(\"",
        "env::seconds(\"",
        "env::flag(\"",
        "env::parsed(\"",
        "env::document(\"",
    ] {
        for (i, _) in source.match_indices(helper) {
            let rest = &source[i + helper.len()..];
            out.insert(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    assert!(
        !source.contains("std::env::var"),
        "read the environment through deepalert_aws::env so this test sees it"
    );
    out
}

/// `deploy.py --dry-run ARGS --deploy <deploy> [--stack <file named stack.0 holding stack.1>]`:
/// (success, output).
pub fn deploy_dry_run(args: &[&str], deploy: &str, stack: Option<(&str, &str)>) -> (bool, String) {
    deploy_dry_run_env(args, deploy, stack, &[])
}

/// The same, with these environment variables set (`DEEPALERT_CLI`, say).
pub fn deploy_dry_run_env(
    args: &[&str],
    deploy: &str,
    stack: Option<(&str, &str)>,
    env: &[(&str, &str)],
) -> (bool, String) {
    let (ok, out, _) = deploy_dry_run_documents(args, deploy, stack, env);
    (ok, out)
}

/// The same, and the documents it would put in the functions' zips (the lines
/// `# document <paths in the zip> = <file> (...)`): document name (`rules`, `flows`) → text.
pub fn deploy_dry_run_documents(
    args: &[&str],
    deploy: &str,
    stack: Option<(&str, &str)>,
    env: &[(&str, &str)],
) -> (bool, String, std::collections::BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging").display().to_string();
    let deploy_path = dir.path().join("deploy.jsonnet");
    std::fs::write(&deploy_path, deploy).unwrap();
    let mut argv: Vec<String> = ["tools/deploy.py", "--dry-run"]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
    argv.push("--deploy".into());
    argv.push(deploy_path.display().to_string());
    if let Some((name, text)) = stack {
        let stack_path = dir.path().join(name);
        std::fs::write(&stack_path, text).unwrap();
        argv.push("--stack".into());
        argv.push(stack_path.display().to_string());
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("DEEPALERT_DEPLOY_DIR", &staging));
    let (ok, out) = crate::moto::run_venv_tool_env("python", &argv, &env);
    let documents = out
        .lines()
        .filter_map(|l| l.strip_prefix("# document "))
        .filter_map(|l| {
            let file = l.split(" = ").nth(1)?.split(" (").next()?;
            let name = std::path::Path::new(file)
                .file_stem()?
                .to_str()?
                .to_string();
            Some((name, std::fs::read_to_string(file).ok()?))
        })
        .collect();
    (ok, out, documents)
}

/// The words of a command line as `shlex.join` (the dry run) quotes them.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    w.push(c);
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The `Name=value` words after `--parameter-overrides` in a dry run's output (the main
/// stack's deploy line), joined by spaces, and the names they set.
pub fn parameter_overrides(out: &str) -> (String, BTreeSet<String>) {
    let line = out
        .lines()
        .find(|l| l.contains("--parameter-overrides"))
        .expect("--parameter-overrides in the output");
    let words = shell_words(line);
    let at = words
        .iter()
        .position(|w| w == "--parameter-overrides")
        .unwrap();
    let kvs = &words[at + 1..];
    let names = kvs
        .iter()
        .map(|kv| kv.split('=').next().unwrap().to_string())
        .collect();
    (kvs.join(" ") + " ", names)
}

/// `aws cloudformation package` of `template` (a path in the repository) against moto's
/// S3, as `make deploy` runs it, then `deploy.py --verify-packaged` on the result.
/// Each binary a function names gets a stand-in zip (an executable `bootstrap`) at
/// `target/lambda/<binary>/bootstrap.zip` of a copy of the repository layout, so the
/// template's relative CodeUris resolve as they do in a checkout. Returns the
/// verification's (success, output) and the packaged template.
pub fn package_and_verify(
    moto_endpoint: &str,
    template: &str,
    text: &str,
) -> (bool, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(template);
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, text).unwrap();
    let script = format!(
        r##"
import os, re, zipfile, boto3
root = {root:?}
for m in set(re.findall(r"target/lambda/([^/\s]+)/bootstrap\.zip", open({copy:?}).read())):
    path = os.path.join(root, "target/lambda", m, "bootstrap.zip")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\n")
boto3.client("s3", endpoint_url={endpoint:?}, region_name="us-east-1",
             aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="code")
"##,
        root = dir.path().display().to_string(),
        copy = copy.display().to_string(),
        endpoint = moto_endpoint,
    );
    let (ok, out) = run_venv_tool("python", &["-c", &script]);
    assert!(ok, "stand-in zips: {out}");
    let packaged = dir.path().join("packaged.json");
    let aws = crate::moto::venv_tool("aws");
    let out = std::process::Command::new(aws)
        .args([
            "cloudformation",
            "package",
            "--region",
            "us-east-1",
            "--use-json",
        ])
        .arg("--template-file")
        .arg(&copy)
        .args(["--s3-bucket", "code", "--s3-prefix", "fn"])
        .arg("--output-template-file")
        .arg(&packaged)
        .env("AWS_ENDPOINT_URL", moto_endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("aws cloudformation package");
    assert!(
        out.status.success(),
        "aws cloudformation package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&packaged).unwrap()).unwrap();
    let (ok, out) = run_venv_tool(
        "python",
        &[
            "tools/deploy.py",
            "--verify-packaged",
            &packaged.display().to_string(),
            "--template",
            &copy.display().to_string(),
        ],
    );
    (ok, out, json)
}

/// The parameters the dry run's main deploy line passes: name → value.
pub fn override_values(out: &str) -> std::collections::BTreeMap<String, String> {
    let line = out
        .lines()
        .find(|l| l.contains("--parameter-overrides"))
        .expect("--parameter-overrides in the output");
    let words = shell_words(line);
    let at = words
        .iter()
        .position(|w| w == "--parameter-overrides")
        .unwrap();
    words[at + 1..]
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}
