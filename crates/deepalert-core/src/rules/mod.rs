//! Cloud events in: **rules** read one event and yield alerts. Pure functions of the event
//! (no I/O), so `deepalert serve` and the `event-router` Lambda run the same ones.
//!
//! - [`Event`]: an EventBridge event, or a CloudTrail log record put in the same shape
//!   ([`parse_events`] takes either, one or many, or a CloudTrail log file's `Records`);
//! - [`Rule`]: what a rule is; [`presets`] are Responder's five CloudTrail rules,
//!   [`findings`] turn GuardDuty and Security Hub findings into alerts; rules written in
//!   Rego live with the other policies (`deepalert-plugins`);
//! - [`RuleSet`]: the configured rules, evaluated together.

pub mod findings;
pub mod presets;
pub mod stream;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::validate::{
    MAX_ATTR_FIELD_BYTES, MAX_ATTRIBUTES, MAX_BODY_BYTES, MAX_DESCRIPTION_BYTES, MAX_NAME_BYTES,
};
use crate::{Alert, AttrContext, AttrType, Attribute};

/// Largest event (or events document) taken in, like the alert API's body limit.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One cloud event in EventBridge's shape: `source`, `detail-type`, `time`, `account`,
/// `region`, `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    value: Value,
    time: Option<DateTime<Utc>>,
}

/// Why an input is not an event (or a rule could not read one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

impl Event {
    /// An EventBridge event.
    pub fn from_eventbridge(value: Value) -> Result<Event, EventError> {
        let obj = value
            .as_object()
            .ok_or_else(|| EventError("an event is a JSON object".into()))?;
        for key in ["source", "detail-type"] {
            if !obj.get(key).is_some_and(Value::is_string) {
                return Err(EventError(format!(
                    "not an EventBridge event: `{key}` (a string) is missing"
                )));
            }
        }
        if !obj.get("detail").is_some_and(Value::is_object) {
            return Err(EventError(
                "not an EventBridge event: `detail` (an object) is missing".into(),
            ));
        }
        let time = event_time(&value);
        Ok(Event { value, time })
    }

    /// A CloudTrail record (a log file's `Records[i]`), in the shape EventBridge delivers
    /// CloudTrail events in.
    pub fn from_cloudtrail(record: Value) -> Result<Event, EventError> {
        let obj = record
            .as_object()
            .ok_or_else(|| EventError("a CloudTrail record is a JSON object".into()))?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str);
        let (Some(event_source), Some(event_name)) = (text("eventSource"), text("eventName"))
        else {
            return Err(EventError(
                "not a CloudTrail record: eventSource and eventName are required".into(),
            ));
        };
        let service = event_source.split('.').next().unwrap_or(event_source);
        let detail_type = match text("eventType") {
            Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
            Some("AwsServiceEvent") => "AWS Service Event via CloudTrail",
            _ if event_name == "ConsoleLogin" => "AWS Console Sign In via CloudTrail",
            _ => "AWS API Call via CloudTrail",
        };
        let value = serde_json::json!({
            "version": "0",
            "id": text("eventID").unwrap_or(""),
            "detail-type": detail_type,
            "source": format!("aws.{service}"),
            "account": text("recipientAccountId").unwrap_or(""),
            "region": text("awsRegion").unwrap_or(""),
            "resources": [],
            "detail": record,
        });
        Event::from_eventbridge(value)
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn source(&self) -> &str {
        self.value["source"].as_str().unwrap_or("")
    }

    pub fn detail_type(&self) -> &str {
        self.value["detail-type"].as_str().unwrap_or("")
    }

    pub fn detail(&self) -> &Value {
        &self.value["detail"]
    }

