//! What one look at a request's service is to find, decided from the
//! request alone: the batch in flight (described whatever its state), the
//! scalable target, the tasks, and whether the tasks alone may end the
//! look early — with the decision's own judgements of what a look finds,
//! handed to the look so that it reports facts and ends early only where
//! the decision would have judged the step not done. The shell builds
//! every look from this, in one place. Pure.

use chrono::{DateTime, Utc};

use super::decide::{needs_scaling, needs_tasks, stable, tasks_show_unfinished};
use super::observation::{ServiceView, TaskView};
use super::pacing;
use super::spec::RecycleSpec;
use super::status::RecycleStatus;

/// What the decision needs of the next look at a request's service.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    /// Task ARNs described whatever their state: the batch in flight.
    pub batch: Vec<String>,
    /// Whether the scalable target is needed (the decision reads it in
    /// every phase but Recycling).
    pub scaling: bool,
    /// Whether the tasks are needed (in every phase but Restoring).
    pub tasks: bool,
    /// When the step began, if the request waits for new tasks and only
    /// they can move it on: its tasks are looked at first, and the look
    /// ends there while they show the step is not done.
    pub awaiting: Option<DateTime<Utc>>,
    pub judge: Judge,
}

/// The decision's judgements a look applies to what it finds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Judge {
    /// The tasks alone show a step waiting for new tasks is not done
    /// (given the batch in flight).
    pub unfinished: fn(&[String], &[TaskView]) -> bool,
    /// The service is stable as the decision means it.
    pub stable: fn(&ServiceView, &[TaskView]) -> bool,
}

pub(crate) const JUDGE: Judge = Judge {
    unfinished: tasks_show_unfinished,
    stable,
};

/// What the next look at the request's service is to find. `tasks_first`:
/// whether this look may end at the tasks (a look made within a step, after
/// the step acted, must be whole).
pub(crate) fn wanted(
    spec: &RecycleSpec,
    status: &RecycleStatus,
    now: DateTime<Utc>,
    tasks_first: bool,
) -> Wanted {
    Wanted {
        batch: status.batch.clone(),
        scaling: needs_scaling(status),
        tasks: needs_tasks(status),
        awaiting: pacing::tasks_first(spec, status, now).filter(|_| tasks_first),
        judge: JUDGE,
    }
}
