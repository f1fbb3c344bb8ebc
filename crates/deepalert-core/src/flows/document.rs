//! The flows of a deployment as one JSON document: what `make deploy` writes from
//! stack.jsonnet (`Flows`, `Notifiers`, `FlowSecrets`) into the zips of the functions that read it,
//! and what `deepalert flows check` reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FlowConfig, FlowError, FlowSet};

/// The flows, the notifiers their `notify` steps name (built-in kinds and options, as
/// `[[notifier]]` in the TOML config), and where the secrets those options name live
/// (name → Secrets Manager ARN, or SSM parameter name when it starts with `ssm:`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsDocument {
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
    #[serde(default)]
    pub notifiers: Vec<NotifierConfig>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Preset rules that name a notifier: their default flows
    /// ([`super::preset_flow`]), unless `flows` has one of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<PresetFlow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetFlow {
    pub preset: String,
    pub notify: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    pub name: String,
    pub builtin: String,
    #[serde(default)]
    pub options: serde_json::Value,
}

impl FlowsDocument {
    /// Empty text is no flows.
    pub fn parse(text: &str) -> Result<FlowsDocument, String> {
        if text.trim().is_empty() {
            return Ok(FlowsDocument::default());
        }
        serde_json::from_str(text).map_err(|e| format!("not a flows document: {e}"))
    }

    /// The flows, checked for structure only: for the functions that start runs, which
    /// don't build notifiers.
    pub fn starting_set(&self) -> Result<FlowSet, FlowError> {
        FlowSet::structural(self.all_flows()?)
    }

    /// The configured flows with the presets' defaults.
    pub fn all_flows(&self) -> Result<Vec<FlowConfig>, FlowError> {
        let presets: Vec<(String, String)> = self
            .presets
            .iter()
            .map(|p| (p.preset.clone(), p.notify.clone()))
            .collect();
        super::with_preset_flows(&self.flows, &presets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_no_flows_and_bad_text_says_why() {
        assert_eq!(FlowsDocument::parse(" ").unwrap(), FlowsDocument::default());
        let err = FlowsDocument::parse(r#"{"flow": []}"#).unwrap_err();
        assert!(err.contains("unknown field `flow`"), "{err}");
    }
}
