//! Restoring: whatever the outcome, the run puts back what it changed — the
//! desired count it set (only while the service still has that count) and
//! the scaling settings it suspended (keeping what others changed since) —
//! then, after the afterEnd hooks, ends in the outcome on record.

use std::time::Duration;

use super::hooks;
use super::{Action, Context, Decision};
use crate::hooks::spec::Point;
use crate::request::observation::{Observation, ServiceView};
use crate::request::status::{DesiredChange, Outcome, Phase, Reason};

pub(super) fn restoring(ctx: &Context, obs: &Observation, d: &mut Decision) {
    let outcome = d.status.outcome.clone().unwrap_or(Outcome {
        phase: Phase::Failed,
        message: "restoring without a recorded outcome".into(),
    });
    let svc = match &obs.service {
        Ok(svc) => svc,
        Err(reason) => {
            let note = if d.status.surge.is_some() {
                format!("; capacity could not be restored: {reason}")
            } else {
                String::new()
            };
            return d.status.transition(
                ctx.now,
                outcome.phase,
                format!("{}{note}", outcome.message),
            );
        }
    };
    let note = restore_desired(ctx, svc, d);
    restore_scaling(obs, d);
    if d.actions.is_empty() {
        finish(ctx, svc, d, outcome, note);
    } else {
        d.status.message = format!("restoring capacity; then: {}", outcome.message);
        d.requeue = Some(Duration::ZERO);
    }
}

/// Takes the surge back, if it is the operator's to take; answers what the
/// final message says of the desired count (empty while a change is sent).
fn restore_desired(ctx: &Context, svc: &ServiceView, d: &mut Decision) -> String {
    let mut note = String::new();
    if let Some(surge) = d.status.surge {
        match d.status.restore {
            // Only the count the surge set is the operator's to take back.
            None if svc.desired == surge.to => {
                let change = DesiredChange {
                    from: surge.to,
                    to: surge.from,
                };
                d.status.restore = Some(change);
                d.actions.push(Action::SetDesired {
                    from: change.from,
                    to: change.to,
                });
                d.status.event(
                    ctx.now,
                    Reason::Restore,
                    format!(
                        "Restoring desired count from {} to {}",
                        change.from, change.to
                    ),
                );
            }
            // Any other count is the autoscaler's or a person's: target
            // tracking computed it from a fleet that already held the spare
            // tasks, so taking the surge off it would leave the service
            // short until the autoscaler looks again. Once dynamic scale-in
            // is restored below, it trims any excess itself.
            None => {
                d.status.restore = Some(DesiredChange {
                    from: svc.desired,
                    to: svc.desired,
                });
                d.status
                    .event(ctx.now, Reason::Restore, left_alone(svc.desired, surge));
                note = format!(" {}.", left_alone(svc.desired, surge));
            }
            Some(change) if change.from != change.to && svc.desired == change.from => {
                d.actions.push(Action::SetDesired {
                    from: change.from,
                    to: change.to,
                });
            }
            Some(change) if change.from == change.to => {
                note = format!(" {}.", left_alone(change.from, surge));
            }
            // The restore was not sent: the count moved between the look
            // and the call (the shell reads it right before), so it is
            // someone else's.
            Some(change) if svc.desired != change.to => {
                d.status.restore = Some(DesiredChange {
                    from: svc.desired,
                    to: svc.desired,
                });
                note = format!(" {}.", left_alone(svc.desired, surge));
            }
            Some(change) => {
                note = format!(" Desired count restored: {} → {}.", change.from, change.to);
            }
        }
    }
    note
}

/// Brings back the scaling settings the surge changed; keeps what others
/// changed since.
fn restore_scaling(obs: &Observation, d: &mut Decision) {
    if let (Some(ours), Some(original), Some(current)) = (
        d.status.surge_scaling,
        d.status.plan.as_ref().and_then(|p| p.original_scaling),
        obs.scaling,
    ) {
        let mut wanted = current;
        if current.max == ours.max {
            wanted.max = original.max;
        }
        if current.dynamic_scaling_in_suspended == ours.dynamic_scaling_in_suspended {
            wanted.dynamic_scaling_in_suspended = original.dynamic_scaling_in_suspended;
        }
        if wanted != current {
            d.actions.push(Action::SetScaling(wanted));
        }
    }
}

/// Nothing is left to put back: after the afterEnd hooks, the run ends in
/// its outcome, saying what became of the desired count.
fn finish(ctx: &Context, svc: &ServiceView, d: &mut Decision, outcome: Outcome, note: String) {
    let told = hooks::Told {
        tasks: &d.status.stopped.clone(),
        replacements: Vec::new(),
        desired: svc.desired,
    };
    if !hooks::passed(ctx, d, Point::AfterEnd, 0, told) {
        return;
    }
    let outcome = d.status.outcome.clone().unwrap_or(outcome);
    // A cause quoting ECS may end its own sentence.
    let stop = if outcome.message.ends_with('.') {
        ""
    } else {
        "."
    };
    d.status.transition(
        ctx.now,
        outcome.phase,
        format!("{}{stop}{note}", outcome.message),
    );
}

/// Why Restoring left the desired count as it found it.
fn left_alone(desired: u32, surge: DesiredChange) -> String {
    if desired == surge.from {
        format!("Desired count left at {desired}, as it was before the surge")
    } else {
        format!("Desired count left at {desired}, set by someone else during the run")
    }
}
