//! What ECS's own events say of a step waiting for new tasks: hints, never
//! what the decision rests on. ECS sends every change of a task (with a
//! `version` that grows with each) and its services' actions at least
//! once and in any order; the shell drops the copies and the stale
//! versions before they come here. From what is left, a step waiting for
//! its replacements (or its spare tasks) can be seen probably done: every
//! task it stopped has left RUNNING and as many new tasks as it launched
//! are running and healthy, or ECS reported the service steady since the
//! step began. A look confirms it before anything is decided on it. Pure:
//! when each event was received comes in as a value.
//!
//! When a change happened is ECS's own time of it (`updatedAt`, to the
//! millisecond), not when the event arrived, which lags by EventBridge's
//! and SQS's delivery; but never later than its arrival, nor more than
//! [`MAX_SKEW`] before it, so that a clock behind ECS's shifts a time by
//! no more than that.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use super::pacing::awaits_tasks;
use super::status::{Phase, RecycleStatus};

/// The most tasks kept per service: a service's tasks of the last few
/// steps, whatever its size (the oldest news goes first).
const MAX_TASKS: usize = 512;
/// The most steady states kept per service.
const MAX_STEADY: usize = 4;
/// How far before its arrival ECS's time of a change is believed.
pub(crate) const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// When a change happened: ECS's time of it, within [`MAX_SKEW`] before
/// its arrival, else its arrival.
fn happened(changed_at: Option<DateTime<Utc>>, received: DateTime<Utc>) -> DateTime<Utc> {
    changed_at.map_or(received, |at| at.clamp(received - MAX_SKEW, received))
}

/// What a task's containers report of their health in one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Every container HEALTHY.
    Healthy,
    /// A container UNHEALTHY.
    Unhealthy,
    /// Neither: no health check, or not judged yet.
    Unknown,
}

/// A task as its newest event showed it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskSeen {
    pub last_status: String,
    pub desired_status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub health: Health,
    /// When ECS says the change happened (`updatedAt`).
    pub changed_at: Option<DateTime<Utc>>,
    /// When the operator received the event.
    pub received: DateTime<Utc>,
}

impl TaskSeen {
    /// Past RUNNING, on its way out (DEACTIVATING, STOPPING,
    /// DEPROVISIONING) or STOPPED.
    fn left_running(&self) -> bool {
        !matches!(
            self.last_status.as_str(),
            "PROVISIONING" | "PENDING" | "ACTIVATING" | "RUNNING"
        )
    }

    /// Running and healthy as ECS says it; without a health check, running
    /// is enough.
    fn serving(&self, health_checked: bool) -> bool {
        self.desired_status == "RUNNING"
            && self.last_status == "RUNNING"
            && match self.health {
                Health::Healthy => true,
                Health::Unknown => !health_checked,
                Health::Unhealthy => false,
            }
    }
}

/// The step a request waits on, as its status says it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Awaited {
    /// When the step's action was decided.
    pub since: DateTime<Utc>,
    /// The tasks it stopped (none for a surge).
    pub stopped: Vec<String>,
    /// How many new tasks it waits for.
    pub launched: usize,
    /// Whether the service's tasks have a container health check (as its
    /// last look saw them), so that a task's UNKNOWN health means "not yet".
    pub health_checked: bool,
}

/// The step `status` waits on, if it waits for new tasks: a surge's spare
/// tasks, or a batch's replacements.
pub(crate) fn awaited(status: &RecycleStatus, health_checked: bool) -> Option<Awaited> {
    let since = awaits_tasks(status)?;
    let (stopped, launched) = match status.phase {
        Phase::Surging => {
            let surge = status.surge.as_ref()?;
            (Vec::new(), surge.to.saturating_sub(surge.from) as usize)
        }
        _ => (status.batch.clone(), status.batch.len()),
    };
    (launched > 0).then_some(Awaited {
        since,
        stopped,
        launched,
        health_checked,
    })
}

/// What the events have said of one service's tasks and state.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceHints {
    tasks: HashMap<String, TaskSeen>,
    /// Steady states reported: (the event's time, to the second as
    /// EventBridge gives it; when it happened), newest last.
    steady: VecDeque<(DateTime<Utc>, DateTime<Utc>)>,
}

