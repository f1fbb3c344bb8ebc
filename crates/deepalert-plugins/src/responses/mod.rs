//! What flows' steps do (`deepalert_core::flows::StepRunner`): notify through notifiers
//! and emitters, checks (`iam-user-exists`, `instance-running`, `access-key-active`,
//! `rego`), and guarded remediations (`iam-user`, `ec2-instance`, `exec`). See
//! README.md in this folder.

pub mod ec2;
mod exec;
pub mod guards;
pub mod iam;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deepalert_core::flows::{
    FlowConfig, FlowError, FlowSet, FlowsDocument, StepKind, StepOutcome, StepRunner,
};
use deepalert_core::ports::EmitterPlugin;
use deepalert_core::{AttrType, Report};
use serde_json::{Value, json};

use crate::emitters::Notifier;
use crate::rego::PolicySet;
use guards::{
    CheckOptions, RemediationOptions, Target, protected_by_tag, severity_gate, target_refusal,
    targets,
};

pub const CHECKS: &[&str] = &[
    "iam-user-exists",
    "instance-running",
    "access-key-active",
    "rego",
];
pub const REMEDIATIONS: &[&str] = &["iam-user", "ec2-instance", "exec"];

/// The rule a Rego check evaluates unless its options name another.
pub const DEFAULT_CHECK_RULE: &str = "data.deepalert.check.result";

fn instance_type() -> AttrType {
    AttrType::Other("instanceid".into())
}

/// Whether any step of these flows calls AWS (the caller then loads the SDK
/// configuration).
pub fn needs_aws(flows: &FlowSet) -> bool {
    flows
        .iter()
        .any(|(_, tree)| tree.leaves().iter().any(|s| step_calls_aws(&s.kind)))
}

fn step_calls_aws(kind: &StepKind) -> bool {
    match kind {
        StepKind::Check { check, options } => check != "rego" || options.get("lookup").is_some(),
        StepKind::Remediate { action, .. } => action != "exec",
        _ => false,
    }
}

/// The flows of a [`FlowsDocument`] with the responder that runs their steps: its
/// notifiers built (their secrets looked up through `ctx`), every step checked as at
/// start-up. Used by the flow runner on AWS and by `deepalert flows check`.
pub async fn from_document(
    document: &FlowsDocument,
    ctx: &crate::builtin::Context<'_>,
    allow_exec: bool,
) -> Result<(FlowSet, Responder), String> {
    let mut notifiers = HashMap::new();
    for n in &document.notifiers {
        let made = crate::builtin::notifier(&n.builtin, n.options.clone(), ctx)
            .await
            .map_err(|e| format!("notifier {}: {e}", n.name))?;
        if notifiers.insert(n.name.clone(), made).is_some() {
            return Err(format!("notifier {}: the name is used twice", n.name));
        }
    }
    let mut responder = Responder::new(
        notifiers,
        HashMap::new(),
        ctx.aws.cloned(),
        ctx.base_dir.to_path_buf(),
        allow_exec,
    );
    let set = FlowSet::new(
        document.all_flows().map_err(|e| e.to_string())?,
        &responder.notify_targets(),
        CHECKS,
        REMEDIATIONS,
    )
    .map_err(|e| e.to_string())?;
    responder.prepare(&set).map_err(|e| e.to_string())?;
    Ok((set, responder))
}

