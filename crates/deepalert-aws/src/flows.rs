//! Response flows on AWS (configured by a `deepalert_core::flows::FlowsDocument` that
//! `make deploy` ships in the functions' zips, `FLOWS_CONFIG_FILE`): flow runs as executions of the
//! `<stack>-flows` state machine — a loop of the flow-runner task and a Wait, so a wait
//! holds no Lambda.

use async_trait::async_trait;
use deepalert_core::flows::{FlowRunKey, FlowSet, FlowsDocument};
use deepalert_core::ports::{FlowStarter, PortError, PortResult};
use serde::{Deserialize, Serialize};

/// The flows document of the deployment package, parsed; its path, size and hash are
/// logged (which configuration this function runs).
pub fn flows_document(doc: &crate::env::Document) -> Result<FlowsDocument, String> {
    let flows =
        FlowsDocument::parse(&doc.text).map_err(|e| format!("{}: {e}", doc.path.display()))?;
    tracing::info!(
        path = %doc.path.display(),
        bytes = doc.text.len(),
        sha256 = %doc.sha256,
        flows = flows.flows.len(),
        "flows document loaded"
    );
    Ok(flows)
}

/// What the functions that start flow runs need (receptor, event-router,
/// emitter-publisher): the flows of the document (checked for structure; the flow
/// runner checks the rest at its start) and the state machine to start them on. `None`
/// without flows.
pub fn flow_starting(
    sdk: &aws_config::SdkConfig,
    document: &crate::env::Document,
    state_machine_arn: impl FnOnce() -> Result<String, crate::env::EnvError>,
) -> Result<Option<(FlowSet, SfnFlows)>, String> {
    let set = flows_document(document)?
        .starting_set()
        .map_err(|e| format!("{}: {e}", document.path.display()))?;
    if set.is_empty() {
        return Ok(None);
    }
    let arn = state_machine_arn().map_err(|e| e.to_string())?;
    Ok(Some((
        set,
        SfnFlows::new(aws_sdk_sfn::Client::new(sdk), arn),
    )))
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
        let name = execution_name(key);
        let input = FlowInput { key: key.clone() };
        // Started before (a retried publication): the run goes on, or is done.
        crate::workflow::start_execution_once(
            &self.client,
            &self.state_machine_arn,
            &name,
            serde_json::to_string(&input).expect("inputs serialize"),
        )
        .await
        .map_err(|e| PortError::new(format!("stepfunctions: start flow {name}: {e}")))
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
}
