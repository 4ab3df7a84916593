//! The Dataset: its status, from what the prepare Job reports.

pub mod status;
