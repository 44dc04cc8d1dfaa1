//! Protected work: a planned task protected from scale-in (ECS task
//! scale-in protection) is never stopped. Which of the planned tasks the
//! next batch takes is decided here, from the protection read right before
//! (the decision asks for it: [`Next::Read`], and the shell reads it and
//! decides again); a protected task goes last and the run waits up to
//! `protectionWait` for its protection to end (`protectedTasks: wait`), or
//! it is left running (`skip`); either way the status names it and until
//! when. A stop already on record whose task became protected meanwhile is
//! withdrawn ([`withdraw_protected`]), so a restart never stops one either.

use chrono::{DateTime, Utc};

use super::causes::count;
use super::messages::name_tasks;
use super::spot;
use super::{Context, Decision};
use crate::duration;
use crate::request::observation::Observation;
use crate::request::spec::ProtectedTasks;
use crate::request::status::{ProtectedTask, Reason};

/// Tasks whose protection is read at once: one GetTaskProtection call
/// (AWS takes up to 100; ten keeps each call small and is what
/// UpdateTaskProtection takes).
pub(crate) const READ_AT_ONCE: usize = 10;

/// While the run waits for protected tasks alone, it looks again this many
/// polls apart at most: a task often ends its own protection early.
const RECHECK_POLLS: u32 = 10;

/// What the run does next with its planned tasks, between batches.
pub(super) enum Next {
    /// Stop these.
    Stop(Vec<String>),
    /// Their protection must be read before any of them is stopped.
    Read(Vec<String>),
    /// Only protected tasks are left, and the run waits for them.
    Wait,
    /// No planned task is left to stop.
    Done,
}

/// The next batch, sized by the strategy: planned tasks in order, the
/// protected ones held back last; a planned task no longer running is skipped, and said so.
pub(super) fn next(ctx: &Context, obs: &Observation, d: &mut Decision) -> Next {
    let order = open_tasks(d);
    let planned = d.status.plan.as_ref().map_or(0, |p| p.tasks.len());
    let size = ctx.spec.batch(d.status.batches + 1, planned);
    let mut batch = Vec::new();
    for (i, arn) in order.iter().enumerate() {
        if batch.len() == size {
            break;
        }
        let view = obs.tasks.iter().find(|t| &t.arn == arn);
        if !view.is_some_and(|t| t.desired_running) {
            spot::skip_gone(ctx, d, arn, view);
            continue;
        }
        match obs.protection_of(arn) {
            None => return Next::Read(unread(obs, &order[i..])),
            Some(p) if p.protected => found_protected(ctx, d, arn, p.until),
            Some(_) => {
                d.status.protected.retain(|p| &p.task != arn);
                batch.push(arn.clone());
            }
        }
    }
    if !batch.is_empty() {
        return Next::Stop(batch);
    }
    if d.status.held().next().is_some() {
        return wait_for_protected(ctx, d);
    }
    Next::Done
}

/// The planned tasks neither stopped nor skipped, in plan order, those
/// held back for their protection last.
fn open_tasks(d: &Decision) -> Vec<String> {
    let s = &d.status;
    let planned = s.plan.as_ref().map(|p| p.tasks.as_slice()).unwrap_or(&[]);
    let open = |t: &&String| !s.stopped.contains(t) && !s.skipped.contains(t);
    let held = |t: &String| s.protected.iter().any(|p| &p.task == t);
    let first = planned.iter().filter(open).filter(|t| !held(t));
    let last = planned.iter().filter(open).filter(|t| held(t));
    first.chain(last).cloned().collect()
}

/// The next tasks still meant to run whose protection is unread, up to one call's worth.
fn unread(obs: &Observation, from: &[String]) -> Vec<String> {
    from.iter()
        .filter(|arn| {
            obs.tasks
                .iter()
                .any(|t| &t.arn == *arn && t.desired_running)
        })
        .filter(|arn| obs.protection_of(arn).is_none())
        .take(READ_AT_ONCE)
        .cloned()
        .collect()
}

/// A planned task is protected now: held back to go last (`wait`), or
/// left running (`skip`), said once.
fn found_protected(ctx: &Context, d: &mut Decision, arn: &str, until: Option<DateTime<Utc>>) {
    let s = &mut d.status;
    if let Some(known) = s.protected.iter_mut().find(|p| p.task == arn) {
        known.until = until;
        // Held under `wait`, then the spec said `skip`: left running now.
        if ctx.spec.protected_tasks == ProtectedTasks::Skip && !s.skipped.iter().any(|t| t == arn) {
            s.task_event(
                ctx.now,
                Reason::Protected,
                arn,
                format!(
                    "Task {} is still protected from scale-in{}; left running (protectedTasks: skip)",
                    short(arn),
                    until_words(until, ctx.now)
                ),
            );
            s.skipped.push(arn.to_string());
        }
        return;
    }
    s.protected.push(ProtectedTask {
        task: arn.to_string(),
        until,
    });
    let what = format!(
        "Task {} is protected from scale-in{}",
        short(arn),
        until_words(until, ctx.now)
    );
    match ctx.spec.protected_tasks {
        ProtectedTasks::Wait => s.task_event(
            ctx.now,
            Reason::Protected,
            arn,
            format!(
                "{what}; it goes last, once its protection ends (protectedTasks: wait, up to {})",
                duration::format(ctx.spec.protection_wait)
            ),
        ),
        ProtectedTasks::Skip => {
            s.task_event(
                ctx.now,
                Reason::Protected,
                arn,
                format!("{what}; left running (protectedTasks: skip)"),
            );
            s.skipped.push(arn.to_string());
        }
    }
}

