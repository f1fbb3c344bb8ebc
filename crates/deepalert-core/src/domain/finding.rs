//! What inspectors find out about an attribute (DeepAlert's content kinds and entities).
//! Every field is optional on the wire: inspectors fill in what they know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Attribute, ReportId};

/// One inspector's answer about one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub report_id: ReportId,
    pub author: String,
    pub attribute: Attribute,
    #[serde(flatten)]
    pub content: FindingContent,
}

// Plug-in authors build these by hand; boxing the host variant would cost them more than
// the few hundred bytes it saves per finding.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "content", rename_all = "lowercase")]
pub enum FindingContent {
    Host(ContentHost),
    User(ContentUser),
    Binary(ContentBinary),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentHost {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub ipaddr: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub country: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub as_owner: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub related_domains: Vec<EntityDomain>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub related_urls: Vec<EntityUrl>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub related_malware: Vec<EntityMalware>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub activities: Vec<EntityActivity>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub username: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub owner: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub os: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub macaddr: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub hostname: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub software: Vec<EntitySoftware>,
    /// Not in DeepAlert: where an asset runs (`production`, `staging`…), from an inventory.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub environment: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentUser {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub activities: Vec<EntityActivity>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentBinary {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub related_malware: Vec<EntityMalware>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub software: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub os: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub activities: Vec<EntityActivity>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityActivity {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_addr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityMalware {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::null_as_default"
    )]
    pub scans: Vec<EntityMalwareScan>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub relation: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityMalwareScan {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub positive: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityDomain {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityUrl {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntitySoftware {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub last_seen: Option<DateTime<Utc>>,
}

impl FindingContent {
    /// Kind name and content JSON, as stores keep them.
    pub fn to_parts(&self) -> (&'static str, String) {
        let content = match self {
            FindingContent::Host(h) => serde_json::to_string(h),
            FindingContent::User(u) => serde_json::to_string(u),
            FindingContent::Binary(b) => serde_json::to_string(b),
        };
        let kind = match self {
            FindingContent::Host(_) => "host",
            FindingContent::User(_) => "user",
            FindingContent::Binary(_) => "binary",
        };
        (kind, content.expect("finding content always serializes"))
    }

    pub fn from_parts(kind: &str, content: &str) -> Result<FindingContent, serde_json::Error> {
        Ok(match kind {
            "host" => FindingContent::Host(serde_json::from_str(content)?),
            "user" => FindingContent::User(serde_json::from_str(content)?),
            _ => FindingContent::Binary(serde_json::from_str(content)?),
        })
    }
}

impl Finding {
    /// Identity of a finding for idempotent storage: the same inspector saying the same
    /// thing about the same attribute twice (a redelivered task) is stored once.
    pub fn identity(&self) -> String {
        let (kind, content) = self.content.to_parts();
        // A tuple prints as the same JSON array as `json!([...])` did, without building it.
        let canonical =
            serde_json::to_string(&(&self.author, self.attribute.identity(), kind, content))
                .expect("strings always serialize");
        super::sha256_hex(canonical.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttrContext, AttrType};

    /// Finding identities are stored (one row per identity): their bytes must never change.
    #[test]
    fn finding_identity_is_stable() {
        let finding = Finding {
            report_id: ReportId::new_random(),
            author: "whois \"db\"".into(),
            attribute: Attribute::new(AttrType::Ipaddr, "src", "192.0.2.1", &[AttrContext::Remote]),
            content: FindingContent::Host(ContentHost {
                ipaddr: vec!["192.0.2.1".into()],
                owner: vec!["example".into()],
                ..Default::default()
            }),
        };
        assert_eq!(
            finding.identity(),
            "355c3044d97622ad26af9727dfb012c9874f40be8e078ea3c5546c35578cece5"
        );
    }
}
