//! The words the decision writes into a status: the service named, its
//! counts, what a slow step waits for and why, why a step failed, and the
//! closed window's account of how far the run got. Shared by every phase,
//! so one situation reads the same wherever it is met.

use chrono::{DateTime, Utc};

use super::Context;
use super::causes::{self, Tense};
use crate::request::observation::{Observation, ServiceView, TaskView};
use crate::request::status::{Reason, RecycleStatus};

/// `message`, and what targets keep tasks from serving, if any.
pub(super) fn and_targets(message: String, tasks: &[TaskView]) -> String {
    match causes::waiting_for_targets(tasks) {
        Some(targets) => format!("{message}; {targets}"),
        None => message,
    }
}

/// What a slow step waits for and why, as clauses of its status message.
pub(super) fn slow_clauses(step: &causes::Step, svc: &ServiceView, obs: &Observation) -> String {
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
pub(super) fn failure_cause(step: &causes::Step, svc: &ServiceView, obs: &Observation) -> String {
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
pub(super) fn note_slow(s: &mut RecycleStatus, now: DateTime<Utc>, since: DateTime<Utc>) {
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
pub(super) fn name_tasks(tasks: &[String]) -> String {
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

pub(super) fn target(ctx: &Context) -> String {
    format!("{}/{}", ctx.spec.cluster, ctx.spec.service)
}

/// Why the run ends when its window (`notAfter`) has closed, saying how far it got.
pub(super) fn window_closed(ctx: &Context, status: &RecycleStatus, what: &str) -> String {
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

pub(super) fn describe_counts(svc: &ServiceView, tasks: &[TaskView]) -> String {
    let serving = tasks.iter().filter(|t| t.is_serving()).count();
    format!(
        "desired {}, running {}, pending {}, healthy {serving}",
        svc.desired, svc.running, svc.pending
    )
}
