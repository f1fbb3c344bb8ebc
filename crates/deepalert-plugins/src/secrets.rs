//! Secrets the built-ins' options name (`api_key_env = "VT_API_KEY"`), found the same way
//! in `deepalert serve` and on Lambda. For a name `N`, exactly one of these is set:
//!
//! | environment variable | the secret is |
//! |---|---|
//! | `N` | its value (handy locally; on Lambda it would show in the console) |
//! | `N_SECRET_ARN` | the Secrets Manager secret (ARN or name); `…#field` takes one field of a JSON secret |
//! | `N_SSM_PARAMETER` | the SSM Parameter Store parameter (name or ARN; SecureString is decrypted) |
//!
//! Secret values are never logged and never part of an error message; names, ARNs and
//! parameter names are, so a misconfiguration says where to look.

use async_trait::async_trait;
use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::BuiltinError;

/// Suffix of the variable holding a Secrets Manager secret id.
pub const SECRET_ARN_SUFFIX: &str = "_SECRET_ARN";
/// Suffix of the variable holding an SSM parameter name.
pub const SSM_PARAMETER_SUFFIX: &str = "_SSM_PARAMETER";

/// Looks a secret up by the name the options give.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret(&self, name: &str) -> Result<String, BuiltinError>;
}

type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Environment variables, then Secrets Manager or SSM as they point to.
pub struct Secrets {
    env: EnvLookup,
    aws: OnceCell<SdkConfig>,
}

impl Secrets {
    /// The process environment; `aws`, when given, is used instead of loading the default
    /// SDK configuration on first need.
    pub fn from_env(aws: Option<SdkConfig>) -> Self {
        Secrets::new(|name| std::env::var(name).ok(), aws)
    }

    /// `env` stands for the process environment (tests); `aws`, when given, is used instead of
    /// loading the default SDK configuration on first need.
    pub fn new(
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        aws: Option<SdkConfig>,
    ) -> Self {
        Secrets {
            env: Box::new(env),
            aws: OnceCell::new_with(aws),
        }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.aws
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    async fn read_secrets_manager(
        &self,
        name: &str,
        var: &str,
        id: &str,
    ) -> Result<String, BuiltinError> {
        let (secret_id, field) = match id.split_once('#') {
            Some((id, field)) => (id, Some(field)),
            None => (id, None),
        };
        let client = aws_sdk_secretsmanager::Client::new(self.sdk().await);
        let got = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                BuiltinError::new(format!(
                    "secret {name}: reading {secret_id} from Secrets Manager ({var}): {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ))
            })?;
        let text = got.secret_string.ok_or_else(|| {
            BuiltinError::new(format!(
                "secret {name}: {secret_id} ({var}) has no SecretString (binary secrets are not supported)"
            ))
        })?;
        let Some(field) = field else {
            return Ok(text);
        };
        let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|_| {
                BuiltinError::new(format!(
                    "secret {name}: {secret_id} ({var}) is not a JSON object, so it has no field {field:?}"
                ))
            })?;
        match fields.get(field) {
            Some(serde_json::Value::String(v)) => Ok(v.clone()),
            Some(_) => Err(BuiltinError::new(format!(
                "secret {name}: field {field:?} of {secret_id} ({var}) is not a string"
            ))),
            None => Err(BuiltinError::new(format!(
                "secret {name}: {secret_id} ({var}) has no field {field:?}"
            ))),
        }
    }

    #[cfg(not(feature = "aws"))]
    async fn read_ssm(
        &self,
        name: &str,
        var: &str,
        _parameter: &str,
    ) -> Result<String, BuiltinError> {
        Err(BuiltinError::new(format!(
            "secret {name}: {var} names an SSM parameter: {}",
            crate::BUILT_WITHOUT_AWS
        )))
    }

    #[cfg(feature = "aws")]
    async fn read_ssm(
        &self,
        name: &str,
        var: &str,
        parameter: &str,
    ) -> Result<String, BuiltinError> {
        let client = aws_sdk_ssm::Client::new(self.sdk().await);
        let got = client
            .get_parameter()
            .name(parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                BuiltinError::new(format!(
                    "secret {name}: reading parameter {parameter} from SSM ({var}): {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                ))
            })?;
        got.parameter.and_then(|p| p.value).ok_or_else(|| {
            BuiltinError::new(format!(
                "secret {name}: parameter {parameter} ({var}) has no value"
            ))
        })
    }
}

#[async_trait]
impl SecretSource for Secrets {
    async fn secret(&self, name: &str) -> Result<String, BuiltinError> {
        let arn_var = format!("{name}{SECRET_ARN_SUFFIX}");
        let ssm_var = format!("{name}{SSM_PARAMETER_SUFFIX}");
        let plain = self.var(name);
        let arn = self.var(&arn_var);
        let ssm = self.var(&ssm_var);
        let value = match (plain, arn, ssm) {
            (Some(v), None, None) => v,
            (None, Some(id), None) => self.read_secrets_manager(name, &arn_var, &id).await?,
            (None, None, Some(p)) => self.read_ssm(name, &ssm_var, &p).await?,
            (None, None, None) => {
                return Err(BuiltinError::new(format!(
                    "secret {name} is not set: set {name}, {arn_var} (Secrets Manager) or {ssm_var} (SSM Parameter Store)"
                )));
            }
            _ => {
                return Err(BuiltinError::new(format!(
                    "secret {name}: more than one of {name}, {arn_var} and {ssm_var} is set; which one is meant?"
                )));
            }
        };
        if value.is_empty() {
            return Err(BuiltinError::new(format!("secret {name} is empty")));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn secrets(vars: &[(&str, &str)]) -> Secrets {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Secrets::new(move |k| vars.get(k).cloned(), None)
    }

    #[tokio::test]
    async fn a_plain_variable_is_the_secret() {
        let s = secrets(&[("VT_API_KEY", "k-123")]);
        assert_eq!(s.secret("VT_API_KEY").await.unwrap(), "k-123");
    }

    #[tokio::test]
    async fn nothing_set_names_all_three_ways() {
        let e = secrets(&[])
            .secret("VT_API_KEY")
            .await
            .unwrap_err()
            .to_string();
        for want in [
            "VT_API_KEY",
            "VT_API_KEY_SECRET_ARN",
            "VT_API_KEY_SSM_PARAMETER",
        ] {
            assert!(e.contains(want), "{e}");
        }
    }

    #[tokio::test]
    async fn two_ways_at_once_is_refused_without_showing_the_value() {
        let s = secrets(&[
            ("VT_API_KEY", "k-123"),
            ("VT_API_KEY_SSM_PARAMETER", "/deepalert/vt"),
        ]);
        let e = s.secret("VT_API_KEY").await.unwrap_err().to_string();
        assert!(e.contains("more than one"), "{e}");
        assert!(!e.contains("k-123"), "{e}");
    }
}
