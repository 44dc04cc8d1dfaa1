//! Not ours: tasks Fargate Spot takes away. A planned task taken by Spot is
//! skipped like any task already gone, and said so; every task of the
//! service seen taken by Spot during the run is counted for its summary;
//! and a task ECS is still stopping for Spot (it runs for two minutes after
//! the warning, beside its replacement) does not keep the service from
//! counting as stable.

use super::causes::count;
use super::{Context, Decision};
use crate::request::observation::{Observation, TaskView, is_spot_stop};
use crate::request::status::{MAX_INTERRUPTIONS_KEPT, Reason};

/// A planned task no longer meant to run before its turn: skipped, saying
/// whether Fargate Spot took it.
pub(super) fn skip_gone(ctx: &Context, d: &mut Decision, arn: &str, view: Option<&TaskView>) {
    let message = match view.filter(|t| t.taken_by_spot()) {
        Some(t) => {
            note(d, arn);
            format!(
                "Task {arn} was taken by Fargate Spot ({}); skipped",
                t.stop_code.as_deref().unwrap_or_default()
            )
        }
        None => format!("Task {arn} was already gone; skipped"),
    };
    d.status.protected.retain(|p| p.task != arn);
    d.status.task_event(ctx.now, Reason::Skipped, arn, message);
    d.status.skipped.push(arn.to_string());
}

/// Counts the tasks this look saw taken by Fargate Spot, the run's own
/// stops aside.
pub(super) fn note_interruptions(obs: &Observation, d: &mut Decision) {
    let seen = obs
        .tasks
        .iter()
        .filter(|t| t.taken_by_spot())
        .map(|t| t.arn.as_str())
        .chain(
            obs.evidence
                .stopped
                .iter()
                .filter(|t| is_spot_stop(&t.stop_code))
                .map(|t| t.arn.as_str()),
        );
    for arn in seen {
        note(d, arn);
    }
}

fn note(d: &mut Decision, arn: &str) {
    let s = &mut d.status;
    if s.stopped.iter().any(|t| t == arn)
        || s.interrupted.iter().any(|t| t == arn)
        || s.interrupted.len() >= MAX_INTERRUPTIONS_KEPT
    {
        return;
    }
    s.interrupted.push(arn.to_string());
}

/// Tasks ECS is still stopping for Fargate Spot (told to stop, not yet
/// STOPPED), as described in the look or listed among its stopped tasks.
pub(crate) fn draining(obs: &Observation) -> u32 {
    let described = obs
        .tasks
        .iter()
        .filter(|t| !t.desired_running && t.taken_by_spot() && t.last_status != "STOPPED")
        .map(|t| t.arn.as_str());
    let listed = obs
        .evidence
        .stopped
        .iter()
        .filter(|t| is_spot_stop(&t.stop_code) && t.last_status != "STOPPED")
        .map(|t| t.arn.as_str());
    let mut arns: Vec<&str> = described.chain(listed).collect();
    arns.sort_unstable();
    arns.dedup();
    arns.len() as u32
}

/// What the run's summary says of Spot: "; 2 tasks taken by Fargate Spot
/// during the run (not its own stops)".
pub(super) fn summary(d: &Decision) -> String {
    let n = d.status.interrupted.len();
    if n == 0 {
        return String::new();
    }
    let more = if n >= MAX_INTERRUPTIONS_KEPT {
        " or more"
    } else {
        ""
    };
    format!(
        "; {}{more} taken by Fargate Spot during the run (not its own stops)",
        count(n, "task")
    )
}
