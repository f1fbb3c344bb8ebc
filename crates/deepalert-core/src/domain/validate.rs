//! DeepAlert's limits on alerts. Every violation names the field and the limit.

use std::fmt;

use super::{Alert, Attribute, InspectorOutput};

pub const MAX_NAME_BYTES: usize = 1024;
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
pub const MAX_ATTRIBUTES: usize = 100;
pub const MAX_ATTR_FIELD_BYTES: usize = 1024;
pub const MAX_BODY_BYTES: usize = 65536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, e.g. `attributes[3].value`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.violations.iter().map(|v| v.to_string()).collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// Why an alert payload was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("invalid alert JSON: {0}")]
    Parse(String),
    #[error("invalid alert: {0}")]
    Invalid(#[from] ValidationError),
}

/// Parses and validates one alert. Parse errors carry the JSON path of the bad field.
pub fn parse_alert(bytes: &[u8]) -> Result<Alert, AlertError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let alert: Alert = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            AlertError::Parse(inner.to_string())
        } else {
            AlertError::Parse(format!("{path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| AlertError::Parse(e.to_string()))?;
    validate_alert(&alert)?;
    Ok(alert)
}

pub fn validate_alert(alert: &Alert) -> Result<(), ValidationError> {
    let mut v = Vec::new();
    required(&mut v, "detector", &alert.detector);
    required(&mut v, "rule_id", &alert.rule_id);
    max_bytes(&mut v, "detector", &alert.detector, MAX_NAME_BYTES);
    max_bytes(&mut v, "rule_id", &alert.rule_id, MAX_NAME_BYTES);
    max_bytes(&mut v, "rule_name", &alert.rule_name, MAX_NAME_BYTES);
    max_bytes(&mut v, "alert_key", &alert.alert_key, MAX_NAME_BYTES);
    max_bytes(
        &mut v,
        "description",
        &alert.description,
        MAX_DESCRIPTION_BYTES,
    );
    check_attributes(&mut v, "attributes", &alert.attributes);
    if let Some(body) = &alert.body {
        let len = serde_json::to_vec(body)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if len > MAX_BODY_BYTES {
            v.push(Violation {
                field: "body".into(),
                message: format!(
                    "serialized body is {len} bytes, over the limit of {MAX_BODY_BYTES} bytes"
                ),
            });
        }
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { violations: v })
    }
}

/// Inspector output obeys the same attribute limits as alerts.
pub fn validate_inspector_output(out: &InspectorOutput) -> Result<(), ValidationError> {
    let mut v = Vec::new();
    check_attributes(&mut v, "attributes", &out.attributes);
    if v.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { violations: v })
    }
}

fn check_attributes(v: &mut Vec<Violation>, field: &str, attrs: &[Attribute]) {
    if attrs.len() > MAX_ATTRIBUTES {
        v.push(Violation {
            field: field.into(),
            message: format!(
                "{} attributes, over the limit of {MAX_ATTRIBUTES}",
                attrs.len()
            ),
        });
    }
    for (i, a) in attrs.iter().enumerate() {
        max_bytes(
            v,
            &format!("{field}[{i}].key"),
            &a.key,
            MAX_ATTR_FIELD_BYTES,
        );
        max_bytes(
            v,
            &format!("{field}[{i}].value"),
            &a.value,
            MAX_ATTR_FIELD_BYTES,
        );
        required(v, &format!("{field}[{i}].value"), &a.value);
        // Types and contexts are open strings (DeepAlert's are); bounded like the rest.
        max_bytes(
            v,
            &format!("{field}[{i}].type"),
            a.attr_type.as_str(),
            MAX_ATTR_FIELD_BYTES,
        );
        for (j, c) in a.context.iter().enumerate() {
            max_bytes(
                v,
                &format!("{field}[{i}].context[{j}]"),
                c.as_str(),
                MAX_ATTR_FIELD_BYTES,
            );
        }
    }
}

fn required(v: &mut Vec<Violation>, field: &str, value: &str) {
    if value.is_empty() {
        v.push(Violation {
            field: field.into(),
            message: "is required and must not be empty".into(),
        });
    }
}

