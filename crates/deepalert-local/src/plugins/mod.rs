//! Local plug-ins: inspectors, the reviewer and emitters, in process (traits here) or as
//! any program speaking JSON on stdin/stdout (`exec`).

pub mod exec;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
pub use deepalert_core::ports::{EmitterPlugin, InspectorPlugin, PluginError};
use deepalert_core::ports::{PortResult, Reviewer};
use deepalert_core::{AttrType, Report, ReviewResult};

pub struct InspectorEntry {
    pub name: String,
    /// Only these attribute types are sent (all when `None`), like an SNS filter policy
    /// on `attribute_type`.
    pub attribute_types: Option<BTreeSet<AttrType>>,
    pub plugin: Arc<dyn InspectorPlugin>,
}

impl InspectorEntry {
    pub fn wants(&self, t: &AttrType) -> bool {
        self.attribute_types
            .as_ref()
            .is_none_or(|set| set.contains(t))
    }
}

pub struct EmitterEntry {
    pub name: String,
    /// Tries before giving up on one publication (recorded as a note on the report).
    pub max_attempts: u32,
    pub plugin: Arc<dyn EmitterPlugin>,
}

pub struct Plugins {
    pub inspectors: Vec<InspectorEntry>,
    pub reviewer: Arc<dyn Reviewer>,
    pub emitters: Vec<EmitterEntry>,
    /// Response flows and what runs their steps.
    pub flows: Option<Flows>,
}

pub struct Flows {
    pub set: deepalert_core::flows::FlowSet,
    pub runner: Arc<dyn deepalert_core::flows::StepRunner>,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            inspectors: vec![],
            reviewer: Arc::new(NoReviewer),
            emitters: vec![],
            flows: None,
        }
    }
}

/// Used when no reviewer is configured: every report is published as `unclassified`.
pub struct NoReviewer;

pub const NO_REVIEWER_REASON: &str =
    "no reviewer is configured; set [reviewer] in the configuration to classify reports";

#[async_trait]
impl Reviewer for NoReviewer {
    async fn review(&self, _report: &Report) -> PortResult<Option<ReviewResult>> {
        Ok(Some(ReviewResult::unclassified(NO_REVIEWER_REASON)))
    }
}
