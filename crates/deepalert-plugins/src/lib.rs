//! deepalert's built-in plug-ins, usable by `deepalert serve` and the Lambda functions.

pub mod policy;

pub use policy::{PolicyError, PolicyReviewer};
