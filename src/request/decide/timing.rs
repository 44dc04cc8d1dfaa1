//! How long a step may take and how long it has taken: the stability
//! timeout (with the drain a batch must wait for when `maximumPercent`
//! leaves no room), when a step counts as slow, and whether the window
//! (`notAfter`) has closed. Time is always the context's, never a clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Context;
use crate::request::observation::{Observation, ServiceView};
use crate::request::spec::RecycleSpec;

/// How long a batch may take: the stability timeout, plus the drain when
/// `maximumPercent` leaves no room to launch the batch's replacements
/// beside the tasks it stopped (ECS launches them only once those have
/// drained: deregistration delay, then stopTimeout).
pub(super) fn batch_allowance(
    ctx: &Context,
    svc: &ServiceView,
    obs: &Observation,
    batch: usize,
) -> Duration {
    match obs.drain {
        Some(drain) if drain_blocks_replacements(svc, batch) => ctx.spec.stability_timeout + drain,
        _ => ctx.spec.stability_timeout,
    }
}

/// Whether ECS must wait for `batch` stopped tasks to drain before it may
/// launch their replacements: tasks still draining count against
/// `maximumPercent`.
pub(crate) fn drain_blocks_replacements(svc: &ServiceView, batch: usize) -> bool {
    if svc.load_balancers.is_empty() {
        return false;
    }
    let percent = if svc.maximum_percent == 0 {
        200
    } else {
        svc.maximum_percent
    };
    let ceiling = (svc.desired as u64 * percent as u64 / 100) as usize;
    ceiling < svc.desired as usize + batch
}

/// A step is slow once half its stability timeout has passed without it
/// being done: from then on its status says what it waits for and why.
pub(crate) fn is_slow(spec: &RecycleSpec, step: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - step)
        .to_std()
        .is_ok_and(|e| e >= spec.stability_timeout / 2)
}

pub(super) fn past_not_after(ctx: &Context) -> bool {
    ctx.spec.not_after.is_some_and(|t| ctx.now > t)
}

pub(super) fn elapsed(ctx: &Context, since: Option<DateTime<Utc>>) -> Duration {
    since
        .and_then(|s| (ctx.now - s).to_std().ok())
        .unwrap_or_default()
}
