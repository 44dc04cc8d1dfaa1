//! What the operator writes into a request's `status`: the phase, the plan
//! made before anything was touched, progress, the intents it persisted
//! before acting (so a restart can tell done from not done), and a bounded
//! list of events a person can read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::hooks::record::HookCall;
use crate::message::bounded;
use crate::notify::NotifyState;
use crate::request::spec::MAX_EVENTS;
use crate::request::timeline::Timeline;

/// Where a request is. `Pending`, `Succeeded`, `Failed`, `Cancelled` and
/// `WindowClosed` are fixed names; the ones between are the steps of the flow in docs/design.md.
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
    /// The phases of a request still under way, in the order of the flow.
    pub const ACTIVE: [Phase; 4] = [
        Self::Pending,
        Self::Surging,
        Self::Recycling,
        Self::Restoring,
    ];

    /// The name as stored and shown ("WindowClosed").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Surging => "Surging",
            Self::Recycling => "Recycling",
            Self::Restoring => "Restoring",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::WindowClosed => "WindowClosed",
        }
    }

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

/// Why a gate holds the run, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmHold {
    pub since: DateTime<Utc>,
    pub message: String,
}

/// A planned task that was protected from scale-in when its turn came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedTask {
    pub task: String,
    /// When its protection ends, as ECS last answered (`expirationDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// A step's wait for capacity: the spare task or a replacement waiting in
/// PROVISIONING for an instance to be launched. The wait is budgeted by
/// `capacityTimeout`; `stabilityTimeout` counts only once it has ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityWait {
    pub since: DateTime<Utc>,
    /// What it waits on: the capacity provider's name; empty for a task
    /// ECS could not place where nothing adds room (seen once: the next
    /// look that still finds no room ends the run).
    pub on: String,
    /// The tasks seen waiting, looked at whatever their state until placed,
    /// so that ECS giving up on one is seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<DateTime<Utc>>,
}

/// The service could not be seen whole (a read got no answer, or was
/// denied): since when, which call, and the sentence in the status. Nothing
/// is changed meanwhile; the next look that sees it whole clears it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unseen {
    pub since: DateTime<Utc>,
    /// The IAM action of the read that failed (`elasticloadbalancing:DescribeTargetHealth`).
    pub call: String,
    pub message: String,
}

/// How the run ends once Restoring is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub phase: Phase,
    pub message: String,
}

/// Why an event was recorded: what a person filters a record's events by.
/// Stored as the word it has always been ("Recycled"); a word this release
/// does not know is kept as it was written, so every stored record reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Reason {
    // A request's run.
    Started,
    Planned,
    Transition,
    Surge,
    Recycling,
    Skipped,
    Recycled,
    Completed,
    Restore,
    Slow,
    /// A gate alarm held the run before its next stop.
    AlarmHeld,
    /// Every gate alarm is back to OK: the run goes on.
    AlarmCleared,
    /// A hook answered, or gave no verdict within its deadline.
    Hook,
    /// A planned task was protected from scale-in when its turn came.
    Protected,
    /// A step waits for capacity, or its wait ended.
    Capacity,
    /// The service could not be seen whole.
    Unseen,
    /// It can be seen whole again.
    Seen,
    // A schedule's requests.
    Valid,
    Invalid,
    MissedSlots,
    Adopted,
    Replaced,
    Created,
    Deleted,
    Gone,
    /// Written by another release.
    Other(String),
}

impl Reason {
    const ALL: [Reason; 25] = [
        Self::Started,
        Self::Planned,
        Self::Transition,
        Self::Surge,
        Self::Recycling,
        Self::Skipped,
        Self::Recycled,
        Self::Completed,
        Self::Restore,
        Self::Slow,
        Self::AlarmHeld,
        Self::AlarmCleared,
        Self::Hook,
        Self::Protected,
        Self::Capacity,
        Self::Unseen,
        Self::Seen,
        Self::Valid,
        Self::Invalid,
        Self::MissedSlots,
        Self::Adopted,
        Self::Replaced,
        Self::Created,
        Self::Deleted,
        Self::Gone,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Self::Started => "Started",
            Self::Planned => "Planned",
            Self::Transition => "Transition",
            Self::Surge => "Surge",
            Self::Recycling => "Recycling",
            Self::Skipped => "Skipped",
            Self::Recycled => "Recycled",
            Self::Completed => "Completed",
            Self::Restore => "Restore",
            Self::Slow => "Slow",
            Self::AlarmHeld => "AlarmHeld",
            Self::AlarmCleared => "AlarmCleared",
            Self::Hook => "Hook",
            Self::Protected => "Protected",
            Self::Capacity => "Capacity",
            Self::Unseen => "Unseen",
            Self::Seen => "Seen",
            Self::Valid => "Valid",
            Self::Invalid => "Invalid",
            Self::MissedSlots => "MissedSlots",
            Self::Adopted => "Adopted",
            Self::Replaced => "Replaced",
            Self::Created => "Created",
            Self::Deleted => "Deleted",
            Self::Gone => "Gone",
            Self::Other(word) => word,
        }
    }
}

