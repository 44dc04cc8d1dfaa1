//! When a service counts as stable, and what its tasks alone show of a
//! step not yet done. The observation reports the facts; these judge them,
//! for the phases and for a look that may end early.

use super::spot;
use crate::request::observation::{Observation, ServiceView, TaskView};

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

/// [`stable`], not counting the tasks ECS is still stopping for Fargate
/// Spot: they run on for two minutes after the warning, beside the
/// replacements ECS launched for them at once, so the service's running
/// count exceeds its desired count for a while through no step of the run.
pub(crate) fn settled(svc: &ServiceView, obs: &Observation) -> bool {
    let draining = spot::draining(obs);
    if draining == 0 {
        return stable(svc, &obs.tasks);
    }
    let counted = ServiceView {
        running: svc.running.saturating_sub(draining),
        ..svc.clone()
    };
    stable(&counted, &obs.tasks)
}

/// What the tasks alone show of a step waiting for new tasks: it is not
/// done while a task meant to run is not serving (so not [`stable`]) or a
/// task of its batch still runs (so not done in `batch_in_flight`),
/// whatever the service's counts say. A batch task still meant to run is a
/// stop decided but not made, which the decision makes again: that never
/// reads as "not done" on the tasks alone; nor does a task waiting for a
/// capacity provider to launch an instance: that wait is named and
/// budgeted by the decision, which needs a whole look.
pub(crate) fn tasks_show_unfinished(batch: &[String], tasks: &[TaskView]) -> bool {
    let in_batch = |t: &TaskView| batch.contains(&t.arn);
    if tasks
        .iter()
        .any(|t| (in_batch(t) && t.desired_running) || t.waits_for_capacity())
    {
        return false;
    }
    tasks.iter().any(|t| {
        (t.desired_running && !t.is_serving()) || (in_batch(t) && t.last_status == "RUNNING")
    })
}
