//! Pending: the plan is made and put on record before anything is touched
//! — the tasks to recycle, oldest first, and the service's desired count
//! and scaling settings as found — then the run moves on to Surging (with
//! spare capacity) or Recycling (without). A dry run ends here.

use std::time::Duration;

use super::messages::target;
use super::{Context, Decision};
use crate::request::observation::{Observation, TaskView};
use crate::request::status::{Phase, Plan, Reason};

pub(super) fn pending(ctx: &Context, obs: &Observation, d: &mut Decision) {
    let s = &mut d.status;
    let svc = match &obs.service {
        Ok(svc) => svc,
        Err(reason) => {
            return s.transition(
                ctx.now,
                Phase::Failed,
                format!("cannot recycle {}: {reason}", target(ctx)),
            );
        }
    };
    if let Some(dep) = svc.deployment_in_progress() {
        s.message = format!(
            "waiting for deployment {} of {} to finish before starting",
            dep.id,
            target(ctx)
        );
        return;
    }
    // More tasks meant to run than the desired count: ECS is scaling in,
    // or the count was read before a change the tasks already show (the
    // autoscaler's scale-out). A plan made now would record an original
    // count that is not the service's, and the restore would undo the
    // autoscaler. Found by the fault campaign (seed 2087).
    let meant = obs.tasks.iter().filter(|t| t.desired_running).count();
    if meant > svc.desired as usize {
        s.message = format!(
            "waiting for {} to settle before planning: {meant} tasks meant to run, desired count {}",
            target(ctx),
            svc.desired
        );
        return;
    }
    let tasks = candidates(ctx, obs);
    s.started_at = Some(ctx.now);
    s.event(
        ctx.now,
        Reason::Started,
        format!("Starting task recycle for {}", target(ctx)),
    );
    s.event(
        ctx.now,
        Reason::Planned,
        format!(
            "Original desired count: {}, tasks: {}",
            svc.desired,
            tasks.len()
        ),
    );
    s.plan = Some(Plan {
        original_desired: svc.desired,
        original_scaling: obs.scaling,
        tasks: tasks.clone(),
        planned_at: ctx.now,
    });
    d.requeue = Some(Duration::ZERO);
    if ctx.spec.dry_run {
        return s.transition(
            ctx.now,
            Phase::Succeeded,
            format!(
                "dry run: would recycle {} task(s) of {} {}; nothing was changed",
                tasks.len(),
                target(ctx),
                ctx.spec.strategy.as_phrase(ctx.spec.batch_size)
            ),
        );
    }
    if tasks.is_empty() {
        return s.transition(
            ctx.now,
            Phase::Succeeded,
            format!(
                "nothing to recycle: no running task of {} matches",
                target(ctx)
            ),
        );
    }
    let (next, message) = if ctx.spec.maintain_capacity {
        (Phase::Surging, "plan made; adding spare capacity")
    } else {
        (
            Phase::Recycling,
            "plan made; recycling without spare capacity",
        )
    };
    s.transition(ctx.now, next, message);
}

/// The running tasks the selector picks, oldest first (a task not yet
/// started last), by ARN among equals.
fn candidates(ctx: &Context, obs: &Observation) -> Vec<String> {
    let mut candidates: Vec<&TaskView> = obs
        .tasks
        .iter()
        .filter(|t| t.desired_running)
        .filter(|t| {
            ctx.spec
                .selector
                .as_ref()
                .is_none_or(|sel| sel.matches(t.started_at, ctx.now))
        })
        .collect();
    candidates.sort_by_key(|t| (t.started_at.is_none(), t.started_at, t.arn.clone()));
    candidates.iter().map(|t| t.arn.clone()).collect()
}
