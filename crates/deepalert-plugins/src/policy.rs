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

use crate::rego::PolicySet;
pub use crate::rego::{PolicyError, TestCase};

/// The rule every policy contributes verdicts to.
pub const VERDICT_RULE: &str = "data.deepalert.verdict";

#[derive(Clone)]
pub struct PolicyReviewer {
    policies: PolicySet,
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
        Ok(PolicyReviewer {
            policies: PolicySet::from_sources(sources)?,
        })
    }

    /// Loads every `.rego` file of `dir` (not recursive: `tests/` holds fixtures).
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        Ok(PolicyReviewer {
            policies: PolicySet::load(dir)?,
        })
    }

    pub fn dir(&self) -> &Path {
        self.policies.dir()
    }

    /// The verdict for a report. `Ok(None)`: no policy gave one.
    pub fn evaluate<T: serde::Serialize + ?Sized>(
        &self,
        report: &T,
    ) -> Result<Option<ReviewResult>, PolicyError> {
        let Some(json) = self.policies.eval(VERDICT_RULE, report)? else {
            return Ok(None);
        };
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
        let mut cases = self.policies.run_test_rules();
        for file in self.policies.fixtures()? {
            cases.push(TestCase {
                name: file.display().to_string(),
                outcome: self.run_fixture(&file),
            });
        }
        Ok(cases)
    }

    fn run_fixture(&self, file: &PathBuf) -> Result<(), String> {
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

#[async_trait]
impl Reviewer for PolicyReviewer {
    async fn review(&self, report: &Report) -> PortResult<Option<ReviewResult>> {
        self.evaluate(report)
            .map(|v| v.or_else(|| Some(ReviewResult::unclassified(NO_VERDICT))))
            .map_err(|e| PortError::with_source("policy reviewer", e))
    }
}
