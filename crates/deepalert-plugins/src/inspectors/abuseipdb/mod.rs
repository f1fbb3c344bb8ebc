//! AbuseIPDB (API v2): abuse reports about IP addresses. See README.md in this folder.

use async_trait::async_trait;
use deepalert_core::finding::{ContentHost, EntityActivity};
use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent, InspectorOutput, Task};
use serde_json::Value;

use super::reputation::{ApiKey, CommonOptions, Provider};

pub const BASE_URL: &str = "https://api.abuseipdb.com/api/v2";
/// Reports older than this are not counted.
pub const MAX_AGE_DAYS: u32 = 90;

pub struct AbuseIpDb(Provider);

impl AbuseIpDb {
    pub fn new(options: &CommonOptions, key: ApiKey) -> Self {
        // The free plan allows 1000 checks a day: about 0.7 a minute; allow bursts of 60.
        AbuseIpDb(Provider::new("abuseipdb", options, key, BASE_URL, 60))
    }
}

/// The finding for an AbuseIPDB `data` object.
pub fn finding(ip: &str, data: &Value) -> FindingContent {
    let score = data["abuseConfidenceScore"].as_u64().unwrap_or(0);
    let reports = data["totalReports"].as_u64().unwrap_or(0);
    let text = |k: &str| {
        data[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    };
    FindingContent::Host(ContentHost {
        ipaddr: vec![ip.into()],
        country: text("countryCode"),
        as_owner: text("isp"),
        related_domains: data["domain"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(|d| {
                vec![deepalert_core::finding::EntityDomain {
                    name: d.into(),
                    source: "AbuseIPDB".into(),
                    ..Default::default()
                }]
            })
            .unwrap_or_default(),
        activities: vec![EntityActivity {
            service_name: "abuseipdb".into(),
            action: format!(
                "abuse confidence {score}% from {reports} report(s) in {MAX_AGE_DAYS} days"
            ),
            target: ip.into(),
            last_seen: data["lastReportedAt"].as_str().and_then(|s| s.parse().ok()),
            ..Default::default()
        }],
        ..Default::default()
    })
}

#[async_trait]
impl InspectorPlugin for AbuseIpDb {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        if task.attribute.attr_type != AttrType::Ipaddr {
            return Ok(InspectorOutput::default());
        }
        let ip = task.attribute.value.trim();
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Ok(InspectorOutput::default());
        }
        let p = &self.0;
        let request = p
            .http
            .get(format!("{}/check", p.base))
            .query(&[
                ("ipAddress", ip),
                ("maxAgeInDays", &MAX_AGE_DAYS.to_string()),
            ])
            .header("Key", p.key.expose())
            .header("Accept", "application/json");
        p.lookup(ip, request, |body| finding(ip, &body["data"]))
            .await
    }
}
