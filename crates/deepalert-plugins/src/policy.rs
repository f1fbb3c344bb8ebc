//! The policy reviewer: a directory of Rego files decides a report's severity.
//!
//! Policies put verdicts in `data.deepalert.verdict`, a set of
//! `{"severity": "safe"|"unclassified"|"urgent", "reason": "..."}`; the input is the
//! compiled report. The most severe verdict wins (several of that severity: their reasons
//! are joined); no verdict at all gives `unclassified`. Rego v1 syntax:
//!
//! ```rego
//! package deepalert
//!
//! verdict contains {"severity": "urgent", "reason": sprintf("%s is on a threat list", [a.value])} if {
//!     some section in input.sections
//!     a := section.attribute
//!     some host in section.hosts
//!     some activity in host.activities
//!     activity.service_name == "threat-list"
//! }
//! ```
//!
//! `deepalert policy test DIR` runs every `test_*` rule (true passes) and every fixture
//! `DIR/tests/*.json` — `{"report": {...}, "expect": "urgent", "reason_contains": "..."}`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use deepalert_core::ports::{PortError, PortResult, Reviewer};
use deepalert_core::{Report, ReviewResult, Severity};
use serde::Deserialize;

/// The rule every policy contributes verdicts to.
pub const VERDICT_RULE: &str = "data.deepalert.verdict";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no .rego file in {0}")]
    Empty(PathBuf),
    /// regorus's message names the file, line and column.
    #[error("{0}")]
    Syntax(String),
    #[error("policy evaluation failed: {0}")]
    Eval(String),
    #[error(
        "policy verdict {verdict} is not {{\"severity\": \"safe\"|\"unclassified\"|\"urgent\", \"reason\": string}}: {why}"
    )]
    BadVerdict { verdict: String, why: String },
}

#[derive(Clone)]
pub struct PolicyReviewer {
    engine: regorus::Engine,
    modules: Vec<Module>,
    dir: PathBuf,
}

#[derive(Clone, Debug)]
struct Module {
    path: PathBuf,
    package: String,
    tests: Vec<String>,
}

#[derive(Deserialize)]
struct Verdict {
    severity: Severity,
    #[serde(default)]
    reason: String,
}

