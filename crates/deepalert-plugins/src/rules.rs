//! Rules as configured (the same structure in `deepalert serve`'s TOML and in
//! stack.jsonnet): presets with their options, your own rules in Rego, and the GuardDuty /
//! Security Hub mappings; and Rego rules themselves.
//!
//! A Rego rule is a directory of policies in `package deepalert.rules` whose `alert` set,
//! evaluated with the event as `input` (EventBridge's shape; CloudTrail records are put in
//! it), yields the alerts. The rule's `options` are `data.deepalert.options`.
//!
//! ```rego
//! package deepalert.rules
//!
//! alert contains {
//!     "rule_id": "s3-bucket-made-public",
//!     "alert_key": input.detail.requestParameters.bucketName,
//!     "description": sprintf("%s removed the public access block of %s", [input.detail.userIdentity.arn, input.detail.requestParameters.bucketName]),
//!     "attributes": [{"type": "ipaddr", "key": "source address", "value": input.detail.sourceIPAddress, "context": ["remote"]}],
//! } if {
//!     input.source == "aws.s3"
//!     input.detail.eventName == "DeletePublicAccessBlock"
//! }
//! ```
//!
//! An alert needs `rule_id`; `detector` defaults to `aws-cloudtrail` for CloudTrail events
//! (else the event's source, `aws.x` → `aws-x`), `timestamp` to the event's time and `body`
//! to the event (trimmed to the body limit).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deepalert_core::rules::findings::{GuardDuty, SecurityHub};
use deepalert_core::rules::{Event, EventSource, Rule, RuleError, RuleSet, presets};
use deepalert_core::{Alert, Attribute};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rego::{PolicyError, PolicySet, TestCase};

/// The rule every Rego rule's policies add alerts to.
pub const ALERT_RULE: &str = "data.deepalert.rules.alert";

/// One `[[rule]]`: a preset or a directory of Rego policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// One of the presets (`root-login`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// A directory of Rego policies, relative to the configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PathBuf>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
    /// Rego rules only: the EventBridge sources their events come from (`aws.s3`…), for
    /// the stack's EventBridge rule on AWS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Presets only: a notifier (or emitter) by name; the preset's default flow
    /// (`deepalert_core::flows::preset_flow`) notifies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

fn yes() -> bool {
    true
}

/// `[findings]`: the GuardDuty and Security Hub mappings, both on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FindingsConfig {
    pub guardduty: bool,
    pub securityhub: bool,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig {
            guardduty: true,
            securityhub: true,
        }
    }
}

/// Where a Rego rule's policies come from.
#[derive(Clone, Copy)]
pub enum Policies<'a> {
    /// Files: `policies` is a directory, relative to this one (the configuration's).
    Files(&'a Path),
    /// Built into the binary at build time (the event router's, from stack.jsonnet):
    /// `policies` only says that a Rego rule is wanted.
    BuiltIn(&'a [(&'a str, &'a str)]),
}

/// The rules to run: the enabled `[[rule]]`s and the findings mappings. A bad preset, bad
/// options or a policy with a syntax error is an error naming the rule (and the file and
/// line).
pub fn rule_set(
    rules: &[RuleConfig],
    findings: &FindingsConfig,
    policies: Policies<'_>,
) -> Result<RuleSet, String> {
    let mut out: Vec<Arc<dyn Rule>> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let field = format!("rule[{i}]");
        let options = r.options.clone().unwrap_or(Value::Null);
        match (&r.preset, &r.policies) {
            (Some(_), Some(_)) => return Err(format!("{field}: set preset or policies, not both")),
            (None, None) => {
                return Err(format!(
                    "{field}: needs preset (one of {}) or policies (a directory of .rego files)",
                    presets::PRESETS.join(", ")
                ));
            }
            (Some(p), None) => {
                if !r.sources.is_empty() {
                    return Err(format!(
                        "{field}.sources: only for Rego rules (a preset knows its own)"
                    ));
                }
                let rule = presets::build(p, options).map_err(|e| format!("{field} ({p}): {e}"))?;
                if r.enabled {
                    out.push(rule);
                }
            }
            (None, Some(dir)) => {
                if r.notify.is_some() {
                    return Err(format!(
                        "{field}.notify: only for presets (give a Rego rule's alerts a [[flow]])"
                    ));
                }
                if !r.enabled {
                    continue;
                }
                let rule = match policies {
                    Policies::Files(base) => {
                        let dir = base.join(dir);
                        RegoRule::load(&dir, options, r.sources.clone())
                            .map_err(|e| format!("{field} ({}): {e}", dir.display()))?
                    }
                    Policies::BuiltIn([]) => {
                        return Err(format!(
                            "{field}: no Rego rule policies are built in (set RulePolicies in stack.jsonnet)"
                        ));
                    }
                    Policies::BuiltIn(sources) => {
                        RegoRule::from_sources(sources, options, r.sources.clone())
                            .map_err(|e| format!("{field} (built-in policies): {e}"))?
                    }
                };
                out.push(Arc::new(rule));
            }
        }
    }
    if findings.guardduty {
        out.push(Arc::new(GuardDuty));
    }
    if findings.securityhub {
        out.push(Arc::new(SecurityHub {
            skip_guardduty: findings.guardduty,
        }));
    }
    Ok(RuleSet::new(out))
}

