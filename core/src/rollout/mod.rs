//! Serving a model: the rollout planner (which revision gets how many replicas, when a canary
//! moves on, is promoted or is rolled back) and the ModelDeployment's status.

pub mod plan;
pub mod status;
