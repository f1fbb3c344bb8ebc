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

/// Why an inspector's message (inspection queue) or output (exec stdout) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InspectionMessageError(pub String);

fn err(msg: impl Into<String>) -> InspectionMessageError {
    InspectionMessageError(msg.into())
}

/// Keys that make a message one of DeepAlert's: a finding (`type` + `content`) or new
/// attributes (`origin_attr` in the fork, `original` in the original line).
fn deepalert_shape(obj: &serde_json::Map<String, serde_json::Value>) -> bool {
    ["type", "content", "origin_attr", "original"]
        .iter()
        .any(|k| obj.contains_key(*k))
}

fn typed<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    what: &str,
) -> Result<T, InspectionMessageError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            err(format!("{what}: {inner}"))
        } else {
            err(format!("{what}: {path}: {inner}"))
        }
    })
}

fn field<T: serde::de::DeserializeOwned>(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    what: &str,
) -> Result<T, InspectionMessageError> {
    let v = obj
        .get(key)
        .cloned()
        .ok_or_else(|| err(format!("{what}: missing field `{key}`")))?;
    typed(v, &format!("{what}: {key}"))
}

impl InspectionReport {
    /// Reads one message from the inspection queue, in any shape an inspector may send:
    ///
    /// - ours: `{report_id, author, attribute, findings, attributes, error}`;
    /// - DeepAlert's finding (`ReportSection` / `Finding`, one per message):
    ///   `{report_id, author, attribute, type, content}`;
    /// - DeepAlert's new attributes (`ReportAttribute`): `{report_id, author,
    ///   origin_attr | original, attributes}`, the attribute they came from being
    ///   `origin_attr` (fork) or `original` (original line).
    ///
    /// Anything else is an error that says what was expected and what came.
    pub fn from_message(bytes: &[u8]) -> Result<InspectionReport, InspectionMessageError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| err(format!("inspection message is not JSON: {e}")))?;
        Self::from_value(value)
    }

    pub fn from_value(
        value: serde_json::Value,
    ) -> Result<InspectionReport, InspectionMessageError> {
        let serde_json::Value::Object(obj) = value else {
            return Err(err(format!(
                "inspection message must be a JSON object, not {}",
                kind_of(&value)
            )));
        };
        let report_id: ReportId = field(&obj, "report_id", "inspection message")?;
        let author: String = field(&obj, "author", "inspection message")?;
        if author.is_empty() {
            return Err(err("inspection message: author must not be empty"));
        }
        if obj.contains_key("type") || obj.contains_key("content") {
            let what = "DeepAlert finding";
            let attribute: Attribute = field(&obj, "attribute", what)?;
            let content = finding_content(&obj, what)?;
            return Ok(InspectionReport {
                report_id,
                author,
                attribute,
                output: InspectorOutput {
                    findings: vec![content],
                    attributes: vec![],
                },
                error: None,
            });
        }
        let origin_key = ["origin_attr", "original"]
            .into_iter()
            .find(|k| obj.contains_key(*k));
        if let Some(origin_key) = origin_key {
            let what = "DeepAlert new attributes";
            let attribute: Attribute = field(&obj, origin_key, what)?;
            let attributes: Vec<Attribute> = match obj.get("attributes") {
                None | Some(serde_json::Value::Null) => vec![],
                Some(v) => typed(v.clone(), &format!("{what}: attributes"))?,
            };
            return Ok(InspectionReport {
                report_id,
                author,
                attribute,
                output: InspectorOutput {
                    findings: vec![],
                    attributes,
                },
                error: None,
            });
        }
        let ours = ["findings", "attributes", "new_attributes", "error"]
            .iter()
            .any(|k| obj.contains_key(*k));
        if !obj.contains_key("attribute") || !ours {
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            return Err(err(format!(
                "not an inspection message: expected {{report_id, author, attribute, findings | attributes | error}}, \
                 a DeepAlert finding {{report_id, author, attribute, type, content}} or DeepAlert new attributes \
                 {{report_id, author, origin_attr | original, attributes}}; got the keys [{}]",
                keys.join(", ")
            )));
        }
        typed(serde_json::Value::Object(obj), "inspection message")
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn finding_content(
    obj: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<FindingContent, InspectionMessageError> {
    let kind: String = field(obj, "type", what)?;
    if !["host", "user", "binary"].contains(&kind.as_str()) {
        return Err(err(format!(
            "{what}: type {kind:?} is not host, user or binary"
        )));
    }
    let content = obj
        .get("content")
        .cloned()
        .ok_or_else(|| err(format!("{what}: missing field `content`")))?;
    let content = match content {
        serde_json::Value::Null => serde_json::json!({}),
        c => c,
    };
    typed(
        serde_json::json!({"type": kind, "content": content}),
        &format!("{what}: content"),
    )
}

impl InspectorOutput {
    /// Reads what an exec inspector printed for `task`: nothing (nothing found); our
    /// `{"findings", "attributes"}`; or DeepAlert's messages, one JSON document per line
    /// (findings and new attributes, as its Go inspector package sends them) — so one
    /// inspector program works on AWS and under `deepalert serve`. DeepAlert messages must
    /// be about the task's report and attribute. Several documents are merged.
    pub fn from_plugin_output(
        task: &Task,
        bytes: &[u8],
    ) -> Result<InspectorOutput, InspectionMessageError> {
        let mut merged = InspectorOutput::default();
        let docs = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
        for (i, doc) in docs.enumerate() {
            let doc = doc.map_err(|e| err(format!("document {}: {e}", i + 1)))?;
            let obj = match doc {
                serde_json::Value::Null => continue,
                serde_json::Value::Object(obj) => obj,
                other => {
                    return Err(err(format!(
                        "document {}: expected a JSON object, not {}",
                        i + 1,
                        kind_of(&other)
                    )));
                }
            };
            let out = if deepalert_shape(&obj) || obj.contains_key("report_id") {
                let msg = InspectionReport::from_value(serde_json::Value::Object(obj))
                    .map_err(|e| err(format!("document {}: {e}", i + 1)))?;
                if msg.report_id != task.report_id {
                    return Err(err(format!(
                        "document {}: report_id {} is not the task's {}",
                        i + 1,
                        msg.report_id,
                        task.report_id
                    )));
                }
                if msg.attribute.identity() != task.attribute.identity() {
                    return Err(err(format!(
                        "document {}: it is about {} {:?}, but the task was {} {:?}",
                        i + 1,
                        msg.attribute.attr_type,
                        msg.attribute.value,
                        task.attribute.attr_type,
                        task.attribute.value
                    )));
                }
                if let Some(e) = msg.error {
                    return Err(err(format!("the inspector reported an error: {e}")));
                }
                msg.output
            } else {
                typed::<InspectorOutput>(
                    serde_json::Value::Object(obj),
                    &format!("document {}", i + 1),
                )?
            };
            merged.findings.extend(out.findings);
            merged.attributes.extend(out.attributes);
        }
        Ok(merged)
    }
}
