use serde::{Deserialize, Serialize};

use super::finding::FindingContent;
use super::{Attribute, ReportId};

/// Sent to inspectors: "look this attribute up for this report".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub report_id: ReportId,
    pub attribute: Attribute,
    /// Of the report's alerts; lets an inspector (or an SNS filter policy) pick its work.
    /// Not in DeepAlert's task, which inspectors written for it ignore.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_id: String,
}

/// What an inspector answers for one task. `findings` become report sections; `attributes`
/// are new things worth inspecting (bounded by depth and count per report).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectorOutput {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub findings: Vec<FindingContent>,
    #[serde(
        default,
        alias = "new_attributes",
        deserialize_with = "super::null_as_default"
    )]
    pub attributes: Vec<Attribute>,
}

/// An inspector's answer as it travels back to the pipeline (the inspection queue on AWS,
/// in process locally): who answered, about what, and either the output or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionReport {
    pub report_id: ReportId,
    pub author: String,
    pub attribute: Attribute,
    #[serde(flatten)]
    pub output: InspectorOutput,
    /// Set when the inspector failed; recorded as a note on the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