impl PolicyReviewer {
    /// Policies given as (file name, source): for policies built into a binary.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, PolicyError> {
        if sources.is_empty() {
            return Err(PolicyError::Empty(PathBuf::from("(built-in policies)")));
        }
        let mut engine = regorus::Engine::new();
        let mut modules = Vec::new();
        for (name, text) in sources {
            let package = engine
                .add_policy(name.to_string(), text.to_string())
                .map_err(|e| PolicyError::Syntax(e.to_string()))?;
            modules.push(Module {
                path: PathBuf::from(name),
                package,
                tests: test_rules(text),
            });
        }
        Ok(PolicyReviewer {
            engine,
            modules,
            dir: PathBuf::new(),
        })
    }

    /// Loads every `.rego` file of `dir` (not recursive: `tests/` holds fixtures).
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| PolicyError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rego"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PolicyError::Empty(dir.to_path_buf()));
        }
        let mut engine = regorus::Engine::new();
        let mut modules = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            let package = engine
                .add_policy(path.display().to_string(), text.clone())
                .map_err(|e| PolicyError::Syntax(e.to_string()))?;
            modules.push(Module {
                tests: test_rules(&text),
                package,
                path,
            });
        }
        Ok(PolicyReviewer {
            engine,
            modules,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The verdict for a report. `Ok(None)`: no policy gave one.
    pub fn evaluate(
        &self,
        report: &serde_json::Value,
    ) -> Result<Option<ReviewResult>, PolicyError> {
        let mut engine = self.engine.clone();
        engine.set_input(
            regorus::Value::from_json_str(&report.to_string())
                .map_err(|e| PolicyError::Eval(format!("report is not valid input: {e}")))?,
        );
        let value = match engine.eval_rule(VERDICT_RULE.to_string()) {
            Ok(v) => v,
            // No module defines the rule at all: no verdict.
            Err(e) if e.to_string().contains("not a valid rule path") => return Ok(None),
            Err(e) => return Err(PolicyError::Eval(e.to_string())),
        };
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        let json: serde_json::Value = serde_json::from_str(
            &value
                .to_json_str()
                .map_err(|e| PolicyError::Eval(e.to_string()))?,
        )
        .map_err(|e| PolicyError::Eval(e.to_string()))?;
        let items = match json {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        let mut verdicts = Vec::new();
        for item in items {
            let v: Verdict =
                serde_json::from_value(item.clone()).map_err(|e| PolicyError::BadVerdict {
                    verdict: item.to_string(),
                    why: e.to_string(),
                })?;
            verdicts.push(v);
        }
        let Some(worst) = verdicts.iter().map(|v| v.severity).max() else {
            return Ok(None);
        };
        let mut reasons: Vec<&str> = verdicts
            .iter()
            .filter(|v| v.severity == worst && !v.reason.is_empty())
            .map(|v| v.reason.as_str())
            .collect();
        reasons.dedup();
        Ok(Some(ReviewResult {
            severity: worst,
            reason: reasons.join("; "),
        }))
    }

    /// Runs `test_*` rules and `tests/*.json` fixtures. Returns one line per case.
    pub fn test(&self) -> Result<Vec<TestCase>, PolicyError> {
        let mut cases = Vec::new();
        for module in &self.modules {
            for rule in &module.tests {
                let name = format!(
                    "{}: data.{}.{rule}",
                    module.path.display(),
                    module.package.trim_start_matches("data.")
                );
                let path = format!("{}.{rule}", qualified(&module.package));
                let mut engine = self.engine.clone();
                let outcome = match engine.eval_rule(path) {
                    Ok(regorus::Value::Bool(true)) => Ok(()),
                    Ok(regorus::Value::Undefined) => {
                        Err("undefined (a condition did not hold)".to_string())
                    }
                    Ok(other) => Err(format!("evaluated to {other}, not true")),
                    Err(e) => Err(e.to_string()),
                };
                cases.push(TestCase { name, outcome });
            }
        }
        let fixtures = self.dir.join("tests");
        if fixtures.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
                .map_err(|source| PolicyError::ReadDir {
                    path: fixtures.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for file in files {
                cases.push(TestCase {
                    name: file.display().to_string(),
                    outcome: self.run_fixture(&file),
                });
            }
        }
        Ok(cases)
    }

    fn run_fixture(&self, file: &Path) -> Result<(), String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fixture {
            report: serde_json::Value,
            expect: Severity,
            #[serde(default)]
            reason_contains: Option<String>,
        }
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let fixture: Fixture = serde_json::from_str(&text).map_err(|e| {
            format!("not a fixture ({{\"report\", \"expect\", \"reason_contains\"?}}): {e}")
        })?;
        let got = self
            .evaluate(&fixture.report)
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| ReviewResult::unclassified(NO_VERDICT));
        if got.severity != fixture.expect {
            return Err(format!(
                "expected {}, got {} ({})",
                fixture.expect, got.severity, got.reason
            ));
        }
        if let Some(part) = fixture.reason_contains
            && !got.reason.contains(&part)
        {
            return Err(format!("reason {:?} does not contain {part:?}", got.reason));
        }
        Ok(())
    }
}

pub const NO_VERDICT: &str = "no policy gave a verdict";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub outcome: Result<(), String>,
}

fn qualified(package: &str) -> String {
    if package.starts_with("data.") {
        package.to_string()
    } else {
        format!("data.{package}")
    }
}

/// Names of rules whose head starts a line with `test_`.
fn test_rules(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            name.starts_with("test_").then_some(name)
        })
        .collect();
    out.dedup();
    out
}

#[async_trait]
impl Reviewer for PolicyReviewer {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
        let input = serde_json::to_value(report).expect("reports serialize");
        self.evaluate(&input)
            .map(|v| v.or_else(|| Some(ReviewResult::unclassified(NO_VERDICT))))
            .map_err(|e| PortError::with_source("policy reviewer", e))
    }
}
