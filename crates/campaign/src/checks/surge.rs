//! The surge: each desired count a replica sets on a service is either the
//! surge of the run under way (`from` → `to`, sent while the count is
//! `from`) or its undo (`to` → `from`, sent while the count is still `to`),
//! each done once; a run without a surge sets none; and once the run ends
//! with nobody else having changed the count, it is back at `from`. A count
//! the autoscaler or a person set is theirs: taking the surge off it is a
//! violation. Only the run's own `from` or `to`, sent when someone else
//! had just set the count (in the moments before the call), is excused: a
//! race ECS's unconditional UpdateService leaves to chance. At the end,
//! every autoscaling target is back to its own min, max and no suspension.

use super::capacity::race;
use super::{Evidence, Invariant, Run, Violation, violation};

pub(super) fn check(e: &Evidence) -> Vec<Violation> {
    let mut out = Vec::new();
    let others = e.world.others_desired();
    for call in &e.world.timeline.calls {
        let Some(replica) = call.by_replica() else {
            continue;
        };
        if call.op != "UpdateService" || !call.succeeded() {
            continue;
        }
        let Some(count) = call.params.get("desiredCount").and_then(|c| c.as_u64()) else {
            continue;
        };
        let Some(service) = e.world.service_of(call) else {
            continue;
        };
        let raced = others
            .iter()
            .any(|(t, s, _)| *s == service && *t <= call.t && *t > call.t - race(e));
        let before = e.world.desired_before(&service, call.t);
        let run = e.run_at(&service, call.t);
        // A value the run may set, sent while the count was the one it
        // expects — or raced by someone else's count just before: ECS's
        // UpdateService is unconditional, so such a race is left to chance.
        // Any other value is never the run's to set.
        let expects = |wanted: u32| before == Some(wanted) || raced;
        let fine = before.map(u64::from) == Some(count)
            || run.and_then(|r| r.surge).is_some_and(|(from, to)| {
                (count == u64::from(to) && expects(from))
                    || (count == u64::from(from) && expects(to))
            });
        if !fine {
            let during = run.map_or("no run under way".to_string(), |r| {
                format!("{} with surge {:?}", r.name, r.surge)
            });
            out.push(violation(
                Invariant::Surge,
                format!(
                    "{replica} set {service}'s desired count {before:?} -> {count} at t={:.3} ({during})",
                    call.t
                ),
            ));
        }
    }
    for run in e.runs.values() {
        out.extend(once_each(e, run, &others));
    }
    out.extend(targets_restored(e));
    out
}

/// When the look a plan of `service` stamped `planned_at` was made on
/// began: the last DescribeServices of it a replica made by then.
fn plan_look(e: &Evidence, service: &str, planned_at: f64) -> Option<f64> {
    let w = &e.world;
    w.timeline
        .calls
        .iter()
        .filter(|c| c.op == "DescribeServices" && c.by_replica().is_some())
        .filter(|c| c.t <= planned_at + super::CLOSE)
        .filter(|c| {
            let names = c.params["services"].as_array().into_iter().flatten();
            names
                .filter_map(serde_json::Value::as_str)
                .any(|n| n.rsplit('/').next() == Some(service))
        })
        .map(|c| c.t)
        .next_back()
}

/// The surge applied at most once and undone at most once; the count back
/// at `from` at the end when nobody else changed it.
fn once_each(e: &Evidence, run: &Run, others: &[(f64, String, u32)]) -> Vec<Violation> {
    let (Some((from, to)), Some(planned_at)) = (run.surge, run.planned_at) else {
        return Vec::new();
    };
    let end = run.finished_at.unwrap_or(f64::INFINITY);
    let mut applied = 0;
    let mut undone = 0;
    for call in &e.world.timeline.calls {
        if call.by_replica().is_none() || call.op != "UpdateService" || !call.succeeded() {
            continue;
        }
        if call.t < planned_at || call.t > end {
            continue;
        }
        if e.world.service_of(call).as_deref() != Some(run.service.as_str()) {
            continue;
        }
        let count = call.params.get("desiredCount").and_then(|c| c.as_u64());
        let before = e.world.desired_before(&run.service, call.t);
        if count == Some(u64::from(to)) && before == Some(from) {
            applied += 1;
        }
        if count == Some(u64::from(from)) && before == Some(to) {
            undone += 1;
        }
    }
    let mut out = Vec::new();
    if applied > 1 || undone > 1 {
        out.push(violation(
            Invariant::Surge,
            format!(
                "{}: surge {from} -> {to} applied {applied} times, undone {undone} times",
                run.name
            ),
        ));
    }
    // The plan's look may predate its stamp by up to a lease and a half,
    // or more when its reads were slow (a replica's share of the API,
    // split between replicas, with empty buckets at the start): from its
    // DescribeServices, then.
    let look = plan_look(e, &run.service, planned_at).unwrap_or(planned_at);
    let opened = look.min(planned_at - race(e));
    let changed = others
        .iter()
        .any(|(t, s, _)| *s == run.service && *t >= opened && *t <= end);
    let deleted = e.deleted_at(&run.service).is_some();
    if let Some(finished) = run.finished_at
        && !changed
        && !deleted
    {
        let left = e.world.desired_at(&run.service, finished);
        if left != Some(from) {
            out.push(violation(
                Invariant::Surge,
                format!(
                    "{} ended {} with {}'s desired count at {left:?}, not {from} (nobody else changed it)",
                    run.name, run.phase, run.service
                ),
            ));
        }
    }
    out
}

/// Every autoscaling target as the campaign made it: nothing suspended,
/// its own min and max (once every run is over).
fn targets_restored(e: &Evidence) -> Vec<Violation> {
    if e.runs.values().any(|r| r.finished_at.is_none()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for s in &e.schedule.services {
        let (Some(made), Some(&(min, max, suspended))) =
            (s.autoscaling, e.scaling_end.get(&s.name))
        else {
            continue;
        };
        if e.deleted_at(&s.name).is_some() {
            continue;
        }
        if (min, max) != made || suspended {
            out.push(violation(
                Invariant::Surge,
                format!(
                    "{}'s autoscaling target left at min {min}, max {max}{} (was {}..{}, nothing suspended)",
                    s.name,
                    if suspended { ", suspended" } else { "" },
                    made.0,
                    made.1
                ),
            ));
        }
    }
    out
}
