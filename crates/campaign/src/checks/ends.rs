//! How the records end: every request the campaign made is still in the
//! store and finished within the run's bound (liveness), in a phase its
//! faults allow — `Succeeded` always, `Failed` only when a fault could fail
//! it by the operator's promises (a step that cannot become stable, an
//! aborting gate, a failing hook, its service deleted), `Cancelled` only
//! when it was cancelled; every reading of every record parsed; and at most
//! one request worked on a service at a time (two readings in a row showing
//! two requests of one service past Pending and not finished).

use std::collections::BTreeSet;

use super::{Evidence, Invariant, Violation, violation};

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
        let may_fail = e.schedule.faults.iter().any(|f| f.fault.may_fail(plan));
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
    out
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
