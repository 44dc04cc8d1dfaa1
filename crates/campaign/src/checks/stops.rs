//! Exactly once, for stops: each task is stopped by the operator at most
//! once (one StopTask that reached ECS, whoever of the replicas sent it),
//! and only a task in the plan of the request working on its service then —
//! never a replacement started during the run, never a task outside a run,
//! never a task protected from scale-in (the timeline marks such a stop)
//! that was protected already when the stopping replica last read its
//! protection. A protection set between that read and the stop is a race
//! ECS leaves open (StopTask does not look at protection): counted apart,
//! as the fence counts what it cannot judge.
//! A second stop by a replica just resumed from SIGSTOP is said to be so
//! (see the fence check for why it is not excused).

use std::collections::HashMap;

use super::capacity::short;
use super::fence::late_after_resume;
use super::{Evidence, Invariant, Run, Violation, violation};
use crate::shape::ECS_TIME_SCALE;
use crate::timeline::Task;

/// The violations, and how many stops raced a protection set after the
/// stopping replica's last read of it.
pub(super) fn check(e: &Evidence) -> (Vec<Violation>, usize) {
    let w = &e.world;
    let mut out = Vec::new();
    let mut raced = 0;
    let mut first: HashMap<&str, f64> = HashMap::new();
    for call in &w.timeline.calls {
        let Some(replica) = call.by_replica() else {
            continue;
        };
        if call.op != "StopTask" || !call.succeeded() {
            continue;
        }
        let Some(task) = call.param("task").and_then(|t| w.task(t)) else {
            continue;
        };
        let arn = task.task_arn.as_str();
        let service = task.service.as_deref().unwrap_or("?");
        // The simulator marks the stop of a task then protected.
        let protected = task
            .transitions
            .iter()
            .any(|x| x.protected && (x.t - call.t).abs() < 1e-6);
        if protected {
            match last_read(e, replica, task, call.t) {
                Some(read) if !w.protected_during(task, read, read, ECS_TIME_SCALE) => raced += 1,
                read => out.push(violation(
                    Invariant::ProtectedStopped,
                    format!(
                        "{} of {service} stopped by {replica} at t={:.3} while protected from scale-in ({})",
                        short(arn),
                        call.t,
                        match read {
                            Some(t) => format!("already protected when {replica} read it at t={t:.3}"),
                            None => format!("{replica} never read its protection before"),
                        }
                    ),
                )),
            }
        }
        if let Some(before) = first.get(arn) {
            out.push(violation(
                Invariant::StoppedOnce,
                format!(
                    "{} of {service} stopped again by {replica} at t={:.3} (first at t={before:.3}){}",
                    short(arn),
                    call.t,
                    if late_after_resume(e, replica, call.t) {
                        ", its first call since a SIGCONT"
                    } else {
                        ""
                    }
                ),
            ));
            continue;
        }
        first.insert(arn, call.t);
        let Some(run) = e.run_at(service, call.t) else {
            out.push(violation(
                Invariant::ReplacementStopped,
                format!(
                    "{} of {service} stopped by {replica} at t={:.3}, when no request of {service} was under way",
                    short(arn),
                    call.t
                ),
            ));
            continue;
        };
        let planned = |r: &Run| r.tasks.iter().any(|t| t == arn);
        if !e.runs_at(service, call.t, super::CLOSE).any(planned) {
            let started = w.started(task);
            let what = if run.planned_at.is_some_and(|p| started > p) {
                format!("a replacement started at t={started:.3}")
            } else {
                "not in its plan".to_string()
            };
            out.push(violation(
                Invariant::ReplacementStopped,
                format!(
                    "{} of {service} stopped by {replica} at t={:.3} during {}: {what}",
                    short(arn),
                    call.t,
                    run.name
                ),
            ));
        }
    }
    (out, raced)
}

/// When `replica` last read `task`'s protection (a GetTaskProtection that
/// named it and was answered) before `t`.
fn last_read(e: &Evidence, replica: &str, task: &Task, t: f64) -> Option<f64> {
    let w = &e.world;
    w.timeline
        .calls
        .iter()
        .filter(|c| c.t < t && c.op == "GetTaskProtection" && c.succeeded())
        .filter(|c| c.by_replica() == Some(replica))
        .filter(|c| {
            let names = c.params["tasks"].as_array().into_iter().flatten();
            names
                .filter_map(serde_json::Value::as_str)
                .any(|n| w.task(n).is_some_and(|x| x.task_arn == task.task_arn))
        })
        .map(|c| c.t)
        .next_back()
}
