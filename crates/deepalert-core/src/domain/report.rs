use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use super::finding::{ContentBinary, ContentHost, ContentUser};
use super::{Alert, Attribute};

/// Report identifier: a UUID, as DeepAlert's (which made v4; new ones here are v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReportId(pub Uuid);

impl ReportId {
    /// A version 7 UUID: still a random, unguessable UUID as DeepAlert's (74 random
    /// bits), but ordered by creation time, so the rows and index entries of new reports
    /// land together at the end of the embedded store's B-trees instead of all over them.
    pub fn new_random() -> Self {
        ReportId(Uuid::now_v7())
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ReportId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ReportId)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    /// First alert received, not reviewed yet.
    New,
    /// More alerts joined, not reviewed yet.
    More,
    /// Reviewed and handed to emitters (possibly more than once).
    Published,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::New => "new",
            ReportStatus::More => "more",
            ReportStatus::Published => "published",
        }
    }
}

impl std::str::FromStr for ReportStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "new" => Ok(ReportStatus::New),
            "more" => Ok(ReportStatus::More),
            "published" => Ok(ReportStatus::Published),
            other => Err(format!(
                "unknown report status {other:?} (expected new, more or published)"
            )),
        }
    }
}

/// Declared from least to most severe: `Ord` ranks verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Safe,
    Unclassified,
    Urgent,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Safe => "safe",
            Severity::Unclassified => "unclassified",
            Severity::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reviewer's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewResult {
    pub severity: Severity,
    #[serde(default)]
    pub reason: String,
}

impl ReviewResult {
    pub fn unclassified(reason: impl Into<String>) -> Self {
        ReviewResult {
            severity: Severity::Unclassified,
            reason: reason.into(),
        }
    }
}

/// An entry in a section, with the inspector that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authored<T> {
    /// DeepAlert's fork does not say who found what: empty then.
    #[serde(default)]
    pub author: String,
    #[serde(flatten)]
    pub content: T,
}

/// Findings grouped by the attribute they are about. On the wire it carries the
/// attribute twice: as `attribute` (ours) and as `attr` (DeepAlert's fork), so reviewers
/// and emitters written for either read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub attribute: Attribute,
    pub hosts: Vec<Authored<ContentHost>>,
    pub users: Vec<Authored<ContentUser>>,
    pub binaries: Vec<Authored<ContentBinary>>,
}

impl Serialize for Section {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Section", 5)?;
        st.serialize_field("attribute", &self.attribute)?;
        st.serialize_field("attr", &self.attribute)?;
        st.serialize_field("hosts", &self.hosts)?;
        st.serialize_field("users", &self.users)?;
        st.serialize_field("binaries", &self.binaries)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Section {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            attribute: Option<Attribute>,
            #[serde(default)]
            attr: Option<Attribute>,
            #[serde(default, deserialize_with = "super::null_as_default")]
            hosts: Vec<Authored<ContentHost>>,
            #[serde(default, deserialize_with = "super::null_as_default")]
            users: Vec<Authored<ContentUser>>,
            #[serde(default, deserialize_with = "super::null_as_default")]
            binaries: Vec<Authored<ContentBinary>>,
        }
        let w = Wire::deserialize(d)?;
        let attribute = w
            .attribute
            .or(w.attr)
            .ok_or_else(|| serde::de::Error::missing_field("attribute (or attr)"))?;
        Ok(Section {
            attribute,
            hosts: w.hosts,
            users: w.users,
            binaries: w.binaries,
        })
    }
}

/// How sections are written in reports handed to emitters: grouped by attribute (ours
/// and DeepAlert's fork) or the original DeepAlert's flat list of
/// `{report_id, author, attribute, type, content}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionFormat {
    #[default]
    Grouped,
    Flat,
}

impl std::str::FromStr for SectionFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grouped" => Ok(SectionFormat::Grouped),
            "flat" => Ok(SectionFormat::Flat),
            other => Err(format!(
                "unknown section format {other:?} (expected grouped or flat)"
            )),
        }
    }
}

/// Groups stored findings into sections, in the report's attribute order; findings about
/// an attribute the report never claimed get sections at the end. Both stores use it.
pub struct SectionsBuilder {
    order: std::collections::HashMap<super::AttrHash, usize>,
    sections: Vec<(usize, Section)>,
    section_of: std::collections::HashMap<super::AttrHash, usize>,
}

