//! The handlers of the example plug-ins: plain async functions, unit-testable with
//! `deepalert_sdk::testing`. The binaries in `src/bin/` run them with one SDK call, as a
//! Lambda function or as an exec plug-in of `deepalert serve`.

use deepalert_sdk::{
    AttrType, Attribute, ContentHost, ContentUser, EntityActivity, Error, FindingContent,
    InspectorOutput, Report, ReviewResult, Severity, Task,
};

const THREATS: &[(&str, &str)] = &[
    (
        "198.51.100.23",
        "SSH brute-force botnet (example threat list)",
    ),
    (
        "198.51.100.99",
        "SSH brute-force botnet (example threat list)",
    ),
    (
        "203.0.113.77",
        "credential-stuffing proxy (example threat list)",
    ),
];

/// Looks attributes up in a small threat list and asset inventory (as the Python example).
pub async fn inspect(task: Task) -> Result<InspectorOutput, Error> {
    let value = task.attribute.value.as_str();
    let mut out = InspectorOutput::default();
    match task.attribute.attr_type {
        AttrType::Ipaddr => {
            if let Some((_, what)) = THREATS.iter().find(|(ip, _)| *ip == value) {
                out.findings.push(FindingContent::Host(ContentHost {
                    ipaddr: vec![value.into()],
                    activities: vec![EntityActivity {
                        service_name: "threat-list".into(),
                        action: (*what).into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }));
            }
            if value == "10.0.1.23" {
                out.findings.push(FindingContent::Host(ContentHost {
                    ipaddr: vec![value.into()],
                    hostname: vec!["web-1".into()],
                    owner: vec!["alice".into()],
                    os: vec!["Amazon Linux 2023".into()],
                    ..Default::default()
                }));
                out.attributes.push(Attribute::new(
                    AttrType::Username,
                    "owner of web-1",
                    "alice",
                    &[],
                ));
            }
        }
        AttrType::Username if value == "alice" => {
            out.findings.push(FindingContent::User(ContentUser {
                activities: vec![EntityActivity {
                    service_name: "aws-console".into(),
                    principal: "alice".into(),
                    action: "ConsoleLogin".into(),
                    ..Default::default()
                }],
            }))
        }
        _ => {}
    }
    Ok(out)
}

/// A threat-listed address reaching one of our hosts is urgent.
pub async fn review(report: Report) -> Result<Option<ReviewResult>, Error> {
    let threats: Vec<&str> = report
        .sections
        .iter()
        .filter(|s| {
            s.hosts.iter().any(|h| {
                h.content
                    .activities
                    .iter()
                    .any(|a| a.service_name == "threat-list")
            })
        })
        .map(|s| s.attribute.value.as_str())
        .collect();
    let ours: Vec<&str> = report
        .sections
        .iter()
        .flat_map(|s| s.hosts.iter())
        .filter_map(|h| h.content.hostname.first().map(String::as_str))
        .collect();
    Ok(Some(match (threats.is_empty(), ours.is_empty()) {
        (false, false) => ReviewResult {
            severity: Severity::Urgent,
            reason: format!(
                "threat-listed {} reached our host {}",
                threats.join(", "),
                ours.join(", ")
            ),
        },
        (false, true) => {
            ReviewResult::unclassified(format!("threat-listed {}", threats.join(", ")))
        }
        _ => ReviewResult {
            severity: Severity::Safe,
            reason: "no attribute is on the threat list".into(),
        },
    }))
}

/// Appends the report as a JSON line to `EMITTER_OUT` (or logs a summary when unset).
pub async fn emit(report: Report) -> Result<(), Error> {
    use std::io::Write;
    let line = serde_json::to_string(&report)?;
    match std::env::var("EMITTER_OUT") {
        Ok(path) => {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            writeln!(f, "{line}")?;
        }
        Err(_) => eprintln!(
            "report {} {}",
            report.id,
            report
                .result
                .map(|r| r.severity.to_string())
                .unwrap_or_default()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepalert_sdk::testing;

    #[tokio::test]
    async fn our_host_yields_its_owner_to_inspect() {
        let out = inspect(testing::task(AttrType::Ipaddr, "10.0.1.23"))
            .await
            .unwrap();
        assert_eq!(out.attributes[0].value, "alice");
        let out = inspect(testing::task(AttrType::Domain, "example.com"))
            .await
            .unwrap();
        assert_eq!(out, InspectorOutput::default());
    }

    #[tokio::test]
    async fn threat_and_our_host_is_urgent() {
        let threat = inspect(testing::task(AttrType::Ipaddr, "198.51.100.23"))
            .await
            .unwrap();
        let host = inspect(testing::task(AttrType::Ipaddr, "10.0.1.23"))
            .await
            .unwrap();
        let ip = |v: &str| Attribute::new(AttrType::Ipaddr, "test", v, &[]);
        let report = testing::with_finding(
            testing::report(),
            ip("198.51.100.23"),
            "x",
            threat.findings[0].clone(),
        );
        let only_threat = review(report.clone()).await.unwrap().unwrap();
        assert_eq!(only_threat.severity, Severity::Unclassified);
        let report = testing::with_finding(report, ip("10.0.1.23"), "x", host.findings[0].clone());
        let verdict = review(report).await.unwrap().unwrap();
        assert_eq!(verdict.severity, Severity::Urgent);
        assert!(verdict.reason.contains("web-1"));
    }
}
