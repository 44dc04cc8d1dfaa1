//! The hooks of the spec, asked at the points of the run: before it touches
//! anything (beforeStart), before each batch is stopped (beforeBatch),
//! after each batch is serving (afterBatch), and once Restoring is done
//! (afterEnd). What each answer means for the run is here; the call on
//! record and its answers are [`crate::hooks::decide`].

use std::time::Duration;

use super::{Context, Decision, end_via_restore};
use crate::hooks::decide::{OnRecord, Verdict, at_point, verdict};
use crate::hooks::spec::Point;
use crate::request::status::{Phase, Reason};

/// What the hook is told of the point, besides its name and batch.
pub(super) struct Told<'a> {
    pub tasks: &'a [String],
    pub replacements: Vec<String>,
    pub desired: u32,
}

/// Whether the run may go past `point` now. When it may not, the decision
/// says why: a call to make (on record already), a wait, or the end of the
/// run through Restoring.
pub(super) fn passed(
    ctx: &Context,
    d: &mut Decision,
    point: Point,
    batch: u32,
    told: Told,
) -> bool {
    if ctx.spec.hooks.is_empty() || ctx.spec.dry_run {
        return true;
    }
    let status = &mut d.status;
    let mut on_record = OnRecord {
        call: &mut status.hook,
        passed: &mut status.hooks_passed,
        run_started: status.started_at,
    };
    let decided = verdict(
        &ctx.spec.hooks,
        ctx.name,
        &mut on_record,
        point,
        batch,
        ctx.now,
    );
    for said in decided.said {
        d.status.event(ctx.now, Reason::Hook, said);
    }
    match decided.verdict {
        Verdict::Passed => true,
        Verdict::Call(mut ask) => {
            let hook = &ctx.spec.hooks[ask.hook];
            ask.tasks = told.tasks.to_vec();
            ask.replacements = told.replacements;
            ask.desired = told.desired;
            d.status.message = format!(
                "asking {} (call {})",
                at_point(hook, point, batch),
                ask.attempt
            );
            d.hook = Some(ask);
            d.requeue = Some(Duration::ZERO);
            false
        }
        Verdict::Wait { after, why } => {
            d.status.message = why;
            d.requeue = Some(after.max(Duration::from_millis(100)));
            false
        }
        Verdict::Fail(why) => {
            let (done, total) = d.status.progress();
            if point == Point::AfterEnd {
                // The run has ended already: the hook's word is kept, the outcome stands.
                if let Some(o) = d.status.outcome.as_mut() {
                    o.message = format!("{}; then {why}", o.message.trim_end_matches('.'));
                }
                d.status.hook = None;
                return true;
            }
            if point == Point::AfterBatch {
                // This batch's replacements are serving: it is recycled.
                d.status.batch.clear();
                d.status.wait_until = None;
            }
            end_via_restore(
                ctx,
                d,
                Phase::Failed,
                format!("aborted by {why}; {done}/{total} tasks stopped"),
            );
            false
        }
    }
}
