//! Flows as configured: `[[flow]]` in the TOML configuration, `Flows` in stack.jsonnet —
//! the same structure. An invalid flow is an error naming it.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Step, StepKind};
use crate::{Report, Severity};

/// When a flow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum On {
    /// After each publication of a matching report whose verdict is at least
    /// `min_severity`.
    #[default]
    Reviewed,
    /// At once, when the first matching alert of a report arrives (before inspection and
    /// review): a root sign-in should reach someone in seconds.
    Received,
}

/// One `[[flow]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    pub name: String,
    /// The reports it is for: their alerts' detector and rule_id (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default)]
    pub on: On,
    /// `on = "reviewed"`: the least severe verdict that starts it (default
    /// `unclassified`: every verdict but `safe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// `on = "received"` runs before any review; a remediation step there needs this
    /// explicit opt-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remediate_before_review: bool,
    pub steps: Vec<StepConfig>,
}

/// One step: exactly one of `notify`, `wait`, `check`, `remediate`, `sequential`,
/// `parallel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// A notifier (or a configured emitter) by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// The notification's text, a template: `{{report.result.reason}}`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A duration: `30s`, `10m`, `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
    /// A check by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// A remediation by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediate: Option<String>,
    /// Options of the check or remediation (the remediation's guards among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Vec<StepConfig>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<Vec<StepConfig>>,
}

/// Why the flows cannot run, naming the flow and step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flow {flow:?}: {message}")]
pub struct FlowError {
    pub flow: String,
    pub message: String,
}

impl FlowConfig {
    /// The steps as a tree with stable ids (the flow is one sequence).
    pub fn compile(&self) -> Result<Step, FlowError> {
        let err = |message: String| FlowError {
            flow: self.name.clone(),
            message,
        };
        if self.steps.is_empty() {
            return Err(err("has no steps".into()));
        }
        let children = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| compile_step(s, &i.to_string()))
            .collect::<Result<Vec<_>, String>>()
            .map_err(err)?;
        Ok(Step {
            id: String::new(),
            kind: StepKind::Sequential(children),
        })
    }

    /// This flow is for reports of this detector and rule.
    pub fn matches(&self, detector: &str, rule_id: &str) -> bool {
        self.detector.as_deref().is_none_or(|d| d == detector)
            && self.rule_id.as_deref().is_none_or(|r| r == rule_id)
    }

    /// `on = "reviewed"`: the report's verdict is severe enough.
    pub fn severe_enough(&self, report: &Report) -> bool {
        let min = self.min_severity.unwrap_or(Severity::Unclassified);
        report.result.as_ref().is_some_and(|r| r.severity >= min)
    }
}

