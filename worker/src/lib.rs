//! The modelops worker's library: data preparation, models, training, and serving. The `modelops-worker` binary wires it to the operator's work orders.
#![deny(unsafe_code)]

pub mod artifact;
pub mod data;
pub mod failure;
pub mod logging;
pub mod model;
pub mod order;
pub mod rng;
pub mod serve;
pub mod source;
pub mod store;
pub mod tokenize;
pub mod train;
