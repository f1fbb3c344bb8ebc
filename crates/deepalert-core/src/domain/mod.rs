//! The domain, in DeepAlert's wire format.

mod alert;
pub mod finding;
mod report;
mod task;
pub mod validate;

pub use alert::{Alert, AlertId, AttrContext, AttrHash, AttrType, Attribute};
pub use finding::{Finding, FindingContent};
pub use report::{
    Authored, Note, Report, ReportId, ReportStatus, ReviewResult, Section, SectionFormat,
    SectionsBuilder, Severity, TimelineEntry, parse_verdict, verdict_from_value,
};
pub use task::{InspectionMessageError, InspectionReport, InspectorOutput, Task};
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

/// An optional time as DeepAlert's Go producers write it: Go encodes an unset
/// `time.Time` as `"0001-01-01T00:00:00Z"`, which means "no time", not year 1.
pub(crate) fn go_time<'de, D>(d: D) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    let t = Option::<chrono::DateTime<chrono::Utc>>::deserialize(d)?;
    Ok(t.filter(|t| *t != go_zero_time()))
}

fn go_zero_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .expect("a valid RFC 3339 time")
        .to_utc()
}
