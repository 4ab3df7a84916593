//! modelops-operator: the controllers that prepare data, train, serve and guard machine-learning
//! models in a cluster. Each controller dereferences what its object names, validates, builds the
//! child objects, applies them and publishes the status; the decisions themselves are the pure
//! functions of `modelops-core`, and the contract with the worker pods is `modelops-api`.
//! The library holds everything the operator binary is made of, so that tests and the CRD
//! generator can reach it.
// Unsafe code is refused but in `memory` (the allocator's settings, two libc calls).
#![deny(unsafe_code)]

pub mod config;
pub mod controllers;
pub mod crdgen;
pub mod dashboard;
pub mod http;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod podhttp;
pub mod profile;
pub mod promql;

/// The operator's version, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