impl ServiceHints {
    /// A task's newest state (the shell has already dropped older versions).
    pub(crate) fn task(&mut self, arn: &str, seen: TaskSeen) {
        if self.tasks.len() >= MAX_TASKS && !self.tasks.contains_key(arn) {
            let oldest = self
                .tasks
                .iter()
                .min_by_key(|(_, t)| t.received)
                .map(|(a, _)| a.clone());
            if let Some(oldest) = oldest {
                self.tasks.remove(&oldest);
            }
        }
        self.tasks.insert(arn.to_string(), seen);
    }

    /// ECS reported the service steady (SERVICE_STEADY_STATE): the
    /// event's `time`, ECS's time of it (`createdAt`) and its arrival.
    pub(crate) fn steady(
        &mut self,
        time: DateTime<Utc>,
        changed_at: Option<DateTime<Utc>>,
        received: DateTime<Utc>,
    ) {
        if self.steady.len() == MAX_STEADY {
            self.steady.pop_front();
        }
        self.steady
            .push_back((time, happened(changed_at, received)));
    }

    /// The new tasks of the step (created since it began, meant to run),
    /// once there are as many as it launched: with the tasks a look
    /// remembers, all of the service's tasks, unless someone else's
    /// change launched more (which the look's own counts catch).
    pub(crate) fn launched(&self, step: &Awaited) -> Option<Vec<String>> {
        let mut new: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| is_new(t, step) && t.desired_status == "RUNNING")
            .map(|(arn, _)| arn.clone())
            .collect();
        new.sort();
        (new.len() >= step.launched).then_some(new)
    }

    /// When the events showed the step probably done, if they have: the
    /// latest of the changes that make it so.
    pub(crate) fn settled(&self, step: &Awaited) -> Option<DateTime<Utc>> {
        let by_tasks = self.settled_by_tasks(step);
        // EventBridge's time is to the second, rounded down: a steady state
        // stamped at or after the step's start came after it.
        let by_steady = self
            .steady
            .iter()
            .filter(|(time, _)| *time >= step.since)
            .map(|(_, happened)| *happened)
            .min();
        match (by_tasks, by_steady) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn settled_by_tasks(&self, step: &Awaited) -> Option<DateTime<Utc>> {
        let mut latest = DateTime::<Utc>::MIN_UTC;
        for arn in &step.stopped {
            let t = self.tasks.get(arn).filter(|t| t.left_running())?;
            latest = latest.max(happened(t.changed_at, t.received));
        }
        let mut serving = 0;
        for t in self.tasks.values().filter(|t| is_new(t, step)) {
            if t.serving(step.health_checked) {
                serving += 1;
                latest = latest.max(happened(t.changed_at, t.received));
            } else if t.desired_status == "RUNNING" {
                // One of its new tasks is still on its way.
                return None;
            }
        }
        (serving >= step.launched).then_some(latest)
    }
}

