use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A security alert as producers send it (DeepAlert's JSON field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub detector: String,
    pub rule_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alert_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

impl Alert {
    /// The aggregation key; must equal DeepAlert's so mixed fleets agree.
    pub fn alert_id(&self) -> AlertId {
        AlertId::new(&self.detector, &self.rule_id, &self.alert_key)
    }

    /// Identifies this exact alert message, so a redelivered message is stored once.
    /// Computed over the canonical re-serialization, so whitespace and key order in the
    /// original payload do not matter.
    pub fn content_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("an Alert always serializes");
        hex(&Sha256::digest(&canonical))
    }
}

/// `"alert:" + hex(sha256(b64(detector) ":" b64(rule_id) ":" b64(alert_key)))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(String);

impl AlertId {
    pub fn new(detector: &str, rule_id: &str, alert_key: &str) -> Self {
        let joined = format!(
            "{}:{}:{}",
            STANDARD.encode(detector),
            STANDARD.encode(rule_id),
            STANDARD.encode(alert_key)
        );
        AlertId(format!("alert:{}", hex(&Sha256::digest(joined.as_bytes()))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(s: String) -> Self {
        AlertId(s)
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an attribute is. DeepAlert's types are open strings: the six known ones have
/// variants, anything else is kept as it came (`Other`) and passed to inspectors as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrType {
    Ipaddr,
    Domain,
    Username,
    Filehashvalue,
    Json,
    Url,
    Other(String),
}

impl AttrType {
    pub const KNOWN: [AttrType; 6] = [
        AttrType::Ipaddr,
        AttrType::Domain,
        AttrType::Username,
        AttrType::Filehashvalue,
        AttrType::Json,
        AttrType::Url,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            AttrType::Ipaddr => "ipaddr",
            AttrType::Domain => "domain",
            AttrType::Username => "username",
            AttrType::Filehashvalue => "filehashvalue",
            AttrType::Json => "json",
            AttrType::Url => "url",
            AttrType::Other(s) => s,
        }
    }

    /// Any string: a known type, else `Other`.
    pub fn from_wire(s: &str) -> Self {
        AttrType::KNOWN
            .into_iter()
            .find(|t| t.as_str() == s)
            .unwrap_or_else(|| AttrType::Other(s.to_string()))
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, AttrType::Other(_))
    }
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses one of the six known types only: configuration uses it, so that a typo in a
/// type filter is an error rather than a filter that never matches.
impl std::str::FromStr for AttrType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = AttrType::from_wire(s);
        if t.is_known() {
            Ok(t)
        } else {
            Err(format!(
                "unknown attribute type {s:?} (known: ipaddr, domain, username, filehashvalue, json, url)"
            ))
        }
    }
}

impl Serialize for AttrType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AttrType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(AttrType::from_wire(&s))
    }
}

/// The role of an attribute in the alert. Open, like [`AttrType`]: the eight known
/// contexts have variants, others are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrContext {
    Remote,
    Local,
    Subject,
    Object,
    Client,
    Server,
    File,
    Additional,
    Other(String),
}

impl AttrContext {
    pub const KNOWN: [AttrContext; 8] = [
        AttrContext::Remote,
        AttrContext::Local,
        AttrContext::Subject,
        AttrContext::Object,
        AttrContext::Client,
        AttrContext::Server,
        AttrContext::File,
        AttrContext::Additional,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            AttrContext::Remote => "remote",
            AttrContext::Local => "local",
            AttrContext::Subject => "subject",
            AttrContext::Object => "object",
            AttrContext::Client => "client",
            AttrContext::Server => "server",
            AttrContext::File => "file",
            AttrContext::Additional => "additional",
            AttrContext::Other(s) => s,
        }
    }

    pub fn from_wire(s: &str) -> Self {
        AttrContext::KNOWN
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or_else(|| AttrContext::Other(s.to_string()))
    }
}

impl Serialize for AttrContext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AttrContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(AttrContext::from_wire(&s))
    }
}

