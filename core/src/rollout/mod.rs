//! Serving a model: the rollout planner (which revision gets how many replicas, when a canary
//! moves on, is promoted or is rolled back) and the ModelDeployment's status.
//!
//! [`plan::plan`] runs the steps of the planner, one idea per module: [`plan`] (the types and the
//! pipeline), `target` (the revision the spec asks for), `failed` (revisions that never became
//! ready), `canary` (steps, gates, promotion), `inconclusive` (the
//! analysis' inconclusive timeout), `guard` (rollback of a failed stable revision) and
//! `replicas` (replicas and history), over the working state in `draft`.

mod canary;
mod draft;
mod failed;
mod guard;
mod inconclusive;
pub mod plan;
mod replicas;
pub mod status;
mod target;