/// Made since the step began (a task with no creation time is not).
fn is_new(t: &TaskSeen, step: &Awaited) -> bool {
    t.created_at.is_some_and(|c| c >= step.since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::status::DesiredChange;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn seen(last: &str, desired: &str, created: i64, health: Health, received: i64) -> TaskSeen {
        TaskSeen {
            last_status: last.into(),
            desired_status: desired.into(),
            created_at: Some(at(created)),
            health,
            changed_at: None,
            received: at(received),
        }
    }

    fn batch_step(health_checked: bool) -> Awaited {
        Awaited {
            since: at(100),
            stopped: vec!["old".into()],
            launched: 1,
            health_checked,
        }
    }

    #[test]
    fn a_batch_is_settled_once_its_task_left_running_and_its_replacement_serves() {
        let step = batch_step(true);
        let mut h = ServiceHints::default();
        h.task("old", seen("RUNNING", "STOPPED", 0, Health::Healthy, 101));
        h.task("new", seen("RUNNING", "RUNNING", 102, Health::Unknown, 105));
        assert_eq!(h.settled(&step), None, "the old task still runs");
        h.task("old", seen("STOPPING", "STOPPED", 0, Health::Healthy, 103));
        assert_eq!(h.settled(&step), None, "the replacement is not healthy yet");
        assert_eq!(h.launched(&step), Some(vec!["new".to_string()]));
        h.task("new", seen("RUNNING", "RUNNING", 102, Health::Healthy, 108));
        assert_eq!(h.settled(&step), Some(at(108)));
        // Going unhealthy takes the hint back.
        h.task(
            "new",
            seen("RUNNING", "RUNNING", 102, Health::Unhealthy, 109),
        );
        assert_eq!(h.settled(&step), None);
    }

    #[test]
    fn without_a_health_check_running_is_serving_and_a_second_new_task_on_its_way_holds_it() {
        let step = batch_step(false);
        let mut h = ServiceHints::default();
        h.task("old", seen("STOPPED", "STOPPED", 0, Health::Unknown, 103));
        h.task("new", seen("RUNNING", "RUNNING", 102, Health::Unknown, 104));
        assert_eq!(h.settled(&step), Some(at(104)));
        h.task(
            "more",
            seen("PENDING", "RUNNING", 104, Health::Unknown, 105),
        );
        assert_eq!(h.settled(&step), None, "a new task still starting");
        h.task(
            "more",
            seen("STOPPED", "STOPPED", 104, Health::Unknown, 106),
        );
        assert_eq!(h.settled(&step), Some(at(104)), "it failed and left");
    }

    #[test]
    fn tasks_made_before_the_step_and_steady_states_before_it_are_not_news_of_it() {
        let step = batch_step(true);
        let mut h = ServiceHints::default();
        h.task("old", seen("STOPPED", "STOPPED", 0, Health::Unknown, 103));
        h.task(
            "earlier",
            seen("RUNNING", "RUNNING", 50, Health::Healthy, 60),
        );
        assert_eq!(h.settled(&step), None, "a task of an earlier step");
        assert_eq!(h.launched(&step), None);
        h.steady(at(99), None, at(104));
        assert_eq!(h.settled(&step), None, "reported before the step began");
        h.steady(at(100), None, at(107));
        assert_eq!(h.settled(&step), Some(at(107)));
        h.task("new", seen("RUNNING", "RUNNING", 101, Health::Healthy, 105));
        assert_eq!(h.settled(&step), Some(at(105)), "the earlier of the two");
    }

    #[test]
    fn a_stopped_task_never_heard_of_keeps_the_step_open() {
        let step = batch_step(true);
        let mut h = ServiceHints::default();
        h.task("new", seen("RUNNING", "RUNNING", 102, Health::Healthy, 108));
        assert_eq!(h.settled(&step), None);
    }

    #[test]
    fn the_step_is_read_from_the_status() {
        let mut s = RecycleStatus {
            phase: Phase::Surging,
            step_started_at: Some(at(0)),
            surge: Some(DesiredChange { from: 3, to: 5 }),
            ..Default::default()
        };
        let a = awaited(&s, true).unwrap();
        assert_eq!((a.launched, a.stopped.len()), (2, 0));
        s.phase = Phase::Recycling;
        s.batch = vec!["a".into(), "b".into(), "c".into()];
        let a = awaited(&s, false).unwrap();
        assert_eq!((a.launched, a.stopped.len()), (3, 3));
        s.wait_until = Some(at(10));
        assert_eq!(awaited(&s, false), None, "a wait is the decision's own");
    }

    #[test]
    fn when_it_happened_is_ecss_time_within_a_second_of_its_arrival() {
        let step = batch_step(true);
        let mut h = ServiceHints::default();
        h.task("old", seen("STOPPED", "STOPPED", 0, Health::Unknown, 103));
        let mut new = seen("RUNNING", "RUNNING", 101, Health::Healthy, 108);
        new.changed_at = Some(at(108) - chrono::TimeDelta::milliseconds(250));
        h.task("new", new.clone());
        assert_eq!(
            h.settled(&step),
            Some(at(108) - chrono::TimeDelta::milliseconds(250))
        );
        // A time far before its arrival (a clock off) is held to a second before it.
        new.changed_at = Some(at(90));
        h.task("new", new.clone());
        assert_eq!(h.settled(&step), Some(at(107)));
        // Nor after it.
        new.changed_at = Some(at(200));
        h.task("new", new);
        assert_eq!(h.settled(&step), Some(at(108)));
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let mut h = ServiceHints::default();
        for i in 0..(MAX_TASKS as i64 + 10) {
            h.task(
                &format!("t{i}"),
                seen("STOPPED", "STOPPED", i, Health::Unknown, i),
            );
            h.steady(at(i), None, at(i));
        }
        assert_eq!(h.tasks.len(), MAX_TASKS);
        assert!(!h.tasks.contains_key("t0"), "the oldest news went first");
        assert_eq!(h.steady.len(), MAX_STEADY);
    }
}
