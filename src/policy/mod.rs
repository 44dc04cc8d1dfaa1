//! `RecyclePolicy`: a fleet kept young. A policy names services (clusters,
//! names, tags) and the longest a task may run; the operator looks at the
//! fleet every `--policy-interval`, and makes a RecycleRequest (with
//! `selector.olderThan` = `maxTaskAge`, so a task replaced since is never
//! stopped again) for each matching service whose oldest task is too old —
//! oldest first, within the budget, only inside the window and outside the
//! blackout dates. [`spec`] owns the spec, [`decide`] the pure decision,
//! [`fleet`] the ECS calls that find the services and their oldest tasks,
//! [`runner`] the loop.
//!
//! # Exactly once per service at a time
//!
//! - One replica acts for a policy at a time: it holds the policy's lease,
//!   and every status write is conditional on the lease and the version.
//! - The decision to make a request is written into the policy's status
//!   (`pending`, with the request's name) before the request is created,
//!   and is always carried out, by whichever replica holds the lease next:
//!   a crash between the two, or a slow create from a replica that lost the
//!   lease, ends in one request of that name (`Store::create` refuses a
//!   second), never two requests for one service.
//! - A service with an active request — the policy's or anyone's — is
//!   left alone until it ends.

pub(crate) mod decide;
pub(crate) mod fleet;
pub(crate) mod runner;
pub(crate) mod spec;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use runner::{PolicyLoop, PolicySettings};
pub(crate) use spec::parse_policy_spec;

use crate::request::status::{Event, Phase, Reason};

/// The most services a status lists (oldest tasks first); the rest are counted.
pub(crate) const MAX_LISTED: usize = 1000;
/// Finished requests kept in the status, newest last.
pub(crate) const FINISHED_KEPT: usize = 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PolicyPhase {
    /// Looking at the fleet and making requests.
    #[default]
    Active,
    /// `suspend` is true: no new requests; those made go on.
    Suspended,
    /// The record is invalid; the message says why. It is looked at again
    /// when its spec changes.
    Failed,
}

/// What the operator writes into a policy's `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyStatus {
    #[serde(default)]
    pub phase: PolicyPhase,
    #[serde(default)]
    pub message: String,
    /// The spec the last look at the fleet was made for: a changed spec is
    /// looked at again at once.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spec_seen: String,
    /// When the fleet was last looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look: Option<DateTime<Utc>>,
    /// Services that matched at the last look (all of them, listed or not).
    #[serde(default)]
    pub matched: u32,
    /// The matching services, oldest task first, at most [`MAX_LISTED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<FleetService>,
    /// Requests decided on and not yet known to be created: carried out
    /// before anything else is decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<MadeRequest>,
    /// The requests made: the active ones, then the last finished ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<MadeRequest>,
    /// The next window's start (none without a window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

impl PolicyStatus {
    pub(crate) fn event(&mut self, at: DateTime<Utc>, reason: Reason, message: impl Into<String>) {
        crate::request::status::push_event(&mut self.events, at, reason, message.into(), None);
    }

    /// The requests not finished yet.
    pub(crate) fn active(&self) -> impl Iterator<Item = &MadeRequest> {
        self.requests.iter().filter(|r| !r.finished())
    }
}

/// One matching service as last looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FleetService {
    pub cluster: String,
    pub service: String,
    /// When its oldest running task started (none: no task running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_started: Option<DateTime<Utc>>,
    /// One of the policy's requests on it ended after this look, so the
    /// ages looked at are stale: it is not due again until the next look.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recycled_since_look: bool,
}

/// One request a policy made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MadeRequest {
    pub name: String,
    pub cluster: String,
    pub service: String,
    pub made_at: DateTime<Utc>,
    /// As last read; none until it was read once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// While pending: the spec it is to be created with, decided once so
    /// that whoever carries it out makes the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
}

impl MadeRequest {
    pub(crate) fn finished(&self) -> bool {
        self.phase.is_some_and(Phase::is_terminal)
    }
}

/// A stored policy's status, the default before the operator wrote one,
/// or a sentence saying why it cannot be read.
pub(crate) fn policy_status(record: &crate::store::StoredRecord) -> Result<PolicyStatus, String> {
    match &record.status {
        None => Ok(PolicyStatus::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            format!("status: cannot be read ({e}); it is written by the operator only")
        }),
    }
}

/// A hash that is the same on every replica and release (FNV-1a, 64
/// bits): for request names and for telling a changed spec, where
/// std's hasher may differ between builds.
pub(crate) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A task age the way people say it: `8d2h`, `5h10m`, `12m`.
pub(crate) fn format_age(age: chrono::Duration) -> String {
    let minutes = age.num_minutes().max(0);
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// The longest policy name: its requests add a service name and a time.
pub(crate) const MAX_NAME_LEN: usize = 64;

#[cfg(test)]
mod tests;
