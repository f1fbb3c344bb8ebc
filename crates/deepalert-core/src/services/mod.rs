//! The pipeline steps. Each is an async function over the ports it needs, so the local
//! server and each Lambda call exactly the same code.

mod dispatch;
mod inspect;
mod receive;
mod review;

pub use dispatch::{DispatchOutcome, dispatch};
pub use inspect::{InspectionOutcome, accept_inspection};
pub use receive::{Receipt, announce_received, receive_alert, run_name};
pub use review::{publish, publish_reviewed, review};

use crate::domain::{ReportId, ValidationError};
use crate::ports::PortError;

/// Pipeline knobs that are the same on AWS and locally. Delays belong to the workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    /// An alert joins a report whose first alert is younger than this (DeepAlert: 3 h).
    pub aggregation_window: chrono::Duration,
    /// Attributes found by inspectors from attributes found by inspectors…: how deep.
    /// Alert attributes are depth 0.
    pub max_attribute_depth: u32,
    /// At most this many distinct attributes are inspected per report.
    pub max_attributes_per_report: u32,
    /// Findings kept from one inspector's answer; the rest are dropped with a note.
    pub max_findings_per_answer: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            aggregation_window: chrono::Duration::hours(3),
            max_attribute_depth: 3,
            max_attributes_per_report: 256,
            max_findings_per_answer: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid alert: {0}")]
    Invalid(#[from] ValidationError),
    #[error("report {0} not found")]
    ReportNotFound(ReportId),
    #[error("alert {alert_ref} of report {report_id} not found")]
    AlertNotFound {
        report_id: ReportId,
        alert_ref: String,
    },
    #[error(transparent)]
    Port(#[from] PortError),
}

impl PipelineError {
    /// Worth retrying later (a store or bus hiccup), as opposed to bad input.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PipelineError::Port(_))
    }
}

/// The author name the pipeline itself uses on notes.
pub const PIPELINE_AUTHOR: &str = "deepalert";
