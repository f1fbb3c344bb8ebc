//! Responder's five CloudTrail rules, with its defects fixed (README, "Cloud events"):
//! detector `aws-cloudtrail`, rule_id the preset's name, the event's own time, the
//! principal and source address as attributes, and an `alert_key` that makes repeats of
//! the same thing one report.

use std::sync::Arc;

use chrono::{Datelike, Timelike, Weekday};
use serde::Deserialize;
use serde_json::Value;

use super::{
    AlertBuilder, Event, EventSource, Rule, RuleError, ip_address, network, principal, text,
};
use crate::{Alert, AttrContext, AttrType};

pub const DETECTOR: &str = "aws-cloudtrail";

/// The presets by name.
pub const PRESETS: &[&str] = &[
    "root-login",
    "suspicious-login-hour",
    "suspicious-login-ip",
    "non-compliant-user-created",
    "unauthorized-instance-created",
];

const SIGN_IN: &str = "AWS Console Sign In via CloudTrail";
const API_CALL: &str = "AWS API Call via CloudTrail";

/// A preset configured with its options (a JSON object; TOML tables convert). Bad or
/// unknown options are an error naming them.
pub fn build(name: &str, options: Value) -> Result<Arc<dyn Rule>, String> {
    fn opts<T: serde::de::DeserializeOwned>(name: &str, v: Value) -> Result<T, String> {
        let v = if v.is_null() {
            serde_json::json!({})
        } else {
            v
        };
        serde_json::from_value(v).map_err(|e| format!("options of preset {name}: {e}"))
    }
    Ok(match name {
        "root-login" => {
            let _: NoOptions = opts(name, options)?;
            Arc::new(RootLogin)
        }
        "suspicious-login-hour" => Arc::new(LoginHour::new(opts(name, options)?)?),
        "suspicious-login-ip" => Arc::new(LoginIp::new(opts(name, options)?)?),
        "non-compliant-user-created" => Arc::new(UserCreated::new(opts(name, options)?)?),
        "unauthorized-instance-created" => Arc::new(InstanceCreated::new(opts(name, options)?)?),
        other => {
            return Err(format!(
                "no preset {other:?} (presets: {})",
                PRESETS.join(", ")
            ));
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

/// "succeeded" or "failed (why)", from a ConsoleLogin event.
fn outcome(detail: &Value) -> String {
    match text(detail, "/responseElements/ConsoleLogin") {
        "Success" => "succeeded".into(),
        _ => {
            let why = text(detail, "/errorMessage");
            if why.is_empty() {
                "failed".into()
            } else {
                format!("failed: {why}")
            }
        }
    }
}

fn sign_in(event: &Event) -> Option<&Value> {
    event
        .is_cloudtrail("aws.signin", "ConsoleLogin")
        .then(|| event.detail())
}

/// Who did it: the principal of `userIdentity`, else what the event has (the account,
/// the service it came from), else `unknown` — an alert's key is never empty.
fn who(event: &Event) -> String {
    let d = event.detail();
    let p = principal(&d["userIdentity"]);
    if !p.is_empty() {
        return p;
    }
    if !event.account().is_empty() {
        return format!("account {}", event.account());
    }
    match text(d, "/eventSource") {
        "" => "unknown".into(),
        source => source.into(),
    }
}

/// The event lacks what the rule reads: skipped by this rule, counted and logged.
fn unreadable<T>(rule: &str, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError::unreadable(rule, message))
}

/// Any console sign-in by the root user, successful or failed.
struct RootLogin;

impl Rule for RootLogin {
    fn name(&self) -> &str {
        "root-login"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new("aws.signin", SIGN_IN)]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        let Some(d) = sign_in(event) else {
            return Ok(vec![]);
        };
        if d["userIdentity"]["type"] != "Root" {
            return Ok(vec![]);
        }
        let ip = text(d, "/sourceIPAddress");
        let mut a = AlertBuilder::new(DETECTOR, self.name(), event)
            .rule_name("Root user signed in to the console")
            // All root sign-ins of an account are one report.
            .key(event.account())
            .description(&format!(
                "The root user of account {} signed in to the console from {ip} in {}: {}.",
                event.account(),
                event.region(),
                outcome(d)
            ));
        a.attr(
            AttrType::Username,
            "root user",
            &format!("root@{}", event.account()),
            &[AttrContext::Subject],
        );
        a.ip(
            "source address",
            ip,
            &[AttrContext::Remote, AttrContext::Client],
        );
        Ok(vec![a.build()])
    }
}

/// `HH:MM-HH:MM` in minutes of the day; the end may be `24:00`, and may come before the
/// start (a range across midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hours {
    from: u32,
    to: u32,
}

impl Hours {
    fn parse(field: &str, s: &str) -> Result<Hours, String> {
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        let bad = || format!("{field}: {s:?} is not \"HH:MM-HH:MM\" (e.g. \"08:00-20:00\")");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (from, to) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if from == to || from == 24 * 60 {
            return Err(format!("{field}: {s:?} is an empty range"));
        }
        Ok(Hours { from, to })
    }

    fn contains(&self, minute: u32) -> bool {
        if self.from < self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }

    fn show(&self) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            self.from / 60,
            self.from % 60,
            self.to / 60,
            self.to % 60
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginHourOptions {
    #[serde(default = "utc")]
    time_zone: String,
    #[serde(default = "office_hours")]
    weekday_hours: String,
    #[serde(default)]
    weekend_hours: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

fn office_hours() -> String {
    "08:00-20:00".into()
}

/// A console sign-in outside working hours, in the event's own time (Responder used the
/// time it processed the event).
struct LoginHour {
    tz: chrono_tz::Tz,
    weekday: Hours,
    weekend: Option<Hours>,
}

impl LoginHour {
    fn new(o: LoginHourOptions) -> Result<Self, String> {
        Ok(LoginHour {
            tz: o.time_zone.parse().map_err(|_| {
                format!(
                    "time_zone: {:?} is not an IANA time zone (e.g. \"Europe/Paris\")",
                    o.time_zone
                )
            })?,
            weekday: Hours::parse("weekday_hours", &o.weekday_hours)?,
            weekend: o
                .weekend_hours
                .as_deref()
                .map(|h| Hours::parse("weekend_hours", h))
                .transpose()?,
        })
    }
}

impl Rule for LoginHour {
    fn name(&self) -> &str {
        "suspicious-login-hour"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new("aws.signin", SIGN_IN)]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        let Some(d) = sign_in(event) else {
            return Ok(vec![]);
        };
        let Some(time) = event.time() else {
            return unreadable(
                self.name(),
                "a sign-in without a time (neither detail.eventTime nor the envelope's time): its hour cannot be judged",
            );
        };
        let local = time.with_timezone(&self.tz);
        let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        let minute = local.hour() * 60 + local.minute();
        let (hours, which) = if weekend {
            (self.weekend, "weekend")
        } else {
            (Some(self.weekday), "weekday")
        };
        let allowed = match hours {
            Some(h) if h.contains(minute) => return Ok(vec![]),
            Some(h) => format!("{which} hours {}", h.show()),
            None => "no weekend hours".to_string(),
        };
        let user = who(event);
        let ip = text(d, "/sourceIPAddress");
        let mut a = AlertBuilder::new(DETECTOR, self.name(), event)
            .rule_name("Console sign-in outside working hours")
            // The same person's sign-ins outside hours are one report.
            .key(&user)
            .description(&format!(
                "{user} signed in to the console at {} ({}), outside working hours ({allowed}), from {ip}: {}.",
                local.format("%a %Y-%m-%d %H:%M"),
                self.tz,
                outcome(d)
            ));
        a.attr(
            AttrType::Username,
            "principal",
            &user,
            &[AttrContext::Subject],
        );
        a.ip(
            "source address",
            ip,
            &[AttrContext::Remote, AttrContext::Client],
        );
        Ok(vec![a.build()])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginIpOptions {
    trusted_cidrs: Vec<String>,
}

/// A console sign-in from an address in none of the trusted networks.
struct LoginIp {
    trusted: Vec<ipnet::IpNet>,
}

impl LoginIp {
    fn new(o: LoginIpOptions) -> Result<Self, String> {
        if o.trusted_cidrs.is_empty() {
            return Err(
                "trusted_cidrs: list at least one network (e.g. \"203.0.113.0/24\")".into(),
            );
        }
        let trusted = o
            .trusted_cidrs
            .iter()
            .map(|c| {
                network(c)
                    .ok_or_else(|| format!("trusted_cidrs: {c:?} is not an address or a CIDR"))
            })
            .collect::<Result<_, _>>()?;
        Ok(LoginIp { trusted })
    }
}

impl Rule for LoginIp {
    fn name(&self) -> &str {
        "suspicious-login-ip"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new("aws.signin", SIGN_IN)]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        let Some(d) = sign_in(event) else {
            return Ok(vec![]);
        };
        let ip = text(d, "/sourceIPAddress");
        // `::ffff:203.0.113.5` is 203.0.113.5; `AWS Internal` is no address and in no network.
        let parsed = ip_address(ip);
        if parsed.is_some_and(|a| self.trusted.iter().any(|n| n.contains(&a))) {
            return Ok(vec![]);
        }
        let user = who(event);
        let mut a = AlertBuilder::new(DETECTOR, self.name(), event)
            .rule_name("Console sign-in from an untrusted address")
            .key(&user)
            .description(&format!(
                "{user} signed in to the console from {}, outside the trusted networks: {}.",
                match parsed {
                    Some(a) => a.to_string(),
                    None if ip.is_empty() => "an unknown address".to_string(),
                    None => format!("{ip:?}, not an IP address"),
                },
                outcome(d)
            ));
        a.attr(
            AttrType::Username,
            "principal",
            &user,
            &[AttrContext::Subject],
        );
        a.ip(
            "source address",
            ip,
            &[AttrContext::Remote, AttrContext::Client],
        );
        Ok(vec![a.build()])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCreatedOptions {
    user_name_pattern: String,
}

/// A successful `CreateUser` whose user name does not match the naming convention as a
/// whole (Responder matched any part of it).
struct UserCreated {
    pattern: regex::Regex,
    shown: String,
}

impl UserCreated {
    fn new(o: UserCreatedOptions) -> Result<Self, String> {
        Ok(UserCreated {
            pattern: anchored("user_name_pattern", &o.user_name_pattern)?,
            shown: o.user_name_pattern,
        })
    }
}

fn anchored(field: &str, pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("{field}: {pattern:?} is not a regular expression: {e}"))
}

impl Rule for UserCreated {
    fn name(&self) -> &str {
        "non-compliant-user-created"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new("aws.iam", API_CALL)]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        if !event.is_cloudtrail("aws.iam", "CreateUser") {
            return Ok(vec![]);
        }
        let d = event.detail();
        if !d["errorCode"].is_null() {
            return Ok(vec![]);
        }
        let name = text(d, "/requestParameters/userName");
        if name.is_empty() {
            return unreadable(
                self.name(),
                "CreateUser without requestParameters.userName (a string)",
            );
        }
        if self.pattern.is_match(name) {
            return Ok(vec![]);
        }
        let creator = who(event);
        let mut a = AlertBuilder::new(DETECTOR, self.name(), event)
            .rule_name("IAM user created against the naming convention")
            .key(name)
            .description(&format!(
                "{creator} created IAM user {name} in account {}, whose name does not match the naming convention {}.",
                event.account(),
                self.shown
            ));
        a.attr(
            AttrType::Username,
            "created user",
            name,
            &[AttrContext::Object],
        );
        a.attr(
            AttrType::Username,
            "creator",
            &creator,
            &[AttrContext::Subject],
        );
        a.ip(
            "source address",
            text(d, "/sourceIPAddress"),
            &[AttrContext::Remote, AttrContext::Client],
        );
        Ok(vec![a.build()])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceCreatedOptions {
    #[serde(default = "small_instances")]
    allowed_instance_types: Vec<String>,
    #[serde(default)]
    denied_instance_types: Vec<String>,
    #[serde(default)]
    regions: Option<Vec<String>>,
}

fn small_instances() -> Vec<String> {
    vec!["t3\\..*".into(), "t4g\\..*".into()]
}

/// A successful `RunInstances` of a type that is denied (the deny list wins, then the
/// allow list, anything else is denied) or in a region outside the allowed ones; one
/// alert per instance.
struct InstanceCreated {
    allowed: Vec<regex::Regex>,
    denied: Vec<regex::Regex>,
    regions: Option<Vec<String>>,
}

impl InstanceCreated {
    fn new(o: InstanceCreatedOptions) -> Result<Self, String> {
        let compile = |field: &str, list: &[String]| -> Result<Vec<regex::Regex>, String> {
            list.iter().map(|p| anchored(field, p)).collect()
        };
        Ok(InstanceCreated {
            allowed: compile("allowed_instance_types", &o.allowed_instance_types)?,
            denied: compile("denied_instance_types", &o.denied_instance_types)?,
            regions: o.regions,
        })
    }

    /// Why this launch is unauthorized, or `None`.
    fn refusal(&self, instance_type: &str, region: &str) -> Option<String> {
        if let Some(regions) = &self.regions
            && !regions.iter().any(|r| r == region)
        {
            return Some(format!(
                "region {region} is not one of the allowed regions ({})",
                regions.join(", ")
            ));
        }
        if self.denied.iter().any(|p| p.is_match(instance_type)) {
            return Some(format!("instance type {instance_type} is denied"));
        }
        if self.allowed.iter().any(|p| p.is_match(instance_type)) {
            return None;
        }
        Some(format!(
            "instance type {instance_type} is not an allowed type"
        ))
    }
}

impl Rule for InstanceCreated {
    fn name(&self) -> &str {
        "unauthorized-instance-created"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new("aws.ec2", API_CALL)]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        if !event.is_cloudtrail("aws.ec2", "RunInstances") {
            return Ok(vec![]);
        }
        let d = event.detail();
        if !d["errorCode"].is_null() {
            return Ok(vec![]);
        }
        // A launch from a launch template names no type in the request: each instance's
        // type is in the response.
        let requested = text(d, "/requestParameters/instanceType");
        let region = match event.region() {
            "" => text(d, "/awsRegion"),
            r => r,
        };
        let items: Vec<&Value> = d
            .pointer("/responseElements/instancesSet/items")
            .and_then(Value::as_array)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let user = who(event);
        let alert = |id: &str, instance_type: &str, why: &str, item: Option<&Value>| {
            let mut a = AlertBuilder::new(DETECTOR, self.name(), event)
                .rule_name("Unauthorized EC2 instance created")
                .key(id)
                .description(&format!(
                    "{user} launched {instance_type} instance {id} in {region} (account {}): {why}.",
                    event.account()
                ));
            if let Some(item) = item {
                a.attr(
                    AttrType::Other("instanceid".into()),
                    "instance",
                    id,
                    &[AttrContext::Object, AttrContext::Local],
                );
                a.ip(
                    "private address",
                    text(item, "/privateIpAddress"),
                    &[AttrContext::Local],
                );
            }
            a.attr(
                AttrType::Username,
                "principal",
                &user,
                &[AttrContext::Subject],
            );
            a.ip(
                "source address",
                text(d, "/sourceIPAddress"),
                &[AttrContext::Remote, AttrContext::Client],
            );
            a.build()
        };
        let mut alerts = Vec::new();
        for item in &items {
            let id = text(item, "/instanceId");
            if id.is_empty() {
                continue;
            }
            let instance_type = match requested {
                "" => text(item, "/instanceType"),
                t => t,
            };
            // An instance whose type cannot be read cannot be cleared: it alerts, saying so.
            let why = if instance_type.is_empty() {
                Some(
                    "no instance type in the request or the response, so it could not be checked"
                        .to_string(),
                )
            } else {
                self.refusal(instance_type, region)
            };
            if let Some(why) = why {
                let shown = if instance_type.is_empty() {
                    "an"
                } else {
                    instance_type
                };
                alerts.push(alert(id, shown, &why, Some(item)));
            }
        }
        let judged = items.iter().any(|i| !text(i, "/instanceId").is_empty());
        if !judged {
            // CloudTrail leaves responseElements out when they are too large: one alert
            // for the call itself, on the requested type, so the launch is not missed.
            if requested.is_empty() {
                return unreadable(
                    self.name(),
                    "RunInstances with neither requestParameters.instanceType nor instances in responseElements",
                );
            }
            if let Some(why) = self.refusal(requested, region) {
                let call = format!("RunInstances {}", text(d, "/eventID"));
                alerts.push(alert(&call, requested, &why, None));
            }
        }
        Ok(alerts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_wrap_and_refuse_nonsense() {
        let h = Hours::parse("x", "08:00-20:00").unwrap();
        assert!(h.contains(8 * 60) && h.contains(19 * 60 + 59) && !h.contains(20 * 60));
        let night = Hours::parse("x", "22:00-06:00").unwrap();
        assert!(night.contains(23 * 60) && night.contains(60) && !night.contains(12 * 60));
        assert!(
            Hours::parse("x", "00:00-24:00")
                .unwrap()
                .contains(23 * 60 + 59)
        );
        for bad in ["8-20", "08:00", "25:00-26:00", "08:60-09:00", "10:00-10:00"] {
            assert!(Hours::parse("weekday_hours", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_checked_at_start_up() {
        let err = |name: &str, o: Value| build(name, o).err().unwrap();
        assert!(err("no-such", Value::Null).contains("presets: root-login"));
        assert!(err("root-login", serde_json::json!({"x": 1})).contains("unknown field"));
        assert!(
            err(
                "suspicious-login-hour",
                serde_json::json!({"time_zone": "Mars/Olympus"})
            )
            .contains("IANA")
        );
        assert!(err("suspicious-login-ip", serde_json::json!({})).contains("trusted_cidrs"));
        assert!(
            err(
                "suspicious-login-ip",
                serde_json::json!({"trusted_cidrs": []})
            )
            .contains("at least one")
        );
        assert!(
            err(
                "suspicious-login-ip",
                serde_json::json!({"trusted_cidrs": ["10.0.0.0/33"]})
            )
            .contains("10.0.0.0/33")
        );
        assert!(
            err(
                "non-compliant-user-created",
                serde_json::json!({"user_name_pattern": "(["})
            )
            .contains("regular expression")
        );
        assert!(build("unauthorized-instance-created", Value::Null).is_ok());
    }
}
