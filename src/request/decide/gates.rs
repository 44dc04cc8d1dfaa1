//! What may end or hold a run whatever its phase — a cancel, a closed
//! window (`notAfter`), another request ahead on the same service, a pause,
//! then the alarms of the spec's `gates` — checked once, in that order,
//! before the phase's own logic; what each means in each phase is here and
//! nowhere else.
//!
//! Two rules shape it: a batch in flight is seen through first (its tasks
//! are already stopping; a cancel or a pause takes effect once its
//! replacements serve), and only ending a run needs no look at the service —
//! a service that cannot be had fails the run before anything holds it.

use super::{Context, Decision, end_via_restore, past_not_after, target, window_closed};
use crate::duration;
use crate::gates::decide::{Verdict, verdict};
use crate::request::observation::Observation;
use crate::request::status::{AlarmHold, Phase, Reason};

enum Gate<'a> {
    Cancel,
    WindowClosed,
    /// Another active request on the service goes first.
    Blocked(&'a str),
    Paused,
}

fn gate<'a>(ctx: &Context<'a>, phase: Phase) -> Option<Gate<'a>> {
    if ctx.spec.cancel {
        return Some(Gate::Cancel);
    }
    if past_not_after(ctx) {
        return Some(Gate::WindowClosed);
    }
    if phase == Phase::Pending
        && let Some(other) = ctx.blocked_by
    {
        return Some(Gate::Blocked(other));
    }
    if ctx.spec.paused {
        return Some(Gate::Paused);
    }
    None
}

/// Applies the gate that stands now, if any; true when it decided the step.
pub(super) fn decided(ctx: &Context, obs: &Observation, d: &mut Decision) -> bool {
    standing(ctx, obs, d) || alarms(ctx, obs, d)
}

/// The gates a person sets by hand (cancel, window, queue, pause).
fn standing(ctx: &Context, obs: &Observation, d: &mut Decision) -> bool {
    let phase = d.status.phase;
    if phase == Phase::Recycling && !d.status.batch.is_empty() {
        return false;
    }
    let Some(gate) = gate(ctx, phase) else {
        return false;
    };
    if matches!(gate, Gate::Blocked(_) | Gate::Paused) && obs.service.is_err() {
        return false;
    }
    let (done, total) = d.status.progress();
    let s = &mut d.status;
    match (phase, gate) {
        (Phase::Pending, Gate::Cancel) => {
            s.transition(ctx.now, Phase::Cancelled, "cancelled before it started")
        }
        (Phase::Pending, Gate::WindowClosed) => {
            let message = window_closed(ctx, s, "before the recycle could start");
            s.transition(
                ctx.now,
                Phase::WindowClosed,
                format!("{message}; nothing was changed"),
            );
        }
        (Phase::Pending, Gate::Blocked(other)) => {
            s.message = format!(
                "waiting: request {other} is recycling {} first",
                target(ctx)
            );
        }
        (Phase::Pending, Gate::Paused) => {
            s.message = "paused before it started; resume to begin".into();
        }
        (Phase::Surging, Gate::Cancel) => end_via_restore(
            ctx,
            d,
            Phase::Cancelled,
            "cancelled before any task was stopped".into(),
        ),
        (Phase::Surging, Gate::WindowClosed) => {
            let message = window_closed(ctx, s, "while adding spare capacity");
            end_via_restore(ctx, d, Phase::WindowClosed, message);
        }
        // Once the spare capacity is asked for, it is seen through; the
        // pause holds the run before its first batch.
        (Phase::Surging, Gate::Paused) if s.surge.is_none() => {
            s.message = "paused before adding capacity; resume to continue".into();
        }
        (Phase::Recycling, Gate::Cancel) => end_via_restore(
            ctx,
            d,
            Phase::Cancelled,
            format!("cancelled after {done}/{total} tasks"),
        ),
        (Phase::Recycling, Gate::WindowClosed) => {
            let message = window_closed(ctx, s, "between batches");
            end_via_restore(ctx, d, Phase::WindowClosed, message);
        }
        (Phase::Recycling, Gate::Paused) => {
            s.message = format!("paused after {done}/{total} tasks; resume to continue");
        }
        _ => return false,
    }
    true
}

/// The alarm gate: a hold stands only where the next step would stop a task
/// or start the run (a batch or a surge in flight is seen through, and the
/// hold meets the run before its next stop); an abort or a broken gate ends
/// the run in any active phase, through Restoring once anything changed.
fn alarms(ctx: &Context, obs: &Observation, d: &mut Decision) -> bool {
    let Some(gate) = ctx.spec.alarm_gate() else {
        return false;
    };
    let phase = d.status.phase;
    let holds_here = match phase {
        Phase::Pending => true,
        Phase::Surging => d.status.surge.is_none(),
        Phase::Recycling => d.status.batch.is_empty(),
        _ => return false,
    };
    let (done, total) = d.status.progress();
    let verdict = match verdict(gate, ctx.alarms) {
        // A dry run changes nothing, so a firing alarm has nothing to hold;
        // a gate that cannot work is still worth failing it for.
        Verdict::Hold(_) | Verdict::Abort(_) if ctx.spec.dry_run => Verdict::Clear,
        v => v,
    };
    match verdict {
        Verdict::Clear => {
            if let Some(hold) = d.status.alarm_hold.take() {
                let held = (ctx.now - hold.since).to_std().unwrap_or_default();
                d.status.event(
                    ctx.now,
                    Reason::AlarmCleared,
                    format!(
                        "every gate alarm is OK after a hold of {}; going on",
                        duration::format(held)
                    ),
                );
            }
            false
        }
        // A service that cannot be had fails the run before anything holds it.
        Verdict::Hold(_) if !holds_here || obs.service.is_err() => false,
        Verdict::Hold(why) => {
            let s = &mut d.status;
            match &mut s.alarm_hold {
                Some(hold) => hold.message.clone_from(&why),
                None => {
                    s.alarm_hold = Some(AlarmHold {
                        since: ctx.now,
                        message: why.clone(),
                    });
                    s.event(ctx.now, Reason::AlarmHeld, why.clone());
                }
            }
            let whence = match phase {
                Phase::Pending => "before the run starts".to_string(),
                Phase::Surging => "before adding spare capacity".to_string(),
                _ => format!("before the next batch ({done}/{total} tasks recycled)"),
            };
            s.message =
                format!("{why}; holding {whence}; goes on by itself once every gate alarm is OK");
            true
        }
        Verdict::Abort(why) | Verdict::Fail(why) => {
            d.status.alarm_hold = None;
            if phase == Phase::Pending {
                d.status.transition(
                    ctx.now,
                    Phase::Failed,
                    format!("{why}; {} was not touched", target(ctx)),
                );
            } else {
                let message = format!("{why}; {done}/{total} tasks stopped");
                end_via_restore(ctx, d, Phase::Failed, message);
            }
            true
        }
    }
}
