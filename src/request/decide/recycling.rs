//! Recycling: batch after batch. Between batches, once the service is
//! stable, the next batch of planned tasks still running is stopped (those
//! already gone are skipped); a batch in flight is seen through until its
//! replacements serve and the service is stable, then the run pauses
//! `wait` before the next. No batch left ends the run through Restoring; a
//! batch or a service that will not stabilise fails it there.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::capacity;
use super::causes::{self, Tense};
use super::ending::end_via_restore;
use super::hooks;
use super::messages::{
    and_targets, describe_counts, failure_cause, name_tasks, note_slow, slow_clauses, target,
    window_closed,
};
use super::protection::{self, Next};
use super::spot;
use super::stability::settled;
use super::surging::before_start;
use super::timing::{batch_allowance, elapsed, is_slow, past_not_after};
use super::{Action, Context, Decision};
use crate::duration;
use crate::hooks::spec::Point;
use crate::request::observation::{Observation, ServiceView};
use crate::request::status::{Phase, Reason};
use crate::request::strategy::Pause;

pub(super) fn recycling(ctx: &Context, obs: &Observation, d: &mut Decision) {
    let svc = match &obs.service {
        Ok(svc) => svc,
        Err(reason) => {
            let (done, total) = d.status.progress();
            return end_via_restore(
                ctx,
                d,
                Phase::Failed,
                format!(
                    "{} became unavailable after {done}/{total} tasks: {reason}",
                    target(ctx)
                ),
            );
        }
    };
    if !d.status.batch.is_empty() {
        return batch_in_flight(ctx, svc, obs, d);
    }
    if let Some(until) = d.status.wait_until {
        if ctx.now < until {
            return watching(ctx, d, until);
        }
        d.status.wait_until = None;
    }
    if !settled(svc, obs) {
        // Someone else's deployment, a scale-out or a crash: wait, within the timeout.
        return await_stable(ctx, svc, obs, d);
    }
    if d.status.surge.is_none() && !before_start(ctx, svc.desired, d) {
        return;
    }
    let batch = match protection::next(ctx, obs, d) {
        Next::Stop(batch) => batch,
        Next::Read(tasks) => {
            d.read_protection = tasks;
            return;
        }
        Next::Wait => return,
        Next::Done => return finish(ctx, d),
    };
    let number = d.status.batches + 1;
    let told = hooks::Told {
        tasks: &batch,
        replacements: Vec::new(),
        desired: svc.desired,
    };
    if !hooks::passed(ctx, d, Point::BeforeBatch, number, told) {
        return;
    }
    stop_batch(ctx, d, batch, number);
}

// ------------------------------------------------------------ between batches

/// The service is not stable between batches: no batch starts until it is,
/// within the stability timeout; past half of it the status says why.
fn await_stable(ctx: &Context, svc: &ServiceView, obs: &Observation, d: &mut Decision) {
    let (done, total) = d.status.progress();
    let since = *d.status.step_started_at.get_or_insert(ctx.now);
    let step = causes::Step {
        since,
        now: ctx.now,
        batch: &[],
        ours: &d.status.stopped,
        noun: "task",
    };
    if elapsed(ctx, Some(since)) > ctx.spec.stability_timeout {
        let message = format!(
            "{} was not stable within {} before the next batch ({}){}; {done}/{total} tasks recycled",
            target(ctx),
            duration::format(ctx.spec.stability_timeout),
            describe_counts(svc, &obs.tasks),
            failure_cause(&step, svc, obs)
        );
        return end_via_restore(ctx, d, Phase::Failed, message);
    }
    let slow = is_slow(ctx.spec, since, ctx.now);
    d.status.message = match svc.deployment_in_progress() {
        Some(dep) if slow => {
            let why = causes::why(&step, obs, Tense::Slow);
            let why = if why.is_empty() {
                String::new()
            } else {
                format!("; {}", why.join("; "))
            };
            format!(
                "waiting for deployment {} to finish ({done}/{total} tasks recycled){why}",
                dep.id
            )
        }
        Some(dep) => format!(
            "waiting for deployment {} to finish ({done}/{total} tasks recycled)",
            dep.id
        ),
        None if slow => format!(
            "{done}/{total} recycled; before the next batch, {}",
            slow_clauses(&step, svc, obs)
        ),
        None => and_targets(
            format!(
                "waiting for the service to be stable ({})",
                describe_counts(svc, &obs.tasks)
            ),
            &obs.tasks,
        ),
    };
    if slow {
        note_slow(&mut d.status, ctx.now, since);
    }
}

