//! What every remediation goes through before it touches anything: its options, the
//! targets it finds in the report, and the guards (severity gate, allow-lists, protected
//! principals and tags, a maximum number of targets, dry run).

use deepalert_core::flows::{FlowConfig, On};
use deepalert_core::{AttrContext, AttrType, Report, Severity};
use serde::Deserialize;
use serde_json::Value;

/// Options of a remediation step. Guards apply to every action; the rest is per action
/// (checked by [`RemediationOptions::check_for`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationOptions {
    /// Record the plan, change nothing (EC2 calls are made with `DryRun`).
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Accounts it may act in (empty: any). A target whose account is unknown is refused
    /// when the list is set.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Regions it may act in (empty: any). EC2 only: IAM is global.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Names or ARNs never touched; `*` matches any run of characters.
    #[serde(default)]
    pub protected_principals: Vec<String>,
    /// Tags that protect a target: `key` (any value) or `key=value`.
    #[serde(default = "default_protected_tags")]
    pub protected_tags: Vec<String>,
    /// More targets than this in one run: nothing is done (a report about many users is
    /// for a person to read).
    #[serde(default = "one")]
    pub max_targets: usize,
    /// The least severe verdict it acts on (a reviewed flow).
    #[serde(default = "urgent")]
    pub min_severity: Severity,
    /// Allows what cannot be undone: deleting an IAM user, terminating an instance.
    #[serde(default)]
    pub destructive: bool,
    /// Which attributes are the targets: by key (e.g. `created user`), and/or by context
    /// (default `object`: what the alert is about, not who did it).
    #[serde(default)]
    pub target_key: Option<String>,
    #[serde(default)]
    pub target_context: Option<String>,

    /// iam-user: the name of the inline deny-all policy it attaches.
    #[serde(default)]
    pub deny_policy_name: Option<String>,
    /// ec2-instance: `stop` (default), `quarantine`, `snapshot-stop`, `terminate`.
    #[serde(default)]
    pub mode: Option<String>,
    /// ec2-instance, mode `quarantine`: the security group that isolates an instance.
    #[serde(default)]
    pub quarantine_security_group: Option<String>,
    /// exec: the program (relative to the configuration file), its arguments, a timeout,
    /// and the attribute type its targets have (none: it gets the report alone).
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub target_type: Option<String>,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn urgent() -> Severity {
    Severity::Urgent
}
pub const PROTECTED_TAG: &str = "deepalert:protected";
fn default_protected_tags() -> Vec<String> {
    vec![PROTECTED_TAG.into()]
}

pub const EC2_MODES: &[&str] = &["stop", "quarantine", "snapshot-stop", "terminate"];
pub const DEFAULT_DENY_POLICY: &str = "deepalert-deny-all";

impl RemediationOptions {
    pub fn parse(action: &str, options: &Value) -> Result<Self, String> {
        let o: RemediationOptions = serde_json::from_value(options.clone())
            .map_err(|e| format!("options of {action}: {e}"))?;
        o.check_for(action)?;
        Ok(o)
    }

