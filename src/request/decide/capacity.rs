//! Steps that wait for capacity. On EC2 capacity the spare task or a
//! replacement may not fit on any instance: with a capacity provider it
//! waits in PROVISIONING while ECS's managed scaling launches an instance
//! (minutes of launch, then warm-up); with launch type EC2 and no provider
//! nothing adds room and ECS makes no task at all. The wait is named in the
//! status while it lasts, budgeted by `capacityTimeout` apart from
//! `stabilityTimeout` (which counts only once it has ended), and the run
//! ends through Restoring, in ECS's words, as soon as the look shows that
//! ECS gave up on a waiting task or that nothing can add room.

use chrono::{DateTime, Utc};

use super::causes::{self, clip, count};
use super::ending::end_via_restore;
use super::messages::{name_tasks, target};
use super::timing::elapsed;
use super::{Context, Decision};
use crate::duration;
use crate::request::observation::{Evidence, Observation, ServiceView, TaskView};
use crate::request::status::{CapacityWait, Phase, Reason, RecycleStatus};

/// The words of ECS's service event when a task fits on no container instance.
const NO_ROOM: &str =
    "was unable to place a task because no container instance met all of its requirements";

/// Characters kept of ECS's words in a failure.
const WORDS_KEPT: usize = 400;

/// Whether the step's wait for capacity decided it: the run failed (ECS
/// gave up, nothing can add room, or the capacity timeout passed), or its
/// new tasks wait for an instance and the status says so. `noun` names
/// them ("spare task", "replacement"). Also notes the end of a wait.
pub(super) fn decided(
    ctx: &Context,
    svc: &ServiceView,
    obs: &Observation,
    d: &mut Decision,
    noun: &'static str,
) -> bool {
    let whose = format!("{noun} of {}", target(ctx));
    if let Some(why) = given_up(&d.status, obs, &whose) {
        return fail(ctx, d, why);
    }
    if let Some(why) = no_room(&d.status, svc, obs, &whose) {
        return no_room_seen(ctx, d, why);
    }
    let waiting: Vec<&TaskView> = obs
        .tasks
        .iter()
        .filter(|t| t.waits_for_capacity())
        .collect();
    let Some(first) = waiting.first() else {
        ended(ctx, d);
        return false;
    };
    let on = first.capacity_provider.clone().unwrap_or_default();
    // The wait began when ECS made the first task that waits, not when a
    // look first saw it.
    let began = waiting
        .iter()
        .filter_map(|t| t.created_at)
        .min()
        .filter(|c| *c <= ctx.now)
        .unwrap_or(ctx.now);
    let wait = d.status.capacity_wait.get_or_insert_with(|| CapacityWait {
        since: began,
        on: on.clone(),
        tasks: Vec::new(),
        ended: None,
    });
    if wait.ended.take().is_some() {
        // Waiting again (another instance for another task): the budget runs on.
        wait.on = on.clone();
    }
    for t in &waiting {
        if !wait.tasks.contains(&t.arn) {
            wait.tasks.push(t.arn.clone());
        }
    }
    let since = wait.since;
    let waited = elapsed(ctx, Some(since));
    let what = waiting_words(&on, &waiting, obs, ctx.now);
    if waited > ctx.spec.capacity_timeout {
        let (done, total) = d.status.progress();
        let why = format!(
            "the {whose} waited more than capacityTimeout {} for capacity: {what}; {done}/{total} tasks stopped",
            duration::format(ctx.spec.capacity_timeout)
        );
        return fail(ctx, d, why);
    }
    if !d
        .status
        .events
        .iter()
        .any(|e| e.reason == Reason::Capacity && e.at >= since)
    {
        d.status.event(ctx.now, Reason::Capacity, what.clone());
    }
    d.status.message = format!(
        "{what}; the {noun} counts against stabilityTimeout once placed (capacityTimeout {}, {} left)",
        duration::format(ctx.spec.capacity_timeout),
        duration::format(round(ctx.spec.capacity_timeout.saturating_sub(waited)))
    );
    true
}

/// "waiting for capacity provider cp-web to launch an instance: 1 task
/// PROVISIONING for 2m10s", and what the provider says of itself.
fn waiting_words(on: &str, waiting: &[&TaskView], obs: &Observation, now: DateTime<Utc>) -> String {
    let longest = waiting
        .iter()
        .filter_map(|t| t.created_at)
        .min()
        .and_then(|c| (now - c).to_std().ok())
        .map(|d| format!(" for {}", causes::coarse(d)))
        .unwrap_or_default();
    let provider = obs.capacity.providers.iter().find(|p| p.name == on);
    let note = match provider {
        Some(p) if !p.managed_scaling => {
            " (its managed scaling is off: ECS launches no instance for it; only its Auto Scaling group's own scaling or a person can)"
        }
        _ => "",
    };
    format!(
        "waiting for capacity provider {on} to launch an instance{note}: {} PROVISIONING{longest}",
        count(waiting.len(), "task")
    )
}

/// No room, and nothing adds any: said at the first look that finds it,
/// the run ended at the next look that still does. The facts of one look
/// are read one after another, so a task ECS placed in between (its
/// room already taken, the task not yet seen) must not end a run.
fn no_room_seen(ctx: &Context, d: &mut Decision, why: String) -> bool {
    let seen_before = d
        .status
        .capacity_wait
        .as_ref()
        .is_some_and(|w| w.on.is_empty() && w.ended.is_none());
    if seen_before {
        return fail(ctx, d, why);
    }
    d.status.capacity_wait = Some(CapacityWait {
        since: ctx.now,
        on: String::new(),
        tasks: Vec::new(),
        ended: None,
    });
    d.status.event(ctx.now, Reason::Capacity, why.clone());
    d.status.message = format!("{why}; the run ends if the next look finds no room either");
    true
}

