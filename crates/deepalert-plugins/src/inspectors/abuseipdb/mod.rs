//! AbuseIPDB (API v2): abuse reports about IP addresses. See README.md in this folder.

use std::time::Duration;

use async_trait::async_trait;
use deepalert_core::finding::{ContentHost, EntityActivity};
use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent, InspectorOutput, Task};
use serde_json::Value;

use super::reputation::{ApiKey, Cache, CommonOptions, RateLimit, get_json};

pub const BASE_URL: &str = "https://api.abuseipdb.com/api/v2";
/// Reports older than this are not counted.
pub const MAX_AGE_DAYS: u32 = 90;

pub struct AbuseIpDb {
    key: ApiKey,
    base: String,
    cache: Cache,
    limit: RateLimit,
    client: reqwest::Client,
}

impl AbuseIpDb {
    pub fn new(options: &CommonOptions, key: ApiKey) -> Self {
        AbuseIpDb {
            key,
            base: options
                .base_url
                .clone()
                .unwrap_or_else(|| BASE_URL.into())
                .trim_end_matches('/')
                .into(),
            cache: Cache::new(options.cache_ttl.unwrap_or(Duration::from_secs(6 * 3600))),
            // The free plan allows 1000 checks a day: about 0.7 a minute; allow bursts of 60.
            limit: RateLimit::per_minute(options.requests_per_minute.unwrap_or(60)),
            client: crate::emitters::http_client(),
        }
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
        if let Some(hit) = self.cache.get(ip) {
            return Ok(hit);
        }
        let request = self
            .client
            .get(format!("{}/check", self.base))
            .query(&[
                ("ipAddress", ip),
                ("maxAgeInDays", &MAX_AGE_DAYS.to_string()),
            ])
            .header("Key", self.key.expose())
            .header("Accept", "application/json");
        let mut out = InspectorOutput::default();
        if let Some(body) = get_json("abuseipdb", &self.limit, request).await? {
            out.findings.push(finding(ip, &body["data"]));
        }
        self.cache.put(ip.to_string(), out.clone());
        Ok(out)
    }
}
