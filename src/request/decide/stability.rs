//! When a service counts as stable, and what its tasks alone show of a
//! step not yet done. The observation reports the facts; these judge them,
//! for the phases and for a look that may end early.

use crate::request::observation::{ServiceView, TaskView};

/// Stable as docs/design.md means it: no deployment rolling, nothing pending,
/// running = desired, and every task meant to run is RUNNING and healthy.
/// A task told to stop still counts as running for a while, so the counters
/// alone are not enough.
pub(crate) fn stable(svc: &ServiceView, tasks: &[TaskView]) -> bool {
    let serving = tasks.iter().filter(|t| t.is_serving()).count() as u32;
    let meant = tasks.iter().filter(|t| t.desired_running).count() as u32;
    svc.deployment_in_progress().is_none()
        && svc.pending == 0
        && svc.running == svc.desired
        && serving == svc.desired
        && meant == svc.desired
}

/// What the tasks alone show of a step waiting for new tasks: it is not
/// done while a task meant to run is not serving (so not [`stable`]) or a
/// task of its batch still runs (so not done in `batch_in_flight`),
/// whatever the service's counts say. A batch task still meant to run is a
/// stop decided but not made, which the decision makes again: that never
/// reads as "not done" on the tasks alone.
pub(crate) fn tasks_show_unfinished(batch: &[String], tasks: &[TaskView]) -> bool {
    let in_batch = |t: &TaskView| batch.contains(&t.arn);
    if tasks.iter().any(|t| in_batch(t) && t.desired_running) {
        return false;
    }
    tasks.iter().any(|t| {
        (t.desired_running && !t.is_serving()) || (in_batch(t) && t.last_status == "RUNNING")
    })
}
