//! The decision: given a request's spec and status, an observation of its
//! service, and the time, what the status becomes and which AWS actions
//! follow. Pure: no I/O and no clock of its own.
//!
//! The shell persists the returned status (conditionally on the record's
//! version) *before* it performs the actions, so every action is an intent
//! already on record. A restart decides again from the record and a fresh
//! observation, and the intents let it tell a change made from one never
//! made: a desired-count change is re-sent only while the observed count is
//! still its `from`, a stop only while the task is still desired RUNNING.

mod causes;
mod gates;
mod hooks;

use std::time::Duration;

use chrono::{DateTime, Utc};

use self::causes::Tense;
use crate::duration;
use crate::gates::decide::AlarmsSeen;
use crate::hooks::decide::Ask;
use crate::hooks::spec::Point;
use crate::request::observation::{Observation, ServiceView, TaskView};
use crate::request::spec::RecycleSpec;
use crate::request::status::{
    DesiredChange, Outcome, Phase, Plan, Reason, RecycleStatus, ScalingSettings,
};

/// What the operator does to AWS, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    SetDesired { from: u32, to: u32 },
    StopTask { arn: String, reason: String },
    SetScaling(ScalingSettings),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub status: RecycleStatus,
    pub actions: Vec<Action>,
    /// A hook to call, on record in `status.hook` already; its answer is
    /// recorded in the status before the next decision.
    pub hook: Option<Ask>,
    /// When to look again; `None` once the request has finished.
    pub requeue: Option<Duration>,
}

/// Everything the decision needs besides the status and the observation.
pub(crate) struct Context<'a> {
    pub name: &'a str,
    pub spec: &'a RecycleSpec,
    pub now: DateTime<Utc>,
    /// How soon to look again while a transition is expected.
    pub poll: Duration,
    /// Another active request on the same service that goes first.
    pub blocked_by: Option<&'a str>,
    /// The gate alarms as seen at this look; `None` when not read (which
    /// holds a gated run: see [`crate::gates`]).
    pub alarms: Option<&'a AlarmsSeen>,
}

pub(crate) fn decide(ctx: &Context, status: &RecycleStatus, obs: &Observation) -> Decision {
    let mut d = Decision {
        status: status.clone(),
        actions: Vec::new(),
        hook: None,
        requeue: Some(ctx.poll),
    };
    match status.phase {
        _ if gates::decided(ctx, obs, &mut d) => {}
        _ if targets_unreadable(ctx, obs, &mut d) => {}
        Phase::Pending => pending(ctx, obs, &mut d),
        Phase::Surging => surging(ctx, obs, &mut d),
        Phase::Recycling => recycling(ctx, obs, &mut d),
        Phase::Restoring => restoring(ctx, obs, &mut d),
        Phase::Succeeded | Phase::Failed | Phase::Cancelled | Phase::WindowClosed => {}
    }
    if d.status.phase.is_terminal() {
        d.requeue = None;
    }
    d.status.message = crate::request::status::bounded(std::mem::take(&mut d.status.message));
    if let Some(o) = d.status.outcome.as_mut() {
        o.message = crate::request::status::bounded(std::mem::take(&mut o.message));
    }
    d
}

/// The targets of a load-balanced service could not be read: nothing tells
/// whether a replacement takes traffic, so the run does not go on. It ends
/// through Restoring (before anything was touched, as Failed at once).
fn targets_unreadable(ctx: &Context, obs: &Observation, d: &mut Decision) -> bool {
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

/// How long a batch may take: the stability timeout, plus the drain when
/// `maximumPercent` leaves no room to launch the batch's replacements
/// beside the tasks it stopped (ECS launches them only once those have
/// drained: deregistration delay, then stopTimeout).
fn batch_allowance(ctx: &Context, svc: &ServiceView, obs: &Observation, batch: usize) -> Duration {
    match obs.drain {
        Some(drain) if drain_blocks_replacements(svc, batch) => ctx.spec.stability_timeout + drain,
        _ => ctx.spec.stability_timeout,
    }
}

/// Whether ECS must wait for `batch` stopped tasks to drain before it may
/// launch their replacements: tasks still draining count against
/// `maximumPercent`.
pub(crate) fn drain_blocks_replacements(svc: &ServiceView, batch: usize) -> bool {
    if svc.load_balancers.is_empty() {
        return false;
    }
    let percent = if svc.maximum_percent == 0 {
        200
    } else {
        svc.maximum_percent
    };
    let ceiling = (svc.desired as u64 * percent as u64 / 100) as usize;
    ceiling < svc.desired as usize + batch
}

/// `message`, and what targets keep tasks from serving, if any.
fn and_targets(message: String, tasks: &[TaskView]) -> String {
    match causes::waiting_for_targets(tasks) {
        Some(targets) => format!("{message}; {targets}"),
        None => message,
    }
}

/// A step is slow once half its stability timeout has passed without it
/// being done: from then on its status says what it waits for and why.
pub(crate) fn is_slow(spec: &RecycleSpec, step: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - step)
        .to_std()
        .is_ok_and(|e| e >= spec.stability_timeout / 2)
}