impl SectionsBuilder {
    pub fn new(attributes: &[Attribute]) -> Self {
        SectionsBuilder {
            order: attributes
                .iter()
                .enumerate()
                .map(|(i, a)| (a.identity(), i))
                .collect(),
            sections: Vec::new(),
            section_of: std::collections::HashMap::new(),
        }
    }

    /// Add findings in the order they were stored.
    pub fn add(&mut self, attribute: Attribute, author: String, content: super::FindingContent) {
        use super::FindingContent::*;
        let hash = attribute.identity();
        let idx = match self.section_of.get(&hash) {
            Some(i) => *i,
            None => {
                let rank = self.order.get(&hash).copied().unwrap_or(usize::MAX);
                self.sections.push((
                    rank,
                    Section {
                        attribute,
                        hosts: vec![],
                        users: vec![],
                        binaries: vec![],
                    },
                ));
                self.section_of.insert(hash, self.sections.len() - 1);
                self.sections.len() - 1
            }
        };
        let section = &mut self.sections[idx].1;
        match content {
            Host(content) => section.hosts.push(Authored { author, content }),
            User(content) => section.users.push(Authored { author, content }),
            Binary(content) => section.binaries.push(Authored { author, content }),
        }
    }

    pub fn finish(mut self) -> Vec<Section> {
        self.sections.sort_by_key(|(rank, _)| *rank);
        self.sections.into_iter().map(|(_, s)| s).collect()
    }
}

/// Something the pipeline wants a reader of the report to know: a plug-in that crashed or
/// timed out, an attribute dropped by the feedback bounds, an emitter that gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub author: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<Attribute>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// Everything known about one aggregated incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub id: ReportId,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub alerts: Vec<Alert>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub attributes: Vec<Attribute>,
    /// Grouped by attribute; reading also takes DeepAlert's flat list.
    #[serde(default, deserialize_with = "sections_any_shape")]
    pub sections: Vec<Section>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub notes: Vec<Note>,
    /// `null` until the report has been reviewed. Reading also takes DeepAlert's
    /// `{"severity": "", "reason": ""}` for "not reviewed".
    #[serde(default, deserialize_with = "verdict")]
    pub result: Option<ReviewResult>,
    pub status: ReportStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    /// How many times this report has been published (a late alert publishes it again).
    #[serde(default)]
    pub publications: u32,
    /// What happened to the report, oldest first: response flows' steps, and (locally) the
    /// pipeline's own steps. A report as reviewed and published has the flow steps only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

/// One thing that happened to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// What kind of thing: `alert`, `inspection`, `review`, `publication`, `emit`, `flow`.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl TimelineEntry {
    /// The kind of a response flow's step.
    pub const FLOW: &'static str = "flow";

    /// Flow steps are part of the report that is reviewed and published (on every
    /// platform); the other kinds are the local pipeline's log of its own steps.
    pub fn is_flow_step(&self) -> bool {
        self.kind == Self::FLOW
    }
}

impl Report {
    /// Makes the serialized report fit in `max_bytes` (SNS messages, DynamoDB items and
    /// Lambda payloads have limits): drops alert bodies first, then alerts after the first,
    /// saying so in a note. Returns false if it still does not fit.
    pub fn shrink_to_fit(&mut self, max_bytes: usize, now: DateTime<Utc>) -> bool {
        let size = |r: &Report| serde_json::to_vec(r).map(|v| v.len()).unwrap_or(usize::MAX);
        if size(self) <= max_bytes {
            return true;
        }
        for alert in &mut self.alerts {
            alert.body = None;
        }
        self.notes.push(Note {
            author: "deepalert".into(),
            attribute: None,
            message: format!(
                "alert bodies omitted: the report is over {max_bytes} bytes (the stored report has them)"
            ),
            created_at: now,
        });
        if size(self) <= max_bytes {
            return true;
        }
        let dropped = self.alerts.len().saturating_sub(1);
        self.alerts.truncate(1);
        self.notes.push(Note {
            author: "deepalert".into(),
            attribute: None,
            message: format!("{dropped} alert(s) after the first omitted to fit {max_bytes} bytes"),
            created_at: now,
        });
        size(self) <= max_bytes
    }

    /// The detector and rule of the first alert, which every alert of a report shares.
    pub fn detector(&self) -> &str {
        self.alerts
            .first()
            .map(|a| a.detector.as_str())
            .unwrap_or("")
    }

    pub fn rule_id(&self) -> &str {
        self.alerts
            .first()
            .map(|a| a.rule_id.as_str())
            .unwrap_or("")
    }
}