    /// Options that belong to another action are refused, so a typo is not a silent no-op.
    fn check_for(&self, action: &str) -> Result<(), String> {
        let set = |name: &str, is: bool, for_action: &str| {
            if is && action != for_action {
                Err(format!(
                    "options of {action}: {name} is an option of {for_action}"
                ))
            } else {
                Ok(())
            }
        };
        set(
            "deny_policy_name",
            self.deny_policy_name.is_some(),
            "iam-user",
        )?;
        set("mode", self.mode.is_some(), "ec2-instance")?;
        set(
            "quarantine_security_group",
            self.quarantine_security_group.is_some(),
            "ec2-instance",
        )?;
        set("command", self.command.is_some(), "exec")?;
        set("args", !self.args.is_empty(), "exec")?;
        set("timeout", self.timeout.is_some(), "exec")?;
        set("target_type", self.target_type.is_some(), "exec")?;
        if self.max_targets == 0 {
            return Err(format!(
                "options of {action}: max_targets must be at least 1"
            ));
        }
        match action {
            "ec2-instance" => {
                let mode = self.mode();
                if !EC2_MODES.contains(&mode) {
                    return Err(format!(
                        "options of ec2-instance: mode {mode:?} is not one of {}",
                        EC2_MODES.join(", ")
                    ));
                }
                if mode == "quarantine" && self.quarantine_security_group.is_none() {
                    return Err("options of ec2-instance: mode quarantine needs quarantine_security_group (a security group id, sg-…)".into());
                }
                if mode == "terminate" && !self.destructive {
                    return Err("options of ec2-instance: mode terminate cannot be undone; it needs destructive = true".into());
                }
            }
            "exec" => {
                if self.command.is_none() {
                    return Err("options of exec: command is required".into());
                }
                if let Some(t) = &self.timeout {
                    humantime::parse_duration(t)
                        .map_err(|e| format!("options of exec: timeout {t:?}: {e}"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("stop")
    }
}

/// Options of a check: which targets it looks at (the same selection as remediations).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckOptions {
    #[serde(default)]
    pub target_key: Option<String>,
    #[serde(default)]
    pub target_context: Option<String>,
    /// rego: the policy, inline, or a file (relative to the configuration file), and the
    /// rule to evaluate (default `data.deepalert.check.result`).
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub policy_file: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    /// rego: fresh AWS lookups put in the input (`iam-user`, `instance`), as
    /// `input.aws.users[name]` and `input.aws.instances[id]`.
    #[serde(default)]
    pub lookup: Vec<String>,
}

/// Something a remediation may act on, found in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A user name or an instance id.
    pub id: String,
    pub arn: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
}

/// The account and region an alert is about, from its body (an EventBridge event, a
/// CloudTrail record or a finding).
fn alert_place(body: Option<&Value>) -> (Option<String>, Option<String>) {
    let Some(b) = body else {
        return (None, None);
    };
    let first = |pointers: &[&str]| {
        pointers
            .iter()
            .filter_map(|p| b.pointer(p).and_then(Value::as_str))
            .find(|s| !s.is_empty())
            .map(str::to_string)
    };
    (
        first(&[
            "/account",
            "/detail/recipientAccountId",
            "/detail/accountId",
            "/recipientAccountId",
            "/AwsAccountId",
        ]),
        first(&["/region", "/detail/awsRegion", "/awsRegion", "/Region"]),
    )
}

/// `arn:aws:iam::123456789012:user/path/name` → (name, account).
fn iam_user_arn(value: &str) -> Option<(String, String)> {
    let rest = value.strip_prefix("arn:")?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    if parts.len() != 5 || parts[1] != "iam" {
        return None;
    }
    let name = parts[4].strip_prefix("user/")?.rsplit('/').next()?;
    Some((name.to_string(), parts[3].to_string()))
}

/// The report's targets of `attr_type`, selected by key and context (default context
/// `object` when no key is given), one per id.
pub fn targets(
    report: &Report,
    attr_type: &AttrType,
    key: Option<&str>,
    context: Option<&str>,
) -> Vec<Target> {
    let context = match (key, context) {
        (_, Some(c)) => Some(AttrContext::from_wire(c)),
        (None, None) => Some(AttrContext::Object),
        (Some(_), None) => None,
    };
    let mut out: Vec<Target> = Vec::new();
    for alert in &report.alerts {
        let (account, region) = alert_place(alert.body.as_ref());
        for a in &alert.attributes {
            if &a.attr_type != attr_type
                || key.is_some_and(|k| k != a.key)
                || context.as_ref().is_some_and(|c| !a.context.contains(c))
            {
                continue;
            }
            let value = a.value.trim();
            let target = match iam_user_arn(value) {
                Some((name, acct)) => Target {
                    id: name,
                    arn: Some(value.to_string()),
                    account: Some(acct),
                    region: region.clone(),
                },
                None => Target {
                    id: value.to_string(),
                    arn: None,
                    account: account.clone(),
                    region: region.clone(),
                },
            };
            if !target.id.is_empty() && !out.iter().any(|t| t.id == target.id) {
                out.push(target);
            }
        }
    }
    out
}

/// `*` matches any run of characters; everything else literally.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// The severity gate: `Err(why)` when the flow may not remediate this report.
pub fn severity_gate(
    o: &RemediationOptions,
    report: &Report,
    flow: &FlowConfig,
) -> Result<(), String> {
    if flow.on == On::Received {
        // FlowSet refuses a remediation here without remediate_before_review.
        return Ok(());
    }
    match report.result.as_ref().map(|r| r.severity) {
        Some(s) if s >= o.min_severity => Ok(()),
        Some(s) => Err(format!(
            "the verdict {} is below min_severity {}",
            s.as_str(),
            o.min_severity.as_str()
        )),
        None => Err("the report has no verdict".into()),
    }
}

/// Guards on one target before any lookup: allow-lists and protected principals.
pub fn target_refusal(o: &RemediationOptions, t: &Target, regional: bool) -> Option<String> {
    if !o.accounts.is_empty() {
        match &t.account {
            None => {
                return Some(format!(
                    "{}: its account is unknown and accounts is an allow-list ({})",
                    t.id,
                    o.accounts.join(", ")
                ));
            }
            Some(a) if !o.accounts.contains(a) => {
                return Some(format!(
                    "{}: account {a} is not in the allow-list ({})",
                    t.id,
                    o.accounts.join(", ")
                ));
            }
            _ => {}
        }
    }
    if regional && !o.regions.is_empty() {
        match &t.region {
            None => {
                return Some(format!(
                    "{}: its region is unknown and regions is an allow-list ({})",
                    t.id,
                    o.regions.join(", ")
                ));
            }
            Some(r) if !o.regions.contains(r) => {
                return Some(format!(
                    "{}: region {r} is not in the allow-list ({})",
                    t.id,
                    o.regions.join(", ")
                ));
            }
            _ => {}
        }
    }
    if let Some(p) = o.protected_principals.iter().find(|p| {
        wildcard_match(p, &t.id) || t.arn.as_deref().is_some_and(|a| wildcard_match(p, a))
    }) {
        return Some(format!(
            "{} is protected (protected_principals {p:?})",
            t.id
        ));
    }
    None
}

/// A protecting tag on a target, if any.
pub fn protected_by_tag<'a>(
    o: &'a RemediationOptions,
    tags: &[(String, String)],
) -> Option<&'a str> {
    o.protected_tags
        .iter()
        .find(|p| match p.split_once('=') {
            Some((k, v)) => tags.iter().any(|(tk, tv)| tk == k && tv == v),
            None => tags.iter().any(|(tk, _)| tk == p.as_str()),
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("admin*", "admin-alice"));
        assert!(wildcard_match("*", "x"));
        assert!(wildcard_match(
            "arn:aws:iam::*:user/breakglass",
            "arn:aws:iam::123:user/breakglass"
        ));
        assert!(!wildcard_match(
            "arn:aws:iam::*:user/breakglass",
            "arn:aws:iam::123:user/breakglass2"
        ));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(!wildcard_match("alice", "alice2"));
    }

    #[test]
    fn targets_are_objects_unless_a_key_is_named() {
        let report: Report = serde_json::from_value(json!({
            "id": "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11",
            "alerts": [{"detector": "aws-cloudtrail", "rule_id": "r", "alert_key": "k",
                "body": {"account": "111122223333", "region": "eu-west-1"},
                "attributes": [
                    {"type": "username", "key": "created user", "value": "tmp-user", "context": ["object"]},
                    {"type": "username", "key": "creator", "value": "arn:aws:iam::444455556666:user/ops/alice", "context": ["subject"]}
                ]}],
            "status": "published", "created_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let t = targets(&report, &AttrType::Username, None, None);
        assert_eq!(
            t,
            vec![Target {
                id: "tmp-user".into(),
                arn: None,
                account: Some("111122223333".into()),
                region: Some("eu-west-1".into())
            }]
        );
        let t = targets(&report, &AttrType::Username, Some("creator"), None);
        assert_eq!(
            (t[0].id.as_str(), t[0].account.as_deref()),
            ("alice", Some("444455556666"))
        );
    }

    #[test]
    fn options_are_checked_per_action() {
        let err = |a: &str, v: Value| RemediationOptions::parse(a, &v).unwrap_err();
        assert!(
            err("iam-user", json!({"mode": "stop"})).contains("mode is an option of ec2-instance")
        );
        assert!(err("ec2-instance", json!({"mode": "terminate"})).contains("destructive = true"));
        assert!(
            err("ec2-instance", json!({"mode": "quarantine"}))
                .contains("quarantine_security_group")
        );
        assert!(err("ec2-instance", json!({"mode": "reboot"})).contains("not one of"));
        assert!(err("exec", json!({})).contains("command is required"));
        assert!(err("iam-user", json!({"dry-run": false})).contains("unknown field"));
        let o = RemediationOptions::parse("iam-user", &json!({})).unwrap();
        assert!(
            o.dry_run && o.max_targets == 1 && o.min_severity == Severity::Urgent && !o.destructive
        );
    }
}
