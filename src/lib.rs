//! modelops: a Kubernetes operator that prepares data, trains, serves and guards machine-learning
//! models. The library holds everything the operator binary is made of, so that tests and the
//! CRD generator can reach it.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod controllers;
pub mod http;
pub mod metrics;
pub mod monitor;

/// The operator's version, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
