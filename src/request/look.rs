//! What one look at a request's service is to find, decided from the
//! request alone: the batch in flight and the other tasks the decision
//! watches (described whatever their state), the scalable target, the
//! tasks, whether the tasks alone may end the look early, and for a dry
//! run the cluster's capacity and the tasks' protection — with the
//! decision's own judgements of what a look finds, handed to the look so
//! that it reports facts, ends early only where the decision would have
//! judged the step not done, and reads the cluster's room only where the
//! decision would need it. The shell builds every look from this, in one
//! place. Pure.

use chrono::{DateTime, Utc};

use super::decide::{needs_room, needs_scaling, needs_tasks, stable, tasks_show_unfinished};
use super::observation::{Evidence, ServiceView, TaskView};
use super::pacing;
use super::spec::RecycleSpec;
use super::status::RecycleStatus;

/// What the decision needs of the next look at a request's service.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    /// Task ARNs described whatever their state: the batch in flight.
    pub batch: Vec<String>,
    /// Other tasks described whatever their state: the next planned tasks
    /// (so that one Fargate Spot took is told from one gone otherwise)
    /// and those seen waiting for capacity (so that ECS giving up on one
    /// is seen).
    pub watched: Vec<String>,
    /// Whether the scalable target is needed (the decision reads it in
    /// every phase but Recycling).
    pub scaling: bool,
    /// Whether the tasks are needed (in every phase but Restoring).
    pub tasks: bool,
    /// When the step began, if the request waits for new tasks and only
    /// they can move it on: its tasks are looked at first, and the look
    /// ends there while they show the step is not done.
    pub awaiting: Option<DateTime<Utc>>,
    /// When the step waiting for new tasks began: a look that finds a
    /// task ECS could not place since then reads the cluster's room.
    pub step: Option<DateTime<Utc>>,
    /// A dry run's look: also the cluster's room and capacity providers,
    /// and every task's scale-in protection.
    pub preview: bool,
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
    /// The decision would need the cluster's room: a task ECS could not
    /// place since the step began, and nothing that adds instances.
    pub needs_room: fn(&ServiceView, &Evidence, &[TaskView], DateTime<Utc>) -> bool,
}

pub(crate) const JUDGE: Judge = Judge {
    unfinished: tasks_show_unfinished,
    stable,
    needs_room,
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
        watched: watched(spec, status),
        scaling: needs_scaling(status),
        tasks: needs_tasks(status),
        awaiting: pacing::tasks_first(spec, status, now).filter(|_| tasks_first),
        step: pacing::awaits_tasks(status),
        preview: false,
        judge: JUDGE,
    }
}

/// The look a dry run makes: a Pending request's, with the cluster's
/// capacity and every task's protection.
pub(crate) fn preview(spec: &RecycleSpec, now: DateTime<Utc>) -> Wanted {
    Wanted {
        preview: true,
        ..wanted(spec, &RecycleStatus::default(), now, false)
    }
}

/// The tasks the decision watches beyond the batch: the next planned
/// tasks (usually among those listed anyway, so no call more) and those
/// seen waiting for capacity.
fn watched(spec: &RecycleSpec, status: &RecycleStatus) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if status.phase == super::status::Phase::Recycling {
        let planned = status
            .plan
            .as_ref()
            .map(|p| p.tasks.as_slice())
            .unwrap_or(&[]);
        let next = spec.batch(status.batches + 1, planned.len());
        out.extend(
            planned
                .iter()
                .filter(|t| !status.stopped.contains(t) && !status.skipped.contains(t))
                .take(next)
                .cloned(),
        );
    }
    if let Some(wait) = &status.capacity_wait {
        out.extend(
            wait.tasks
                .iter()
                .filter(|t| !out.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    out
}