/// No planned task is left to stop: the run succeeded, and ends through
/// Restoring.
fn finish(ctx: &Context, d: &mut Decision) {
    let (_, total) = d.status.progress();
    let recycled = d.status.recycled().count();
    let skipped = d.status.skipped.len();
    d.status.event(
        ctx.now,
        Reason::Completed,
        "Task recycle completed successfully",
    );
    let gone = skipped - d.status.left_protected().count();
    let message = format!(
        "recycled {recycled} of {total} planned tasks ({gone} already gone){}{}",
        protection::summary(d, ctx.now),
        spot::summary(d)
    );
    end_via_restore(ctx, d, Phase::Succeeded, message);
}

/// Stops the batch: each stop on record (in `stopped` and the batch) before
/// it is made, with a reason that names the request.
fn stop_batch(ctx: &Context, d: &mut Decision, batch: Vec<String>, number: u32) {
    let (_, total) = d.status.progress();
    d.status.batches = number;
    for arn in &batch {
        let n = d.status.progress().0 + 1;
        d.status.task_event(
            ctx.now,
            Reason::Recycling,
            arn,
            format!("Recycling task {n}/{total}: {arn}"),
        );
        d.status.stopped.push(arn.clone());
        d.actions.push(Action::StopTask {
            arn: arn.clone(),
            reason: stop_reason(ctx),
        });
    }
    d.status.batch = batch;
    d.status.step_started_at = Some(ctx.now);
    d.status.capacity_wait = None;
    let (done, _) = d.status.progress();
    d.status.message = format!(
        "{}: stopped {done}/{total}; waiting for the replacements to be running and healthy",
        ctx.spec.where_in(number, total)
    );
}

/// The reason ECS keeps on the stopped task: it names the request.
pub(super) fn stop_reason(ctx: &Context) -> String {
    format!("ecs-recycler: recycled by request {}", ctx.name)
}

// ------------------------------------------------------------ a batch in flight

fn batch_in_flight(ctx: &Context, svc: &ServiceView, obs: &Observation, d: &mut Decision) {
    // A stop decided but never made (the operator died in between, or
    // this step is about to make it) is made now, unless the task became
    // protected meanwhile.
    let unread = protection::withdraw_protected(ctx, obs, d);
    if !unread.is_empty() {
        d.read_protection = unread;
        return;
    }
    if d.status.batch.is_empty() {
        // Every task of the batch became protected: none was stopped.
        d.status.step_started_at = None;
        d.status.capacity_wait = None;
        d.status.message = "the batch's tasks became protected from scale-in before they were stopped; choosing the next batch".into();
        d.requeue = Some(Duration::ZERO);
        return;
    }
    let (done, total) = d.status.progress();
    for arn in &d.status.batch {
        if obs.tasks.iter().any(|t| &t.arn == arn && t.desired_running) {
            d.actions.push(Action::StopTask {
                arn: arn.clone(),
                reason: stop_reason(ctx),
            });
        }
    }
    if !d.actions.is_empty() {
        // The wait for the replacements begins with the stop sent, not
        // with a decision that was never acted on.
        d.status.step_started_at = Some(ctx.now);
    }
    let old_still_running = obs
        .tasks
        .iter()
        .any(|t| d.status.batch.contains(&t.arn) && t.last_status == "RUNNING");
    if d.actions.is_empty() && !old_still_running && settled(svc, obs) {
        return batch_done(ctx, svc, obs, d, (done, total));
    }
    await_replacements(ctx, svc, obs, d, (done, total));
}

