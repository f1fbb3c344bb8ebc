//! Built-in plug-ins by name, from their options (a JSON object; TOML tables convert).

use std::path::Path;
use std::sync::Arc;

use deepalert_core::ports::{EmitterPlugin, InspectorPlugin, PluginState};
use serde::de::DeserializeOwned;

use crate::BuiltinError;
use crate::emitters::{self, AsEmitter, Notifier, OnChange};
#[cfg(feature = "aws")]
use crate::inspectors::aws_context;
use crate::inspectors::reputation::{ApiKey, CommonOptions};
use crate::inspectors::{abuseipdb, inventory, threat_list, virustotal};
use crate::secrets::SecretSource;

pub const INSPECTORS: &[&str] = &[
    "threat-list",
    "inventory",
    "virustotal",
    "abuseipdb",
    "aws-context",
];

/// Built-ins that call AWS: the caller loads the SDK configuration for them.
pub const NEEDS_AWS: &[&str] = &["aws-context"];
pub const EMITTERS: &[&str] = &[
    "slack",
    "discord",
    "google-chat",
    "email",
    "pagerduty",
    "github",
    "webhook",
    "jsonl",
];

/// Built-ins a flow's `notify` step can send through with a message (`[[notifier]]`).
pub const NOTIFIERS: &[&str] = &[
    "slack",
    "discord",
    "google-chat",
    "email",
    "webhook",
    "jsonl",
];

pub struct Context<'a> {
    /// Relative paths in options are resolved here (the configuration file's directory).
    pub base_dir: &'a Path,
    /// Looks up the secrets the options name (`*_env`): see [`crate::secrets`].
    pub secret: &'a dyn SecretSource,
    /// AWS SDK configuration, loaded by the caller when a built-in in [`NEEDS_AWS`] is used.
    pub aws: Option<&'a aws_config::SdkConfig>,
}

fn options<T: DeserializeOwned>(kind: &str, value: serde_json::Value) -> Result<T, BuiltinError> {
    serde_json::from_value(value).map_err(|e| BuiltinError::new(format!("options of {kind}: {e}")))
}

/// Whether `kind` names a built-in inspector, a built-in emitter, or neither.
pub fn is_inspector(kind: &str) -> bool {
    INSPECTORS.contains(&kind)
}

pub fn is_emitter(kind: &str) -> bool {
    EMITTERS.contains(&kind)
}

pub async fn inspector(
    kind: &str,
    value: serde_json::Value,
    ctx: &Context<'_>,
) -> Result<Arc<dyn InspectorPlugin>, BuiltinError> {
    Ok(match kind {
        "threat-list" => Arc::new(threat_list::ThreatListInspector::new(
            &options(kind, value)?,
            ctx.base_dir,
        )?),
        "inventory" => Arc::new(inventory::InventoryInspector::new(
            &options(kind, value)?,
            ctx.base_dir,
        )?),
        "virustotal" => {
            let o: CommonOptions = options(kind, value)?;
            let key = ApiKey::new(ctx.secret.secret(&o.api_key_env).await?);
            Arc::new(virustotal::VirusTotal::new(&o, key))
        }
        #[cfg(not(feature = "aws"))]
        "aws-context" => {
            return Err(BuiltinError::new(format!(
                "aws-context: {}",
                crate::BUILT_WITHOUT_AWS
            )));
        }
        #[cfg(feature = "aws")]
        "aws-context" => {
            let sdk = ctx
                .aws
                .ok_or_else(|| BuiltinError::new("aws-context needs the AWS SDK configuration"))?;
            Arc::new(aws_context::AwsContext::new(sdk, options(kind, value)?))
        }
        "abuseipdb" => {
            let o: CommonOptions = options(kind, value)?;
            let key = ApiKey::new(ctx.secret.secret(&o.api_key_env).await?);
            Arc::new(abuseipdb::AbuseIpDb::new(&o, key))
        }
        other => {
            return Err(BuiltinError::new(format!(
                "no built-in inspector {other:?} (built-ins: {})",
                INSPECTORS.join(", ")
            )));
        }
    })
}