/// A reviewer's answer or a report's `result`: `null`, or an object whose `severity` is
/// missing or empty (DeepAlert's "not reviewed" / "no verdict"), is no verdict; an
/// unknown severity is an error naming it.
pub fn verdict_from_value(v: serde_json::Value) -> Result<Option<ReviewResult>, String> {
    let obj = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Object(obj) => obj,
        other => {
            return Err(format!(
                "a verdict is an object {{\"severity\", \"reason\"}} or null, not {other}"
            ));
        }
    };
    let severity = match obj.get("severity") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => match s.as_str() {
            "safe" => Severity::Safe,
            "unclassified" => Severity::Unclassified,
            "urgent" => Severity::Urgent,
            other => {
                return Err(format!(
                    "unknown severity {other:?} (expected safe, unclassified or urgent)"
                ));
            }
        },
        Some(other) => return Err(format!("severity must be a string, not {other}")),
    };
    let reason = match obj.get("reason") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("reason must be a string, not {other}")),
    };
    Ok(Some(ReviewResult { severity, reason }))
}

/// A reviewer's answer as bytes (a program's stdout, a Lambda payload): nothing, `null`
/// or an empty severity is no verdict.
pub fn parse_verdict(bytes: &[u8]) -> Result<Option<ReviewResult>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    verdict_from_value(v)
}

fn verdict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ReviewResult>, D::Error> {
    verdict_from_value(serde_json::Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// One entry of DeepAlert's flat section list (its `ReportSection` / `Finding`).
#[derive(Deserialize)]
struct FlatSection {
    #[serde(default)]
    author: String,
    attribute: Attribute,
    #[serde(flatten)]
    content: super::FindingContent,
}

fn sections_any_shape<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Section>, D::Error> {
    use serde::de::Error;
    let items: Vec<serde_json::Value> = super::null_as_default(d)?;
    let mut grouped = Vec::new();
    let mut flat = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let is_flat = item.get("content").is_some() || item.get("type").is_some();
        if is_flat {
            let f: FlatSection = serde_json::from_value(item)
                .map_err(|e| D::Error::custom(format!("sections[{i}]: {e}")))?;
            flat.push(f);
        } else {
            grouped.push(
                serde_json::from_value::<Section>(item)
                    .map_err(|e| D::Error::custom(format!("sections[{i}]: {e}")))?,
            );
        }
    }
    if flat.is_empty() {
        return Ok(grouped);
    }
    let order: Vec<Attribute> = grouped
        .iter()
        .map(|s| s.attribute.clone())
        .chain(flat.iter().map(|f| f.attribute.clone()))
        .collect();
    let mut builder = SectionsBuilder::new(&order);
    for s in grouped {
        for h in s.hosts {
            builder.add(
                s.attribute.clone(),
                h.author,
                super::FindingContent::Host(h.content),
            );
        }
        for u in s.users {
            builder.add(
                s.attribute.clone(),
                u.author,
                super::FindingContent::User(u.content),
            );
        }
        for b in s.binaries {
            builder.add(
                s.attribute.clone(),
                b.author,
                super::FindingContent::Binary(b.content),
            );
        }
    }
    for f in flat {
        builder.add(f.attribute, f.author, f.content);
    }
    Ok(builder.finish())
}

impl Report {
    /// The report as emitters receive it: sections in `format`, and `result` always an
    /// object (`{"severity": "", "reason": ""}` before review), as DeepAlert sent it.
    pub fn to_wire(&self, format: SectionFormat) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("reports always serialize");
        if self.result.is_none() {
            v["result"] = serde_json::json!({"severity": "", "reason": ""});
        }
        if format == SectionFormat::Flat {
            let mut flat = Vec::new();
            for s in &self.sections {
                let entry = |author: &str, kind: &str, content: serde_json::Value| {
                    serde_json::json!({
                        "report_id": self.id,
                        "author": author,
                        "attribute": s.attribute,
                        "type": kind,
                        "content": content,
                    })
                };
                for h in &s.hosts {
                    flat.push(entry(&h.author, "host", serde_json::json!(h.content)));
                }
                for u in &s.users {
                    flat.push(entry(&u.author, "user", serde_json::json!(u.content)));
                }
                for b in &s.binaries {
                    flat.push(entry(&b.author, "binary", serde_json::json!(b.content)));
                }
            }
            v["sections"] = serde_json::Value::Array(flat);
        }
        v
    }
}
