//! deepalert's engine: the domain (DeepAlert's wire format), the ports the pipeline talks
//! through, the pipeline services, and the rules that turn cloud events into alerts. No
//! I/O here: adapters live in other crates.

pub mod domain;
pub mod flows;
pub mod ports;
pub mod rules;
pub mod services;

pub use domain::*;
