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