impl From<String> for Reason {
    fn from(word: String) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == word)
            .unwrap_or(Self::Other(word))
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.as_str().to_string()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub reason: Reason,
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
    /// A gate alarm holds the run before its next stop: since when, and
    /// why. Set and cleared only from what DescribeAlarms shows, so a
    /// restart holds again at its first look if the alarm still fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_hold: Option<AlarmHold>,
    /// The hook call under way: on record before each call is made, its
    /// answer recorded after (see [`crate::hooks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookCall>,
    /// The hooks of this run already passed, as `point/batch/hook`
    /// (`beforeBatch/3/0`): each is asked once per point of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks_passed: Vec<String>,
    /// Batches started so far (stopped, or being stopped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batches: u32,
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
    /// The run's counts and marks over time, bounded; records written
    /// before it was kept have none. See [`crate::request::timeline`].
    #[serde(default, skip_serializing_if = "Timeline::is_empty")]
    pub timeline: Timeline,
    /// Planned tasks found protected from scale-in when their turn came:
    /// held back to go last (`protectedTasks: wait`), or left running —
    /// those are in `skipped` too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<ProtectedTask>,
    /// Since when the run waits for its protected tasks alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection_wait: Option<DateTime<Utc>>,
    /// Tasks of the service taken by Fargate Spot during the run (not the
    /// run's own stops), at most [`MAX_INTERRUPTIONS_KEPT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupted: Vec<String>,
    /// The current step's wait for capacity, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_wait: Option<CapacityWait>,
    /// The service cannot be seen whole right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<Unseen>,
}

/// Spot interruptions named in a status; more are counted no further.
pub(crate) const MAX_INTERRUPTIONS_KEPT: usize = 100;

/// The events of `after` that `before` did not have. Events are bounded,
/// so the newest of `before` is looked for rather than counted.
pub(crate) fn events_added<'a>(before: &[Event], after: &'a [Event]) -> &'a [Event] {
    let start = before
        .last()
        .and_then(|last| after.iter().rposition(|e| e == last))
        .map_or(0, |i| i + 1);
    &after[start..]
}

/// Appends an event to any record's list, its message bounded, dropping
/// the oldest beyond `MAX_EVENTS`: every kind keeps its events the same way.
pub(crate) fn push_event(
    events: &mut Vec<Event>,
    at: DateTime<Utc>,
    reason: Reason,
    message: String,
    task: Option<String>,
) {
    events.push(Event {
        at,
        reason,
        message: bounded(message),
        task,
    });
    if events.len() > MAX_EVENTS {
        let excess = events.len() - MAX_EVENTS;
        events.drain(..excess);
    }
}

impl RecycleStatus {
    /// Appends an event, dropping the oldest beyond `MAX_EVENTS`.
    pub fn event(&mut self, at: DateTime<Utc>, reason: Reason, message: impl Into<String>) {
        self.push_event(at, reason, message.into(), None);
    }

    /// An event about one task.
    pub fn task_event(&mut self, at: DateTime<Utc>, reason: Reason, task: &str, message: String) {
        self.push_event(at, reason, message, Some(task.to_string()));
    }

    fn push_event(
        &mut self,
        at: DateTime<Utc>,
        reason: Reason,
        message: String,
        task: Option<String>,
    ) {
        push_event(&mut self.events, at, reason, message, task);
    }

    /// Moves to `phase`, recording the transition as an event.
    pub fn transition(&mut self, at: DateTime<Utc>, phase: Phase, message: impl Into<String>) {
        let message = bounded(message.into());
        if self.phase != phase {
            self.event(
                at,
                Reason::Transition,
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

    /// Planned tasks held back because protected, waiting for their
    /// protection to end (not stopped, not left running).
    pub fn held(&self) -> impl Iterator<Item = &ProtectedTask> {
        self.protected
            .iter()
            .filter(|p| !self.skipped.contains(&p.task) && !self.stopped.contains(&p.task))
    }

    /// Planned tasks left running because they were protected.
    pub fn left_protected(&self) -> impl Iterator<Item = &ProtectedTask> {
        self.protected
            .iter()
            .filter(|p| self.skipped.contains(&p.task))
    }

    /// The stopped tasks that count as recycled: their batch finished with
    /// the replacements serving (not the batch in flight, not `unreplaced`).
    pub fn recycled(&self) -> impl Iterator<Item = &String> {
        self.stopped
            .iter()
            .filter(|t| !self.batch.contains(t) && !self.unreplaced.contains(t))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A stored request's status, the default (Pending) before the operator
/// wrote one, or a sentence saying why it cannot be read.
pub fn request_status(stored: Option<&serde_json::Value>) -> Result<RecycleStatus, String> {
    match stored {
        None => Ok(RecycleStatus::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            format!("status: cannot be read ({e}); it is written by the operator only")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_reasons_read_and_write_the_words_stored_records_hold() {
        // Events as the release before the enum wrote them, and one from a
        // release that knows a reason this one does not.
        let stored = serde_json::json!({
            "phase": "Recycling",
            "events": [
                {"at": "2026-11-30T10:00:00Z", "reason": "Started", "message": "Starting task recycle for prod/web"},
                {"at": "2026-11-30T10:00:01Z", "reason": "Recycling", "message": "Recycling task 1/3: t1", "task": "t1"},
                {"at": "2026-11-30T10:00:09Z", "reason": "Recycled", "message": "Task 1 recycled"},
                {"at": "2026-11-30T10:00:10Z", "reason": "GateHeld", "message": "from a later release"}
            ]
        });
        let status: RecycleStatus = serde_json::from_value(stored.clone()).unwrap();
        let reasons: Vec<&Reason> = status.events.iter().map(|e| &e.reason).collect();
        assert_eq!(
            reasons,
            [
                &Reason::Started,
                &Reason::Recycling,
                &Reason::Recycled,
                &Reason::Other("GateHeld".into())
            ]
        );
        let written = serde_json::to_value(&status).unwrap();
        assert_eq!(
            written["events"], stored["events"],
            "written back word for word"
        );
        for r in Reason::ALL {
            assert_eq!(
                Reason::from(r.as_str().to_string()),
                r,
                "{r} reads as itself"
            );
        }
    }
}
