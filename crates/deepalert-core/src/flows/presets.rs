//! The default flows of Responder's five preset rules, as Responder shipped them: a
//! notification for the sign-in rules; for non-compliant users and unauthorized
//! instances also wait → check it is still there → remediate. A preset rule gets its flow
//! when it names a notifier (`notify` on `[[rule]]`, or on a `Rules` entry of
//! stack.jsonnet); a `[[flow]]` of the same name replaces it.
//!
//! Remediation stays in dry run (the guards' default) until the flow is replaced by one
//! with `dry_run = false`: a preset never changes an account by itself.

use serde_json::json;

use super::{FlowConfig, FlowError};
use crate::rules::presets::PRESETS;

/// How long the remediating presets give people before checking and remediating.
pub const PRESET_GRACE: &str = "10m";

/// The preset rule `preset`'s default flow, notifying `notify`; named as the preset.
pub fn preset_flow(preset: &str, notify: &str) -> Result<FlowConfig, FlowError> {
    let err = |message: String| FlowError {
        flow: preset.to_string(),
        message,
    };
    if !PRESETS.contains(&preset) {
        return Err(err(format!(
            "no preset {preset:?} (presets: {})",
            PRESETS.join(", ")
        )));
    }
    let notify_step = json!({"notify": notify});
    let remediate = |check: &str, action: &str| {
        json!({
            "name": preset,
            "detector": "aws-cloudtrail",
            "rule_id": preset,
            // After review: a policy that calls it safe stops it.
            "on": "reviewed",
            "steps": [
                notify_step,
                {"wait": PRESET_GRACE},
                {"check": check},
                {"remediate": action, "options": {"min_severity": "unclassified"}}
            ]
        })
    };
    let value = match preset {
        "non-compliant-user-created" => remediate("iam-user-exists", "iam-user"),
        "unauthorized-instance-created" => remediate("instance-running", "ec2-instance"),
        // Sign-ins: someone should know in seconds, before any review.
        _ => json!({
            "name": preset,
            "detector": "aws-cloudtrail",
            "rule_id": preset,
            "on": "received",
            "steps": [notify_step]
        }),
    };
    serde_json::from_value(value).map_err(|e| err(e.to_string()))
}

/// The flows to run: the presets' default flows (preset, notifier), then the configured
/// ones, a configured flow replacing a default of the same name.
pub fn with_preset_flows(
    configured: &[FlowConfig],
    presets: &[(String, String)],
) -> Result<Vec<FlowConfig>, FlowError> {
    let mut out = Vec::new();
    for (preset, notify) in presets {
        if configured.iter().any(|f| &f.name == preset) {
            continue;
        }
        out.push(preset_flow(preset, notify)?);
    }
    out.extend(configured.iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::{FlowSet, On, StepKind};

    #[test]
    fn every_preset_has_a_flow_that_compiles_and_remediation_stays_dry() {
        for preset in PRESETS {
            let flow = preset_flow(preset, "sec").unwrap();
            assert_eq!(flow.rule_id.as_deref(), Some(*preset));
            let set = FlowSet::new(
                vec![flow.clone()],
                &["sec".to_string()],
                &["iam-user-exists", "instance-running"],
                &["iam-user", "ec2-instance"],
            )
            .unwrap();
            let (_, tree) = set.iter().next().unwrap();
            let leaves = tree.leaves();
            for step in &leaves {
                if let StepKind::Remediate { options, .. } = &step.kind {
                    assert!(
                        options.get("dry_run").is_none(),
                        "{preset}: dry run is the guards' default, never turned off here"
                    );
                }
            }
            let remediates = leaves
                .iter()
                .any(|s| matches!(s.kind, StepKind::Remediate { .. }));
            assert_eq!(
                remediates,
                *preset == "non-compliant-user-created"
                    || *preset == "unauthorized-instance-created",
                "{preset}"
            );
            assert_eq!(flow.on == On::Received, !remediates, "{preset}");
        }
        assert!(preset_flow("no-such-preset", "sec").is_err());
    }

    #[test]
    fn a_configured_flow_replaces_the_default_of_the_same_name() {
        let mine: FlowConfig = serde_json::from_value(json!({
            "name": "root-login", "steps": [{"notify": "pager"}]
        }))
        .unwrap();
        let flows = with_preset_flows(
            std::slice::from_ref(&mine),
            &[
                ("root-login".into(), "sec".into()),
                ("suspicious-login-ip".into(), "sec".into()),
            ],
        )
        .unwrap();
        let names: Vec<&str> = flows.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["suspicious-login-ip", "root-login"]);
        assert_eq!(flows[1], mine);
    }
}
