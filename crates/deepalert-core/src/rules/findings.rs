//! GuardDuty and Security Hub findings as alerts (both on by default; `[findings]
//! guardduty = false` / `securityhub = false` turn them off).
//!
//! | | GuardDuty (`GuardDuty Finding`) | Security Hub (`Security Hub Findings - Imported`) |
//! |---|---|---|
//! | detector | `aws-guardduty` | `aws-securityhub` |
//! | rule_id | the finding type | the control id, else the generator id |
//! | alert_key | the affected resource (instance, access key, buckets…) | the first resource's id |
//! | nothing for | archived findings | `Workflow.Status` `SUPPRESSED`/`RESOLVED`, archived records, GuardDuty's own (when the GuardDuty mapping is on) |

use serde_json::Value;

use super::{AlertBuilder, Event, EventSource, Rule, RuleError, text};
use crate::{Alert, AttrContext, AttrType};

pub const GUARDDUTY_DETECTOR: &str = "aws-guardduty";
pub const SECURITYHUB_DETECTOR: &str = "aws-securityhub";

fn instance() -> AttrType {
    AttrType::Other("instanceid".into())
}

fn severity_label(severity: f64) -> &'static str {
    match severity {
        s if s >= 7.0 => "high",
        s if s >= 4.0 => "medium",
        _ => "low",
    }
}

fn strings<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// GuardDuty findings, in EventBridge's camelCase form.
pub struct GuardDuty;

impl Rule for GuardDuty {
    fn name(&self) -> &str {
        "guardduty"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new("aws.guardduty", "GuardDuty Finding")]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        if event.source() != "aws.guardduty" || event.detail_type() != "GuardDuty Finding" {
            return Ok(vec![]);
        }
        let d = event.detail();
        if d.pointer("/service/archived") == Some(&Value::Bool(true)) {
            return Ok(vec![]);
        }
        let finding_type = text(d, "/type");
        if finding_type.is_empty() {
            return Err(RuleError::unreadable(
                self.name(),
                "GuardDuty finding without a type (a string)",
            ));
        }
        let r = &d["resource"];
        let instance_id = text(r, "/instanceDetails/instanceId");
        let access_key = text(r, "/accessKeyDetails/accessKeyId");
        let user = text(r, "/accessKeyDetails/userName");
        let buckets: Vec<&str> = strings(r, "/s3BucketDetails")
            .filter_map(|b| b["name"].as_str())
            .collect();
        let cluster = text(r, "/eksClusterDetails/name");
        let key = if !instance_id.is_empty() {
            instance_id.to_string()
        } else if !access_key.is_empty() {
            access_key.to_string()
        } else if !buckets.is_empty() {
            buckets.join(",")
        } else if !cluster.is_empty() {
            cluster.to_string()
        } else if !user.is_empty() {
            user.to_string()
        } else {
            format!("{} in {}", text(r, "/resourceType"), event.account())
        };
        let severity = d["severity"].as_f64().unwrap_or(0.0);
        let mut a = AlertBuilder::new(GUARDDUTY_DETECTOR, finding_type, event)
            .rule_name(text(d, "/title"))
            .key(&key)
            .description(&format!(
                "{} (severity {severity} {}): {}",
                text(d, "/title"),
                severity_label(severity),
                text(d, "/description")
            ));

        let action = &d["service"]["action"];
        let remote = [AttrContext::Remote];
        for pointer in [
            "/networkConnectionAction/remoteIpDetails/ipAddressV4",
            "/awsApiCallAction/remoteIpDetails/ipAddressV4",
            "/kubernetesApiCallAction/remoteIpDetails/ipAddressV4",
            "/rdsLoginAttemptAction/remoteIpDetails/ipAddressV4",
        ] {
            a.ip("remote address", text(action, pointer), &remote);
        }
        for probe in strings(action, "/portProbeAction/portProbeDetails") {
            a.ip(
                "remote address",
                text(probe, "/remoteIpDetails/ipAddressV4"),
                &remote,
            );
        }
        for pointer in [
            "/dnsRequestAction/domain",
            "/awsApiCallAction/domainDetails/domain",
        ] {
            a.attr(AttrType::Domain, "domain", text(action, pointer), &remote);
        }
        let local = [AttrContext::Local];
        a.ip(
            "local address",
            text(
                action,
                "/networkConnectionAction/localIpDetails/ipAddressV4",
            ),
            &local,
        );
        for nic in strings(r, "/instanceDetails/networkInterfaces") {
            a.ip("private address", text(nic, "/privateIpAddress"), &local);
            a.ip("public address", text(nic, "/publicIp"), &local);
        }
        if !instance_id.is_empty() {
            a.attr(
                instance(),
                "instance",
                instance_id,
                &[AttrContext::Local, AttrContext::Object],
            );
        }
        if !user.is_empty() {
            a.attr(AttrType::Username, "user", user, &[AttrContext::Subject]);
        }
        for b in &buckets {
            a.attr(
                AttrType::Other("s3bucket".into()),
                "bucket",
                b,
                &[AttrContext::Object],
            );
        }
        Ok(vec![a.build()])
    }
}

