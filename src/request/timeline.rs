//! A run's shape in time, kept in its status: the counts its looks saw
//! (desired, running, pending, healthy, and healthy targets behind a load
//! balancer) each time they moved, and marks for what the run did and saw
//! (the surge, each batch stopped and serving, a gate's hold and release,
//! a hook asked and answered, the restore). Read by `describe`, `get -w`,
//! the dashboard and the sandbox to draw the run; nothing decides from it.
//!
//! What a reader must know: it rides on the decision's own status write,
//! never one of its own. [`record`] is called once, by the decision, with
//! the status before and after: a look adds a sample when the counts
//! moved, or, every [`PERIOD`] at most, when the status is written for
//! another reason; a mark comes with its event and keeps its own time. A
//! look that would write nothing else adds nothing, so a run held still
//! for an hour writes no more than before. A look that ends at the tasks
//! (a batch not done yet: nothing is decided, nothing written) is kept in
//! the shell's memory ([`tasks_look`]) and added with the next write
//! ([`ride`]); a crash loses it, and only it.
//!
//! Bounded whatever the run's length: past [`MAX_SAMPLES`] the samples are
//! thinned by merging neighbours (the merged point keeps the lowest
//! running, healthy and serving counts and the highest desired and pending
//! of the two, so a dip is never thinned away), and past [`MAX_MARKS`] the
//! most frequent kind of mark loses every other one.
//! docs/dynamodb-item-schema.md gives the bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::request::observation::{Observation, TaskView};
use crate::request::status::{Event, Phase, Reason, RecycleStatus, events_added};

/// Samples kept at most; thinned to about half when one more comes.
pub(crate) const MAX_SAMPLES: usize = 120;
/// Marks kept at most.
pub(crate) const MAX_MARKS: usize = 60;
/// A look whose status is written anyway adds its counts, even unchanged,
/// when the last sample is this old: a long quiet stretch still shows when
/// it was seen, at no write of its own.
pub(crate) const PERIOD: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The run's samples and marks. `at` of each counts milliseconds from `start`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    /// How many times the samples were thinned (each halves them): 0 while
    /// every look that moved a count is there.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub thinned: u32,
}

/// The counts one look saw. Stored as an array,
/// `[at, desired, running, pending, healthy, serving]`, the last left out
/// where the service has no load balancer and `healthy` null where the
/// look did not read the tasks (Restoring reads only the service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Option<u64>>", into = "Vec<Option<u64>>")]
pub struct Sample {
    /// Milliseconds after [`Timeline::start`].
    pub at: u64,
    pub counts: Counts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    /// RUNNING, and HEALTHY where a container has a health check.
    pub healthy: Option<u32>,
    /// Healthy in every target group of the service; `None` without a load balancer.
    pub serving: Option<u32>,
}

/// Something the run did or saw, at a time, with the batch it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at: u64,
    pub kind: MarkKind,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch: u32,
}

/// What a mark is. Stored as its word; a word this release does not know
/// is kept as written, so a status written by a later release reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MarkKind {
    /// Spare capacity asked for.
    Surge,
    /// A batch's tasks were stopped.
    Stopped,
    /// A batch's replacements are serving.
    Serving,
    /// A gate alarm held the run.
    GateHeld,
    /// Every gate alarm is OK again.
    GateReleased,
    /// A hook was called.
    HookAsked,
    /// A hook answered (or gave no verdict within its deadline).
    HookAnswered,
    /// The run began undoing its surge (it entered Restoring).
    Restoring,
    /// The desired count was put back, or left to whoever changed it.
    Restored,
    Other(String),
}

