//! Lambda configuration comes from environment variables, read once in `main`. Every
//! variable a function reads goes through these helpers with a literal name, which lets
//! a test check that `template.yaml` sets exactly the variables each function reads.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "{name} names {path}, which cannot be read ({why}); `make deploy` (tools/deploy.py) puts it in the function's zip"
    )]
    Document {
        name: &'static str,
        path: String,
        why: String,
    },
}

/// A document shipped in the function's deployment package: documents that can grow
/// (rules, flows) do not fit Lambda's 4 KB of environment, so `tools/deploy.py` adds them
/// to the zip and the environment only names the file. The code and its configuration
/// are then one version: the zip the function was deployed with.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: std::path::PathBuf,
    pub text: String,
    /// Hex SHA-256 of the text, logged at start: which configuration is running.
    pub sha256: String,
}

/// The document the variable `name` names: a path relative to the function's code
/// (`LAMBDA_TASK_ROOT`, as Lambda sets it; else the working directory), read once.
pub fn document(name: &'static str) -> Result<Document, EnvError> {
    use sha2::Digest;
    let relative = var(name)?;
    let root = optional("LAMBDA_TASK_ROOT").unwrap_or_else(|| ".".into());
    let path = std::path::Path::new(&root).join(&relative);
    let text = std::fs::read_to_string(&path).map_err(|e| EnvError::Document {
        name,
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Document { path, text, sha256 })
}

/// A variable that must be set and non-empty.
pub fn var(name: &'static str) -> Result<String, EnvError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(EnvError::Missing(name)),
    }
}

/// A variable that may be absent or empty.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A whole number, with a default when absent.
pub fn number(name: &'static str, default: u64) -> Result<u64, EnvError> {
    match optional(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e: std::num::ParseIntError| EnvError::Invalid {
                name,
                value: v,
                why: e.to_string(),
            }),
    }
}

/// A number of seconds, with a default when absent.
pub fn seconds(name: &'static str, default: u64) -> Result<Duration, EnvError> {
    number(name, default).map(Duration::from_secs)
}

/// `true` or `false`, with a default when absent.
pub fn flag(name: &'static str, default: bool) -> Result<bool, EnvError> {
    match optional(name).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(EnvError::Invalid {
            name,
            value: other.to_string(),
            why: "expected true or false".into(),
        }),
    }
}

/// A value parsed by `FromStr`, with a default when absent.
pub fn parsed<T>(name: &'static str, default: T) -> Result<T, EnvError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| EnvError::Invalid {
            name,
            why: e.to_string(),
            value: v,
        }),
    }
}
