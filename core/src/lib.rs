//! modelops-core: the decisions of modelops as pure functions. Nothing here talks to the API
//! server, reads a file or a clock: the controllers in `modelops-operator` gather what is
//! observed (objects, scrapes, the time) and hand it in; what comes back is a plan, a verdict or
//! a status, tested on plain values.
//!
//! - [`rollout`]: which revision serves how much traffic (the ModelDeployment's planner) and the
//!   ModelDeployment's status;
//! - [`training`]: the hyperparameter search and the TrainingJob's status;
//! - [`dataset`]: the Dataset's status;
//! - [`monitor`]: the Monitor's statistics (window, drift, accuracy, latency) and verdicts;
//! - [`policy`]: which images, ServiceAccounts and priority classes a pod template may name.
#![forbid(unsafe_code)]

pub mod dataset;
pub mod monitor;
pub mod policy;
pub mod rollout;
pub mod training;
