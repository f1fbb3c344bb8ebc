use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use super::finding::{ContentBinary, ContentHost, ContentUser};
use super::{Alert, Attribute};

/// Report identifier: a UUID v4, as DeepAlert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReportId(pub Uuid);

impl ReportId {
    pub fn new_random() -> Self {
        ReportId(Uuid::new_v4())
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
    pub author: String,
    #[serde(flatten)]
    pub content: T,
}

/// Findings grouped by the attribute they are about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub attribute: Attribute,
    #[serde(default)]
    pub hosts: Vec<Authored<ContentHost>>,
    #[serde(default)]
    pub users: Vec<Authored<ContentUser>>,
    #[serde(default)]
    pub binaries: Vec<Authored<ContentBinary>>,
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
    pub alerts: Vec<Alert>,
    pub attributes: Vec<Attribute>,
    pub sections: Vec<Section>,
    #[serde(default)]
    pub notes: Vec<Note>,
    /// `null` until the report has been reviewed.
    pub result: Option<ReviewResult>,
    pub status: ReportStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    /// How many times this report has been published (a late alert publishes it again).
    #[serde(default)]
    pub publications: u32,
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