/// The batch's replacements serve and the service is stable: after the
/// afterBatch hooks, the run pauses `wait`, then clears the batch for the
/// next — or, the window closed, ends through Restoring.
fn batch_done(
    ctx: &Context,
    svc: &ServiceView,
    obs: &Observation,
    d: &mut Decision,
    (done, total): (usize, usize),
) {
    capacity::ended(ctx, d);
    let batch = d.status.batch.clone();
    let told = hooks::Told {
        tasks: &batch,
        replacements: replacements(d.status.step_started_at, obs),
        desired: svc.desired,
    };
    if !hooks::passed(ctx, d, Point::AfterBatch, d.status.batches.max(1), told) {
        return;
    }
    if past_not_after(ctx) {
        // The batch is done; pausing before a batch that will never start is pointless.
        if d.status.wait_until.is_none() {
            d.status
                .event(ctx.now, Reason::Recycled, format!("Task {done} recycled"));
        }
        d.status.batch.clear();
        d.status.step_started_at = None;
        d.status.capacity_wait = None;
        let message = window_closed(ctx, &d.status, "after a batch");
        return end_via_restore(ctx, d, Phase::WindowClosed, message);
    }
    let number = d.status.batches.max(1);
    let pause = ctx.spec.strategy.pause(number, ctx.spec.wait);
    if pause.watched() {
        return start_watching(ctx, d, pause, done);
    }
    match d.status.wait_until {
        None if !ctx.spec.wait.is_zero() => {
            let wait = ctx.spec.wait;
            let from = serving_from(ctx, d.status.step_started_at);
            let until = chrono::Duration::from_std(wait).ok().map(|w| from + w);
            d.status.wait_until = until;
            let said = if from < ctx.now {
                format!(
                    " from {}, when ECS's events showed it serving",
                    from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                )
            } else {
                String::new()
            };
            d.status.event(
                ctx.now,
                Reason::Recycled,
                format!(
                    "Task {done} recycled, waiting {}{said}",
                    duration::format(wait)
                ),
            );
            d.status.message = format!(
                "{done}/{total} recycled; waiting {} before the next batch",
                duration::format(wait)
            );
            match until {
                Some(until) if ctx.now < until => d.requeue = (until - ctx.now).to_std().ok(),
                _ => next_batch_ready(ctx, d, (done, total), false),
            }
        }
        Some(until) if ctx.now < until => {
            d.requeue = (until - ctx.now).to_std().ok();
        }
        _ => next_batch_ready(ctx, d, (done, total), ctx.spec.wait.is_zero()),
    }
}

/// When the batch's wait begins: when ECS's events showed it serving, if
/// they did during this step (the look that finds it done confirms it),
/// else now.
fn serving_from(ctx: &Context, step: Option<DateTime<Utc>>) -> DateTime<Utc> {
    ctx.serving_since
        .filter(|at| step.is_some_and(|step| *at >= step))
        .map_or(ctx.now, |at| at.min(ctx.now))
}

/// The batch and its wait are over: the next batch may go.
fn next_batch_ready(
    ctx: &Context,
    d: &mut Decision,
    (done, total): (usize, usize),
    say_recycled: bool,
) {
    if say_recycled {
        d.status
            .event(ctx.now, Reason::Recycled, format!("Task {done} recycled"));
    }
    d.status.batch.clear();
    d.status.wait_until = None;
    d.status.step_started_at = None;
    d.status.capacity_wait = None;
    d.status.message = format!("{done}/{total} recycled");
    d.requeue = Some(Duration::ZERO);
}

/// The batch serves and a watched pause follows (a canary's bake, a linear
/// step's pace): the batch counts as recycled now, and the run looks again
/// as often as the gate alarms can change until the pause ends, so that
/// they are read meanwhile (a hold or an abort meets the run before its
/// next batch); a cancel or a pause wakes it, and a closed window ends it.
fn start_watching(ctx: &Context, d: &mut Decision, pause: Pause, done: usize) {
    let until = match pause {
        Pause::Bake(bake) => {
            let from = serving_from(ctx, d.status.step_started_at);
            from + chrono::Duration::from_std(bake).unwrap_or_default()
        }
        Pause::Every(every) => {
            let stopped = d.status.step_started_at.unwrap_or(ctx.now);
            stopped + chrono::Duration::from_std(every).unwrap_or_default()
        }
        Pause::Wait(_) => ctx.now,
    };
    let total = d.status.plan.as_ref().map_or(0, |p| p.tasks.len());
    let here = ctx.spec.where_in(d.status.batches.max(1), total);
    let what = match pause {
        Pause::Bake(bake) => format!("{here} serving; baking {}", duration::format(bake)),
        _ => format!(
            "{here} serving; the next step starts {}",
            at_or_now(ctx.now, until)
        ),
    };
    d.status.event(
        ctx.now,
        Reason::Recycled,
        format!("Task {done} recycled; {what}"),
    );
    d.status.batch.clear();
    d.status.step_started_at = None;
    if until > ctx.now {
        d.status.wait_until = Some(until);
        watching(ctx, d, until);
    } else {
        d.status.message = format!("{done}/{total} recycled");
        d.requeue = Some(Duration::ZERO);
    }
}

