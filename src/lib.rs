//! ecs-recycler: recycles the tasks of Amazon ECS services safely, a few at a
//! time, and resumes exactly where it stopped after any crash.
//!
//! The library behind the `ecs-recycler` binary. A reader learns the crate
//! here: a request's pure decision ([`request`], private), the operator
//! that runs it ([`operator`]), the records it works on ([`store`]), the
//! verbs people use ([`cli`]), and the few items below that the binary, the
//! benchmark and the tests take from inside.
//!
//! - `request`: a RecycleRequest — spec, status, observation, the pure
//!   decision with its gates and causes, pacing, the dry run.
//! - `schedule`: a RecycleSchedule — spec, decision, the loop that makes requests.
//! - `policy`: a RecyclePolicy — spec, decision, the fleet's look, the loop
//!   that keeps a fleet's tasks younger than a maximum age.
//! - `aws`: every AWS client made in one place ([`sdk`]), rate limits,
//!   batched observation, actions.
//! - `gates`: CloudWatch alarms that hold or end a run while the service suffers.
//! - `hooks`: webhooks asked before and after each batch, whose answer lets a run go on, waits or ends it.
//! - `notify`: notices by email, SNS and webhook, through the request's outbox.
//! - `validate`: reading records written by people and other programs.
//! - [`operator`]: the shell — the reconcile loop, leases, health, metrics.
//! - [`store`]: the Store trait, the embedded store and DynamoDB.
//! - [`cli`]: the verbs (apply, get, describe, ...), manifests and their presentation.
//! - [`dashboard`]: read-only pages over the store, served by the binary.
//! - [`sandbox`]: simulator, embedded store and operator in one process.
#![warn(unreachable_pub)]

mod aws;
pub mod cli;
mod clock;
mod cron;
pub mod dashboard;
pub mod duration;
pub mod emf;
mod fence;
mod gates;
mod hooks;
#[cfg(test)]
mod layers;
mod leases;
mod message;
mod metrics;
mod notify;
pub mod operator;
mod policy;
mod request;
#[cfg(feature = "simulator")]
pub mod sandbox;
mod schedule;
pub mod store;
mod validate;

pub use aws::limit::{ApiShare, Quota, parse_category_share, parse_quota};
pub use aws::sdk;
pub use aws::{AwsError, ClientPool, Clients, classify};
pub use clock::{Clock, SystemClock};
pub use metrics::{CategoryLabel, Metrics, OutcomeLabel};
pub use notify::config::{NotifyArgs, NotifyConfig};
pub use policy::{PolicyLoop, PolicySettings};
pub use request::status::request_status;
pub use schedule::{ScheduleSettings, Scheduler, request_name};
