//! ecs-recycler: recycles the tasks of Amazon ECS services safely, a few at a
//! time, and resumes exactly where it stopped after any crash.
//!
//! This crate holds the product's library; `src/main.rs` is the command line.
//! - [`sim`]: the ECS and Application Auto Scaling simulator the tests run against.
//! - [`duration`]: human durations for flags, manifests and the control API.

pub mod duration;
pub mod sim;
