//! Training: the hyperparameter search (which trials run next, which one wins) and the
//! TrainingJob's status.

pub mod search;
pub mod status;