impl MarkKind {
    const ALL: [MarkKind; 9] = [
        Self::Surge,
        Self::Stopped,
        Self::Serving,
        Self::GateHeld,
        Self::GateReleased,
        Self::HookAsked,
        Self::HookAnswered,
        Self::Restoring,
        Self::Restored,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Self::Surge => "surge",
            Self::Stopped => "stopped",
            Self::Serving => "serving",
            Self::GateHeld => "gateHeld",
            Self::GateReleased => "gateReleased",
            Self::HookAsked => "hookAsked",
            Self::HookAnswered => "hookAnswered",
            Self::Restoring => "restoring",
            Self::Restored => "restored",
            Self::Other(word) => word,
        }
    }

    /// What a person reads for it ("batch 3 stopped" is built from this).
    pub fn words(&self) -> &str {
        match self {
            Self::Surge => "surge",
            Self::Stopped => "stopped",
            Self::Serving => "serving",
            Self::GateHeld => "held by a gate",
            Self::GateReleased => "gate released",
            Self::HookAsked => "hook asked",
            Self::HookAnswered => "hook answered",
            Self::Restoring => "restoring",
            Self::Restored => "restored",
            Self::Other(word) => word,
        }
    }
}

impl From<String> for MarkKind {
    fn from(word: String) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == word)
            .unwrap_or(Self::Other(word))
    }
}

impl From<MarkKind> for String {
    fn from(kind: MarkKind) -> Self {
        kind.as_str().to_string()
    }
}

impl From<Sample> for Vec<Option<u64>> {
    fn from(s: Sample) -> Self {
        let c = s.counts;
        let mut out = vec![
            Some(s.at),
            Some(c.desired.into()),
            Some(c.running.into()),
            Some(c.pending.into()),
            c.healthy.map(u64::from),
        ];
        if let Some(serving) = c.serving {
            out.push(Some(serving.into()));
        }
        out
    }
}

impl TryFrom<Vec<Option<u64>>> for Sample {
    type Error = String;

    fn try_from(v: Vec<Option<u64>>) -> Result<Self, String> {
        let count = |i: usize| -> Result<Option<u32>, String> {
            v.get(i)
                .copied()
                .flatten()
                .map(|n| u32::try_from(n).map_err(|_| format!("count {n} is out of range")))
                .transpose()
        };
        let required =
            |i: usize| count(i)?.ok_or_else(|| format!("a sample needs 5 or 6 numbers, not {v:?}"));
        if !(5..=6).contains(&v.len()) {
            return Err(format!("a sample needs 5 or 6 numbers, not {}", v.len()));
        }
        Ok(Sample {
            at: v[0].ok_or("a sample needs its time")?,
            counts: Counts {
                desired: required(1)?,
                running: required(2)?,
                pending: required(3)?,
                healthy: count(4)?,
                serving: count(5)?,
            },
        })
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Timeline {
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.marks.is_empty()
    }

    /// The time of a sample or mark.
    pub fn time_of(&self, at: u64) -> Option<DateTime<Utc>> {
        let offset = chrono::TimeDelta::milliseconds(i64::try_from(at).ok()?);
        Some(self.start? + offset)
    }

    /// Milliseconds from `start` to `t` (0 before it).
    fn offset(&mut self, t: DateTime<Utc>) -> u64 {
        let start = *self.start.get_or_insert(t);
        u64::try_from((t - start).num_milliseconds()).unwrap_or(0)
    }

    /// Adds a look's counts and marks; `written` says whether the status
    /// is written at this look for another reason (see the module's doc).
    pub(crate) fn add(
        &mut self,
        now: DateTime<Utc>,
        counts: Option<Counts>,
        marks: Vec<(MarkKind, u32)>,
        written: bool,
    ) {
        let at = self.offset(now);
        if let Some(counts) = counts {
            let due = match self.samples.last() {
                None => true,
                Some(last) if last.counts != counts => true,
                Some(last) => {
                    written && at.saturating_sub(last.at) >= PERIOD.num_milliseconds() as u64
                }
            };
            if due {
                self.samples.push(Sample { at, counts });
                if self.samples.len() > MAX_SAMPLES {
                    self.thin_samples();
                }
            }
        }
        for (kind, batch) in marks {
            self.marks.push(Mark { at, kind, batch });
        }
        while self.marks.len() > MAX_MARKS {
            self.thin_marks();
        }
    }

    /// Adds the looks that ended at the tasks since the last decision
    /// (kept in memory by the shell, see [`tasks_look`]) in their place in
    /// time, then `latest` (what the decision itself saw, `now`) where the
    /// last of them differs from it: a look that was left out for being
    /// like the sample before must follow what came in between.
    fn backfill(&mut self, looks: &[(DateTime<Utc>, Counts)], latest: (DateTime<Utc>, Counts)) {
        let Some(start) = self.start else {
            return;
        };
        let offset = |t: DateTime<Utc>| u64::try_from((t - start).num_milliseconds()).unwrap_or(0);
        for &(t, counts) in looks {
            let at = offset(t);
            let i = self.samples.partition_point(|s| s.at <= at);
            if i > 0 && self.samples[i - 1].counts == counts {
                continue;
            }
            self.samples.insert(i, Sample { at, counts });
        }
        let (now, counts) = latest;
        if self.samples.last().is_some_and(|s| s.counts != counts) {
            self.samples.push(Sample {
                at: offset(now),
                counts,
            });
        }
        while self.samples.len() > MAX_SAMPLES {
            self.thin_samples();
        }
    }

    /// Merges neighbours, the newest sample kept as it is (it is the
    /// service as last seen); equal neighbours left by a merge become one.
    fn thin_samples(&mut self) {
        let Some(newest) = self.samples.pop() else {
            return;
        };
        let mut thinned: Vec<Sample> = self
            .samples
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => Sample {
                    at: a.at,
                    counts: a.counts.envelope(&b.counts),
                },
                [a] => *a,
                _ => unreachable!("chunks of two"),
            })
            .collect();
        thinned.push(newest);
        thinned.dedup_by(|later, earlier| later.counts == earlier.counts);
        if thinned.last().map(|s| s.at) != Some(newest.at) {
            // The newest was equal to the one before: keep its time, the
            // service's last look.
            thinned.push(newest);
        }
        self.samples = thinned;
        self.thinned += 1;
    }

    /// Drops every other mark of the most frequent kind, its first and its
    /// newest kept: rare marks (the surge, a gate, the restore) outlive
    /// the batches'.
    fn thin_marks(&mut self) {
        let mut counts: Vec<(MarkKind, usize)> = Vec::new();
        for m in &self.marks {
            match counts.iter_mut().find(|(k, _)| *k == m.kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((m.kind.clone(), 1)),
            }
        }
        let Some((kind, n)) = counts.into_iter().max_by_key(|(_, n)| *n) else {
            return;
        };
        let mut seen = 0;
        self.marks.retain(|m| {
            if m.kind != kind {
                return true;
            }
            seen += 1;
            seen == n || seen % 2 == 1
        });
        if n <= 2 {
            // Nothing left to thin by kind: the oldest goes.
            self.marks.remove(0);
        }
    }
}

