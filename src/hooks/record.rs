//! What a request's status holds of its hooks: the call under way at one
//! point of the run, and the answer last recorded. Plain data the status
//! stores, apart from the decision over it ([`super::decide`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spec::Point;

/// What a hook answered to one call (or that it did not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Answer {
    Succeeded {
        #[serde(default)]
        message: String,
    },
    Failed {
        #[serde(default)]
        message: String,
    },
    InProgress {
        #[serde(default)]
        message: String,
        #[serde(with = "crate::duration::serde_duration", rename = "retryAfter")]
        retry_after: Duration,
    },
    /// No verdict: a timeout, a connection refused, an HTTP error, an answer
    /// that could not be read. Retried with backoff within the deadline.
    Unanswered { error: String },
}

impl Answer {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Succeeded { message } => with_message("succeeded", message),
            Self::Failed { message } => with_message("failed", message),
            Self::InProgress { message, .. } => with_message("inProgress", message),
            Self::Unanswered { error } => format!("no answer: {error}"),
        }
    }
}

pub(super) fn with_message(word: &str, message: &str) -> String {
    if message.is_empty() {
        word.to_string()
    } else {
        format!("{word}: {message}")
    }
}

/// The hook call under way at one point of the run, persisted before each
/// call is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookCall {
    /// Which of the spec's hooks (its index in `spec.hooks`).
    pub hook: usize,
    pub point: Point,
    /// The batch it is asked about (1 for the first); 0 for beforeStart and afterEnd.
    pub batch: u32,
    /// What the receiver sees as `X-Ecs-Recycler-Idempotency-Key`: the same
    /// on every call for this point of this run.
    pub key: String,
    /// The first call; the hook's deadline counts from here.
    pub since: DateTime<Utc>,
    /// Calls whose outcome is recorded.
    #[serde(default)]
    pub attempts: u32,
    /// A call is due from this instant; `None` while an answer waits to be decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<DateTime<Utc>>,
    /// The last recorded answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
}
