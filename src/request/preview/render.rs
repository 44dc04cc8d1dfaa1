//! The preview in words, for `apply --dry-run`: the tasks, each change with
//! the capacity around it, the reads while it waits, the floor, the
//! estimate, and what the load balancers' drains do to the run.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Drains, Preview, short};
use crate::duration;
use crate::request::spec::RecycleSpec;

/// `2.6s` under a minute, `1m35s` above: as precise as an estimate deserves.
pub(super) fn approx(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64()).replace(".0s", "s")
    } else {
        duration::format(Duration::from_secs(d.as_secs_f64().round() as u64))
    }
}

/// The preview in words, for `apply --dry-run`.
pub(crate) fn render(p: &Preview, spec: &RecycleSpec, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let target = format!("{}/{}", spec.cluster, spec.service);
    out.push_str(&format!(
        "  Plan for {target}: recycle {} of {} running task(s) in batches of {}, {}\n",
        p.tasks.len(),
        p.original_desired,
        spec.batch_size,
        if spec.maintain_capacity {
            format!("with {} spare", spec.batch_size)
        } else {
            "without spare capacity".into()
        }
    ));
    for (i, (arn, started)) in p.tasks.iter().enumerate() {
        let age = started.map_or(String::new(), |s| {
            format!("  (started {} ago)", duration::age(s, now))
        });
        out.push_str(&format!("    {:>3}. {}{age}\n", i + 1, short(arn)));
    }
    out.push_str("  Changes it would make (time from start, call, desired, lowest running):\n");
    for s in &p.steps {
        out.push_str(&format!(
            "    {:>7}  {:<9}  {}  desired {}, running ≥ {}\n",
            approx(s.at),
            format!("{:?}", s.phase),
            s.call,
            s.desired,
            s.lowest_running
        ));
    }
    out.push_str(&format!(
        "  Reads while it waits (each poll): ecs:DescribeServices, ecs:ListTasks, ecs:DescribeTasks, application-autoscaling:DescribeScalableTargets{}; right before each batch: ecs:GetTaskProtection\n",
        if p.drains.is_some() {
            ", elasticloadbalancing:DescribeTargetHealth (one per target group)"
        } else {
            ""
        }
    ));
    if let Some(surge) = p.surge {
        out.push_str(&format!(
            "  Restoring takes the surge back only while desired is still {} (the count it set); a count the autoscaler or a person sets during the run is left as it is\n",
            surge.to
        ));
    }
    let floor = if spec.maintain_capacity {
        p.original_desired
    } else {
        p.original_desired.saturating_sub(spec.batch_size)
    };
    out.push_str(&format!(
        "  Lowest running: {} (original desired {}, guaranteed floor {floor})\n",
        p.lowest_running, p.original_desired
    ));
    out.push_str(&format!(
        "  Estimated duration: {} (each replacement {}: {})\n",
        approx(p.duration),
        approx(p.estimate.replacement),
        p.estimate.basis
    ));
    if let Some(d) = &p.drains {
        out.push_str(&render_drains(d, p, spec));
    }
    for line in &p.capacity {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&format!("  Would end: {:?}: {}\n", p.outcome, p.message));
    out
}

/// What the drains do to the run, and a warning when they rule it.
fn render_drains(d: &Drains, p: &Preview, spec: &RecycleSpec) -> String {
    let groups = d.groups.join(", ");
    let Some(delay) = d.delay else {
        return format!(
            "  Load balancing: {groups}; the deregistration delay could not be read (elasticloadbalancing:DescribeTargetGroupAttributes), so the estimate leaves the drains out\n"
        );
    };
    let mut out = format!(
        "  Load balancing: each replacement counts only once healthy in {groups}; each stopped task drains for up to {} (deregistration delay) before ECS stops it\n",
        duration::format(delay)
    );
    if d.blocked_batches == 0 {
        out.push_str(&format!(
            "  Drains overlap the next batches (maximumPercent {}% leaves room beside them); the last stopped tasks drain for up to {} after the run ends\n",
            d.maximum_percent,
            duration::format(delay)
        ));
        return out;
    }
    let drained = delay * d.blocked_batches;
    let needed = needed_percent(p, spec);
    out.push_str(&format!(
        "  Warning: maximumPercent {}% leaves no room to launch a replacement beside a draining task, so each of {} batches waits for its stopped tasks to drain first; raise maximumPercent to {needed}% to overlap the drains\n",
        d.maximum_percent, d.blocked_batches
    ));
    if drained * 2 >= p.duration {
        out.push_str(&format!(
            "  Warning: each stop drains for up to {} ({groups} deregistration delay): {} tasks take about {}; lower it, or raise batchSize\n",
            duration::format(delay),
            p.tasks.len(),
            approx(p.duration)
        ));
    }
    out
}

/// The maximumPercent that lets a batch's replacements launch beside its
/// draining tasks, at the desired count of the run.
fn needed_percent(p: &Preview, spec: &RecycleSpec) -> u32 {
    let desired = p.surge.map_or(p.original_desired, |s| s.to).max(1) as u64;
    (((desired + spec.batch_size as u64) * 100).div_ceil(desired)) as u32
}
