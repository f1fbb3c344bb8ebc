//! deepalert's engine: the domain (DeepAlert's wire format), the ports the pipeline talks
//! through, and the pipeline services. No I/O here: adapters live in other crates.

pub mod domain;
pub mod ports;
pub mod services;

pub use domain::*;
