//! `deepalert serve` configuration (TOML). Every field has a default suited to trying
//! deepalert on a laptop; see the README's configuration reference.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deepalert_core::services::PipelineSettings;
use deepalert_core::{AttrType, SectionFormat};
use serde::Deserialize;

use deepalert_core::flows::{FlowConfig, FlowSet, StepConfig};
use deepalert_core::ports::{EmitterPlugin, InspectorPlugin, PluginState, Reviewer};
use deepalert_core::rules::RuleSet;
use deepalert_plugins::emitters::{Notifier, OnChange};
use deepalert_plugins::responses::{self, Responder};
use deepalert_plugins::rules::{FindingsConfig, RuleConfig};
use deepalert_plugins::{BuiltinError, PolicyReviewer, SecretSource, builtin};

use crate::plugins::exec::{ExecCommand, ExecEmitter, ExecInspector, ExecReviewer};
use crate::plugins::{EmitterEntry, Flows, InspectorEntry, NoReviewer, Plugins};
use crate::runtime::RuntimeSettings;
use crate::store::Durability;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "deepalert-data";
pub const DEFAULT_API_KEY_ENV: &str = "DEEPALERT_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Relative to the configuration file's directory.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Name of the environment variable holding the API key.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    #[serde(default)]
    pub durability: Durability,
    /// Published reports (with their alerts, findings, notes…) older than this are
    /// deleted; zero keeps everything.
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default, rename = "inspector")]
    pub inspectors: Vec<PluginConfig>,
    #[serde(default)]
    pub reviewer: Option<PluginConfig>,
    #[serde(default, rename = "emitter")]
    pub emitters: Vec<PluginConfig>,
    /// Rules that turn cloud events (`POST /api/v1/events`) into alerts.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// The GuardDuty and Security Hub mappings (both on by default).
    #[serde(default)]
    pub findings: FindingsConfig,
    /// Built-in notifiers that only flows send to (`notify` steps).
    #[serde(default, rename = "notifier")]
    pub notifiers: Vec<PluginConfig>,
    /// Response flows: notify, wait, check, remediate.
    #[serde(default, rename = "flow")]
    pub flows: Vec<FlowConfig>,
    /// Directory relative paths are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(with = "humantime_serde")]
    pub inspection_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub review_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub aggregation_window: Duration,
    pub max_attribute_depth: u32,
    pub max_attributes_per_report: u32,
    pub max_concurrent_jobs: usize,
    pub max_concurrent_plugins: usize,
    pub max_job_attempts: u32,
    /// Emitters also get reports as alerts arrive (`new`/`more`), as DeepAlert did.
    pub publish_unreviewed: bool,
    /// Sections handed to exec emitters: `grouped` (ours and DeepAlert's fork) or
    /// `flat` (the original DeepAlert's list).
    pub report_sections: SectionFormat,
    /// Bytes read at most from an exec plug-in's stdout; more kills it (noted).
    pub max_plugin_output: usize,
    /// Findings kept from one inspector answer; more are dropped (noted).
    pub max_findings_per_answer: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let p = PipelineSettings::default();
        let r = RuntimeSettings::default();
        PipelineConfig {
            inspection_delay: r.inspection_delay,
            review_delay: r.review_delay,
            aggregation_window: p.aggregation_window.to_std().unwrap_or_default(),
            max_attribute_depth: p.max_attribute_depth,
            max_attributes_per_report: p.max_attributes_per_report,
            max_concurrent_jobs: r.max_concurrent_jobs,
            max_concurrent_plugins: r.max_concurrent_plugins,
            max_job_attempts: r.max_job_attempts,
            publish_unreviewed: r.publish_unreviewed,
            report_sections: SectionFormat::default(),
            max_plugin_output: crate::plugins::exec::DEFAULT_MAX_OUTPUT,
            max_findings_per_answer: p.max_findings_per_answer,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Required for inspectors and emitters: it is the `author` of their findings.
    #[serde(default)]
    pub name: Option<String>,
    /// Program and arguments, run directly (no shell).
    #[serde(default)]
    pub command: Vec<String>,
    /// Reviewer only, instead of `command`: a directory of Rego policies (relative to
    /// the configuration file).
    #[serde(default)]
    pub policies: Option<PathBuf>,
    /// Inspectors and emitters, instead of `command`: a built-in plug-in by name.
    #[serde(default)]
    pub builtin: Option<String>,
    /// Options of the built-in plug-in.
    #[serde(default)]
    pub options: Option<toml::Table>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Inspectors only: attribute types to receive (all if absent).
    #[serde(default)]
    pub attribute_types: Option<Vec<AttrType>>,
    /// Emitters only: tries per publication before giving up.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}

fn default_api_key_env() -> String {
    DEFAULT_API_KEY_ENV.to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            data_dir: None,
            api_key_env: default_api_key_env(),
            durability: Durability::default(),
            retention: default_retention(),
            pipeline: PipelineConfig::default(),
            inspectors: vec![],
            reviewer: None,
            emitters: vec![],
            rules: vec![],
            findings: FindingsConfig::default(),
            notifiers: vec![],
            flows: vec![],
            base_dir: PathBuf::from("."),
        }
    }
}

fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(config)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message: message.to_string(),
        };
        let mut notify_names = HashSet::new();
        for (section, list) in [
            ("inspector", &self.inspectors),
            ("emitter", &self.emitters),
            ("notifier", &self.notifiers),
        ] {
            let mut names = HashSet::new();
            for (i, p) in list.iter().enumerate() {
                let name = p.name.as_deref().unwrap_or("");
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !valid {
                    return Err(invalid(
                        format!("{section}[{i}].name"),
                        "is required: letters, digits, '-', '_' or '.'",
                    ));
                }
                if !names.insert(name) {
                    return Err(invalid(
                        format!("{section}[{i}].name"),
                        &format!("{name:?} is used twice"),
                    ));
                }
                // Flows' notify steps name emitters and notifiers alike.
                if section != "inspector" && !notify_names.insert(name) {
                    return Err(invalid(
                        format!("{section}[{i}].name"),
                        &format!("{name:?} is already the name of an emitter"),
                    ));
                }
            }
        }
        for (i, n) in self.notifiers.iter().enumerate() {
            if !n.command.is_empty() || n.policies.is_some() {
                return Err(invalid(
                    format!("notifier[{i}]"),
                    "a notifier is a built-in (builtin and options); programs are emitters",
                ));
            }
            match n.builtin.as_deref() {
                Some(k) if builtin::NOTIFIERS.contains(&k) => {}
                Some(k) => {
                    return Err(invalid(
                        format!("notifier[{i}].builtin"),
                        &format!(
                            "{k:?} is not a notifier (notifiers: {})",
                            builtin::NOTIFIERS.join(", ")
                        ),
                    ));
                }
                None => {
                    return Err(invalid(
                        format!("notifier[{i}].builtin"),
                        &format!("is required: one of {}", builtin::NOTIFIERS.join(", ")),
                    ));
                }
            }
        }
        for (i, p) in self.inspectors.iter().enumerate() {
            // A filter on a type no attribute has is a typo that would silently never
            // match; alerts may carry other types, but filters name the known ones.
            for t in p.attribute_types.iter().flatten() {
                if let Err(e) = t.as_str().parse::<AttrType>() {
                    return Err(invalid(format!("inspector[{i}].attribute_types"), &e));
                }
            }
        }
        let all = self
            .inspectors
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("inspector[{i}]"), p))
            .chain(self.reviewer.iter().map(|p| ("reviewer".to_string(), p)))
            .chain(
                self.emitters
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("emitter[{i}]"), p)),
            );
        for (field, p) in all {
            let is_reviewer = field == "reviewer";
            if p.policies.is_some() && !is_reviewer {
                return Err(invalid(
                    format!("{field}.policies"),
                    "only a reviewer can be a policy directory",
                ));
            }
            if is_reviewer && p.builtin.is_some() {
                return Err(invalid(
                    format!("{field}.builtin"),
                    "a reviewer is a command or policies",
                ));
            }
            if p.options.is_some() && p.builtin.is_none() {
                return Err(invalid(
                    format!("{field}.options"),
                    "options are for a builtin plug-in",
                ));
            }
            let has_command = p.command.first().is_some_and(|c| !c.is_empty());
            if has_command && p.builtin.is_some() {
                return Err(invalid(field, "set command or builtin, not both"));
            }
            let has_command = has_command || p.builtin.is_some();
            match (has_command, is_reviewer && p.policies.is_some()) {
                (true, true) => {
                    return Err(invalid(field, "set command or policies, not both"));
                }
                (false, false) if is_reviewer => {
                    return Err(invalid(
                        field,
                        "needs command (a program) or policies (a directory of .rego files)",
                    ));
                }
                (false, false) => {
                    return Err(invalid(
                        format!("{field}.command"),
                        "must name a program (or set builtin)",
                    ));
                }
                _ => {}
            }
            if p.timeout.is_zero() {
                return Err(invalid(
                    format!("{field}.timeout"),
                    "must be more than zero",
                ));
            }
        }
        for (field, value) in [
            (
                "pipeline.max_concurrent_jobs",
                self.pipeline.max_concurrent_jobs,
            ),
            (
                "pipeline.max_concurrent_plugins",
                self.pipeline.max_concurrent_plugins,
            ),
            (
                "pipeline.max_plugin_output",
                self.pipeline.max_plugin_output,
            ),
            (
                "pipeline.max_findings_per_answer",
                self.pipeline.max_findings_per_answer,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field.into(), "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `--data` wins; then `data_dir` (relative to this file); then `./deepalert-data`.
    pub fn data_dir(&self) -> PathBuf {
        match &self.data_dir {
            Some(d) if d.is_relative() => self.base_dir.join(d),
            Some(d) => d.clone(),
            None => PathBuf::from(DEFAULT_DATA_DIR),
        }
    }

    pub fn pipeline_settings(&self) -> PipelineSettings {
        PipelineSettings {
            aggregation_window: chrono::Duration::from_std(self.pipeline.aggregation_window)
                .unwrap_or(chrono::Duration::MAX),
            max_attribute_depth: self.pipeline.max_attribute_depth,
            max_attributes_per_report: self.pipeline.max_attributes_per_report,
            max_findings_per_answer: self.pipeline.max_findings_per_answer,
        }
    }

    pub fn runtime_settings(&self) -> RuntimeSettings {
        RuntimeSettings {
            inspection_delay: self.pipeline.inspection_delay,
            review_delay: self.pipeline.review_delay,
            max_concurrent_jobs: self.pipeline.max_concurrent_jobs,
            max_concurrent_plugins: self.pipeline.max_concurrent_plugins,
            max_job_attempts: self.pipeline.max_job_attempts,
            publish_unreviewed: self.pipeline.publish_unreviewed,
            report_retention: (!self.retention.is_zero()).then_some(self.retention),
            ..RuntimeSettings::default()
        }
    }

    /// Exec plug-ins run in the configuration file's directory; a relative program path
    /// with a `/` (like `./inspector.py`) is resolved there too, a bare name via `PATH`.
    /// Policies, lists and built-ins are loaded (and checked) here, so a broken one stops
    /// start-up. `state` is where built-in emitters remember what they sent; `secret`
    /// looks up the secrets their options name.
    pub async fn plugins(
        &self,
        state: Arc<dyn PluginState>,
        secret: &dyn SecretSource,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Plugins, ConfigError> {
        let ctx = builtin::Context {
            base_dir: &self.base_dir,
            secret,
            aws,
        };
        let options_json = |p: &PluginConfig| -> serde_json::Value {
            p.options
                .as_ref()
                .map(|t| serde_json::to_value(t).expect("TOML converts to JSON"))
                .unwrap_or(serde_json::Value::Object(Default::default()))
        };
        let builtin_error = |field: String, e: BuiltinError| ConfigError::Invalid {
            path: self.base_dir.clone(),
            field,
            message: e.to_string(),
        };
        let mut inspectors = Vec::new();
        for (i, p) in self.inspectors.iter().enumerate() {
            let plugin: Arc<dyn InspectorPlugin> = match &p.builtin {
                Some(kind) => builtin::inspector(kind, options_json(p), &ctx)
                    .await
                    .map_err(|e| builtin_error(format!("inspector[{i}]"), e))?,
                None => Arc::new(ExecInspector(self.exec(p))),
            };
            inspectors.push(InspectorEntry {
                name: p.name.clone().unwrap_or_default(),
                attribute_types: p
                    .attribute_types
                    .as_ref()
                    .map(|t| t.iter().cloned().collect::<BTreeSet<_>>()),
                plugin,
            });
        }
        let mut emitters = Vec::new();
        for (i, p) in self.emitters.iter().enumerate() {
            let name = p.name.clone().unwrap_or_default();
            let plugin: Arc<dyn EmitterPlugin> = match &p.builtin {
                Some(kind) => builtin::emitter(&name, kind, options_json(p), &ctx, state.clone())
                    .await
                    .map_err(|e| builtin_error(format!("emitter[{i}]"), e))?,
                // Sent on change, as the built-ins: a report published again with
                // nothing new is not handed to the program again.
                None => Arc::new(OnChange::any_status(
                    &name,
                    Arc::new(ExecEmitter {
                        command: self.exec(p),
                        sections: self.pipeline.report_sections,
                    }),
                    state.clone(),
                )),
            };
            emitters.push(EmitterEntry {
                name,
                max_attempts: p.max_attempts.unwrap_or(5),
                plugin,
            });
        }
        let reviewer: Arc<dyn Reviewer> = match &self.reviewer {
            Some(PluginConfig {
                policies: Some(dir),
                ..
            }) => {
                let dir = self.base_dir.join(dir);
                let reviewer = PolicyReviewer::load(&dir).map_err(|e| ConfigError::Invalid {
                    path: dir.clone(),
                    field: "reviewer.policies".into(),
                    message: e.to_string(),
                })?;
                Arc::new(reviewer)
            }
            Some(p) => Arc::new(ExecReviewer(self.exec(p))),
            None => Arc::new(NoReviewer),
        };
        let flows = self.flows(&emitters, &options_json, &ctx, aws).await?;
        Ok(Plugins {
            inspectors,
            reviewer,
            emitters,
            flows,
        })
    }

    /// The flows, checked against the notifiers, checks and remediations there are, with
    /// the responder that runs their steps.
    async fn flows(
        &self,
        emitters: &[EmitterEntry],
        options_json: &dyn Fn(&PluginConfig) -> serde_json::Value,
        ctx: &builtin::Context<'_>,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Option<Flows>, ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: self.base_dir.clone(),
            field,
            message,
        };
        let all_flows = self
            .all_flows()
            .map_err(|e| invalid("flow".into(), e.to_string()))?;
        if all_flows.is_empty() && self.notifiers.is_empty() {
            return Ok(None);
        }
        let mut notifiers: HashMap<String, Arc<dyn Notifier>> = HashMap::new();
        let mut plain: HashMap<String, Arc<dyn EmitterPlugin>> = HashMap::new();
        for (i, n) in self.notifiers.iter().enumerate() {
            let kind = n.builtin.as_deref().unwrap_or_default();
            let made = builtin::notifier(kind, options_json(n), ctx)
                .await
                .map_err(|e| invalid(format!("notifier[{i}]"), e.to_string()))?;
            notifiers.insert(n.name.clone().unwrap_or_default(), made);
        }
        for (p, entry) in self.emitters.iter().zip(emitters) {
            match p.builtin.as_deref() {
                // The same options, as a notifier: a step's message goes with it.
                Some(k) if builtin::NOTIFIERS.contains(&k) => {
                    let made = builtin::notifier(k, options_json(p), ctx)
                        .await
                        .map_err(|e| invalid(format!("emitter {}", entry.name), e.to_string()))?;
                    notifiers.insert(entry.name.clone(), made);
                }
                _ => {
                    plain.insert(entry.name.clone(), entry.plugin.clone());
                }
            }
        }
        if all_flows.is_empty() {
            // Built (and so checked) all the same: a broken notifier is found now.
            return Ok(None);
        }
        let mut responder =
            Responder::new(notifiers, plain, aws.cloned(), self.base_dir.clone(), true);
        let set = FlowSet::new(
            all_flows,
            &responder.notify_targets(),
            responses::CHECKS,
            responses::REMEDIATIONS,
        )
        .map_err(|e| invalid("flow".into(), e.to_string()))?;
        responder
            .prepare(&set)
            .map_err(|e| invalid("flow".into(), e.to_string()))?;
        Ok(Some(Flows {
            set,
            runner: Arc::new(responder),
        }))
    }

    /// The rules, loaded and checked: a bad preset or option, or a Rego rule with a syntax
    /// error, stops start-up naming it (and the file and line).
    pub fn rule_set(&self) -> Result<RuleSet, ConfigError> {
        use deepalert_plugins::rules::{Policies, rule_set};
        rule_set(&self.rules, &self.findings, Policies::Files(&self.base_dir)).map_err(|message| {
            ConfigError::Invalid {
                path: self.base_dir.clone(),
                field: "rule".into(),
                message,
            }
        })
    }

    /// Whether a built-in needs the AWS SDK configuration (the binary loads it once).
    pub fn needs_aws(&self) -> bool {
        fn step_needs_aws(s: &StepConfig) -> bool {
            let lookups = s
                .options
                .as_ref()
                .is_some_and(|o| o.get("lookup").is_some());
            s.check.as_deref().is_some_and(|c| c != "rego" || lookups)
                || s.remediate.as_deref().is_some_and(|r| r != "exec")
                || s.sequential
                    .iter()
                    .chain(&s.parallel)
                    .flatten()
                    .any(step_needs_aws)
        }
        let sns_email = |p: &PluginConfig| {
            p.builtin.as_deref() == Some("email")
                && p.options
                    .as_ref()
                    .is_some_and(|o| o.contains_key("sns_topic_arn"))
        };
        self.inspectors
            .iter()
            .chain(&self.emitters)
            .filter_map(|p| p.builtin.as_deref())
            .any(|b| builtin::NEEDS_AWS.contains(&b))
            || self.emitters.iter().chain(&self.notifiers).any(sns_email)
            || self
                .all_flows()
                .unwrap_or_else(|_| self.flows.clone())
                .iter()
                .flat_map(|f| &f.steps)
                .any(step_needs_aws)
    }

    /// The `[[flow]]`s with the default flows of the preset rules that name a notifier
    /// (`notify`), a `[[flow]]` of the same name replacing a default.
    pub fn all_flows(&self) -> Result<Vec<FlowConfig>, deepalert_core::flows::FlowError> {
        let presets: Vec<(String, String)> = self
            .rules
            .iter()
            .filter(|r| r.enabled)
            .filter_map(|r| Some((r.preset.clone()?, r.notify.clone()?)))
            .collect();
        deepalert_core::flows::with_preset_flows(&self.flows, &presets)
    }

    fn exec(&self, p: &PluginConfig) -> ExecCommand {
        let program = PathBuf::from(&p.command[0]);
        let program = if program.is_relative() && p.command[0].contains('/') {
            self.base_dir.join(program)
        } else {
            program
        };
        ExecCommand {
            program,
            args: p.command[1..].to_vec(),
            env: p.env.clone(),
            cwd: Some(self.base_dir.clone()),
            timeout: p.timeout,
            max_output: self.pipeline.max_plugin_output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoState;

    #[async_trait::async_trait]
    impl PluginState for NoState {
        async fn get(&self, _: &str) -> deepalert_core::ports::PortResult<Option<String>> {
            Ok(None)
        }
        async fn put(&self, _: &str, _: &str) -> deepalert_core::ports::PortResult<()> {
            Ok(())
        }
    }

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.pipeline.review_delay, Duration::from_secs(5));
        assert!(c.inspectors.is_empty() && c.reviewer.is_none());
    }

    #[tokio::test]
    async fn full_file() {
        let c = parse(
            r#"
            listen = "127.0.0.1:9000"
            data_dir = "/var/lib/deepalert"
            [pipeline]
            inspection_delay = "0s"
            review_delay = "1m"
            aggregation_window = "1h"
            max_attribute_depth = 2
            max_attributes_per_report = 10
            max_concurrent_jobs = 4
            max_concurrent_plugins = 2
            max_job_attempts = 3
            [[inspector]]
            name = "intel"
            command = ["python3", "intel.py"]
            attribute_types = ["ipaddr", "domain"]
            timeout = "5s"
            env = { TOKEN_FILE = "/etc/t" }
            [reviewer]
            command = ["./review"]
            [[emitter]]
            name = "slack"
            command = ["slack-emit"]
            max_attempts = 2
            "#,
        )
        .unwrap();
        assert_eq!(c.pipeline.review_delay, Duration::from_secs(60));
        assert_eq!(c.pipeline_settings().max_attribute_depth, 2);
        assert_eq!(c.inspectors[0].attribute_types.as_ref().unwrap().len(), 2);
        let secrets = deepalert_plugins::Secrets::new(|_| None, None);
        let p = c.plugins(Arc::new(NoState), &secrets, None).await.unwrap();
        assert_eq!(p.inspectors[0].name, "intel");
        assert!(p.inspectors[0].wants(&AttrType::Domain));
        assert!(!p.inspectors[0].wants(&AttrType::Username));
        assert_eq!(p.emitters[0].max_attempts, 2);
    }

    #[derive(Default)]
    struct MemoryState(std::sync::Mutex<HashMap<String, String>>);

    #[async_trait::async_trait]
    impl PluginState for MemoryState {
        async fn get(&self, k: &str) -> deepalert_core::ports::PortResult<Option<String>> {
            Ok(self.0.lock().unwrap().get(k).cloned())
        }
        async fn put(&self, k: &str, v: &str) -> deepalert_core::ports::PortResult<()> {
            self.0.lock().unwrap().insert(k.into(), v.into());
            Ok(())
        }
    }

    #[tokio::test]
    async fn exec_emitters_are_sent_on_change_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::parse(
            "[[emitter]]\nname = \"log\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> sent.jsonl; echo >> sent.jsonl\"]\n",
            &dir.path().join("deepalert.toml"),
        )
        .unwrap();
        c.base_dir = dir.path().to_path_buf();
        let secrets = deepalert_plugins::Secrets::new(|_| None, None);
        let p = c
            .plugins(Arc::new(MemoryState::default()), &secrets, None)
            .await
            .unwrap();
        let emitter = &p.emitters[0].plugin;
        use deepalert_core::{Report, ReportStatus};
        let mut report: Report = serde_json::from_value(serde_json::json!({
            "id": "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11", "alerts": [],
            "status": "new", "created_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let sent = || {
            std::fs::read_to_string(dir.path().join("sent.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.is_empty())
                .count()
        };
        // Unreviewed reports still reach exec emitters (publish_unreviewed).
        emitter.emit(&report).await.unwrap();
        emitter.emit(&report).await.unwrap();
        assert_eq!(sent(), 1, "the same report twice is sent once");
        report.status = ReportStatus::Published;
        report.publications = 1;
        emitter.emit(&report).await.unwrap();
        report.publications = 2;
        emitter.emit(&report).await.unwrap();
        assert_eq!(
            sent(),
            2,
            "published once; re-published unchanged is not sent"
        );
        report.result = Some(deepalert_core::ReviewResult {
            severity: deepalert_core::Severity::Urgent,
            reason: "new verdict".into(),
        });
        emitter.emit(&report).await.unwrap();
        assert_eq!(sent(), 3);
    }

    #[test]
    fn retention_defaults_to_30_days_and_zero_keeps_forever() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(
            parse("").unwrap().runtime_settings().report_retention,
            Some(day * 30)
        );
        assert_eq!(
            parse("retention = \"7d\"")
                .unwrap()
                .runtime_settings()
                .report_retention,
            Some(day * 7)
        );
        assert_eq!(
            parse("retention = \"0s\"")
                .unwrap()
                .runtime_settings()
                .report_retention,
            None
        );
        assert_eq!(
            parse("retention = \"0\"")
                .unwrap()
                .runtime_settings()
                .report_retention,
            None
        );
        let err = parse("retention = \"a month\"").unwrap_err().to_string();
        assert!(err.contains("retention"), "{err}");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("bogus = 1", "bogus"),
            ("[pipeline]\nreview_delay = \"soon\"", "review_delay"),
            ("[[inspector]]\ncommand = [\"x\"]", "inspector[0].name"),
            (
                "[[inspector]]\nname = \"a\"\ncommand = []",
                "inspector[0].command",
            ),
            (
                "[[emitter]]\nname = \"a\"\ncommand = [\"x\"]\n[[emitter]]\nname = \"a\"\ncommand = [\"y\"]",
                "emitter[1].name",
            ),
            (
                "[[inspector]]\nname = \"a\"\ncommand = [\"x\"]\nattribute_types = [\"ip\"]",
                "ip",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?} gave {err}");
        }
    }
}