fn compile_step(s: &StepConfig, id: &str) -> Result<Step, String> {
    let kinds = [
        s.notify.is_some(),
        s.wait.is_some(),
        s.check.is_some(),
        s.remediate.is_some(),
        s.sequential.is_some(),
        s.parallel.is_some(),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds != 1 {
        return Err(format!(
            "step {id}: give exactly one of notify, wait, check, remediate, sequential, parallel"
        ));
    }
    if s.template.is_some() && s.notify.is_none() {
        return Err(format!("step {id}: template is for notify steps"));
    }
    if s.options.is_some() && s.check.is_none() && s.remediate.is_none() {
        return Err(format!(
            "step {id}: options are for check and remediate steps"
        ));
    }
    let options = s
        .options
        .clone()
        .unwrap_or(Value::Object(Default::default()));
    let kind = if let Some(n) = &s.notify {
        StepKind::Notify {
            notifier: n.clone(),
            template: s.template.clone(),
        }
    } else if let Some(w) = &s.wait {
        let d = humantime::parse_duration(w).map_err(|e| {
            format!("step {id}: wait {w:?} is not a duration like 30s, 10m, 2h: {e}")
        })?;
        if d.is_zero() {
            return Err(format!("step {id}: wait must be more than zero"));
        }
        StepKind::Wait(Duration::from_secs(d.as_secs().max(1)))
    } else if let Some(c) = &s.check {
        StepKind::Check {
            check: c.clone(),
            options,
        }
    } else if let Some(r) = &s.remediate {
        StepKind::Remediate {
            action: r.clone(),
            options,
        }
    } else {
        let (list, parallel) = match (&s.sequential, &s.parallel) {
            (Some(l), _) => (l, false),
            (_, Some(l)) => (l, true),
            _ => unreachable!("one kind is set"),
        };
        if list.is_empty() {
            return Err(format!("step {id}: an empty group"));
        }
        let children = list
            .iter()
            .enumerate()
            .map(|(i, c)| compile_step(c, &format!("{id}.{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        if parallel {
            StepKind::Parallel(children)
        } else {
            StepKind::Sequential(children)
        }
    };
    Ok(Step {
        id: id.to_string(),
        kind,
    })
}

/// The configured flows, checked.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: Vec<(FlowConfig, Step)>,
}

impl FlowSet {
    /// Checks every flow: a name (unique), steps that compile, known notifiers, checks and
    /// actions, and no remediation before review without the opt-in.
    pub fn new(
        flows: Vec<FlowConfig>,
        notifiers: &[String],
        checks: &[&str],
        actions: &[&str],
    ) -> Result<FlowSet, FlowError> {
        Self::build(flows, Some((notifiers, checks, actions)))
    }

    /// The same checks but the names of notifiers, checks and remediations: for the
    /// functions that only start flows (the flow runner checks the names when it starts,
    /// and `make deploy` before that).
    pub fn structural(flows: Vec<FlowConfig>) -> Result<FlowSet, FlowError> {
        Self::build(flows, None)
    }

    fn build(
        flows: Vec<FlowConfig>,
        names: Option<(&[String], &[&str], &[&str])>,
    ) -> Result<FlowSet, FlowError> {
        let (notifiers, checks, actions, check_names) = match names {
            Some((n, c, a)) => (n, c, a, true),
            None => (&[][..], &[][..], &[][..], false),
        };
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for f in flows {
            let err = |message: String| FlowError {
                flow: f.name.clone(),
                message,
            };
            let valid = !f.name.is_empty()
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(err(
                    "a name is required: letters, digits, '-' or '_' (it names the flow's runs)"
                        .into(),
                ));
            }
            if !names.insert(f.name.clone()) {
                return Err(err("the name is used twice".into()));
            }
            if f.on == On::Received && f.min_severity.is_some() {
                return Err(err(
                    "min_severity is for on = \"reviewed\": a received flow runs before any verdict"
                        .into(),
                ));
            }
            if f.on == On::Reviewed && f.remediate_before_review {
                return Err(err(
                    "remediate_before_review is for on = \"received\"".into()
                ));
            }
            let tree = f.compile()?;
            for leaf in tree.leaves() {
                match &leaf.kind {
                    StepKind::Notify { notifier, .. }
                        if check_names && !notifiers.contains(notifier) =>
                    {
                        return Err(err(format!(
                            "step {}: no notifier or emitter {notifier:?} (configured: {})",
                            leaf.id,
                            if notifiers.is_empty() {
                                "none".into()
                            } else {
                                notifiers.join(", ")
                            }
                        )));
                    }
                    StepKind::Check { check, .. }
                        if check_names && !checks.contains(&check.as_str()) =>
                    {
                        return Err(err(format!(
                            "step {}: no check {check:?} (checks: {})",
                            leaf.id,
                            checks.join(", ")
                        )));
                    }
                    StepKind::Remediate { action, .. } => {
                        if check_names && !actions.contains(&action.as_str()) {
                            return Err(err(format!(
                                "step {}: no remediation {action:?} (remediations: {})",
                                leaf.id,
                                actions.join(", ")
                            )));
                        }
                        if f.on == On::Received && !f.remediate_before_review {
                            return Err(err(format!(
                                "step {}: a remediation in an on = \"received\" flow runs before any review; set remediate_before_review = true to mean it",
                                leaf.id
                            )));
                        }
                    }
                    _ => {}
                }
            }
            out.push((f, tree));
        }
        Ok(FlowSet { flows: out })
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FlowConfig, &Step)> {
        self.flows.iter().map(|(f, s)| (f, s))
    }

    pub fn get(&self, name: &str) -> Option<&(FlowConfig, Step)> {
        self.flows.iter().find(|(f, _)| f.name == name)
    }

    /// Flows to start for a publication of `report`.
    pub fn on_publication(&self, report: &Report) -> Vec<&FlowConfig> {
        self.flows
            .iter()
            .map(|(f, _)| f)
            .filter(|f| {
                f.on == On::Reviewed
                    && f.matches(report.detector(), report.rule_id())
                    && f.severe_enough(report)
            })
            .collect()
    }

    /// Flows to start when the first alert of a report with this detector and rule
    /// arrives.
    pub fn on_received(&self, detector: &str, rule_id: &str) -> Vec<&FlowConfig> {
        self.flows
            .iter()
            .map(|(f, _)| f)
            .filter(|f| f.on == On::Received && f.matches(detector, rule_id))
            .collect()
    }
}
