//! The domain, in DeepAlert's wire format.

mod alert;
pub mod finding;
mod report;
mod task;
pub mod validate;

pub use alert::{Alert, AlertId, AttrContext, AttrHash, AttrType, Attribute};
pub use finding::{Finding, FindingContent};
pub use report::{
    Authored, Note, Report, ReportId, ReportStatus, ReviewResult, Section, SectionsBuilder,
    Severity,
};
pub use task::{InspectionReport, InspectorOutput, Task};
pub use validate::{AlertError, ValidationError, Violation, parse_alert, validate_alert};

/// Lowercase hex SHA-256: the one hash every identity in deepalert uses.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    alert::hex(&sha2::Sha256::digest(bytes))
}

/// Go's encoding/json writes a nil slice as `null`; DeepAlert producers do that.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