impl Counts {
    /// The counts a look saw; `None` when the service could not be had.
    /// `tasks_read`: whether the look read the tasks (healthy is unknown otherwise).
    pub(crate) fn of(obs: &Observation, tasks_read: bool) -> Option<Counts> {
        let svc = obs.service.as_ref().ok()?;
        let healthy = || obs.tasks.iter().filter(|t| t.is_running_healthy()).count() as u32;
        let serving = || {
            obs.tasks
                .iter()
                .filter(|t| t.is_serving() && !t.targets.is_empty())
                .count() as u32
        };
        Some(Counts {
            desired: svc.desired,
            running: svc.running,
            pending: svc.pending,
            healthy: tasks_read.then(healthy),
            serving: (tasks_read && !svc.load_balancers.is_empty()).then(serving),
        })
    }

    /// What a look that ended at the tasks saw (the service was not asked
    /// for: its desired count is the last one seen, and the targets unknown).
    pub(crate) fn of_tasks(tasks: &[TaskView], last: &Counts) -> Counts {
        let count = |f: fn(&TaskView) -> bool| tasks.iter().filter(|t| f(t)).count() as u32;
        Counts {
            desired: last.desired,
            running: count(|t| t.last_status == "RUNNING"),
            pending: count(|t| {
                t.desired_running
                    && matches!(
                        t.last_status.as_str(),
                        "PROVISIONING" | "PENDING" | "ACTIVATING"
                    )
            }),
            healthy: Some(count(TaskView::is_running_healthy)),
            serving: None,
        }
    }

    /// The pair as one point: the lows of what serves, the highs of what is asked.
    fn envelope(&self, other: &Counts) -> Counts {
        let low = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Counts {
            desired: self.desired.max(other.desired),
            running: self.running.min(other.running),
            pending: self.pending.max(other.pending),
            healthy: low(self.healthy, other.healthy),
            serving: low(self.serving, other.serving),
        }
    }
}

