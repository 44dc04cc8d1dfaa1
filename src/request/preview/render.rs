//! The preview in words, for `apply --dry-run`: the tasks, each change with
//! the capacity around it, the reads while it waits, the floor, the
//! estimate, and what the load balancers' drains do to the run.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Drains, Preview, short};
use crate::duration;
use crate::request::spec::RecycleSpec;
use crate::request::strategy::{Pause, Strategy};

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
    let largest = spec.largest_batch(p.tasks.len()) as u32;
    out.push_str(&format!(
        "  Plan for {target}: recycle {} of {} running task(s) {}, {}\n",
        p.tasks.len(),
        p.original_desired,
        spec.strategy.as_phrase(spec.batch_size),
        if spec.maintain_capacity {
            format!("with {largest} spare")
        } else {
            "without spare capacity".into()
        }
    ));
    out.push_str(&render_batches(spec, p.tasks.len()));
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
        p.original_desired.saturating_sub(largest)
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
    let batch = spec.largest_batch(p.tasks.len()) as u64;
    (((desired + batch) * 100).div_ceil(desired)) as u32
}

/// The batches the strategy makes of the planned tasks, and what follows
/// each: "Batches: 1 (canary, baked 5m), then 2, 2, 2 (wait 30s after each)".
fn render_batches(spec: &RecycleSpec, planned: usize) -> String {
    let sizes = spec.strategy.sizes(planned, spec.batch_size);
    if sizes.is_empty() {
        return String::new();
    }
    let after = |number: u32, each: bool| {
        let which = if each { "each" } else { "it" };
        match spec.strategy.pause(number, spec.wait) {
            Pause::Wait(w) if w.is_zero() => format!("no wait after {which}"),
            Pause::Wait(w) => format!("wait {} after {which}", duration::format(w)),
            Pause::Bake(b) => format!("baked {}, the gate alarms watched", duration::format(b)),
            Pause::Every(e) => format!("each step starting {} after the last", duration::format(e)),
        }
    };
    let list = |sizes: &[usize]| {
        sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = match spec.strategy {
        Strategy::Canary { .. } if sizes.len() > 1 => format!(
            "{} (canary, {}), then {} ({})",
            sizes[0],
            after(1, false),
            list(&sizes[1..]),
            after(2, sizes.len() > 2)
        ),
        Strategy::Canary { .. } => format!("{} (canary, {})", sizes[0], after(1, false)),
        _ => format!("{} ({})", list(&sizes), after(1, sizes.len() > 1)),
    };
    format!("  Batches ({}): {text}\n", sizes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::spec::parse_spec;
    use serde_json::json;

    fn batches(extra: serde_json::Value, planned: usize) -> String {
        let mut v = json!({"cluster": "prod", "service": "web"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        render_batches(&parse_spec(&v, "spec").unwrap(), planned)
    }

    #[test]
    fn the_batches_of_each_shape_are_listed_with_what_follows_them() {
        assert_eq!(
            batches(
                json!({"batchSize": 3, "strategy": {"canary": {"first": 1, "bake": "5m"}}}),
                10
            ),
            "  Batches (4): 1 (canary, baked 5m, the gate alarms watched), then 3, 3, 3 (wait 30s after each)\n"
        );
        assert_eq!(
            batches(
                json!({"strategy": {"linear": {"step": "20%", "every": "1m"}}}),
                10
            ),
            "  Batches (5): 2, 2, 2, 2, 2 (each step starting 1m after the last)\n"
        );
        assert_eq!(
            batches(json!({"strategy": "allAtOnce"}), 10),
            "  Batches (1): 10 (wait 30s after it)\n"
        );
        assert_eq!(
            batches(json!({"batchSize": 4, "wait": "0s"}), 10),
            "  Batches (3): 4, 4, 2 (no wait after each)\n"
        );
    }
}
