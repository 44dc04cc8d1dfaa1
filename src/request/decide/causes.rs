//! Why a step is slow or failing, in ECS's own words: what it still waits
//! for (each new task's state and for how long), the new tasks ECS stopped
//! and their `stoppedReason` with a count, the latest service event that
//! names a problem, and a deployment's failed tasks or rollout reason. Pure,
//! from the observation; every part is bounded so that a cause never makes
//! a record large.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::duration;
use crate::request::observation::{Observation, TaskView};

/// Tasks listed by state before "and N more".
const TASKS_NAMED: usize = 3;
/// Distinct stop reasons named.
const REASONS_NAMED: usize = 3;
/// Characters kept of one reason or one service event.
const REASON_CHARS: usize = 160;
const EVENT_CHARS: usize = 300;

/// The step being explained.
pub(super) struct Step<'a> {
    /// When it began: only what happened since counts.
    pub since: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The tasks it stopped (the batch in flight); empty while surging.
    pub batch: &'a [String],
    /// Every planned task stopped so far: ECS's reasons for those are ours.
    pub ours: &'a [String],
    /// What its new tasks are called: "replacement" or "spare task".
    pub noun: &'static str,
}

/// What the step still waits for, e.g. "waiting for 1 replacement:
/// PROVISIONING for 40s"; `None` when its tasks show nothing to wait for.
pub(super) fn waiting_for(step: &Step, desired: u32, tasks: &[TaskView]) -> Option<String> {
    let awaited: Vec<&TaskView> = tasks
        .iter()
        .filter(|t| t.desired_running && !t.is_running_healthy())
        .collect();
    let meant = tasks.iter().filter(|t| t.desired_running).count() as u32;
    let unlaunched = desired.saturating_sub(meant);
    let old_running = tasks
        .iter()
        .filter(|t| step.batch.contains(&t.arn) && t.last_status == "RUNNING")
        .count();
    let mut parts = Vec::new();
    let waited = awaited.len() + unlaunched as usize;
    if waited > 0 {
        let mut states: Vec<String> = awaited
            .iter()
            .take(TASKS_NAMED)
            .map(|t| state(t, step.now))
            .collect();
        if awaited.len() > TASKS_NAMED {
            states.push(format!("and {} more", awaited.len() - TASKS_NAMED));
        }
        if unlaunched > 0 {
            states.push(format!("{unlaunched} not launched yet"));
        }
        parts.push(format!(
            "waiting for {}: {}",
            count(waited, step.noun),
            states.join(", ")
        ));
    }
    parts.extend(waiting_for_targets(tasks));
    if old_running > 0 {
        parts.push(format!(
            "{} still RUNNING",
            count(old_running, "stopped task")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The targets that keep running, healthy tasks from serving, e.g.
/// "waiting for 1 target: initial in tg/web-80"; `None` when none does.
pub(super) fn waiting_for_targets(tasks: &[TaskView]) -> Option<String> {
    let waiting: Vec<String> = tasks
        .iter()
        .filter(|t| t.desired_running && t.awaits_targets())
        .flat_map(|t| t.targets.iter().filter(|x| x.state != "healthy"))
        .map(|x| match x.reason.as_deref() {
            Some(reason) if x.state == "unhealthy" => {
                format!("{} in {} ({reason})", x.state, x.group)
            }
            _ => format!("{} in {}", x.state, x.group),
        })
        .collect();
    if waiting.is_empty() {
        return None;
    }
    let mut named: Vec<String> = waiting.iter().take(TASKS_NAMED).cloned().collect();
    if waiting.len() > TASKS_NAMED {
        named.push(format!("and {} more", waiting.len() - TASKS_NAMED));
    }
    Some(format!(
        "waiting for {}: {}",
        count(waiting.len(), "target"),
        named.join(", ")
    ))
}

/// "PROVISIONING for 40s", "RUNNING, health UNHEALTHY, for 12s".
fn state(t: &TaskView, now: DateTime<Utc>) -> String {
    let since = |at: Option<DateTime<Utc>>| {
        at.and_then(|at| (now - at).to_std().ok())
            .map(|d| format!(" for {}", coarse(d)))
            .unwrap_or_default()
    };
    if t.last_status == "RUNNING" {
        format!("RUNNING, health {},{}", t.health, since(t.started_at))
    } else {
        format!("{}{}", t.last_status, since(t.created_at))
    }
}

/// Coarse enough that a status saying how long does not change at every look.
pub(super) fn coarse(d: Duration) -> String {
    let s = d.as_secs();
    let rounded = match s {
        0..10 => s,
        10..120 => s / 10 * 10,
        120..3600 => s / 60 * 60,
        _ => s / 600 * 600,
    };
    duration::format(Duration::from_secs(rounded))
}

/// How the cause is introduced: while slow, or in the failure.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tense {
    Slow,
    Failed,
}

/// The causes ECS gives, each a clause; empty when it gives none.
pub(super) fn why(step: &Step, obs: &Observation, tense: Tense) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(stopped) = stopped_new_tasks(step, obs) {
        out.push(stopped);
    }
    let latest = obs
        .evidence
        .events
        .iter()
        .find(|e| e.at >= step.since && names_a_problem(&e.message));
    if let Some(e) = latest {
        let lead = match tense {
            Tense::Slow => "service event",
            Tense::Failed => "latest service event",
        };
        out.push(format!("{lead}: {}", clip(&e.message, EVENT_CHARS)));
    }
    if let Ok(svc) = &obs.service {
        for note in &obs.evidence.deployments {
            let failed = svc
                .deployments
                .iter()
                .any(|d| d.id == note.id && d.rollout == "FAILED");
            if failed {
                out.push(format!(
                    "deployment {} failed: {}",
                    note.id,
                    clip(&note.rollout_reason, REASON_CHARS)
                ));
            } else if note.failed_tasks > 0 {
                out.push(format!(
                    "deployment {} has {}",
                    note.id,
                    count(note.failed_tasks as usize, "failed task")
                ));
            }
        }
    }
    out
}

/// "8 replacement tasks stopped: Essential container in task exited", with
/// a count per reason when there are several.
fn stopped_new_tasks(step: &Step, obs: &Observation) -> Option<String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for t in &obs.evidence.stopped {
        let new = t.created_at.is_some_and(|c| c >= step.since);
        if !new || step.ours.contains(&t.arn) {
            continue;
        }
        let reason = match (t.stopped_reason.as_str(), t.stop_code.as_str()) {
            ("", "") => "no reason given".to_string(),
            ("", code) => code.to_string(),
            (reason, _) => clip(reason, REASON_CHARS),
        };
        *reasons.entry(reason).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return None;
    }
    let mut ranked: Vec<(String, usize)> = reasons.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let what = format!(
        "{} stopped",
        count(total, &format!("{} task", bare(step.noun)))
    );
    if ranked.len() == 1 {
        return Some(format!("{what}: {}", ranked[0].0));
    }
    let mut named: Vec<String> = ranked
        .iter()
        .take(REASONS_NAMED)
        .map(|(reason, n)| format!("{reason} ({n})"))
        .collect();
    if ranked.len() > REASONS_NAMED {
        named.push(format!("{} other reasons", ranked.len() - REASONS_NAMED));
    }
    Some(format!("{what}: {}", named.join(", ")))
}

/// "replacement" from "replacement", "spare" from "spare task".
fn bare(noun: &str) -> &str {
    noun.strip_suffix(" task").unwrap_or(noun)
}

/// Whether a service event says something is wrong, rather than that the
/// scheduler did its routine work.
fn names_a_problem(message: &str) -> bool {
    const ROUTINE: [&str; 6] = [
        "has started",
        "has stopped",
        "has reached a steady state",
        "deployment completed",
        "registered",
        "has begun draining",
    ];
    !ROUTINE.iter().any(|r| message.contains(r))
}

/// "1 replacement", "2 replacements", "3 spare tasks".
pub(super) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// At most `max` characters, cut at a character boundary with "…".
pub(super) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
