//! Capacity, judged on the operator's own stops: right after each StopTask
//! a replica made, the service's tasks still serving (RUNNING, not told to
//! stop, healthy by its container check and in its target group where it
//! has them) are at least the promised floor — the original desired count
//! with `maintainCapacity`, that less the largest batch its strategy makes
//! (`batchSize`, a canary's first, a linear step, every planned task at
//! once) without — unless tasks
//! were lost to someone else (ECS's health checks, failed starts, a
//! deployment, the autoscaler) in the moments before, which the operator's
//! last look could not have seen. A desired count lowered by someone else
//! during the run lowers the floor with it.

use super::{Evidence, Invariant, Violation, violation};

/// How old the look a stop was decided on can be: the lease (every act
/// happens within nine tenths of a lease of the write that took it, and
/// the look comes after that write) and a margin.
pub(super) fn race(e: &Evidence) -> f64 {
    e.lease + 0.5
}

pub(super) fn check(e: &Evidence) -> Vec<Violation> {
    let w = &e.world;
    let mut out = Vec::new();
    for call in &w.timeline.calls {
        if call.op != "StopTask" || !call.succeeded() || call.by_replica().is_none() {
            continue;
        }
        let Some(task) = call.param("task").and_then(|t| w.task(t)) else {
            continue;
        };
        let Some(service) = task.service.as_deref() else {
            continue;
        };
        if e.deleted_at(service).is_some_and(|d| d <= call.t) {
            continue;
        }
        // A stop outside any run is the stops check's to report.
        let Some(run) = e.run_at(service, call.t) else {
            continue;
        };
        let (Some(original), Some(planned_at)) = (run.original_desired, run.planned_at) else {
            continue;
        };
        let Some(plan) = e.schedule.services.iter().find(|s| s.name == service) else {
            continue;
        };
        let (hc, lb) = (plan.health_check, plan.load_balancer);
        let lowered = w
            .others_desired()
            .into_iter()
            .filter(|(t, s, _)| s == service && *t >= planned_at && *t <= call.t)
            .map(|(_, _, n)| n)
            .min();
        let desired = lowered.map_or(original, |n| n.min(original));
        let floor = if run.maintain_capacity {
            desired
        } else {
            desired.saturating_sub(run.largest_batch)
        };
        let since = call.t - race(e);
        let serving = w
            .tasks_of(service)
            .filter(|x| w.serving(x, call.t, hc, lb))
            .count() as u32;
        let lost = w
            .tasks_of(service)
            .filter(|x| w.served_during(x, since, call.t, hc, lb) && !w.serving(x, call.t, hc, lb))
            .filter(|x| !w.stopped_by_operator(x, call.t))
            .count() as u32;
        if serving + lost < floor {
            out.push(violation(
                Invariant::Capacity,
                format!(
                    "{} stopped {} of {service} at t={:.3} ({}): {serving} tasks left serving, {lost} lost to others in the {:.1}s before, floor {floor}",
                    call.caller.as_deref().unwrap_or("?"),
                    short(&task.task_arn),
                    call.t,
                    run.name,
                    race(e),
                ),
            ));
        }
    }
    out
}

/// A task's id, the end of its ARN.
pub(super) fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