    /// The event's own time: CloudTrail's `eventTime` (a finding's `updatedAt` /
    /// `UpdatedAt`), not the envelope's `time` — when EventBridge saw it, minutes later
    /// and maybe across an hour — which counts only when the event has none. `None`
    /// without either (rules that need a time skip it, saying so).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.time
    }

    /// The account, from the envelope or, where it lacks one, from the event itself
    /// (CloudTrail's `recipientAccountId`, a finding's `accountId`).
    pub fn account(&self) -> &str {
        [
            "/account",
            "/detail/recipientAccountId",
            "/detail/accountId",
            "/detail/userIdentity/accountId",
        ]
        .iter()
        .find_map(|p| {
            self.value
                .pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("")
    }

    pub fn region(&self) -> &str {
        self.value["region"].as_str().unwrap_or("")
    }

    /// A CloudTrail API call (or sign-in) named `event_name` from `source`, that did not
    /// fail when `succeeded` is asked.
    pub fn is_cloudtrail(&self, source: &str, event_name: &str) -> bool {
        self.source() == source && self.detail()["eventName"] == event_name
    }

    /// The event as an alert's body: whole when it fits the body limit, else with its
    /// largest parts cut (saying so), so the alert is never refused for its size.
    pub fn body(&self) -> Value {
        trim_body(&self.value)
    }
}

/// The first RFC 3339 time among the event's own (see [`Event::time`]) and the envelope's.
fn event_time(value: &Value) -> Option<DateTime<Utc>> {
    [
        "/detail/eventTime",
        "/detail/updatedAt",
        "/detail/findings/0/UpdatedAt",
        "/time",
    ]
    .iter()
    .filter_map(|p| value.pointer(p).and_then(Value::as_str))
    .find_map(|t| DateTime::parse_from_rfc3339(t).ok())
    .map(|t| t.to_utc())
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// Cuts the largest fields of `detail` (then of the event) until it fits the alert body
/// limit; each cut field says how big it was.
pub fn trim_body(event: &Value) -> Value {
    let limit = MAX_BODY_BYTES - 512;
    let mut v = event.clone();
    for scope in ["detail", ""] {
        loop {
            if size(&v) <= limit {
                return v;
            }
            let target = if scope.is_empty() {
                v.as_object_mut()
            } else {
                v.get_mut(scope).and_then(Value::as_object_mut)
            };
            let Some(obj) = target else { break };
            let largest = obj
                .iter()
                .filter(|(k, x)| !k.starts_with("deepalert_") && size(x) > 64)
                .max_by_key(|(_, x)| size(x))
                .map(|(k, x)| (k.clone(), size(x)));
            let Some((key, bytes)) = largest else { break };
            obj.insert(
                key,
                Value::String(format!("(cut by deepalert: {bytes} bytes)")),
            );
        }
    }
    serde_json::json!({
        "deepalert_note": "the event was too large for an alert body",
        "source": event["source"], "detail-type": event["detail-type"], "id": event["id"],
        "account": event["account"], "region": event["region"], "time": event["time"],
    })
}

/// Reads what the events API and the event router take: one EventBridge event, a JSON
/// array of them, a CloudTrail log file (`{"Records": [...]}`, bare CloudTrail records),
/// one bare record, or JSON lines of these ([`stream::read_events`], on a document of at
/// most [`MAX_EVENT_BYTES`]). Each element is read on its own, so one bad record does not
/// lose the others; the outer error is for a document that is not JSON.
pub fn parse_events(bytes: &[u8]) -> Result<Vec<Result<Event, EventError>>, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError(format!(
            "the events document is {} bytes, over the limit of {MAX_EVENT_BYTES} bytes",
            bytes.len()
        )));
    }
    let mut out = Vec::new();
    stream::read_events(bytes, |e| out.push(e))?;
    Ok(out)
}

/// Where a rule's events come from, for the stack's EventBridge rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventSource {
    pub source: String,
    pub detail_type: String,
}

impl EventSource {
    pub fn new(source: &str, detail_type: &str) -> Self {
        EventSource {
            source: source.into(),
            detail_type: detail_type.into(),
        }
    }
}

/// A rule failed on an event (a Rego rule's runtime error, an alert it built that breaks
/// the limits), or could not read a field it needs (missing, null, of another type): then
/// the event is skipped by that rule alone, counted and logged, never failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule}: {message}")]
pub struct RuleError {
    pub rule: String,
    pub message: String,
    /// The event lacks what the rule reads: a skip, not a failure.
    pub unreadable: bool,
}

impl RuleError {
    pub fn failed(rule: &str, message: impl Into<String>) -> Self {
        RuleError {
            rule: rule.into(),
            message: message.into(),
            unreadable: false,
        }
    }

    /// The event lacks a field the rule needs (missing, null, of another type).
    pub fn unreadable(rule: &str, message: impl Into<String>) -> Self {
        RuleError {
            rule: rule.into(),
            message: message.into(),
            unreadable: true,
        }
    }
}

/// A rule: one event in, zero or more alerts out.
pub trait Rule: Send + Sync {
    /// The preset's name, `guardduty`, `securityhub`, or the policy directory.
    fn name(&self) -> &str;
    /// The events it reads (EventBridge `source` and `detail-type`); empty: any event.
    fn sources(&self) -> Vec<EventSource>;
    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError>;
}

/// The configured rules, evaluated together.
#[derive(Clone, Default)]
pub struct RuleSet {
    rules: Vec<Arc<dyn Rule>>,
}

/// What the rules made of one event: their alerts, the rules that failed on it (the
/// others' alerts still count), and the rules that skipped it for want of a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub alerts: Vec<Alert>,
    pub errors: Vec<RuleError>,
    pub skipped: Vec<RuleError>,
}