/// A wait on record whose tasks are all placed now: it has ended, and
/// `stabilityTimeout` counts from here.
pub(super) fn ended(ctx: &Context, d: &mut Decision) {
    let Some(wait) = d.status.capacity_wait.as_mut() else {
        return;
    };
    if wait.ended.is_some() {
        return;
    }
    wait.ended = Some(ctx.now);
    let took = duration::format(round(elapsed(ctx, Some(wait.since))));
    let message = if wait.on.is_empty() {
        format!("ECS placed the task it could not place {took} earlier")
    } else {
        format!(
            "capacity provider {} placed the waiting tasks after {took}",
            wait.on
        )
    };
    d.status.event(ctx.now, Reason::Capacity, message);
}

/// ECS stopped a task that was waiting for capacity, before it was ever
/// placed: its provisioning timeout passed.
fn given_up(status: &RecycleStatus, obs: &Observation, whose: &str) -> Option<String> {
    let wait = status.capacity_wait.as_ref()?;
    let stopped: Vec<&TaskView> = obs
        .tasks
        .iter()
        .filter(|t| wait.tasks.contains(&t.arn) && !t.desired_running)
        .filter(|t| t.container_instance.is_none())
        .collect();
    let first = stopped.first()?;
    let reason = first.stopped_reason.clone().unwrap_or_default();
    let code = first.stop_code.clone().unwrap_or_default();
    let n = if stopped.len() == 1 {
        "a".to_string()
    } else {
        stopped.len().to_string()
    };
    Some(format!(
        "ECS gave up on {n} {whose} waiting for capacity provider {}: {} ({code})",
        wait.on,
        clip(reason.trim_end_matches('.'), WORDS_KEPT)
    ))
}

/// Launch type EC2 with no capacity provider, a task ECS could not place
/// (its service event says so since the step began), none of the run's own
/// stopped tasks still holding room, and no ACTIVE instance with room for
/// one: nothing will add room.
fn no_room(
    status: &RecycleStatus,
    svc: &ServiceView,
    obs: &Observation,
    whose: &str,
) -> Option<String> {
    let since = status.step_started_at?;
    if !needs_room(svc, &obs.evidence, &obs.tasks, since) {
        return None;
    }
    let ours_still_hold = obs
        .tasks
        .iter()
        .any(|t| status.batch.contains(&t.arn) && t.last_status != "STOPPED");
    let room = obs.capacity.room.as_ref()?;
    let (cpu, memory) = task_size(&obs.tasks);
    let fits = room
        .iter()
        .any(|i| i.cpu_left >= cpu && i.memory_left >= memory);
    if ours_still_hold || fits {
        return None;
    }
    let event = placement_event(&obs.evidence, since)?;
    let left: Vec<String> = room
        .iter()
        .map(|i| format!("{} CPU and {} MiB", i.cpu_left, i.memory_left))
        .collect();
    let instances = if room.is_empty() {
        "no ACTIVE container instance".to_string()
    } else {
        format!(
            "{} with {} left, and a task needs {cpu} CPU and {memory} MiB",
            count(room.len(), "instance"),
            name_tasks(&left)
        )
    };
    Some(format!(
        "no room for the {whose}: launch type EC2 and no capacity provider, so nothing adds an instance; {instances}; ECS: {}",
        clip(&event, WORDS_KEPT)
    ))
}

/// Whether a look should read the cluster's room: launch type EC2 with no
/// capacity provider, a task the service wants and has not made, and ECS's
/// event that it could not place one since `since`. The decision's
/// judgement, handed to the look (see [`crate::request::look`]).
pub(crate) fn needs_room(
    svc: &ServiceView,
    evidence: &Evidence,
    tasks: &[TaskView],
    since: DateTime<Utc>,
) -> bool {
    let meant = tasks.iter().filter(|t| t.desired_running).count() as u32;
    svc.on_fixed_ec2() && svc.desired > meant && placement_event(evidence, since).is_some()
}

fn placement_event(evidence: &Evidence, since: DateTime<Utc>) -> Option<String> {
    evidence
        .events
        .iter()
        .find(|e| e.at >= since && e.message.contains(NO_ROOM))
        .map(|e| e.message.clone())
}

/// The CPU units and MiB one task of the service reserves, as ECS answers
/// them for its tasks (0 when it does not say).
pub(crate) fn task_size(tasks: &[TaskView]) -> (u32, u32) {
    let sized = tasks.iter().find(|t| t.cpu.is_some() || t.memory.is_some());
    sized.map_or((0, 0), |t| (t.cpu.unwrap_or(0), t.memory.unwrap_or(0)))
}

fn fail(ctx: &Context, d: &mut Decision, why: String) -> bool {
    end_via_restore(ctx, d, Phase::Failed, why);
    true
}

/// When `stabilityTimeout` starts counting for a step begun at `step`: once
/// its wait for capacity, if it had one, has ended.
pub(crate) fn stability_since(status: &RecycleStatus, step: DateTime<Utc>) -> DateTime<Utc> {
    match status.capacity_wait.as_ref().and_then(|w| w.ended) {
        Some(ended) => ended.max(step),
        None => step,
    }
}

fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}
