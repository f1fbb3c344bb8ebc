//! Starts one state-machine execution per stored alert, named after the run, so a
//! redelivered alert cannot start a second one.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use deepalert_core::ports::{PortError, PortResult, Workflow, WorkflowRun};
use serde::{Deserialize, Serialize};

/// The state machine's input: the run, and the delays its Wait states read
/// (`SecondsPath`), which come from the stack's parameters through the receptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionInput {
    #[serde(flatten)]
    pub run: WorkflowRun,
    pub delays: Delays,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delays {
    pub inspection: u64,
    pub review: u64,
}

pub struct SfnWorkflow {
    client: Client,
    state_machine_arn: String,
    delays: Delays,
}

impl SfnWorkflow {
    pub fn new(
        client: Client,
        state_machine_arn: impl Into<String>,
        inspection: Duration,
        review: Duration,
    ) -> Self {
        SfnWorkflow {
            client,
            state_machine_arn: state_machine_arn.into(),
            delays: Delays {
                inspection: inspection.as_secs(),
                review: review.as_secs(),
            },
        }
    }
}

#[async_trait]
impl Workflow for SfnWorkflow {
    async fn start(&self, run: &WorkflowRun) -> PortResult<()> {
        let input = ExecutionInput {
            run: run.clone(),
            delays: self.delays,
        };
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(&run.name)
            .input(serde_json::to_string(&input).expect("inputs serialize"))
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StartExecutionError::ExecutionAlreadyExists(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(PortError::new(format!(
                "stepfunctions: start execution {}: {}",
                run.name,
                aws_sdk_sfn::error::DisplayErrorContext(e)
            ))),
        }
    }
}