impl RuleSet {
    pub fn new(rules: Vec<Arc<dyn Rule>>) -> Self {
        RuleSet { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name()).collect()
    }

    pub fn evaluate(&self, event: &Event) -> Evaluation {
        let mut out = Evaluation::default();
        for rule in &self.rules {
            match rule.evaluate(event) {
                Ok(alerts) => {
                    for alert in alerts {
                        match crate::validate_alert(&alert) {
                            Ok(()) => out.alerts.push(alert),
                            Err(e) => out.errors.push(RuleError::failed(
                                rule.name(),
                                format!("it made an invalid alert: {e}"),
                            )),
                        }
                    }
                }
                Err(e) if e.unreadable => out.skipped.push(e),
                Err(e) => out.errors.push(e),
            }
        }
        out
    }

    /// Sources and detail-types of every rule (sorted, without repeats); `None` if a rule
    /// takes any event.
    pub fn sources(&self) -> Option<BTreeSet<EventSource>> {
        let mut out = BTreeSet::new();
        for rule in &self.rules {
            let s = rule.sources();
            if s.is_empty() {
                return None;
            }
            out.extend(s);
        }
        Some(out)
    }
}

// ---- What rules share when building alerts ----

/// Cuts `s` to at most `max` bytes, on a character boundary, marking the cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Builds alerts with the limits respected (fields clipped, attributes de-duplicated and
/// capped), so a large or odd event makes an alert rather than a refusal.
pub(crate) struct AlertBuilder {
    alert: Alert,
    /// (type, value): one attribute per thing, whichever field named it first.
    seen: BTreeSet<(String, String)>,
}

impl AlertBuilder {
    pub(crate) fn new(detector: &str, rule_id: &str, event: &Event) -> Self {
        AlertBuilder {
            alert: Alert {
                detector: clip(detector, MAX_NAME_BYTES),
                rule_id: clip(rule_id, MAX_NAME_BYTES),
                rule_name: String::new(),
                alert_key: String::new(),
                description: String::new(),
                timestamp: event.time(),
                attributes: vec![],
                body: Some(event.body()),
            },
            seen: BTreeSet::new(),
        }
    }

    pub(crate) fn rule_name(mut self, name: &str) -> Self {
        self.alert.rule_name = clip(name, MAX_NAME_BYTES);
        self
    }

    /// The alert key; never empty: an event that names nothing it is about gets
    /// `unknown` (its alerts then share a report per rule, rather than vanish).
    pub(crate) fn key(mut self, key: &str) -> Self {
        let key = key.trim();
        self.alert.alert_key = clip(if key.is_empty() { "unknown" } else { key }, MAX_NAME_BYTES);
        self
    }

    pub(crate) fn description(mut self, text: &str) -> Self {
        self.alert.description = clip(text, MAX_DESCRIPTION_BYTES);
        self
    }

    pub(crate) fn attr(&mut self, t: AttrType, key: &str, value: &str, ctx: &[AttrContext]) {
        let value = value.trim();
        if value.is_empty()
            || self.alert.attributes.len() >= MAX_ATTRIBUTES
            || !self.seen.insert((t.as_str().into(), value.into()))
        {
            return;
        }
        self.alert.attributes.push(Attribute::new(
            t,
            &clip(key, MAX_ATTR_FIELD_BYTES),
            &clip(value, MAX_ATTR_FIELD_BYTES),
            ctx,
        ));
    }

    /// An IP address attribute, if `value` is one (CloudTrail's `sourceIPAddress` may be a
    /// service name such as `AWS Internal`), IPv4-mapped IPv6 written as the IPv4 address
    /// it is (one host, one attribute, whichever form CloudTrail used).
    pub(crate) fn ip(&mut self, key: &str, value: &str, ctx: &[AttrContext]) {
        if let Some(ip) = ip_address(value) {
            self.attr(AttrType::Ipaddr, key, &ip.to_string(), ctx);
        }
    }

    pub(crate) fn build(self) -> Alert {
        self.alert
    }
}

/// Who did it, from CloudTrail's `userIdentity`: a user name, `root`, a role session
/// (`Role/session`), else the ARN or principal id.
pub fn principal(user_identity: &Value) -> String {
    let s = |k: &str| user_identity[k].as_str().unwrap_or("");
    match s("type") {
        "Root" => "root".into(),
        "IAMUser" if !s("userName").is_empty() => s("userName").into(),
        "AssumedRole" | "FederatedUser" => {
            let arn = s("arn");
            arn.split_once('/')
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_else(|| arn.to_string())
        }
        _ if !s("userName").is_empty() => s("userName").into(),
        _ if !s("arn").is_empty() => s("arn").into(),
        _ if !s("principalId").is_empty() => s("principalId").into(),
        _ => s("invokedBy").into(),
    }
}

