//! deepalert's built-in plug-ins, usable by `deepalert serve` (and, through the SDK, on
//! Lambda): the Rego policy reviewer, inspectors and emitters.

pub mod builtin;
pub mod emitters;
pub mod inspectors;
pub mod policy;
pub mod rego;
mod rego_input;
pub mod responses;
pub mod rules;
pub mod secrets;
pub mod templates;

pub use policy::{PolicyError, PolicyReviewer};

/// What a piece that calls EC2, IAM or SSM says when the `aws` feature is off.
pub const BUILT_WITHOUT_AWS: &str = "this deepalert was built without AWS support (`make serve` \
     leaves the EC2, IAM and SSM clients out to build quickly); build it with the `aws` feature: \
     `make serve SERVE_FEATURES=aws`, or `cargo run --profile serve -p deepalert-cli --features aws`";
pub use secrets::{SecretSource, Secrets};

/// A built-in plug-in could not be set up (bad options, unreadable file…).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BuiltinError(String);

impl BuiltinError {
    pub fn new(msg: impl Into<String>) -> Self {
        BuiltinError(msg.into())
    }
}
