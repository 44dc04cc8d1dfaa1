//! How a run ends before its plan is done: through Restoring, which takes
//! the surge back and then records the outcome; at once when nothing was
//! touched yet. A refusal from AWS and unreadable load balancer targets end
//! it here, whatever the phase.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::messages::target;
use super::{Action, Context, Decision};
use crate::request::observation::Observation;
use crate::request::status::{Outcome, Phase, RecycleStatus};

/// The targets of a load-balanced service could not be read: nothing tells
/// whether a replacement takes traffic, so the run does not go on. It ends
/// through Restoring (before anything was touched, as Failed at once).
pub(super) fn targets_unreadable(ctx: &Context, obs: &Observation, d: &mut Decision) -> bool {
    let Some(why) = &obs.targets_refused else {
        return false;
    };
    let message = format!(
        "cannot read the load balancer targets of {}: {why}; without them the operator cannot tell whether a replacement takes traffic",
        target(ctx)
    );
    match d.status.phase {
        Phase::Pending => d.status.transition(ctx.now, Phase::Failed, message),
        Phase::Surging | Phase::Recycling => end_via_restore(ctx, d, Phase::Failed, message),
        _ => return false,
    }
    true
}

/// Ends the run through Restoring, whatever phase it is in.
pub(super) fn end_via_restore(ctx: &Context, d: &mut Decision, phase: Phase, message: String) {
    enter_restore(&mut d.status, ctx.now, phase, message);
    d.requeue = Some(Duration::ZERO);
}

fn enter_restore(s: &mut RecycleStatus, now: DateTime<Utc>, phase: Phase, message: String) {
    s.outcome = Some(Outcome {
        phase,
        message: message.clone(),
    });
    // A batch still in flight never had its replacements serving.
    let unfinished: Vec<String> = s.batch.drain(..).collect();
    s.unreplaced.extend(unfinished);
    s.wait_until = None;
    s.hook = None;
    s.capacity_wait = None;
    s.transition(now, Phase::Restoring, message);
}

/// AWS refused `action` (denied, invalid): the run fails through Restoring.
/// Refused while restoring, it ends at once, saying what was not restored.
/// A refused stop never happened: the task is not counted as stopped.
pub(crate) fn refused(
    status: &RecycleStatus,
    now: DateTime<Utc>,
    action: &Action,
    message: String,
) -> RecycleStatus {
    let mut s = status.clone();
    if let Action::StopTask { arn, .. } = action {
        s.stopped.retain(|t| t != arn);
        s.batch.retain(|t| t != arn);
    }
    match s.phase {
        Phase::Restoring => {
            let outcome = s.outcome.clone().map(|o| o.message).unwrap_or_default();
            s.transition(
                now,
                Phase::Failed,
                format!("{outcome}; capacity could not be restored: {message}"),
            );
        }
        Phase::Surging | Phase::Recycling => enter_restore(&mut s, now, Phase::Failed, message),
        _ => s.transition(now, Phase::Failed, message),
    }
    crate::request::timeline::mark(status, &mut s, now);
    s
}