/// `value` as an IP address, IPv4-mapped IPv6 (`::ffff:203.0.113.5`) as IPv4; `None` for
/// anything else (`AWS Internal`, a service's name).
pub fn ip_address(value: &str) -> Option<IpAddr> {
    let ip: IpAddr = value.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    })
}

/// A network as written (an address or a CIDR, IPv4 or IPv6), the IPv4-mapped IPv6 range
/// (`::ffff:203.0.113.0/120`) as the IPv4 network it is, so that [`ip_address`]es match
/// it in either form.
pub fn network(value: &str) -> Option<ipnet::IpNet> {
    let net = value
        .trim()
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| ip_address(value).map(ipnet::IpNet::from))?;
    if let ipnet::IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
    {
        return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
            .ok()
            .map(ipnet::IpNet::V4);
    }
    Some(net)
}

/// A string at a JSON pointer, or "".
pub(crate) fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudtrail_records_take_eventbridge_shape() {
        let e = Event::from_cloudtrail(serde_json::json!({
            "eventVersion": "1.08", "eventTime": "2026-11-20T03:14:07Z",
            "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
            "eventType": "AwsConsoleSignIn", "awsRegion": "us-east-1",
            "recipientAccountId": "123456789012", "eventID": "e-1",
            "userIdentity": {"type": "Root"}
        }))
        .unwrap();
        assert_eq!(e.source(), "aws.signin");
        assert_eq!(e.detail_type(), "AWS Console Sign In via CloudTrail");
        assert_eq!(e.account(), "123456789012");
        assert_eq!(e.time().unwrap().to_rfc3339(), "2026-11-20T03:14:07+00:00");
        assert!(e.is_cloudtrail("aws.signin", "ConsoleLogin"));
    }

    #[test]
    fn documents_of_events_and_their_errors() {
        let ok =
            r#"{"source":"aws.iam","detail-type":"x","time":"2026-11-20T03:14:07Z","detail":{}}"#;
        assert_eq!(parse_events(ok.as_bytes()).unwrap().len(), 1);
        let many = format!("[{ok}, 5, {ok}]");
        let parsed = parse_events(many.as_bytes()).unwrap();
        assert!(parsed[0].is_ok() && parsed[1].is_err() && parsed[2].is_ok());
        let file = r#"{"Records": [{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventTime":"2026-11-20T03:14:07Z"}, {"eventName":"x"}]}"#;
        let parsed = parse_events(file.as_bytes()).unwrap();
        assert!(parsed[0].is_ok());
        assert!(parsed[1].as_ref().unwrap_err().0.contains("eventSource"));
        assert!(
            parse_events(b"{not json")
                .unwrap_err()
                .0
                .contains("not JSON")
        );
        assert!(
            parse_events(b"5").unwrap()[0]
                .as_ref()
                .unwrap_err()
                .0
                .contains("a number")
        );
        let err =
            parse_events(br#"{"source":"aws.iam","time":"2026-11-20T03:14:07Z","detail":{}}"#)
                .unwrap()
                .remove(0)
                .unwrap_err();
        assert!(err.0.contains("detail-type"), "{err}");
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(parse_events(&big).unwrap_err().0.contains("over the limit"));
    }

    #[test]
    fn oversized_events_are_cut_to_fit_a_body() {
        let huge = "x".repeat(200_000);
        let event = serde_json::json!({
            "source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail",
            "time": "2026-11-20T03:14:07Z", "account": "1", "region": "eu-west-1",
            "detail": {"eventName": "RunInstances", "responseElements": huge, "requestParameters": {"instanceType": "p4d.24xlarge"}}
        });
        let body = trim_body(&event);
        assert!(size(&body) <= MAX_BODY_BYTES);
        assert_eq!(
            body["detail"]["requestParameters"]["instanceType"],
            "p4d.24xlarge"
        );
        assert!(
            body["detail"]["responseElements"]
                .as_str()
                .unwrap()
                .contains("cut by deepalert")
        );
        assert_eq!(body["region"], "eu-west-1");
    }

    #[test]
    fn principals_read_the_way_people_name_them() {
        let p = |v: Value| principal(&v);
        assert_eq!(
            p(serde_json::json!({"type": "Root", "arn": "arn:aws:iam::1:root"})),
            "root"
        );
        assert_eq!(
            p(serde_json::json!({"type": "IAMUser", "userName": "alice"})),
            "alice"
        );
        assert_eq!(
            p(
                serde_json::json!({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/Admin/bob@example.com"})
            ),
            "Admin/bob@example.com"
        );
        assert_eq!(
            p(serde_json::json!({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"})),
            "ec2.amazonaws.com"
        );
    }
}
