//! ecs-recycler: recycles the tasks of Amazon ECS services safely, a few at a
//! time, and resumes exactly where it stopped after any crash.
//!
//! This crate holds the product's library; `src/main.rs` is the command line.
//! - [`record`]: the `RecycleRequest` spec and its validation; [`status`]:
//!   what the operator writes back.
//! - [`observation`] and [`decide`]: the functional core, a pure decision of
//!   the next step from a record, an observation of its service and the time.
//! - [`cli`], [`apply`], [`preview`], [`present`], [`sandbox`]: the helper
//!   CLI — checking and writing manifests, dry-run plans, tables and pages.
//! - The ECS and Application Auto Scaling simulator the tests run against is
//!   the `ecs-sim` crate (`crates/ecs-sim`), behind the `simulator` feature.
//! - [`duration`]: human durations for flags, manifests and the control API.
//! - [`schedule`]: `RecycleSchedule` records and the loop that makes their
//!   requests; [`notify`]: notifications by email, SNS and webhook.
//! - [`aws`], [`reconciler`], [`pacing`]: the shell — batched observation,
//!   rate limits, the loop and when it looks again; [`metrics`] and
//!   [`endpoints`]: what it tells its platform.

pub mod apply;
pub mod aws;
pub mod cli;
pub mod decide;
pub mod duration;
pub mod endpoints;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod notify;
pub mod observation;
pub mod pacing;
pub mod present;
pub mod preview;
pub mod reconciler;
pub mod record;
pub mod replica;
#[cfg(feature = "simulator")]
pub mod sandbox;
pub mod schedule;
pub mod status;
pub mod store;
pub mod strays;