fn max_bytes(v: &mut Vec<Violation>, field: &str, value: &str, limit: usize) {
    if value.len() > limit {
        v.push(Violation {
            field: field.into(),
            message: format!("is {} bytes, over the limit of {limit} bytes", value.len()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttrType, Attribute};

    fn base() -> Alert {
        Alert {
            detector: "d".into(),
            rule_id: "r".into(),
            rule_name: String::new(),
            alert_key: String::new(),
            description: String::new(),
            timestamp: None,
            attributes: vec![],
            body: None,
        }
    }

    fn fields(r: Result<(), ValidationError>) -> Vec<String> {
        r.err()
            .map(|e| e.violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default()
    }

    #[test]
    fn each_string_limit_passes_at_limit_and_fails_one_over() {
        type Setter = fn(&mut Alert, String);
        let cases: [(&str, usize, Setter); 5] = [
            ("detector", MAX_NAME_BYTES, |a, s| a.detector = s),
            ("rule_id", MAX_NAME_BYTES, |a, s| a.rule_id = s),
            ("rule_name", MAX_NAME_BYTES, |a, s| a.rule_name = s),
            ("alert_key", MAX_NAME_BYTES, |a, s| a.alert_key = s),
            ("description", MAX_DESCRIPTION_BYTES, |a, s| {
                a.description = s
            }),
        ];
        for (field, limit, set) in cases {
            let mut ok = base();
            set(&mut ok, "x".repeat(limit));
            assert_eq!(
                fields(validate_alert(&ok)),
                Vec::<String>::new(),
                "{field} at limit"
            );
            let mut over = base();
            set(&mut over, "x".repeat(limit + 1));
            let err = validate_alert(&over).unwrap_err();
            assert_eq!(err.violations.len(), 1);
            assert_eq!(err.violations[0].field, field);
            assert!(err.to_string().contains(&limit.to_string()), "{err}");
        }
    }

    #[test]
    fn limits_count_bytes_not_chars() {
        let mut a = base();
        a.rule_id = "é".repeat(513); // 1026 bytes, 513 chars
        assert_eq!(fields(validate_alert(&a)), vec!["rule_id"]);
    }

    #[test]
    fn attribute_count_limit() {
        let attr = Attribute::new(AttrType::Ipaddr, "k", "192.0.2.1", &[]);
        let mut a = base();
        a.attributes = vec![attr.clone(); MAX_ATTRIBUTES];
        assert!(validate_alert(&a).is_ok());
        a.attributes.push(attr);
        assert_eq!(fields(validate_alert(&a)), vec!["attributes"]);
    }

    #[test]
    fn attribute_key_and_value_limits() {
        let mut a = base();
        a.attributes = vec![Attribute::new(
            AttrType::Domain,
            &"k".repeat(MAX_ATTR_FIELD_BYTES),
            &"v".repeat(MAX_ATTR_FIELD_BYTES),
            &[],
        )];
        assert!(validate_alert(&a).is_ok());
        a.attributes.push(Attribute::new(
            AttrType::Domain,
            &"k".repeat(MAX_ATTR_FIELD_BYTES + 1),
            &"v".repeat(MAX_ATTR_FIELD_BYTES + 1),
            &[],
        ));
        assert_eq!(
            fields(validate_alert(&a)),
            vec!["attributes[1].key", "attributes[1].value"]
        );
    }

    #[test]
    fn open_types_and_contexts_are_bounded_too() {
        let mut a = base();
        let mut attr = Attribute::new(AttrType::Ipaddr, "k", "v", &[]);
        attr.attr_type = AttrType::Other("t".repeat(MAX_ATTR_FIELD_BYTES));
        attr.context = vec![crate::AttrContext::Other(
            "c".repeat(MAX_ATTR_FIELD_BYTES + 1),
        )];
        a.attributes = vec![attr.clone()];
        assert_eq!(fields(validate_alert(&a)), vec!["attributes[0].context[0]"]);
        attr.attr_type = AttrType::Other("t".repeat(MAX_ATTR_FIELD_BYTES + 1));
        attr.context.clear();
        a.attributes = vec![attr];
        assert_eq!(fields(validate_alert(&a)), vec!["attributes[0].type"]);
    }

    #[test]
    fn body_limit_is_on_serialized_size() {
        // `"…"` adds two bytes of quotes to the serialized string.
        let mut a = base();
        a.body = Some(serde_json::Value::String("x".repeat(MAX_BODY_BYTES - 2)));
        assert!(validate_alert(&a).is_ok());
        a.body = Some(serde_json::Value::String("x".repeat(MAX_BODY_BYTES - 1)));
        assert_eq!(fields(validate_alert(&a)), vec!["body"]);
    }

    #[test]
    fn detector_and_rule_id_are_required() {
        let mut a = base();
        a.detector.clear();
        a.rule_id.clear();
        assert_eq!(fields(validate_alert(&a)), vec!["detector", "rule_id"]);
        let err = parse_alert(br#"{"rule_id":"r"}"#).unwrap_err();
        assert!(err.to_string().contains("detector"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = parse_alert(
            br#"{"detector":"d","rule_id":"r","attributes":[{"type":"ipaddr","value":"x"},{"type":4,"value":"y"}]}"#,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("attributes[1].type"), "{msg}");
        assert!(msg.contains("integer"), "{msg}");

        let err = parse_alert(b"{\"detector\": ").unwrap_err();
        assert!(matches!(err, AlertError::Parse(_)));
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn go_style_nulls_are_accepted() {
        let a = parse_alert(
            br#"{"detector":"d","rule_id":"r","attributes":[{"type":"domain","value":"example.com","context":null}]}"#,
        )
        .unwrap();
        assert!(a.attributes[0].context.is_empty());
        let a = parse_alert(br#"{"detector":"d","rule_id":"r","attributes":null}"#).unwrap();
        assert!(a.attributes.is_empty());
    }
}
