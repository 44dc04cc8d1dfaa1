//! The operator's hands on AWS. Every client comes from one SDK
//! configuration ([`sdk`]: the deadlines of every call) and one pool
//! ([`pool`]); each call goes through its account's client-side buckets
//! ([`limit`]: a token bucket per throttling category, account and Region,
//! metrics, backoff on throttling) and, if it changes something, only
//! inside the record's lease ([`clients`]); its failures are sorted by what
//! to do about them ([`error`]). Observation is [`observe`] (and the
//! scale-in protection read right before a stop, [`protection`]); the
//! decided actions, [`act`]; ECS's own events, read from an SQS queue,
//! [`events`].

mod act;
mod clients;
mod error;
pub(crate) mod events;
pub(crate) mod images;
pub(crate) mod known_tasks;
pub(crate) mod limit;
pub(crate) mod observe;
mod pool;
pub(crate) mod protection;
pub mod sdk;
pub(crate) mod task_batches;

pub(crate) use act::act;
pub use clients::Clients;
pub use error::{AwsError, classify};
pub use pool::ClientPool;

/// The resource id of a service in Application Auto Scaling.
pub(crate) fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}
