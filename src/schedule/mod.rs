//! `RecycleSchedule`: scheduled maintenance. A schedule holds a cron
//! expression with a time zone, a window and a RecycleRequest template; the
//! operator makes one request per due slot, exactly once, even with several
//! replicas racing. [`spec`] owns the spec and its validation, [`decide`] the
//! pure decision (which slot is due, what to create, cancel and delete),
//! [`runner`] the loop the operator runs beside the reconciler.
//!
//! # Exactly once per slot
//!
//! - A slot's request has a name made from the schedule and the slot
//!   (`<schedule>-<yyyymmddhhmm>`, the slot in UTC, so the two 01:30s of a
//!   night the clock goes back are two names), and `Store::create` refuses a
//!   name that exists: of two replicas that both decide to create it, one
//!   gets `AlreadyExists` and takes that request as the slot's.
//! - The schedule's status records the last slot dealt with
//!   (`evaluatedThrough`); it only moves forward, with a write conditional on
//!   the schedule's version, so a slot once passed is never looked at again.
//! - A replica takes the schedule's lease before it acts, and re-reads the
//!   schedule (consistently) just before it creates, so a replica acting on
//!   an old view of the schedule gives up instead.
//! - The request is created before the schedule's status is written; if the
//!   write is lost (crash, conflict), the next look finds the slot's request
//!   by its name and adopts it instead of making another.

pub(crate) mod decide;
pub(crate) mod runner;
pub(crate) mod spec;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) use decide::{NextRun, next_run};
pub use runner::{ScheduleSettings, Scheduler};
pub(crate) use spec::{ScheduleSpec, parse_schedule_spec};

use crate::request::status::{Event, Phase, Reason};

/// The longest schedule name: the requests it makes add `-yyyymmddhhmm`
/// and a record name is at most 128 characters.
pub(crate) const MAX_NAME_LEN: usize = 128 - 13;

/// The name of the request a schedule makes for a slot.
pub fn request_name(schedule: &str, slot: DateTime<Utc>) -> String {
    format!("{schedule}-{}", slot.format("%Y%m%d%H%M"))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SchedulePhase {
    /// Making requests when slots come.
    #[default]
    Active,
    /// `suspend` is true: slots pass without requests, and are not made up later.
    Suspended,
    /// The record is invalid; the message says why. It is looked at again
    /// when its spec changes.
    Failed,
}

/// What the operator writes into a schedule's `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduleStatus {
    #[serde(default)]
    pub phase: SchedulePhase,
    #[serde(default)]
    pub message: String,
    /// The slot of the last request made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// The next slot (none while suspended or invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<DateTime<Utc>>,
    /// The last request made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request: Option<String>,
    /// When the last of its requests that succeeded finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,
    /// Every slot up to here has been dealt with: run, or skipped (suspended,
    /// Forbid, past its deadline or window). Slots before the schedule was
    /// created are never run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_through: Option<DateTime<Utc>>,
    /// The requests it made and still keeps, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<ScheduledRequest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

impl ScheduleStatus {
    pub(crate) fn event(&mut self, at: DateTime<Utc>, reason: Reason, message: impl Into<String>) {
        crate::request::status::push_event(&mut self.events, at, reason, message.into(), None);
    }

    /// The requests still running (not finished).
    pub(crate) fn active(&self) -> impl Iterator<Item = &ScheduledRequest> {
        self.requests.iter().filter(|r| !r.phase.is_terminal())
    }
}

/// A stored schedule's status, the default before the operator wrote one,
/// or a sentence saying why it cannot be read.
pub(crate) fn schedule_status(
    record: &crate::store::StoredRecord,
) -> Result<ScheduleStatus, String> {
    match &record.status {
        None => Ok(ScheduleStatus::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            format!("status: cannot be read ({e}); it is written by the operator only")
        }),
    }
}

/// One request a schedule made, as last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduledRequest {
    pub name: String,
    pub slot: DateTime<Utc>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Finished but its notifications are not all delivered yet: it is not
    /// deleted by the history limits until they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notifying: bool,
}

impl ScheduledRequest {
    /// Nothing about it will change any more: it need not be read again.
    pub(crate) fn settled(&self) -> bool {
        self.phase.is_terminal() && !self.notifying
    }
}

#[cfg(test)]
mod tests;
