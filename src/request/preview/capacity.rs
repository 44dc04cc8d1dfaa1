//! What a dry run says of the ECS the service runs on: its capacity
//! strategy (or launch type), the room for the surge on EC2 (instances, CPU
//! and memory left) with a warning and what to do when there is none, the
//! tasks protected from scale-in and until when, and the share of the
//! tasks on Fargate Spot. Pure, from the dry run's look.

use chrono::{DateTime, Utc};

use crate::duration;
use crate::request::decide::{task_size, until_words};
use crate::request::observation::{Observation, ServiceView, StrategyItem, is_fargate};
use crate::request::spec::{ProtectedTasks, RecycleSpec};

/// The lines, each without its indent.
/// `planned` is how many tasks the run would recycle: the surge is sized
/// for its largest batch.
pub(super) fn lines(
    spec: &RecycleSpec,
    obs: &Observation,
    planned: usize,
    now: DateTime<Utc>,
) -> Vec<String> {
    let Ok(svc) = &obs.service else {
        return Vec::new();
    };
    let mut out = vec![strategy(svc, obs)];
    out.extend(room(spec, svc, obs, planned));
    out.extend(protected(spec, obs, now));
    out.extend(spot(obs));
    out.extend(
        obs.capacity
            .unread
            .iter()
            .map(|why| format!("Could not read everything about capacity and protection: {why}")),
    );
    out
}

/// "Capacity: capacity provider strategy cp-web (weight 1, base 0: managed
/// scaling on, target capacity 100%)", or the launch type.
fn strategy(svc: &ServiceView, obs: &Observation) -> String {
    if svc.strategy.is_empty() {
        return match svc.launch_type.as_deref() {
            Some("EC2") => "Capacity: launch type EC2, no capacity provider: nothing adds an instance when a task does not fit".into(),
            Some(other) => format!("Capacity: launch type {other}"),
            None => "Capacity: the cluster's default".into(),
        };
    }
    let items: Vec<String> = svc.strategy.iter().map(|s| item(s, obs)).collect();
    format!("Capacity: capacity provider strategy {}", items.join(", "))
}

fn item(s: &StrategyItem, obs: &Observation) -> String {
    let shares = format!("weight {}, base {}", s.weight, s.base);
    let provider = obs.capacity.providers.iter().find(|p| p.name == s.provider);
    match provider {
        _ if is_fargate(&s.provider) => format!("{} ({shares})", s.provider),
        Some(p) if p.managed_scaling => format!(
            "{} ({shares}: managed scaling on{}: ECS launches instances for tasks that do not fit)",
            s.provider,
            p.target_capacity
                .map(|t| format!(", target capacity {t}%"))
                .unwrap_or_default()
        ),
        Some(_) => format!(
            "{} ({shares}: managed scaling off: ECS launches no instance for it)",
            s.provider
        ),
        None => format!("{} ({shares})", s.provider),
    }
}

/// The room for the surge on EC2 instances, and what to do without it.
fn room(spec: &RecycleSpec, svc: &ServiceView, obs: &Observation, planned: usize) -> Vec<String> {
    let Some(room) = &obs.capacity.room else {
        return Vec::new();
    };
    let (cpu, memory) = task_size(&obs.tasks);
    let fit = |left: u32, need: u32| left.checked_div(need).unwrap_or(u32::MAX);
    let tasks_fit: u64 = room
        .iter()
        .map(|i| fit(i.cpu_left, cpu).min(fit(i.memory_left, memory)) as u64)
        .sum();
    let cpu_left: u64 = room.iter().map(|i| i.cpu_left as u64).sum();
    let memory_left: u64 = room.iter().map(|i| i.memory_left as u64).sum();
    let mut out = vec![format!(
        "Room: {} ACTIVE container instance(s) with {cpu_left} CPU units and {memory_left} MiB left in all; a task needs {cpu} CPU and {memory} MiB: room for {} more task(s)",
        room.len(),
        if tasks_fit > 10_000 {
            "many".to_string()
        } else {
            tasks_fit.to_string()
        }
    )];
    let largest = spec.largest_batch(planned) as u32;
    let surge = largest as u64;
    if !spec.maintain_capacity || tasks_fit >= surge {
        return out;
    }
    let grows = svc
        .strategy
        .iter()
        .filter(|s| !is_fargate(&s.provider))
        .any(|s| {
            obs.capacity
                .providers
                .iter()
                .any(|p| p.name == s.provider && p.managed_scaling)
        });
    let floor = svc.desired.saturating_sub(largest);
    if grows {
        out.push(format!(
            "The spare task(s) wait for an instance to be launched (launch, then warm-up: minutes); that wait is budgeted by capacityTimeout {} apart from stabilityTimeout. Without the wait, recycle in place with maintainCapacity: false (running falls to {floor} of {} while each replacement starts)",
            duration::format(spec.capacity_timeout),
            svc.desired
        ));
    } else {
        out.push(format!(
            "Warning: no room for the surge of {surge} task(s), and nothing adds an instance: the run would fail at its first look. Recycle in place with maintainCapacity: false (running falls to {floor} of {} while each replacement starts), or add capacity to the cluster",
            svc.desired
        ));
    }
    out
}

/// "Protected from scale-in: 2 tasks (0a1b until 14:05 UTC, ...)".
fn protected(spec: &RecycleSpec, obs: &Observation, now: DateTime<Utc>) -> Vec<String> {
    let named: Vec<String> = obs
        .protection
        .iter()
        .filter(|p| p.protected)
        .map(|p| format!("{}{}", super::short(&p.arn), until_words(p.until, now)))
        .collect();
    if named.is_empty() {
        return if obs.protection.is_empty() {
            Vec::new()
        } else {
            vec!["Protected from scale-in: none now (read again right before each batch)".into()]
        };
    }
    let what = match spec.protected_tasks {
        ProtectedTasks::Wait => format!(
            "never stopped while protected: they go last, once their protection ends, up to protectionWait {}; then they are left running",
            duration::format(spec.protection_wait)
        ),
        ProtectedTasks::Skip => {
            "never stopped while protected: left running (protectedTasks: skip)".to_string()
        }
    };
    vec![format!(
        "Protected from scale-in: {} task(s) ({}); {what}",
        named.len(),
        named.join(", ")
    )]
}

/// "Fargate Spot: 3 of 10 tasks (30%) ...".
fn spot(obs: &Observation) -> Vec<String> {
    let running: Vec<_> = obs.tasks.iter().filter(|t| t.desired_running).collect();
    let on_spot = running
        .iter()
        .filter(|t| t.capacity_provider.as_deref() == Some("FARGATE_SPOT"))
        .count();
    if on_spot == 0 {
        return Vec::new();
    }
    vec![format!(
        "Fargate Spot: {on_spot} of {} task(s) ({}%) run on FARGATE_SPOT; Spot may take any of them during the run: a planned task it takes is skipped, a replacement it takes is replaced by ECS, and neither fails the run",
        running.len(),
        on_spot * 100 / running.len().max(1)
    )]
}
