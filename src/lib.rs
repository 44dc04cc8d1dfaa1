//! ecs-recycler: recycles the tasks of Amazon ECS services safely, a few at a
//! time, and resumes exactly where it stopped after any crash.

pub mod aws;
pub mod cli;
pub mod duration;
pub mod notify;
pub mod operator;
pub mod request;
#[cfg(feature = "simulator")]
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod validate;