/// What a slow step waits for and why, as clauses of its status message.
fn slow_clauses(step: &causes::Step, svc: &ServiceView, obs: &Observation) -> String {
    let mut parts = vec![
        causes::waiting_for(step, svc.desired, &obs.tasks).unwrap_or_else(|| {
            format!(
                "waiting for the service to be stable ({})",
                describe_counts(svc, &obs.tasks)
            )
        }),
    ];
    parts.extend(causes::why(step, obs, Tense::Slow));
    parts.join("; ")
}

/// Why a step failed, as ": clause; clause" after its failure, or nothing
/// when ECS says nothing and no task is left waiting.
fn failure_cause(step: &causes::Step, svc: &ServiceView, obs: &Observation) -> String {
    let mut parts = causes::why(step, obs, Tense::Failed);
    if parts.is_empty() {
        parts.extend(causes::waiting_for(step, svc.desired, &obs.tasks));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// Says once per step, in the events, that it is slow and why.
fn note_slow(s: &mut RecycleStatus, now: DateTime<Utc>, since: DateTime<Utc>) {
    if !s
        .events
        .iter()
        .any(|e| e.reason == Reason::Slow && e.at >= since)
    {
        let message = s.message.clone();
        s.event(now, Reason::Slow, message);
    }
}

/// The first few tasks of a list, then how many more.
fn name_tasks(tasks: &[String]) -> String {
    const NAMED: usize = 3;
    let mut out = tasks
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if tasks.len() > NAMED {
        out.push_str(&format!(" and {} more", tasks.len() - NAMED));
    }
    out
}

fn target(ctx: &Context) -> String {
    format!("{}/{}", ctx.spec.cluster, ctx.spec.service)
}

fn past_not_after(ctx: &Context) -> bool {
    ctx.spec.not_after.is_some_and(|t| ctx.now > t)
}

/// Why the run ends when its window (`notAfter`) has closed, saying how far it got.
fn window_closed(ctx: &Context, status: &RecycleStatus, what: &str) -> String {
    let (done, total) = status.progress();
    let at = ctx
        .spec
        .not_after
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    format!(
        "window closed at {at} {what}: {done}/{total} tasks recycled; no further batch was started"
    )
}

fn elapsed(ctx: &Context, since: Option<DateTime<Utc>>) -> Duration {
    since
        .and_then(|s| (ctx.now - s).to_std().ok())
        .unwrap_or_default()
}

/// Stable as docs/design.md means it: no deployment rolling, nothing pending,
/// running = desired, and every task meant to run is RUNNING and healthy.
/// A task told to stop still counts as running for a while, so the counters
/// alone are not enough.
pub(crate) fn stable(svc: &ServiceView, tasks: &[TaskView]) -> bool {
    let serving = tasks.iter().filter(|t| t.is_serving()).count() as u32;
    let meant = tasks.iter().filter(|t| t.desired_running).count() as u32;
    svc.deployment_in_progress().is_none()
        && svc.pending == 0
        && svc.running == svc.desired
        && serving == svc.desired
        && meant == svc.desired
}

/// What the tasks alone show of a step waiting for new tasks: it is not
/// done while a task meant to run is not serving (so not [`stable`]) or a
/// task of its batch still runs (so not done in `batch_in_flight`),
/// whatever the service's counts say. A batch task still meant to run is a
/// stop decided but not made, which the decision makes again: that never
/// reads as "not done" on the tasks alone.
pub(crate) fn tasks_show_unfinished(batch: &[String], tasks: &[TaskView]) -> bool {
    let in_batch = |t: &TaskView| batch.contains(&t.arn);
    if tasks.iter().any(|t| in_batch(t) && t.desired_running) {
        return false;
    }
    tasks.iter().any(|t| {
        (t.desired_running && !t.is_serving()) || (in_batch(t) && t.last_status == "RUNNING")
    })
}

fn describe_counts(svc: &ServiceView, tasks: &[TaskView]) -> String {
    let serving = tasks.iter().filter(|t| t.is_serving()).count();
    format!(
        "desired {}, running {}, pending {}, healthy {serving}",
        svc.desired, svc.running, svc.pending
    )
}

/// Ends the run through Restoring, whatever phase it is in.
fn end_via_restore(ctx: &Context, d: &mut Decision, phase: Phase, message: String) {
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
    s
}

fn pending(ctx: &Context, obs: &Observation, d: &mut Decision) {
    let s = &mut d.status;
    let svc = match &obs.service {
        Ok(svc) => svc,
        Err(reason) => {
            return s.transition(
                ctx.now,
                Phase::Failed,
                format!("cannot recycle {}: {reason}", target(ctx)),
            );
        }
    };
    if let Some(dep) = svc.deployment_in_progress() {
        s.message = format!(
            "waiting for deployment {} of {} to finish before starting",
            dep.id,
            target(ctx)
        );
        return;
    }
    let mut candidates: Vec<&TaskView> = obs
        .tasks
        .iter()
        .filter(|t| t.desired_running)
        .filter(|t| {
            ctx.spec
                .selector
                .as_ref()
                .is_none_or(|sel| sel.matches(t.started_at, ctx.now))
        })
        .collect();
    candidates.sort_by_key(|t| (t.started_at.is_none(), t.started_at, t.arn.clone()));
    let tasks: Vec<String> = candidates.iter().map(|t| t.arn.clone()).collect();
    s.started_at = Some(ctx.now);
    s.event(
        ctx.now,
        Reason::Started,
        format!("Starting task recycle for {}", target(ctx)),
    );
    s.event(
        ctx.now,
        Reason::Planned,
        format!(
            "Original desired count: {}, tasks: {}",
            svc.desired,
            tasks.len()
        ),
    );
    s.plan = Some(Plan {
        original_desired: svc.desired,
        original_scaling: obs.scaling,
        tasks: tasks.clone(),
        planned_at: ctx.now,
    });
    d.requeue = Some(Duration::ZERO);
    if ctx.spec.dry_run {
        return s.transition(
            ctx.now,
            Phase::Succeeded,
            format!(
                "dry run: would recycle {} task(s) of {} in batches of {}; nothing was changed",
                tasks.len(),
                target(ctx),
                ctx.spec.batch_size
            ),
        );
    }
    if tasks.is_empty() {
        return s.transition(
            ctx.now,
            Phase::Succeeded,
            format!(
                "nothing to recycle: no running task of {} matches",
                target(ctx)
            ),
        );
    }
    let (next, message) = if ctx.spec.maintain_capacity {
        (Phase::Surging, "plan made; adding spare capacity")
    } else {
        (
            Phase::Recycling,
            "plan made; recycling without spare capacity",
        )
    };
    s.transition(ctx.now, next, message);
}

fn surging(ctx: &Context, obs: &Observation, d: &mut Decision) {
    let svc = match &obs.service {
        Ok(svc) => svc,
        Err(reason) => {
            return end_via_restore(
                ctx,
                d,
                Phase::Failed,
                format!("{} became unavailable: {reason}", target(ctx)),
            );
        }
    };
    let size = ctx.spec.batch_size;
    let Some(surge) = d.status.surge else {
        if !before_start(ctx, svc.desired, d) {
            return;
        }
        let from = svc.desired;
        let to = from + size;
        if let Some(current) = obs.scaling {
            let wanted = ScalingSettings {
                dynamic_scaling_in_suspended: true,
                max: current.max.max(to),
                ..current
            };
            if let Some(plan) = d.status.plan.as_mut() {
                // The settings as they are now are what Restoring brings back.
                plan.original_scaling = Some(current);
            }
            if wanted != current {
                d.actions.push(Action::SetScaling(wanted));
                d.status.surge_scaling = Some(wanted);
            }
        }
        d.actions.push(Action::SetDesired { from, to });
        d.status.surge = Some(DesiredChange { from, to });
        d.status.step_started_at = Some(ctx.now);
        d.status.event(
            ctx.now,
            Reason::Surge,
            format!(
                "Increasing desired count from {from} to {to} to keep capacity during the recycle"
            ),
        );
        d.status.message = format!(
            "waiting for the spare capacity to be running and healthy ({})",
            describe_counts(svc, &obs.tasks)
        );
        return;
    };
    if svc.desired == surge.from {
        d.actions.push(Action::SetDesired {
            from: surge.from,
            to: surge.to,
        });
        return;
    }
    if stable(svc, &obs.tasks) && svc.desired >= surge.to {
        d.status.step_started_at = None;
        d.requeue = Some(Duration::ZERO);
        return d.status.transition(
            ctx.now,
            Phase::Recycling,
            "spare capacity is running and healthy",
        );
    }
    let since = d.status.step_started_at.unwrap_or(ctx.now);
    let step = causes::Step {
        since,
        now: ctx.now,
        batch: &[],
        ours: &d.status.stopped,
        noun: "spare task",
    };
    if elapsed(ctx, Some(since)) > ctx.spec.stability_timeout {
        let message = format!(
            "the spare capacity did not become stable within {} ({}){}",
            duration::format(ctx.spec.stability_timeout),
            describe_counts(svc, &obs.tasks),
            failure_cause(&step, svc, obs)
        );
        return end_via_restore(ctx, d, Phase::Failed, message);
    }
    if is_slow(ctx.spec, since, ctx.now) {
        d.status.message = format!("adding spare capacity; {}", slow_clauses(&step, svc, obs));
        return note_slow(&mut d.status, ctx.now, since);
    }
    d.status.message = and_targets(
        format!(
            "waiting for the spare capacity to be running and healthy ({})",
            describe_counts(svc, &obs.tasks)
        ),
        &obs.tasks,
    );
}

fn recycling(ctx: &Context, obs: &Observation, d: &mut Decision) {
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
    let (done, total) = d.status.progress();
    if !stable(svc, &obs.tasks) {
        // Someone else's deployment, a scale-out or a crash: wait, within the timeout.
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
        return;
    }
    if d.status.surge.is_none() && !before_start(ctx, svc.desired, d) {
        return;
    }
    let planned: Vec<String> = d
        .status
        .plan
        .as_ref()
        .map(|p| p.tasks.clone())
        .unwrap_or_default();
    let mut batch = Vec::new();
    for arn in planned {
        if batch.len() as u32 == ctx.spec.batch_size {
            break;
        }
        if d.status.stopped.contains(&arn) || d.status.skipped.contains(&arn) {
            continue;
        }
        if obs.tasks.iter().any(|t| t.arn == arn && t.desired_running) {
            batch.push(arn);
        } else {
            d.status.task_event(
                ctx.now,
                Reason::Skipped,
                &arn,
                format!("Task {arn} was already gone; skipped"),
            );
            d.status.skipped.push(arn);
        }
    }
    if batch.is_empty() {
        let recycled = d.status.recycled().count();
        let skipped = d.status.skipped.len();
        d.status.event(
            ctx.now,
            Reason::Completed,
            "Task recycle completed successfully",
        );
        return end_via_restore(
            ctx,
            d,
            Phase::Succeeded,
            format!("recycled {recycled} of {total} planned tasks ({skipped} already gone)"),
        );
    }
    let number = d.status.batches + 1;
    let told = hooks::Told {
        tasks: &batch,
        replacements: Vec::new(),
        desired: svc.desired,
    };
    if !hooks::passed(ctx, d, Point::BeforeBatch, number, told) {
        return;
    }
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
    let (done, _) = d.status.progress();
    d.status.message =
        format!("stopped {done}/{total}; waiting for the replacements to be running and healthy");
}

/// Asks the beforeStart hooks, once, before the run touches anything.
fn before_start(ctx: &Context, desired: u32, d: &mut Decision) -> bool {
    if !d.status.stopped.is_empty() {
        return true;
    }
    let tasks = d
        .status
        .plan
        .as_ref()
        .map(|p| p.tasks.clone())
        .unwrap_or_default();
    let told = hooks::Told {
        tasks: &tasks,
        replacements: Vec::new(),
        desired,
    };
    hooks::passed(ctx, d, Point::BeforeStart, 0, told)
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

/// The reason ECS keeps on the stopped task: it names the request.
pub(crate) fn stop_reason(ctx: &Context) -> String {
    format!("ecs-recycler: recycled by request {}", ctx.name)
}

fn batch_in_flight(ctx: &Context, svc: &ServiceView, obs: &Observation, d: &mut Decision) {
    let (done, total) = d.status.progress();
    // A stop decided but never made (the operator died in between) is made now.
    for arn in &d.status.batch {
        if obs.tasks.iter().any(|t| &t.arn == arn && t.desired_running) {
            d.actions.push(Action::StopTask {
                arn: arn.clone(),
                reason: stop_reason(ctx),
            });
        }
    }
    let old_still_running = obs
        .tasks
        .iter()
        .any(|t| d.status.batch.contains(&t.arn) && t.last_status == "RUNNING");
    if d.actions.is_empty() && !old_still_running && stable(svc, &obs.tasks) {
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
            let message = window_closed(ctx, &d.status, "after a batch");
            return end_via_restore(ctx, d, Phase::WindowClosed, message);
        }
        match d.status.wait_until {
            None if !ctx.spec.wait.is_zero() => {
                let wait = ctx.spec.wait;
                d.status.wait_until = chrono::Duration::from_std(wait).ok().map(|w| ctx.now + w);
                d.status.event(
                    ctx.now,
                    Reason::Recycled,
                    format!("Task {done} recycled, waiting {}", duration::format(wait)),
                );
                d.status.message = format!(
                    "{done}/{total} recycled; waiting {} before the next batch",
                    duration::format(wait)
                );
                d.requeue = Some(wait);
            }
            Some(until) if ctx.now < until => {
                d.requeue = (until - ctx.now).to_std().ok();
            }
            _ => {
                if ctx.spec.wait.is_zero() {
                    d.status
                        .event(ctx.now, Reason::Recycled, format!("Task {done} recycled"));
                }
                d.status.batch.clear();
                d.status.wait_until = None;
                d.status.step_started_at = None;
                d.status.message = format!("{done}/{total} recycled");
                d.requeue = Some(Duration::ZERO);
            }
        }
        return;
    }
    let since = d.status.step_started_at.unwrap_or(ctx.now);
    let step = causes::Step {
        since,
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

fn restoring(ctx: &Context, obs: &Observation, d: &mut Decision) {
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
            Some(change) => {
                note = format!(" Desired count restored: {} → {}.", change.from, change.to);
            }
        }
    }
    if let (Some(ours), Some(original), Some(current)) = (
        d.status.surge_scaling,
        d.status.plan.as_ref().and_then(|p| p.original_scaling),
        obs.scaling,
    ) {
        // Bring back what we changed; keep what others changed since.
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
    if d.actions.is_empty() {
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
    } else {
        d.status.message = format!("restoring capacity; then: {}", outcome.message);
        d.requeue = Some(Duration::ZERO);
    }
}

/// Why Restoring left the desired count as it found it.
fn left_alone(desired: u32, surge: DesiredChange) -> String {
    if desired == surge.from {
        format!("Desired count left at {desired}, as it was before the surge")
    } else {
        format!("Desired count left at {desired}, set by someone else during the run")
    }
}

/// Whether the decision reads the tasks: in every phase but Restoring,
/// which only puts the desired count and the scaling settings back.
pub(crate) fn needs_tasks(status: &RecycleStatus) -> bool {
    status.phase != Phase::Restoring
}

/// Whether the decision may read the scalable target: in every phase but
/// Recycling, so the batches go without the call — except once every
/// planned task is stopped, when this look may end the run and restore.
pub(crate) fn needs_scaling(status: &RecycleStatus) -> bool {
    let last_batch = status.plan.as_ref().is_some_and(|p| {
        p.tasks
            .iter()
            .all(|t| status.stopped.contains(t) || status.skipped.contains(t))
    });
    status.phase != Phase::Recycling || last_batch
}

#[cfg(test)]
mod tests;