/// Only protected tasks are left: wait for their protection to end, up to
/// `protectionWait` from when the run began waiting for them alone; then
/// leave them running and say so.
fn wait_for_protected(ctx: &Context, d: &mut Decision) -> Next {
    let since = *d.status.protection_wait.get_or_insert(ctx.now);
    let wait = chrono::Duration::from_std(ctx.spec.protection_wait).unwrap_or_default();
    let held: Vec<ProtectedTask> = d.status.held().cloned().collect();
    let tasks: Vec<String> = held.iter().map(|p| short(&p.task).to_string()).collect();
    let until = latest(&held);
    if ctx.now >= since + wait {
        let message = format!(
            "{} skipped: protected from scale-in{}; protectionWait {} ran out: {}",
            count(held.len(), "task"),
            until_words(until, ctx.now),
            duration::format(ctx.spec.protection_wait),
            name_tasks(&tasks)
        );
        d.status.event(ctx.now, Reason::Protected, message);
        d.status.skipped.extend(held.into_iter().map(|p| p.task));
        return Next::Done;
    }
    let (done, total) = d.status.progress();
    d.status.message = format!(
        "{done}/{total} tasks recycled; waiting for {} protected from scale-in{} ({}) to end their protection; they are left running after {} (protectionWait {})",
        count(held.len(), "task"),
        until_words(until, ctx.now),
        name_tasks(&tasks),
        clock(since + wait, ctx.now),
        duration::format(ctx.spec.protection_wait)
    );
    let recheck = ctx.poll * RECHECK_POLLS;
    let soonest = held
        .iter()
        .filter_map(|p| p.until)
        .chain([since + wait])
        .min()
        .and_then(|at| (at - ctx.now).to_std().ok())
        .unwrap_or(recheck);
    d.requeue = Some(soonest.clamp(ctx.poll, recheck.max(ctx.poll)));
    Next::Wait
}

/// A stop on record whose task is still meant to run (decided, not yet
/// made: the operator was interrupted, or this step is about to make it)
/// is made only once its protection was read right before and it is not
/// protected. Answers the tasks still to read; a protected one is taken
/// out of the batch, never stopped, and held or left as for any other.
pub(super) fn withdraw_protected(
    ctx: &Context,
    obs: &Observation,
    d: &mut Decision,
) -> Vec<String> {
    let pending: Vec<String> = d
        .status
        .batch
        .iter()
        .filter(|arn| {
            obs.tasks
                .iter()
                .any(|t| &t.arn == *arn && t.desired_running)
        })
        .cloned()
        .collect();
    let unread: Vec<String> = pending
        .iter()
        .filter(|arn| obs.protection_of(arn).is_none())
        .take(READ_AT_ONCE)
        .cloned()
        .collect();
    if !unread.is_empty() {
        return unread;
    }
    for arn in pending {
        let Some(p) = obs.protection_of(&arn).filter(|p| p.protected) else {
            continue;
        };
        d.status.batch.retain(|t| t != &arn);
        d.status.stopped.retain(|t| t != &arn);
        d.status.task_event(
            ctx.now,
            Reason::Protected,
            &arn,
            format!(
                "Task {} became protected from scale-in before it was stopped; not stopped",
                short(&arn)
            ),
        );
        found_protected(ctx, d, &arn, p.until);
    }
    Vec::new()
}

/// What the run's summary says of the tasks it left running because they
/// were protected: "; 2 tasks skipped: protected from scale-in until 14:05 UTC".
pub(super) fn summary(d: &Decision, now: DateTime<Utc>) -> String {
    let left: Vec<ProtectedTask> = d.status.left_protected().cloned().collect();
    if left.is_empty() {
        return String::new();
    }
    format!(
        "; {} skipped: protected from scale-in{}",
        count(left.len(), "task"),
        until_words(latest(&left), now)
    )
}

fn latest(tasks: &[ProtectedTask]) -> Option<DateTime<Utc>> {
    tasks.iter().filter_map(|p| p.until).max()
}

/// " until 14:05 UTC", with the date when it is not today; nothing when unknown.
pub(crate) fn until_words(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    until.map_or(String::new(), |t| format!(" until {}", clock(t, now)))
}

/// "14:05 UTC" today, "2026-11-24 14:05 UTC" another day.
fn clock(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M UTC").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// The task id: the last part of its ARN.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