/// The marks a decision makes, read from the events it added and the hook
/// it asks: every phase's doings, told apart in this one place.
fn marks(before: &RecycleStatus, after: &RecycleStatus, hook_asked: bool) -> Vec<(MarkKind, u32)> {
    let batch = after.batches;
    let mut out: Vec<(MarkKind, u32)> = Vec::new();
    for Event { reason, .. } in events_added(&before.events, &after.events) {
        let kind = match reason {
            Reason::Surge => MarkKind::Surge,
            Reason::Recycling => MarkKind::Stopped,
            Reason::Recycled => MarkKind::Serving,
            Reason::AlarmHeld => MarkKind::GateHeld,
            Reason::AlarmCleared => MarkKind::GateReleased,
            Reason::Hook => MarkKind::HookAnswered,
            Reason::Restore => MarkKind::Restored,
            _ => continue,
        };
        let batch = match kind {
            MarkKind::Stopped | MarkKind::Serving => batch,
            _ => 0,
        };
        // A batch of several tasks is stopped with an event each: one mark.
        if !out.contains(&(kind.clone(), batch)) {
            out.push((kind, batch));
        }
    }
    if before.phase != Phase::Restoring && after.phase == Phase::Restoring {
        out.push((MarkKind::Restoring, 0));
    }
    if hook_asked {
        out.push((MarkKind::HookAsked, 0));
    }
    out
}

/// Adds this decision's look to the run's timeline: called once, by the
/// decision, once the phase has decided. Nothing before the run starts
/// (a queued request's service is not its run) and nothing after it ends.
///
/// A look whose decision writes nothing else adds nothing: its counts, if
/// they moved, are returned for the shell to keep until the next write
/// (which [`ride`]s them), so the timeline never makes a write of its own.
pub(crate) fn record(
    before: &RecycleStatus,
    after: &mut RecycleStatus,
    obs: &Observation,
    now: DateTime<Utc>,
    tasks_read: bool,
    hook_asked: bool,
) -> Option<Counts> {
    if after.started_at.is_none() || before.phase.is_terminal() {
        return None;
    }
    let counts = Counts::of(obs, tasks_read);
    if after == before {
        let last = after.timeline.samples.last().map(|s| s.counts);
        return counts.filter(|c| last != Some(*c));
    }
    let marks = marks(before, after, hook_asked);
    after.timeline.add(now, counts, marks, true);
    None
}

#[cfg(test)]
mod tests;

/// Adds the marks of a decision made without a look (an action AWS
/// refused turns the run to Restoring): the marks alone, no counts.
pub(crate) fn mark(before: &RecycleStatus, after: &mut RecycleStatus, now: DateTime<Utc>) {
    if after.started_at.is_none() || before.phase.is_terminal() {
        return;
    }
    let marks = marks(before, after, false);
    after.timeline.add(now, None, marks, true);
}

/// Adds to a decision about to be written the looks that ended at the
/// tasks since the last write (see [`Timeline::backfill`]); the shell
/// calls it only when the decision writes the status anyway.
pub(crate) fn ride(
    before: &RecycleStatus,
    after: &mut RecycleStatus,
    looks: &[(DateTime<Utc>, Counts)],
    obs: &Observation,
    now: DateTime<Utc>,
) {
    if looks.is_empty() || before.phase.is_terminal() {
        return;
    }
    if let Some(counts) = Counts::of(obs, crate::request::decide::needs_tasks(before)) {
        after.timeline.backfill(looks, (now, counts));
    }
}

/// The counts of a look that ended at the tasks, for the shell to keep
/// until the next write; `None` outside the run.
pub(crate) fn tasks_look(status: &RecycleStatus, tasks: &[TaskView]) -> Option<Counts> {
    if status.started_at.is_none() || status.phase.is_terminal() {
        return None;
    }
    let mut last = status.timeline.samples.last()?.counts;
    // A surge decided since is the desired count now (the look did not ask).
    if let Some(surge) = status.surge {
        last.desired = surge.to;
    }
    Some(Counts::of_tasks(tasks, &last))
}
