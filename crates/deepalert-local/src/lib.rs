//! deepalert on one machine: the embedded store (SQLite), the durable job runtime that
//! stands in for Step Functions and SNS/SQS, local plug-ins (in process or exec), the
//! HTTP API and the `deepalert serve` configuration.

pub mod config;
pub mod faults;
pub mod plugins;
pub mod runtime;
pub mod server;
pub mod store;
pub mod web;

pub use config::Config;
pub use plugins::Plugins;
pub use runtime::{Engine, RuntimeSettings};
pub use store::{Durability, SqliteStore};
