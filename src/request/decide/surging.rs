//! Surging: spare capacity before any task is stopped. The desired count is
//! raised by one batch (dynamic scale-in suspended and the scalable
//! target's max raised to fit, so the autoscaler does not take the spare
//! tasks away), and the run moves on to Recycling once the spare tasks
//! serve and the service is stable — or fails through Restoring past the
//! stability timeout.

use std::time::Duration;

use super::capacity;
use super::causes;
use super::ending::end_via_restore;
use super::hooks;
use super::messages::{
    and_targets, describe_counts, failure_cause, note_slow, slow_clauses, target,
};
use super::stability::settled;
use super::timing::{elapsed, is_slow};
use super::{Action, Context, Decision};
use crate::duration;
use crate::hooks::spec::Point;
use crate::request::observation::{Observation, ServiceView};
use crate::request::status::{DesiredChange, Phase, Reason, ScalingSettings};

pub(super) fn surging(ctx: &Context, obs: &Observation, d: &mut Decision) {
    let svc = match &obs.service {
        Ok(svc) => svc,
        Err(reason) => {
            return end_via_restore(
                ctx,
                d,
                Phase::Failed,
                format!("{} became unavailable: {reason}", target(ctx)),
            );
        }
    };
    let Some(surge) = d.status.surge else {
        if !before_start(ctx, svc.desired, d) {
            return;
        }
        return start_surge(ctx, svc, obs, d);
    };
    if svc.desired == surge.from {
        // Not applied yet (its replica died before sending it, or the call
        // was throttled): the wait for the spare capacity begins with this
        // ask, not with a decision that was never acted on.
        d.status.step_started_at = Some(ctx.now);
        d.actions.push(Action::SetDesired {
            from: surge.from,
            to: surge.to,
        });
        return;
    }
    if settled(svc, obs) && svc.desired >= surge.to {
        capacity::ended(ctx, d);
        d.status.step_started_at = None;
        d.status.capacity_wait = None;
        d.requeue = Some(Duration::ZERO);
        return d.status.transition(
            ctx.now,
            Phase::Recycling,
            "spare capacity is running and healthy",
        );
    }
    await_spare_capacity(ctx, svc, obs, d);
}

/// Raises the desired count by one batch, first suspending dynamic scale-in
/// and raising the scalable target's max to fit; the settings as found are
/// what Restoring brings back.
fn start_surge(ctx: &Context, svc: &ServiceView, obs: &Observation, d: &mut Decision) {
    let from = svc.desired;
    let planned = d.status.plan.as_ref().map_or(0, |p| p.tasks.len());
    let to = from + ctx.spec.largest_batch(planned) as u32;
    if let Some(current) = obs.scaling {
        let wanted = ScalingSettings {
            dynamic_scaling_in_suspended: true,
            max: current.max.max(to),
            ..current
        };
        if let Some(plan) = d.status.plan.as_mut() {
            // The settings as they are now are what Restoring brings back.
            plan.original_scaling = Some(current);
        }
        if wanted != current {
            d.actions.push(Action::SetScaling(wanted));
            d.status.surge_scaling = Some(wanted);
        }
    }
    d.actions.push(Action::SetDesired { from, to });
    d.status.surge = Some(DesiredChange { from, to });
    d.status.step_started_at = Some(ctx.now);
    d.status.capacity_wait = None;
    d.status.event(
        ctx.now,
        Reason::Surge,
        format!("Increasing desired count from {from} to {to} to keep capacity during the recycle"),
    );
    d.status.message = format!(
        "waiting for the spare capacity to be running and healthy ({})",
        describe_counts(svc, &obs.tasks)
    );
}

/// The surge is on record and observed, the spare tasks not yet serving:
/// wait, saying why once slow, and fail through Restoring past the timeout.
fn await_spare_capacity(ctx: &Context, svc: &ServiceView, obs: &Observation, d: &mut Decision) {
    if capacity::decided(ctx, svc, obs, d, "spare task") {
        return;
    }
    let began = d.status.step_started_at.unwrap_or(ctx.now);
    let since = capacity::stability_since(&d.status, began);
    let step = causes::Step {
        since: began,
        now: ctx.now,
        batch: &[],
        ours: &d.status.stopped,
        noun: "spare task",
    };
    if elapsed(ctx, Some(since)) > ctx.spec.stability_timeout {
        let message = format!(
            "the spare capacity did not become stable within {} ({}){}",
            duration::format(ctx.spec.stability_timeout),
            describe_counts(svc, &obs.tasks),
            failure_cause(&step, svc, obs)
        );
        return end_via_restore(ctx, d, Phase::Failed, message);
    }
    if is_slow(ctx.spec, since, ctx.now) {
        d.status.message = format!("adding spare capacity; {}", slow_clauses(&step, svc, obs));
        return note_slow(&mut d.status, ctx.now, since);
    }
    d.status.message = and_targets(
        format!(
            "waiting for the spare capacity to be running and healthy ({})",
            describe_counts(svc, &obs.tasks)
        ),
        &obs.tasks,
    );
}

/// Asks the beforeStart hooks, once, before the run touches anything: here,
/// before the surge, or in Recycling before the first stop when the run
/// keeps no spare capacity.
pub(super) fn before_start(ctx: &Context, desired: u32, d: &mut Decision) -> bool {
    if !d.status.stopped.is_empty() {
        return true;
    }
    let tasks = d
        .status
        .plan
        .as_ref()
        .map(|p| p.tasks.clone())
        .unwrap_or_default();
    let told = hooks::Told {
        tasks: &tasks,
        replacements: Vec::new(),
        desired,
    };
    hooks::passed(ctx, d, Point::BeforeStart, 0, told)
}
