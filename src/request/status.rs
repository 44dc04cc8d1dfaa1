//! What the operator writes into a request's `status`: the phase, the plan
//! made before anything was touched, progress, the intents it persisted
//! before acting (so a restart can tell done from not done), and a bounded
//! list of events a person can read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::notify::NotifyState;
use crate::request::spec::MAX_EVENTS;

/// Where a request is. `Pending`, `Succeeded`, `Failed`, `Cancelled` and
/// `WindowClosed` are fixed names; the ones between are the steps of DESIGN.md's flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Accepted; waiting for its turn on the service or for someone else's deployment.
    #[default]
    Pending,
    /// Adding spare capacity and keeping the autoscaler from taking it away.
    Surging,
    /// Stopping planned tasks a batch at a time and waiting for their replacements.
    Recycling,
    /// Undoing exactly what the surge changed, on every exit path.
    Restoring,
    Succeeded,
    Failed,
    Cancelled,
    /// `notAfter` (a schedule's window) passed: no further batch was
    /// started, capacity was restored; the message says how far it got.
    WindowClosed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::WindowClosed
        )
    }
}

/// The autoscaler's settings as they were, or as the operator set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingSettings {
    pub min: u32,
    pub max: u32,
    pub dynamic_scaling_in_suspended: bool,
    pub dynamic_scaling_out_suspended: bool,
    pub scheduled_scaling_suspended: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub original_desired: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_scaling: Option<ScalingSettings>,
    /// The tasks to recycle, oldest first.
    pub tasks: Vec<String>,
    pub planned_at: DateTime<Utc>,
}

/// A desired-count change the operator decided on: persisted before it is
/// made, so a restart compares the observed count with `from` and `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredChange {
    pub from: u32,
    pub to: u32,
}

/// How the run ends once Restoring is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub phase: Phase,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub reason: String,
    pub message: String,
    /// The task the event is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecycleStatus {
    pub phase: Phase,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Planned tasks stopped so far, in order: those recycled (their batch
    /// finished with the replacements serving), the batch in flight, and
    /// the `unreplaced`. See [`RecycleStatus::recycled`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<String>,
    /// Stopped tasks whose replacements never served: their batch was in
    /// flight when the run ended (a timeout, the service gone, an action
    /// refused). Records written before this field was kept have none,
    /// which reads as they always did: every stopped task out of the batch
    /// in flight was recycled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreplaced: Vec<String>,
    /// Planned tasks that were gone before their turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// The batch in flight: stopped, replacements not yet healthy and stable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<String>,
    /// When the current wait for stability began; `stabilityTimeout` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<DateTime<Utc>>,
    /// The pause after a stable batch ends here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surge: Option<DesiredChange>,
    /// The autoscaler settings the surge put in place (to tell ours from others' later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surge_scaling: Option<ScalingSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<DesiredChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Notifications waiting to be delivered (the outbox) and the attempts
    /// made so far; see [`crate::notify`].
    #[serde(default, skip_serializing_if = "NotifyState::is_empty")]
    pub notify: NotifyState,
}

impl RecycleStatus {
    /// Appends an event, dropping the oldest beyond `MAX_EVENTS`.
    pub fn event(&mut self, at: DateTime<Utc>, reason: &str, message: impl Into<String>) {
        self.push_event(at, reason, message.into(), None);
    }

    /// An event about one task.
    pub fn task_event(&mut self, at: DateTime<Utc>, reason: &str, task: &str, message: String) {
        self.push_event(at, reason, message, Some(task.to_string()));
    }

    fn push_event(
        &mut self,
        at: DateTime<Utc>,
        reason: &str,
        message: String,
        task: Option<String>,
    ) {
        self.events.push(Event {
            at,
            reason: reason.to_string(),
            message: bounded(message),
            task,
        });
        if self.events.len() > MAX_EVENTS {
            let excess = self.events.len() - MAX_EVENTS;
            self.events.drain(..excess);
        }
    }

    /// Moves to `phase`, recording the transition as an event.
    pub fn transition(&mut self, at: DateTime<Utc>, phase: Phase, message: impl Into<String>) {
        let message = bounded(message.into());
        if self.phase != phase {
            self.event(
                at,
                "Transition",
                format!("{:?} → {:?}: {message}", self.phase, phase),
            );
        }
        self.phase = phase;
        self.message = message;
        if phase.is_terminal() {
            self.finished_at = Some(at);
        }
    }

    /// Planned tasks dealt with (stopped or skipped), and planned in all.
    pub fn progress(&self) -> (usize, usize) {
        let total = self.plan.as_ref().map_or(0, |p| p.tasks.len());
        (self.stopped.len() + self.skipped.len(), total)
    }

    /// The stopped tasks that count as recycled: their batch finished with
    /// the replacements serving (not the batch in flight, not `unreplaced`).
    pub fn recycled(&self) -> impl Iterator<Item = &String> {
        self.stopped
            .iter()
            .filter(|t| !self.batch.contains(t) && !self.unreplaced.contains(t))
    }
}

/// The longest message or event kept, in characters: causes quote ECS, and
/// a record must stay far below DynamoDB's 400 KB item limit with its
/// events and notices, each carrying a message.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// `text`, cut to [`MAX_MESSAGE_CHARS`] with "…" when longer.
pub fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// A stored request's status, the default (Pending) before the operator
/// wrote one, or a sentence saying why it cannot be read.
pub fn request_status(record: &crate::store::StoredRecord) -> Result<RecycleStatus, String> {
    match &record.status {
        None => Ok(RecycleStatus::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            format!("status: cannot be read ({e}); it is written by the operator only")
        }),
    }
}
