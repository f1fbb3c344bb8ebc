//! VirusTotal (API v3): reputation of IP addresses, domains, URLs and file hashes.
//! See README.md in this folder.

use async_trait::async_trait;
use deepalert_core::finding::{
    ContentBinary, ContentHost, EntityActivity, EntityMalware, EntityMalwareScan,
};
use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent, InspectorOutput, Task};
use serde_json::Value;

use super::reputation::{ApiKey, CommonOptions, Provider};

pub const BASE_URL: &str = "https://www.virustotal.com/api/v3";

pub struct VirusTotal(Provider);

impl VirusTotal {
    pub fn new(options: &CommonOptions, key: ApiKey) -> Self {
        // The public API allows 4 lookups a minute.
        VirusTotal(Provider::new("virustotal", options, key, BASE_URL, 4))
    }

    fn path(t: &AttrType, value: &str) -> Option<String> {
        use base64::Engine as _;
        Some(match t {
            AttrType::Ipaddr => format!("/ip_addresses/{value}"),
            AttrType::Domain => format!(
                "/domains/{}",
                value.trim_end_matches('.').to_ascii_lowercase()
            ),
            AttrType::Filehashvalue => format!("/files/{}", value.to_ascii_lowercase()),
            // URL identifiers are the unpadded base64url of the URL.
            AttrType::Url => format!(
                "/urls/{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value)
            ),
            _ => return None,
        })
    }
}

fn stats(attrs: &Value) -> (u64, u64) {
    let s = &attrs["last_analysis_stats"];
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let flagged = n("malicious") + n("suspicious");
    (flagged, flagged + n("harmless") + n("undetected"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(|s| vec![s.to_string()])
        .unwrap_or_default()
}

/// The finding for a VirusTotal object (the `data.attributes` of its answer).
pub fn finding(t: &AttrType, value: &str, attrs: &Value) -> FindingContent {
    let (flagged, engines) = stats(attrs);
    let verdict = format!("{flagged} of {engines} engines flag it malicious or suspicious");
    if *t == AttrType::Filehashvalue {
        let scans = attrs["last_analysis_results"]
            .as_object()
            .map(|results| {
                results
                    .values()
                    .filter(|r| matches!(r["category"].as_str(), Some("malicious" | "suspicious")))
                    .map(|r| EntityMalwareScan {
                        vendor: r["engine_name"].as_str().unwrap_or("").into(),
                        name: r["result"].as_str().unwrap_or("").into(),
                        positive: true,
                        source: "VirusTotal".into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        return FindingContent::Binary(ContentBinary {
            related_malware: vec![EntityMalware {
                sha256: attrs["sha256"].as_str().unwrap_or(value).into(),
                scans,
                relation: attrs["meaningful_name"].as_str().unwrap_or("").into(),
                ..Default::default()
            }],
            activities: vec![EntityActivity {
                service_name: "virustotal".into(),
                action: verdict,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    FindingContent::Host(ContentHost {
        ipaddr: if *t == AttrType::Ipaddr {
            vec![value.into()]
        } else {
            vec![]
        },
        country: strings(&attrs["country"]),
        as_owner: strings(&attrs["as_owner"]),
        activities: vec![EntityActivity {
            service_name: "virustotal".into(),
            action: verdict,
            target: value.into(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

#[async_trait]
impl InspectorPlugin for VirusTotal {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        let t = &task.attribute.attr_type;
        let value = task.attribute.value.trim();
        let Some(path) = Self::path(t, value) else {
            return Ok(InspectorOutput::default());
        };
        let p = &self.0;
        let request = p
            .http
            .get(format!("{}{path}", p.base))
            .header("x-apikey", p.key.expose())
            .header("accept", "application/json");
        p.lookup(&path, request, |body| {
            finding(t, value, &body["data"]["attributes"])
        })
        .await
    }
}