/// Something in an alert worth looking up: an IP address, a domain, a user name…
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    #[serde(default)]
    pub key: String,
    pub value: String,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub context: Vec<AttrContext>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::go_time"
    )]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Attribute {
    pub fn new(attr_type: AttrType, key: &str, value: &str, context: &[AttrContext]) -> Self {
        Attribute {
            attr_type,
            key: key.to_string(),
            value: value.to_string(),
            context: context.to_vec(),
            timestamp: None,
        }
    }

    /// Identity for de-duplication within a report: type, key, value and the *set* of
    /// contexts. The timestamp is deliberately left out (DeepAlert hashed it, so the same
    /// value seen twice was inspected twice).
    pub fn identity(&self) -> AttrHash {
        let mut ctx: Vec<&str> = self.context.iter().map(|c| c.as_str()).collect();
        ctx.sort_unstable();
        ctx.dedup();
        // A tuple prints as the same JSON array as `json!([...])` did, without building it:
        // identities are computed for every attribute and finding a report compiles.
        let canonical =
            serde_json::to_string(&(self.attr_type.as_str(), &self.key, &self.value, ctx))
                .expect("strings always serialize");
        AttrHash(hex(&Sha256::digest(canonical.as_bytes())))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttrHash(pub String);

impl fmt::Display for AttrHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_id_matches_deepalert_vector() {
        assert_eq!(
            AlertId::new("ao", "five", "5").as_str(),
            "alert:9ce24c33b6ecff3b1244a3957297e7caaa48078082311fa7db4284e0cc77b7cf"
        );
    }

    fn alert(rule_name: &str) -> Alert {
        Alert {
            detector: "ao".into(),
            rule_id: "five".into(),
            rule_name: rule_name.into(),
            alert_key: "5".into(),
            description: String::new(),
            timestamp: None,
            attributes: vec![],
            body: None,
        }
    }

    #[test]
    fn rule_name_does_not_change_alert_id() {
        assert_eq!(alert("one").alert_id(), alert("two").alert_id());
        let mut other = alert("one");
        other.alert_key = "6".into();
        assert_ne!(alert("one").alert_id(), other.alert_id());
    }

    /// Identities are stored (claims, findings): their bytes must never change.
    #[test]
    fn attribute_identity_is_stable() {
        use AttrContext::*;
        let a = Attribute::new(
            AttrType::Ipaddr,
            "src \"quoted\"",
            "192.0.2.1",
            &[Remote, Client],
        );
        assert_eq!(
            a.identity().0,
            "47a32793dc78b961bc4aecaf9fa24ce89d54c58554c16066c6f12c84bea3c04d"
        );
    }

    #[test]
    fn attribute_identity_ignores_context_order_and_timestamp() {
        use AttrContext::*;
        let a = Attribute::new(AttrType::Ipaddr, "src", "192.0.2.1", &[Remote, Client]);
        let mut b = Attribute::new(AttrType::Ipaddr, "src", "192.0.2.1", &[Client, Remote]);
        b.timestamp = Some(Utc::now());
        assert_eq!(a.identity(), b.identity());

        let c = Attribute::new(
            AttrType::Ipaddr,
            "src",
            "192.0.2.1",
            &[Client, Remote, Remote],
        );
        assert_eq!(a.identity(), c.identity(), "duplicate contexts are a set");

        for different in [
            Attribute::new(AttrType::Domain, "src", "192.0.2.1", &[Remote, Client]),
            Attribute::new(AttrType::Ipaddr, "dst", "192.0.2.1", &[Remote, Client]),
            Attribute::new(AttrType::Ipaddr, "src", "192.0.2.2", &[Remote, Client]),
            Attribute::new(AttrType::Ipaddr, "src", "192.0.2.1", &[Remote]),
        ] {
            assert_ne!(a.identity(), different.identity(), "{different:?}");
        }
    }

    #[test]
    fn content_hash_ignores_formatting() {
        let a: Alert =
            serde_json::from_str(r#"{"detector":"d","rule_id":"r","alert_key":"k"}"#).unwrap();
        let b: Alert = serde_json::from_str(
            r#"{ "rule_id" : "r",
                 "alert_key":"k", "detector":"d" }"#,
        )
        .unwrap();
        assert_eq!(a.content_hash(), b.content_hash());
    }
}
