//! How the records end: every request the campaign made is still in the
//! store and finished within the run's bound (liveness), in a phase its
//! faults allow — `Succeeded` always, `Failed` only when a fault could fail
//! it by the operator's promises (a step that cannot become stable — as
//! when protected tasks hold a foreign deployment —, an aborting gate, a
//! failing hook, its service deleted), `Cancelled` only
//! when it was cancelled; a run that succeeded left running only planned
//! tasks protected from scale-in; every reading of every record parsed; and at most
//! one request worked on a service at a time (two readings in a row showing
//! two requests of one service past Pending and not finished).

use std::collections::BTreeSet;

use super::capacity::short;
use super::{CLOSE, Evidence, Invariant, Violation, violation};
use crate::nemesis::{Fault, FaultKind};
use crate::plan::{RequestPlan, Schedule};
use crate::shape::ECS_TIME_SCALE;

const FINAL: [&str; 4] = ["Succeeded", "Failed", "Cancelled", "WindowClosed"];
const WORKING: [&str; 3] = ["Surging", "Recycling", "Restoring"];

pub(super) fn check(e: &Evidence) -> Vec<Violation> {
    let mut out = Vec::new();
    for plan in &e.schedule.requests {
        let Some(run) = e.runs.get(&plan.name) else {
            out.push(violation(
                Invariant::Records,
                format!("request {} is no longer in the store", plan.name),
            ));
            continue;
        };
        if !FINAL.contains(&run.phase.as_str()) {
            out.push(violation(
                Invariant::Liveness,
                format!(
                    "{} still {} at the end of the run: {}",
                    run.name, run.phase, run.message
                ),
            ));
            continue;
        }
        let may_fail = e.schedule.faults.iter().any(|f| f.fault.may_fail(plan))
            || deployment_held(e.schedule, plan)
            || group_full(e.schedule, plan);
        let allowed = match run.phase.as_str() {
            "Succeeded" => true,
            "Failed" => may_fail,
            "Cancelled" => plan.cancel_at.is_some(),
            _ => false,
        };
        if !allowed {
            out.push(violation(
                Invariant::Liveness,
                format!(
                    "{} ended {} though no fault of the schedule calls for it: {}",
                    run.name, run.phase, run.message
                ),
            ));
        }
    }
    for (name, why) in &e.observed.unreadable {
        out.push(violation(
            Invariant::Records,
            format!("{name} did not parse: {why}"),
        ));
    }
    out.extend(one_per_service(e));
    out.extend(left_running(e));
    out
}

/// A run that succeeded stopped every planned task still running, but
/// those it left for their protection from scale-in (`protectedTasks:
/// skip`, or `wait` past `protectionWait`): each planned task still
/// running and meant to run when it finished, never stopped by a replica,
/// was protected at some moment of the run.
fn left_running(e: &Evidence) -> Vec<Violation> {
    let w = &e.world;
    let mut out = Vec::new();
    for run in e.runs.values().filter(|r| r.phase == "Succeeded") {
        let (Some(planned), Some(finished)) = (run.planned_at, run.finished_at) else {
            continue;
        };
        for arn in &run.tasks {
            let Some(task) = w.task(arn) else {
                continue;
            };
            if !w.running_at(task, finished) || w.stopped_by_operator(task, finished + CLOSE) {
                continue;
            }
            if !w.protected_during(task, planned, finished, ECS_TIME_SCALE) {
                out.push(violation(
                    Invariant::LeftRunning,
                    format!(
                        "{} ended Succeeded at t={finished:.3} with its planned task {} of {} still running, never protected during the run: {}",
                        run.name,
                        short(arn),
                        run.service,
                        run.message
                    ),
                ));
            }
        }
    }
    out
}

/// A deployment someone else started on the request's service, and tasks
/// of it protected: ECS's deployment leaves protected tasks of the old
/// revision running, so the service may not be steady within the step's
/// `stabilityTimeout` (the simulator's service event says "unable to
/// reach steady state ... protected tasks"), which fails the run by the
/// operator's promises.
fn deployment_held(s: &Schedule, r: &RequestPlan) -> bool {
    let on_service = |kind: FaultKind| {
        s.faults.iter().any(|f| match f.fault {
            Fault::ForeignDeployment { service } | Fault::Protect { service, .. } => {
                f.fault.kind() == kind && service == r.service
            }
            _ => false,
        })
    };
    on_service(FaultKind::ForeignDeployment) && on_service(FaultKind::Protect)
}

/// The autoscaler scaled out a service on EC2, whose group may grow to
/// three instances of room for its first count each: the surge over the
/// new count may find no room, and ECS gives up on a task that waits past
/// its provisioning timeout (30 minutes of ECS's, 30 s here), which fails
/// the run by the operator's promises.
fn group_full(s: &Schedule, r: &RequestPlan) -> bool {
    let service = &s.services[r.service];
    service.ec2
        && s.faults.iter().any(|f| {
            matches!(f.fault, Fault::Scale { service, to } if service == r.service && to > s.services[service].tasks)
        })
}

fn one_per_service(e: &Evidence) -> Vec<Violation> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pair in e.observed.readings.windows(2) {
        for s in &e.schedule.services {
            let working = |i: usize| -> BTreeSet<&String> {
                pair[i]
                    .records
                    .iter()
                    .filter(|(_, r)| r.service == s.name && WORKING.contains(&r.phase.as_str()))
                    .map(|(n, _)| n)
                    .collect()
            };
            let both: Vec<&String> = working(0).intersection(&working(1)).copied().collect();
            if both.len() > 1 && seen.insert(both.clone()) {
                out.push(violation(
                    Invariant::OnePerService,
                    format!(
                        "{} worked on {} at once (t={:.3})",
                        both.iter()
                            .map(|n| n.as_str())
                            .collect::<Vec<_>>()
                            .join(" and "),
                        s.name,
                        pair[0].received
                    ),
                ));
            }
        }
    }
    out
}
