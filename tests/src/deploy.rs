//! What the template tests share: the environment a Lambda `main.rs` reads, and
//! `tools/deploy.py --dry-run` on throwaway configuration files.

use std::collections::BTreeSet;

use crate::moto::run_venv_tool;

/// Names passed to `env::var`, `env::optional`, `env::number`, `env::seconds`,
/// `env::flag`, `env::parsed`.
pub fn env_reads(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for helper in [
        "env::var(\"",
        "env::optional(\"",
        "env::number(\"",
        "env::seconds(\"",
        "env::flag(\"",
        "env::parsed(\"",
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
    let dir = tempfile::tempdir().unwrap();
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
    run_venv_tool("python", &argv)
}

/// What follows `--parameter-overrides` in a dry run's output, and the names it sets.
pub fn parameter_overrides(out: &str) -> (&str, BTreeSet<String>) {
    let overrides = out
        .split("--parameter-overrides")
        .nth(1)
        .expect("--parameter-overrides in the output");
    let names = overrides
        .split_whitespace()
        .map(|kv| kv.split('=').next().unwrap().to_string())
        .collect();
    (overrides, names)
}