/// A directory of Rego policies as a rule.
pub struct RegoRule {
    name: String,
    policies: PolicySet,
    sources: Vec<String>,
}

/// One alert as a policy writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegoAlert {
    #[serde(default)]
    detector: Option<String>,
    rule_id: String,
    #[serde(default)]
    rule_name: String,
    #[serde(default)]
    alert_key: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    attributes: Vec<Attribute>,
    #[serde(default)]
    body: Option<Value>,
}

impl RegoRule {
    pub fn load(dir: &Path, options: Value, sources: Vec<String>) -> Result<Self, PolicyError> {
        let policies = PolicySet::load(dir)?;
        Self::new(dir.display().to_string(), policies, options, sources)
    }

    pub fn from_sources(
        sources_text: &[(&str, &str)],
        options: Value,
        sources: Vec<String>,
    ) -> Result<Self, PolicyError> {
        let policies = PolicySet::from_sources(sources_text)?;
        Self::new("built-in rule policies".into(), policies, options, sources)
    }

    fn new(
        name: String,
        policies: PolicySet,
        options: Value,
        sources: Vec<String>,
    ) -> Result<Self, PolicyError> {
        let options = if options.is_null() {
            serde_json::json!({})
        } else {
            options
        };
        let policies =
            policies.with_data(&serde_json::json!({"deepalert": {"options": options}}))?;
        Ok(RegoRule {
            name,
            policies,
            sources,
        })
    }

    /// Runs the `test_*` rules and the fixtures `DIR/tests/*.json`:
    /// `{"event": {...}, "expect": [{...}]}`, each expected alert matched (as a subset of
    /// its fields) by one produced alert, and as many produced as expected.
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

    fn run_fixture(&self, file: &Path) -> Result<(), String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fixture {
            event: Value,
            expect: Vec<Value>,
        }
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let fixture: Fixture = serde_json::from_str(&text)
            .map_err(|e| format!("not a fixture ({{\"event\", \"expect\": [...]}}): {e}"))?;
        let event = event_of(fixture.event).map_err(|e| format!("event: {e}"))?;
        let alerts = self.evaluate(&event).map_err(|e| e.to_string())?;
        let got: Vec<Value> = alerts.iter().map(|a| serde_json::json!(a)).collect();
        if got.len() != fixture.expect.len() {
            return Err(format!(
                "expected {} alert(s), got {}: {}",
                fixture.expect.len(),
                got.len(),
                serde_json::to_string(&got).unwrap_or_default()
            ));
        }
        for want in &fixture.expect {
            if !got.iter().any(|g| subset(want, g)) {
                return Err(format!(
                    "no alert matches {want}; got {}",
                    serde_json::to_string(&got).unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

/// An event file's event: EventBridge's shape, or a bare CloudTrail record.
pub fn event_of(v: Value) -> Result<Event, String> {
    if v.get("eventSource").is_some() && v.get("detail").is_none() {
        Event::from_cloudtrail(v)
    } else {
        Event::from_eventbridge(v)
    }
    .map_err(|e| e.0)
}

/// `want`'s fields all hold in `got` (objects recursively; anything else equal).
fn subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| subset(v, gv))),
        _ => want == got,
    }
}

fn default_detector(event: &Event) -> String {
    if event.detail_type().ends_with("via CloudTrail") {
        "aws-cloudtrail".into()
    } else {
        event.source().replace('.', "-")
    }
}

impl Rule for RegoRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn sources(&self) -> Vec<EventSource> {
        self.sources
            .iter()
            .map(|s| EventSource::new(s, ""))
            .collect()
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        let err = |message: String| RuleError::failed(&self.name, message);
        let Some(value) = self
            .policies
            .eval(ALERT_RULE, event.value())
            .map_err(|e| err(e.to_string()))?
        else {
            return Ok(vec![]);
        };
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        items
            .into_iter()
            .map(|item| {
                let shown = item.to_string();
                let a: RegoAlert = serde_json::from_value(item)
                    .map_err(|e| err(format!("alert {shown} is not an alert: {e}")))?;
                Ok(Alert {
                    detector: a.detector.unwrap_or_else(|| default_detector(event)),
                    rule_id: a.rule_id,
                    rule_name: a.rule_name,
                    alert_key: a.alert_key,
                    description: a.description,
                    timestamp: a.timestamp.or(event.time()),
                    attributes: a.attributes,
                    body: Some(a.body.unwrap_or_else(|| event.body())),
                })
            })
            .collect()
    }
}