/// Within a watched pause: what it waits for, and when it is looked at again.
fn watching(ctx: &Context, d: &mut Decision, until: DateTime<Utc>) {
    let (done, total) = d.status.progress();
    let number = d.status.batches.max(1);
    let here = ctx.spec.where_in(number, total);
    let left = (until - ctx.now).to_std().unwrap_or_default();
    d.status.message = match ctx.spec.strategy.pause(number, ctx.spec.wait) {
        Pause::Bake(bake) => format!(
            "{done}/{total} recycled; {here} baking {} of {}; the gate alarms are watched",
            duration::format(whole_seconds(bake.saturating_sub(left))),
            duration::format(bake)
        ),
        _ => format!(
            "{done}/{total} recycled; {here} serving; the next step starts in {}",
            duration::format(whole_seconds(left))
        ),
    };
    d.requeue = Some(watch_again(ctx, left).max(Duration::from_millis(1)));
}

/// Alarms change at most once a period (10 s for a high-resolution alarm),
/// so a watched pause reads them no more often than this.
const GATE_LOOK: Duration = Duration::from_secs(10);

/// When a watched pause is looked at again: only the gate alarms and the
/// window can end it early (a cancel, a pause or an edit wakes the record
/// by itself), so no look is made for anything else — a 5-minute bake
/// makes 30 looks with a gate, not 150 at a 2 s poll, and one without.
fn watch_again(ctx: &Context, left: Duration) -> Duration {
    let mut next = left;
    if ctx.spec.alarm_gate().is_some() {
        next = next.min(ctx.poll.max(GATE_LOOK));
    }
    if let Some(end) = ctx.spec.not_after {
        next = next.min((end - ctx.now).to_std().unwrap_or_default());
    }
    next
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

fn at_or_now(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    if at <= now {
        "now".into()
    } else {
        format!(
            "in {}",
            duration::format(whole_seconds((at - now).to_std().unwrap_or_default()))
        )
    }
}

/// The batch's replacements do not serve yet: wait, saying why once slow
/// and what a drain holds back, and fail through Restoring once the batch
/// has taken longer than it may.
fn await_replacements(
    ctx: &Context,
    svc: &ServiceView,
    obs: &Observation,
    d: &mut Decision,
    (done, total): (usize, usize),
) {
    if capacity::decided(ctx, svc, obs, d, "replacement") {
        return;
    }
    let began = d.status.step_started_at.unwrap_or(ctx.now);
    let since = capacity::stability_since(&d.status, began);
    let step = causes::Step {
        since: began,
        now: ctx.now,
        batch: &d.status.batch,
        ours: &d.status.stopped,
        noun: "replacement",
    };
    let allowed = batch_allowance(ctx, svc, obs, d.status.batch.len());
    if elapsed(ctx, Some(since)) > allowed {
        let recycled = d.status.recycled().count();
        let drain = if allowed > ctx.spec.stability_timeout {
            format!(
                " (the stability timeout, plus {} for the stopped tasks to drain)",
                duration::format(allowed - ctx.spec.stability_timeout)
            )
        } else {
            String::new()
        };
        let message = format!(
            "replacements for {} were not running, healthy and stable within {}{drain} ({}){}; {done}/{total} tasks stopped, {recycled} recycled",
            name_tasks(&d.status.batch),
            duration::format(allowed),
            describe_counts(svc, &obs.tasks),
            failure_cause(&step, svc, obs)
        );
        return end_via_restore(ctx, d, Phase::Failed, message);
    }
    let mut message = if elapsed(ctx, Some(since)) >= allowed / 2 {
        format!("stopped {done}/{total}; {}", slow_clauses(&step, svc, obs))
    } else {
        and_targets(
            format!(
                "stopped {done}/{total}; waiting for the replacements to be running and healthy ({})",
                describe_counts(svc, &obs.tasks)
            ),
            &obs.tasks,
        )
    };
    let draining = obs.tasks.iter().filter(|t| t.is_draining()).count();
    if draining > 0 && allowed > ctx.spec.stability_timeout {
        message.push_str(&format!(
            "; {} draining, and maximumPercent {}% leaves no room for the replacements until they drain (up to {})",
            causes::count(draining, "stopped task"),
            svc.maximum_percent,
            duration::format(allowed - ctx.spec.stability_timeout)
        ));
    }
    d.status.message = message;
    if elapsed(ctx, Some(since)) >= allowed / 2 {
        note_slow(&mut d.status, ctx.now, since);
    }
}

/// The tasks serving that started since the batch was stopped: its replacements.
fn replacements(since: Option<DateTime<Utc>>, obs: &Observation) -> Vec<String> {
    obs.tasks
        .iter()
        .filter(|t| t.is_serving())
        .filter(|t| match (since, t.created_at.or(t.started_at)) {
            (Some(since), Some(at)) => at >= since,
            _ => false,
        })
        .map(|t| t.arn.clone())
        .collect()
}