/// The IAM actions the configured flows need, for a least-privilege role (`make deploy`
/// writes them into the flow runner's policy).
pub fn iam_actions(flows: &FlowSet) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let user_reads: &[&'static str] = &[
        "iam:GetUser",
        "iam:GetLoginProfile",
        "iam:ListAccessKeys",
        "iam:ListMFADevices",
        "iam:ListUserPolicies",
        "iam:ListAttachedUserPolicies",
        "iam:ListGroupsForUser",
        "iam:ListSigningCertificates",
        "iam:ListSSHPublicKeys",
        "iam:ListUserTags",
    ];
    for (_, tree) in flows.iter() {
        for s in tree.leaves() {
            let add: Vec<&'static str> = match &s.kind {
                StepKind::Check { check, options } => match check.as_str() {
                    "iam-user-exists" | "access-key-active" => user_reads.to_vec(),
                    "instance-running" => vec!["ec2:DescribeInstances"],
                    "rego" => {
                        let lookups: Vec<String> = options
                            .get("lookup")
                            .and_then(|l| serde_json::from_value(l.clone()).ok())
                            .unwrap_or_default();
                        let mut v = Vec::new();
                        if lookups.iter().any(|l| l == "iam-user") {
                            v.extend_from_slice(user_reads);
                        }
                        if lookups.iter().any(|l| l == "instance") {
                            v.push("ec2:DescribeInstances");
                        }
                        v
                    }
                    _ => vec![],
                },
                StepKind::Remediate { action, options } => {
                    let o = RemediationOptions::parse(action, options).ok();
                    let destructive = o.as_ref().is_some_and(|o| o.destructive);
                    // IAM's dry run records the plan from reads alone; EC2's calls with
                    // DryRun, which AWS answers only when the role may make the call.
                    let dry_run = o.as_ref().is_none_or(|o| o.dry_run);
                    match action.as_str() {
                        "iam-user" if dry_run => user_reads.to_vec(),
                        "iam-user" if destructive => {
                            let mut v = user_reads.to_vec();
                            v.extend_from_slice(&[
                                "iam:DeleteLoginProfile",
                                "iam:DeleteAccessKey",
                                "iam:DeleteSigningCertificate",
                                "iam:DeleteSSHPublicKey",
                                "iam:DeactivateMFADevice",
                                "iam:DeleteVirtualMFADevice",
                                "iam:DeleteUserPolicy",
                                "iam:DetachUserPolicy",
                                "iam:RemoveUserFromGroup",
                                "iam:DeleteUser",
                            ]);
                            v
                        }
                        "iam-user" => {
                            let mut v = user_reads.to_vec();
                            v.extend_from_slice(&[
                                "iam:PutUserPolicy",
                                "iam:UpdateAccessKey",
                                "iam:DeleteLoginProfile",
                            ]);
                            v
                        }
                        "ec2-instance" => {
                            let mut v = vec!["ec2:DescribeInstances"];
                            match o.as_ref().map(|o| o.mode()).unwrap_or("stop") {
                                "quarantine" => v.push("ec2:ModifyInstanceAttribute"),
                                "snapshot-stop" => v.extend_from_slice(&[
                                    "ec2:CreateSnapshot",
                                    "ec2:StopInstances",
                                ]),
                                "terminate" => v.push("ec2:TerminateInstances"),
                                _ => v.push("ec2:StopInstances"),
                            }
                            v
                        }
                        _ => vec![],
                    }
                }
                _ => vec![],
            };
            out.extend(add);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Runs flows' steps. Built once by the binary with what it configured.
pub struct Responder {
    notifiers: HashMap<String, Arc<dyn Notifier>>,
    emitters: HashMap<String, Arc<dyn EmitterPlugin>>,
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    aws: Option<aws_config::SdkConfig>,
    iam: Option<iam::Iam>,
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    ec2: Mutex<HashMap<String, Arc<ec2::Ec2>>>,
    /// Relative paths (exec commands, Rego files) are resolved here.
    base_dir: PathBuf,
    /// `exec` runs programs: under `deepalert serve` only.
    allow_exec: bool,
    /// Rego checks, compiled at start-up, by policy source.
    policies: HashMap<String, PolicySet>,
}

impl Responder {
    /// `notifiers`: `[[notifier]]`s and the emitters that are notifiers; `emitters`: the
    /// other emitters a `notify` step may name (sent the report, without a message).
    pub fn new(
        notifiers: HashMap<String, Arc<dyn Notifier>>,
        emitters: HashMap<String, Arc<dyn EmitterPlugin>>,
        aws: Option<aws_config::SdkConfig>,
        base_dir: PathBuf,
        allow_exec: bool,
    ) -> Self {
        Responder {
            notifiers,
            emitters,
            #[cfg(feature = "aws")]
            iam: aws
                .as_ref()
                .map(|c| iam::Iam::new(aws_sdk_iam::Client::new(c))),
            #[cfg(not(feature = "aws"))]
            iam: None,
            aws,
            ec2: Mutex::new(HashMap::new()),
            base_dir,
            allow_exec,
            policies: HashMap::new(),
        }
    }

    /// What a `notify` step may name.
    pub fn notify_targets(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .notifiers
            .keys()
            .chain(self.emitters.keys())
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Checks every step's options (and compiles Rego checks) before anything runs: an
    /// invalid flow stops start-up, naming the flow and the step.
    pub fn prepare(&mut self, flows: &FlowSet) -> Result<(), FlowError> {
        for (flow, tree) in flows.iter() {
            let err = |id: &str, message: String| FlowError {
                flow: flow.name.clone(),
                message: format!("step {id}: {message}"),
            };
            for step in tree.leaves() {
                if !cfg!(feature = "aws") && step_calls_aws(&step.kind) {
                    return Err(err(
                        &step.id,
                        format!("{}: {}", step.label(), crate::BUILT_WITHOUT_AWS),
                    ));
                }
                match &step.kind {
                    StepKind::Notify {
                        notifier,
                        template: Some(t),
                    } => {
                        crate::templates::check(t).map_err(|e| err(&step.id, e))?;
                        if !self.notifiers.contains_key(notifier) {
                            return Err(err(
                                &step.id,
                                format!(
                                    "{notifier} is an emitter that sends reports as they are; a template needs a notifier (slack, discord, google-chat, email, webhook, jsonl)"
                                ),
                            ));
                        }
                    }
                    StepKind::Check { check, options } => {
                        let o: CheckOptions = serde_json::from_value(options.clone())
                            .map_err(|e| err(&step.id, format!("options of {check}: {e}")))?;
                        if check == "rego" {
                            let source = self.policy_source(&o).map_err(|e| err(&step.id, e))?;
                            if let std::collections::hash_map::Entry::Vacant(slot) =
                                self.policies.entry(source)
                            {
                                let set =
                                    PolicySet::from_sources(&[("check.rego", slot.key().as_str())])
                                        .map_err(|e| err(&step.id, format!("rego check: {e}")))?;
                                slot.insert(set);
                            }
                            for l in &o.lookup {
                                if l != "iam-user" && l != "instance" {
                                    return Err(err(
                                        &step.id,
                                        format!("lookup {l:?} is not iam-user or instance"),
                                    ));
                                }
                            }
                        } else if o.policy.is_some()
                            || o.policy_file.is_some()
                            || o.rule.is_some()
                            || !o.lookup.is_empty()
                        {
                            return Err(err(
                                &step.id,
                                format!(
                                    "options of {check}: policy, policy_file, rule and lookup are options of the rego check"
                                ),
                            ));
                        }
                    }
                    StepKind::Remediate { action, options } => {
                        let o = RemediationOptions::parse(action, options)
                            .map_err(|e| err(&step.id, e))?;
                        if action == "exec" {
                            if !self.allow_exec {
                                return Err(err(&step.id, "exec runs programs under `deepalert serve` only; on AWS use iam-user, ec2-instance or a notify step".into()));
                            }
                            if let Some(t) = &o.target_type {
                                t.parse::<AttrType>()
                                    .map_err(|e| err(&step.id, format!("target_type: {e}")))?;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn policy_source(&self, o: &CheckOptions) -> Result<String, String> {
        match (&o.policy, &o.policy_file) {
            (Some(p), None) => Ok(p.clone()),
            (None, Some(f)) => {
                let path = crate::inspectors::resolve(&self.base_dir, std::path::Path::new(f));
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("rego check: cannot read {}: {e}", path.display()))
            }
            _ => {
                Err("the rego check needs policy (inline Rego) or policy_file, one of them".into())
            }
        }
    }

    fn iam(&self) -> Result<&iam::Iam, String> {
        if !cfg!(feature = "aws") {
            return Err(crate::BUILT_WITHOUT_AWS.into());
        }
        self.iam.as_ref().ok_or_else(|| {
            "IAM calls need the AWS SDK configuration, which this process has not loaded".into()
        })
    }

    #[cfg(not(feature = "aws"))]
    fn ec2(&self, _: Option<&str>) -> Result<Arc<ec2::Ec2>, String> {
        Err(crate::BUILT_WITHOUT_AWS.into())
    }

    #[cfg(feature = "aws")]
    fn ec2(&self, region: Option<&str>) -> Result<Arc<ec2::Ec2>, String> {
        let sdk = self
            .aws
            .as_ref()
            .ok_or("EC2 calls need the AWS SDK configuration, which this process has not loaded")?;
        let key = region.unwrap_or("").to_string();
        let mut clients = self.ec2.lock().unwrap_or_else(|p| p.into_inner());
        Ok(clients
            .entry(key)
            .or_insert_with(|| {
                let client = match region {
                    Some(r) => aws_sdk_ec2::Client::from_conf(
                        aws_sdk_ec2::config::Builder::from(sdk)
                            .region(aws_sdk_ec2::config::Region::new(r.to_string()))
                            .build(),
                    ),
                    None => aws_sdk_ec2::Client::new(sdk),
                };
                Arc::new(ec2::Ec2::new(client))
            })
            .clone())
    }

    async fn lookups(&self, report: &Report, o: &CheckOptions) -> Result<Value, String> {
        let mut users = serde_json::Map::new();
        let mut instances = serde_json::Map::new();
        if o.lookup.iter().any(|l| l == "iam-user") {
            let iam = self.iam()?;
            for t in targets(
                report,
                &AttrType::Username,
                o.target_key.as_deref(),
                o.target_context.as_deref(),
            ) {
                let v = match iam.user(&t.id).await? {
                    Some(u) => u.to_json(),
                    None => json!({"exists": false}),
                };
                users.insert(t.id, v);
            }
        }
        if o.lookup.iter().any(|l| l == "instance") {
            for t in targets(
                report,
                &instance_type(),
                o.target_key.as_deref(),
                o.target_context.as_deref(),
            ) {
                let v = match self.ec2(t.region.as_deref())?.instance(&t.id).await? {
                    Some(i) => i.to_json(),
                    None => json!({"exists": false}),
                };
                instances.insert(t.id, v);
            }
        }
        Ok(json!({"users": users, "instances": instances}))
    }

    async fn iam_user(
        &self,
        o: &RemediationOptions,
        report: &Report,
    ) -> Result<StepOutcome, String> {
        let targets = match self.selected(o, report, &AttrType::Username)? {
            Ok(t) => t,
            Err(guarded) => return Ok(guarded),
        };
        let iam = self.iam()?;
        let mut refused = Vec::new();
        let mut lines = Vec::new();
        for t in targets {
            if t.id == "root" || t.id.starts_with("root@") {
                refused.push(format!(
                    "{}: the root user is not an IAM user; secure it by hand",
                    t.id
                ));
                continue;
            }
            if let Some(why) = target_refusal(o, &t, false) {
                refused.push(why);
                continue;
            }
            let Some(user) = iam.user(&t.id).await? else {
                lines.push(format!("{}: no such IAM user; nothing to do", t.id));
                continue;
            };
            let by_arn = Target {
                arn: Some(user.arn.clone()),
                ..t.clone()
            };
            if let Some(why) = target_refusal(o, &by_arn, false) {
                refused.push(why);
                continue;
            }
            if let Some(tag) = protected_by_tag(o, &user.tags) {
                refused.push(format!("{} is protected by its tag {tag}", t.id));
                continue;
            }
            let calls = iam::Iam::plan(o, &user);
            let shown: Vec<String> = calls.iter().map(|c| c.to_string()).collect();
            if o.dry_run {
                lines.push(format!("{}: would {}", t.id, shown.join(", ")));
                continue;
            }
            let mut done = Vec::new();
            for c in &calls {
                if let Err(e) = iam.call(&t.id, c).await {
                    return Err(format!(
                        "{}: {e} (done before it: {})",
                        t.id,
                        if done.is_empty() {
                            "nothing".into()
                        } else {
                            done.join(", ")
                        }
                    ));
                }
                done.push(c.to_string());
            }
            lines.push(format!("{}: {}", t.id, done.join(", ")));
        }
        Ok(outcome(o.dry_run, lines, refused))
    }

    async fn ec2_instance(
        &self,
        o: &RemediationOptions,
        report: &Report,
    ) -> Result<StepOutcome, String> {
        let targets = match self.selected(o, report, &instance_type())? {
            Ok(t) => t,
            Err(guarded) => return Ok(guarded),
        };
        let mut refused = Vec::new();
        let mut lines = Vec::new();
        for t in targets {
            if let Some(why) = target_refusal(o, &t, true) {
                refused.push(why);
                continue;
            }
            let ec2 = self.ec2(t.region.as_deref())?;
            let Some(i) = ec2.instance(&t.id).await? else {
                lines.push(format!("{}: no such instance; nothing to do", t.id));
                continue;
            };
            if let Some(tag) = protected_by_tag(o, &i.tags) {
                refused.push(format!("{} is protected by its tag {tag}", t.id));
                continue;
            }
            let description = format!("deepalert report {} ({})", report.id, t.id);
            lines.push(ec2.remediate(o, &i, &description).await?);
        }
        Ok(outcome(o.dry_run, lines, refused))
    }

    async fn exec(
        &self,
        o: &RemediationOptions,
        report: &Report,
        flow: &FlowConfig,
    ) -> Result<StepOutcome, String> {
        if !self.allow_exec {
            return Err("exec runs programs under `deepalert serve` only".into());
        }
        let command = o.command.as_deref().ok_or("exec needs command")?;
        let ids: Vec<String> = match &o.target_type {
            Some(t) => {
                let t: AttrType = t.parse().map_err(|e| format!("target_type: {e}"))?;
                let targets = match self.selected(o, report, &t)? {
                    Ok(t) => t,
                    Err(guarded) => return Ok(guarded),
                };
                let mut refused = Vec::new();
                let mut ids = Vec::new();
                for t in targets {
                    match target_refusal(o, &t, true) {
                        Some(why) => refused.push(why),
                        None => ids.push(t.id),
                    }
                }
                if ids.is_empty() {
                    return Ok(StepOutcome::Guarded(refused.join("; ")));
                }
                ids
            }
            None => vec![],
        };
        let path = crate::inspectors::resolve(&self.base_dir, std::path::Path::new(command));
        // The program runs in base_dir: a relative path would be read from there again.
        let path = std::path::absolute(&path).unwrap_or(path);
        let shown = std::iter::once(path.display().to_string())
            .chain(o.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        if o.dry_run {
            return Ok(StepOutcome::DryRun(format!(
                "would run {shown}{}",
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", ids.join(", "))
                }
            )));
        }
        let timeout = o
            .timeout
            .as_deref()
            .map(humantime::parse_duration)
            .transpose()
            .map_err(|e| format!("timeout: {e}"))?
            .unwrap_or(Duration::from_secs(60));
        exec::run(
            &self.base_dir,
            &path,
            &o.args,
            timeout,
            report,
            &flow.name,
            &ids,
        )
        .await
        .map(StepOutcome::Done)
    }

    /// The targets, or the guard that refuses the step as a whole (none found, too many).
    fn selected(
        &self,
        o: &RemediationOptions,
        report: &Report,
        t: &AttrType,
    ) -> Result<Result<Vec<Target>, StepOutcome>, String> {
        let found = targets(
            report,
            t,
            o.target_key.as_deref(),
            o.target_context.as_deref(),
        );
        if found.is_empty() {
            return Ok(Err(StepOutcome::Guarded(format!(
                "no target: the report has no {t} attribute{}",
                match (&o.target_key, &o.target_context) {
                    (Some(k), _) => format!(" with key {k:?}"),
                    (None, Some(c)) => format!(" with context {c}"),
                    (None, None) =>
                        " with context object (set target_key or target_context to choose others)"
                            .into(),
                }
            ))));
        }
        if found.len() > o.max_targets {
            return Ok(Err(StepOutcome::Guarded(format!(
                "{} targets ({}), more than max_targets = {}: nothing done",
                found.len(),
                found
                    .iter()
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                o.max_targets
            ))));
        }
        Ok(Ok(found))
    }
}

fn outcome(dry_run: bool, lines: Vec<String>, refused: Vec<String>) -> StepOutcome {
    if lines.is_empty() {
        return StepOutcome::Guarded(refused.join("; "));
    }
    let mut text = lines.join("; ");
    if !refused.is_empty() {
        text.push_str(&format!("; refused by a guard: {}", refused.join("; ")));
    }
    if dry_run {
        StepOutcome::DryRun(text)
    } else {
        StepOutcome::Done(text)
    }
}

#[async_trait]
impl StepRunner for Responder {
    async fn notify(
        &self,
        notifier: &str,
        template: Option<&str>,
        report: &Report,
    ) -> Result<String, String> {
        if let Some(n) = self.notifiers.get(notifier) {
            let template = template.or(n.template());
            let message = template
                .map(|t| crate::templates::render(t, report, n.link(report).as_deref()))
                .transpose()?;
            n.send(report, message.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            return Ok(match message {
                Some(m) => format!(
                    "sent to {notifier}: {}",
                    m.chars().take(200).collect::<String>()
                ),
                None => format!("sent to {notifier}"),
            });
        }
        if let Some(e) = self.emitters.get(notifier) {
            e.emit(report).await.map_err(|e| e.to_string())?;
            return Ok(format!("sent to {notifier}"));
        }
        Err(format!("no notifier or emitter {notifier:?}"))
    }

    async fn check(
        &self,
        check: &str,
        options: &Value,
        report: &Report,
    ) -> Result<(bool, String), String> {
        let o: CheckOptions = serde_json::from_value(options.clone())
            .map_err(|e| format!("options of {check}: {e}"))?;
        let (key, ctx) = (o.target_key.as_deref(), o.target_context.as_deref());
        let none = |what: &str| format!("no target: the report has no {what} attribute to check");
        match check {
            "iam-user-exists" | "access-key-active" => {
                let found = targets(report, &AttrType::Username, key, ctx);
                if found.is_empty() {
                    return Err(none("username"));
                }
                let iam = self.iam()?;
                let mut yes = Vec::new();
                let mut no = Vec::new();
                for t in found {
                    let user = iam.user(&t.id).await?;
                    match (check, user) {
                        ("iam-user-exists", Some(_)) => yes.push(format!("{} exists", t.id)),
                        ("iam-user-exists", None) => no.push(format!("{} does not exist", t.id)),
                        (_, Some(u)) if !u.active_keys().is_empty() => yes.push(format!(
                            "{} has active key(s) {}",
                            t.id,
                            u.active_keys().join(", ")
                        )),
                        (_, Some(_)) => no.push(format!("{} has no active access key", t.id)),
                        (_, None) => no.push(format!("{} does not exist", t.id)),
                    }
                }
                Ok((
                    !yes.is_empty(),
                    yes.into_iter().chain(no).collect::<Vec<_>>().join("; "),
                ))
            }
            "instance-running" => {
                let found = targets(report, &instance_type(), key, ctx);
                if found.is_empty() {
                    return Err(none("instanceid"));
                }
                let mut running = false;
                let mut states = Vec::new();
                for t in found {
                    match self.ec2(t.region.as_deref())?.instance(&t.id).await? {
                        Some(i) => {
                            running |= i.is_running();
                            states.push(format!("{} is {}", t.id, i.state));
                        }
                        None => states.push(format!("{} does not exist", t.id)),
                    }
                }
                Ok((running, states.join("; ")))
            }
            "rego" => {
                let source = self.policy_source(&o)?;
                let policy = self
                    .policies
                    .get(&source)
                    .ok_or("the rego check was not prepared at start-up")?;
                let input = json!({"report": report, "aws": self.lookups(report, &o).await?});
                let rule = o.rule.as_deref().unwrap_or(DEFAULT_CHECK_RULE);
                match policy.eval(rule, &input).map_err(|e| e.to_string())? {
                    None => Err(format!("{rule} is undefined for this report")),
                    Some(Value::Bool(b)) => Ok((b, format!("{rule} = {b}"))),
                    Some(Value::Object(m)) => match (m.get("result"), m.get("reason")) {
                        (Some(Value::Bool(b)), reason) => {
                            Ok((*b, reason.and_then(Value::as_str).unwrap_or("").to_string()))
                        }
                        _ => Err(format!(
                            "{rule} must be a boolean or {{\"result\": bool, \"reason\": string}}, not {}",
                            Value::Object(m)
                        )),
                    },
                    Some(other) => Err(format!(
                        "{rule} must be a boolean or {{\"result\": bool, \"reason\": string}}, not {other}"
                    )),
                }
            }
            other => Err(format!(
                "no check {other:?} (checks: {})",
                CHECKS.join(", ")
            )),
        }
    }

    async fn remediate(
        &self,
        action: &str,
        options: &Value,
        report: &Report,
        flow: &FlowConfig,
    ) -> Result<StepOutcome, String> {
        let o = RemediationOptions::parse(action, options)?;
        if let Err(why) = severity_gate(&o, report, flow) {
            return Ok(StepOutcome::Guarded(why));
        }
        match action {
            "iam-user" => self.iam_user(&o, report).await,
            "ec2-instance" => self.ec2_instance(&o, report).await,
            "exec" => self.exec(&o, report, flow).await,
            other => Err(format!(
                "no remediation {other:?} (remediations: {})",
                REMEDIATIONS.join(", ")
            )),
        }
    }
}