/// Security Hub findings (ASFF), one alert per finding.
pub struct SecurityHub {
    /// GuardDuty's findings also reach Security Hub: skip them when GuardDuty's own
    /// events are mapped already, or every one would make two reports.
    pub skip_guardduty: bool,
}

impl Rule for SecurityHub {
    fn name(&self) -> &str {
        "securityhub"
    }

    fn sources(&self) -> Vec<EventSource> {
        vec![EventSource::new(
            "aws.securityhub",
            "Security Hub Findings - Imported",
        )]
    }

    fn evaluate(&self, event: &Event) -> Result<Vec<Alert>, RuleError> {
        if event.source() != "aws.securityhub"
            || event.detail_type() != "Security Hub Findings - Imported"
        {
            return Ok(vec![]);
        }
        let Some(findings) = event.detail()["findings"].as_array() else {
            return Err(RuleError::unreadable(
                self.name(),
                "Security Hub event without detail.findings (an array)",
            ));
        };
        let mut alerts = Vec::new();
        for f in findings {
            let workflow = text(f, "/Workflow/Status");
            if matches!(workflow, "SUPPRESSED" | "RESOLVED")
                || text(f, "/RecordState") == "ARCHIVED"
            {
                continue;
            }
            if self.skip_guardduty
                && (text(f, "/ProductName") == "GuardDuty"
                    || text(f, "/ProductArn").contains("/guardduty"))
            {
                continue;
            }
            alerts.push(self.alert(event, f));
        }
        Ok(alerts)
    }
}

impl SecurityHub {
    fn alert(&self, event: &Event, f: &Value) -> Alert {
        let control = [
            text(f, "/Compliance/SecurityControlId"),
            f.pointer("/ProductFields/aws~1securityhub~1ControlId")
                .and_then(Value::as_str)
                .unwrap_or(""),
            text(f, "/GeneratorId"),
            text(f, "/Id"),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("unknown");
        let resources: Vec<&Value> = strings(f, "/Resources").collect();
        let key = resources
            .first()
            .map(|r| text(r, "/Id"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| text(f, "/Id"));
        let label = text(f, "/Severity/Label");
        // The body holds this finding only.
        let mut single = event.value().clone();
        single["detail"]["findings"] = Value::Array(vec![f.clone()]);
        let event = Event {
            value: single,
            time: event.time(),
        };
        let mut a = AlertBuilder::new(SECURITYHUB_DETECTOR, control, &event)
            .rule_name(text(f, "/Title"))
            .key(key)
            .description(&format!(
                "{} (severity {}): {}",
                text(f, "/Title"),
                if label.is_empty() { "unknown" } else { label },
                text(f, "/Description")
            ));
        let net = &f["Network"];
        let inbound = text(net, "/Direction") != "OUT";
        let (source_ctx, destination_ctx) = if inbound {
            (
                [AttrContext::Remote, AttrContext::Client],
                [AttrContext::Local, AttrContext::Server],
            )
        } else {
            (
                [AttrContext::Local, AttrContext::Client],
                [AttrContext::Remote, AttrContext::Server],
            )
        };
        for p in ["/SourceIpV4", "/SourceIpV6"] {
            a.ip("source address", text(net, p), &source_ctx);
        }
        for p in ["/DestinationIpV4", "/DestinationIpV6"] {
            a.ip("destination address", text(net, p), &destination_ctx);
        }
        a.attr(
            AttrType::Domain,
            "source domain",
            text(net, "/SourceDomain"),
            &source_ctx,
        );
        a.attr(
            AttrType::Domain,
            "destination domain",
            text(net, "/DestinationDomain"),
            &destination_ctx,
        );
        for r in &resources {
            let id = text(r, "/Id");
            let tail = id.rsplit(['/', ':']).next().unwrap_or(id);
            match text(r, "/Type") {
                "AwsEc2Instance" => {
                    a.attr(
                        instance(),
                        "instance",
                        tail,
                        &[AttrContext::Local, AttrContext::Object],
                    );
                    for ip in strings(r, "/Details/AwsEc2Instance/IpV4Addresses") {
                        a.ip(
                            "instance address",
                            ip.as_str().unwrap_or(""),
                            &[AttrContext::Local],
                        );
                    }
                }
                "AwsIamUser" => {
                    let name = text(r, "/Details/AwsIamUser/UserName");
                    a.attr(
                        AttrType::Username,
                        "user",
                        if name.is_empty() { tail } else { name },
                        &[AttrContext::Subject],
                    );
                }
                "AwsIamAccessKey" => {
                    let d = &r["Details"]["AwsIamAccessKey"];
                    let name = [text(d, "/UserName"), text(d, "/PrincipalName")]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .unwrap_or("");
                    a.attr(AttrType::Username, "user", name, &[AttrContext::Subject]);
                }
                "AwsS3Bucket" => {
                    a.attr(
                        AttrType::Other("s3bucket".into()),
                        "bucket",
                        tail,
                        &[AttrContext::Object],
                    );
                }
                _ => {}
            }
        }
        a.build()
    }
}
