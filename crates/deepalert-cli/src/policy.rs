//! `deepalert policy test|eval`: like `opa test` / `opa eval`, for reviewer policies.

use std::path::Path;
use std::process::ExitCode;

use deepalert_plugins::PolicyReviewer;
use deepalert_plugins::policy::NO_VERDICT;

pub fn test(dir: &Path) -> Result<ExitCode, String> {
    let reviewer = PolicyReviewer::load(dir).map_err(|e| e.to_string())?;
    let cases = reviewer.test().map_err(|e| e.to_string())?;
    report(dir, &cases)
}

/// Prints PASS/FAIL per case and a total; fails when a case failed or there was none.
pub fn report(dir: &Path, cases: &[deepalert_plugins::rego::TestCase]) -> Result<ExitCode, String> {
    if cases.is_empty() {
        return Err(format!(
            "{}: no test_* rule and no tests/*.json fixture to run",
            dir.display()
        ));
    }
    let mut failed = 0;
    for case in cases {
        match &case.outcome {
            Ok(()) => println!("PASS {}", case.name),
            Err(why) => {
                failed += 1;
                println!("FAIL {}: {why}", case.name);
            }
        }
    }
    println!("{} passed, {failed} failed", cases.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn eval(dir: &Path, report: &Path) -> Result<ExitCode, String> {
    let reviewer = PolicyReviewer::load(dir).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(report)
        .map_err(|e| format!("cannot read {}: {e}", report.display()))?;
    let mut input: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", report.display()))?;
    if let Some(inner) = input
        .get("report")
        .filter(|_| input.get("expect").is_some())
    {
        input = inner.clone();
    }
    let verdict = reviewer
        .evaluate(&input)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| deepalert_core::ReviewResult::unclassified(NO_VERDICT));
    println!(
        "{}",
        serde_json::to_string_pretty(&verdict).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
