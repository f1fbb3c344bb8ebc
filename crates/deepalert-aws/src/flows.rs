//! Response flows on AWS: their configuration (the `FlowsConfig` parameter, written by
//! `make deploy` from stack.jsonnet), and flow runs as executions of the
//! `<stack>-flows` state machine — a loop of the flow-runner task and a Wait, so a wait
//! holds no Lambda.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deepalert_core::flows::{FlowConfig, FlowError, FlowRunKey, FlowSet};
use deepalert_core::ports::{FlowStarter, PortError, PortResult};
use serde::{Deserialize, Serialize};

/// What `FLOWS_CONFIG` holds: the flows, the notifiers their `notify` steps name (built-in
/// kinds and options, as `[[notifier]]` locally), and where the secrets those options
/// name live (name → Secrets Manager ARN, or SSM parameter name when it starts with
/// `ssm:`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
    #[serde(default)]
    pub notifiers: Vec<NotifierConfig>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    pub name: String,
    pub builtin: String,
    #[serde(default)]
    pub options: serde_json::Value,
}

impl FlowsConfig {
    /// Empty text is no flows.
    pub fn parse(text: &str) -> Result<FlowsConfig, String> {
        if text.trim().is_empty() {
            return Ok(FlowsConfig::default());
        }
        serde_json::from_str(text).map_err(|e| format!("FLOWS_CONFIG is not a flows document: {e}"))
    }

    /// The flows, for the functions that start them.
    pub fn starting_set(&self) -> Result<FlowSet, FlowError> {
        FlowSet::structural(self.flows.clone())
    }
}

/// An execution name (at most 80 characters of letters, digits, `-` and `_`): the run's
/// name, or its report, a hash of the flow and the publication when that is too long.
pub fn execution_name(key: &FlowRunKey) -> String {
    let name = key.name();
    if name.len() <= 80 {
        return name;
    }
    let hash = deepalert_core::sha256_hex(key.flow.as_bytes());
    format!("{}-{}-p{}", key.report_id, &hash[..16], key.publication)
}

/// The state machine's input and the flow runner's: the run to move on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInput {
    pub key: FlowRunKey,
}

/// The flow runner's answer, which the state machine loops on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowOutput {
    pub key: FlowRunKey,
    pub finished: bool,
    /// Seconds to wait before the next step (0 when finished).
    pub wait_seconds: u64,
}

pub struct SfnFlows {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl SfnFlows {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        SfnFlows {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

#[async_trait]
impl FlowStarter for SfnFlows {
    async fn start_flow(&self, key: &FlowRunKey) -> PortResult<()> {
        use aws_sdk_sfn::operation::start_execution::StartExecutionError;
        let name = execution_name(key);
        let input = FlowInput { key: key.clone() };
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(&name)
            .input(serde_json::to_string(&input).expect("inputs serialize"))
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            // Started before (a retried publication): the run goes on, or is done.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StartExecutionError::ExecutionAlreadyExists(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(PortError::new(format!(
                "stepfunctions: start flow {name}: {}",
                aws_sdk_sfn::error::DisplayErrorContext(e)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_flow_names_still_give_valid_execution_names() {
        let key = FlowRunKey {
            report_id: "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11".parse().unwrap(),
            flow: "contain".into(),
            publication: 2,
        };
        assert_eq!(
            execution_name(&key),
            "6f1c7b62-1f0e-4b8e-9d7e-0a6f3b0c9a11-contain-p2"
        );
        let long = FlowRunKey {
            flow: "x".repeat(60),
            ..key
        };
        let name = execution_name(&long);
        assert!(name.len() <= 80 && name.ends_with("-p2"), "{name}");
        assert_ne!(
            name,
            execution_name(&FlowRunKey {
                flow: "y".repeat(60),
                ..long
            })
        );
    }

    #[test]
    fn empty_config_is_no_flows_and_bad_config_says_why() {
        assert_eq!(FlowsConfig::parse("").unwrap(), FlowsConfig::default());
        let err = FlowsConfig::parse(r#"{"flow": []}"#).unwrap_err();
        assert!(err.contains("unknown field `flow`"), "{err}");
    }
}