fn check_template(template: &Option<String>) -> Result<(), BuiltinError> {
    match template {
        Some(t) => crate::templates::check(t).map_err(BuiltinError::new),
        None => Ok(()),
    }
}

/// A notifier (it sends every time it is asked, with a message): for flows' `notify`
/// steps, and, wrapped, as the emitters of the same kinds.
pub async fn notifier(
    kind: &str,
    value: serde_json::Value,
    ctx: &Context<'_>,
) -> Result<Arc<dyn Notifier>, BuiltinError> {
    Ok(match kind {
        "slack" => {
            let o: emitters::slack::Options = options(kind, value)?;
            check_template(&o.template)?;
            Arc::new(
                emitters::slack::Slack::new(
                    ctx.secret.secret(&o.webhook_url_env).await?,
                    o.link_base,
                )
                .with_template(o.template),
            )
        }
        "discord" => {
            let o: emitters::discord::Options = options(kind, value)?;
            check_template(&o.template)?;
            let url = ctx.secret.secret(&o.webhook_url_env).await?;
            Arc::new(emitters::discord::Discord::new(url, o))
        }
        "google-chat" => {
            let o: emitters::google_chat::Options = options(kind, value)?;
            check_template(&o.template)?;
            let url = ctx.secret.secret(&o.webhook_url_env).await?;
            Arc::new(emitters::google_chat::GoogleChat::new(url, o))
        }
        "email" => {
            let o: emitters::email::Options = options(kind, value)?;
            check_template(&o.template)?;
            let credentials = match (&o.username_env, &o.password_env) {
                (Some(u), Some(p)) => {
                    Some((ctx.secret.secret(u).await?, ctx.secret.secret(p).await?))
                }
                (None, None) => None,
                _ => {
                    return Err(BuiltinError::new(
                        "options of email: username_env and password_env go together",
                    ));
                }
            };
            let sns = o
                .sns_topic_arn
                .as_ref()
                .and(ctx.aws)
                .map(aws_sdk_sns::Client::new);
            Arc::new(
                emitters::email::Email::new(o, credentials, sns)
                    .map_err(|e| BuiltinError::new(format!("options of email: {e}")))?,
            )
        }
        "webhook" => {
            let o: emitters::webhook::Options = options(kind, value)?;
            Arc::new(emitters::webhook::Webhook::new(
                o.url.clone(),
                ctx.secret.secret(&o.secret_env).await?,
            ))
        }
        "jsonl" => {
            let o: emitters::jsonl::Options = options(kind, value)?;
            Arc::new(emitters::jsonl::JsonLines::new(crate::inspectors::resolve(
                ctx.base_dir,
                &o.path,
            )))
        }
        other => {
            return Err(BuiltinError::new(format!(
                "no built-in notifier {other:?} (notifiers: {})",
                NOTIFIERS.join(", ")
            )));
        }
    })
}

/// The emitter, sending on change only; `state` is where it remembers what it sent.
pub async fn emitter(
    name: &str,
    kind: &str,
    value: serde_json::Value,
    ctx: &Context<'_>,
    state: Arc<dyn PluginState>,
) -> Result<Arc<dyn EmitterPlugin>, BuiltinError> {
    let inner: Arc<dyn EmitterPlugin> = match kind {
        k if NOTIFIERS.contains(&k) => Arc::new(AsEmitter(notifier(k, value, ctx).await?)),
        "pagerduty" => {
            let o: emitters::pagerduty::Options = options(kind, value)?;
            let key = ctx.secret.secret(&o.routing_key_env).await?;
            Arc::new(emitters::pagerduty::PagerDuty::new(
                name,
                key,
                &o,
                state.clone(),
            ))
        }
        "github" => {
            let o: emitters::github::Options = options(kind, value)?;
            let token = ctx.secret.secret(&o.token_env).await?;
            Arc::new(emitters::github::GitHubIssues::new(
                name,
                token,
                o,
                state.clone(),
            ))
        }
        other => {
            return Err(BuiltinError::new(format!(
                "no built-in emitter {other:?} (built-ins: {})",
                EMITTERS.join(", ")
            )));
        }
    };
    Ok(Arc::new(OnChange::new(name, inner, state)))
}
