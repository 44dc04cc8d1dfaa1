//! Task scale-in protection: UpdateTaskProtection and GetTaskProtection
//! with ECS's limits (up to 10 tasks a call to update, 100 to read;
//! `expiresInMinutes` 1 to 2880, 120 by default) and its failures (`MISSING`
//! for a task not found, `TASK_NOT_VALID` for one outside a service or
//! already stopped). Protection expires on the simulator's clock, minutes
//! divided by `ecsTimeScale`; service scale-in and deployments skip
//! protected tasks (see `scheduler`), StopTask does not look at it.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::ecs::{Result, cluster_name, task_arn};
use crate::model::{LastStatus, Task};
use crate::wire::{ApiError, parse, required};
use crate::world::World;

/// ECS's default protection, in minutes.
const DEFAULT_MINUTES: i64 = 120;

pub fn handle(world: &mut World, op: &str, body: &Value, now: f64) -> Option<Result<Value>> {
    Some(match op {
        "UpdateTaskProtection" => parse(body).and_then(|r| update(world, r, now)),
        "GetTaskProtection" => parse(body).and_then(|r| get(world, r, now)),
        _ => return None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    cluster: Option<String>,
    tasks: Option<Vec<String>>,
    protection_enabled: Option<bool>,
    expires_in_minutes: Option<i64>,
}

/// The task a given ARN or id names, or the failure ECS answers for it.
fn resolve(world: &World, cluster: &str, given: &str) -> std::result::Result<String, Value> {
    let arn = task_arn(world, cluster, given);
    match world
        .records
        .tasks
        .get(&arn)
        .filter(|t| t.cluster == cluster)
    {
        None => Err(json!({"arn": arn, "reason": "MISSING"})),
        Some(t) if t.service.is_none() => Err(json!({"arn": arn, "reason": "TASK_NOT_VALID",
            "detail": "The task is not part of a service."})),
        Some(t) if !t.desired_running || t.last_status == LastStatus::Stopped => {
            Err(json!({"arn": arn, "reason": "TASK_NOT_VALID",
                       "detail": "The task is stopping or stopped."}))
        }
        Some(_) => Ok(arn),
    }
}

fn update(world: &mut World, req: UpdateRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let tasks = req.tasks.unwrap_or_default();
    if tasks.is_empty() || tasks.len() > 10 {
        return Err(ApiError::invalid_parameter(format!(
            "tasks: between 1 and 10 tasks can be updated at once; {} were given.",
            tasks.len()
        )));
    }
    let enabled = required(req.protection_enabled, || {
        ApiError::invalid_parameter("protectionEnabled is required.")
    })?;
    let minutes = req.expires_in_minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=2880).contains(&minutes) {
        return Err(ApiError::invalid_parameter(format!(
            "expiresInMinutes: {minutes} is outside 1..2880."
        )));
    }
    let until = now + minutes as f64 * 60.0 / world.ecs_time_scale;
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for given in &tasks {
        match resolve(world, &cluster, given) {
            Err(f) => failures.push(f),
            Ok(arn) => {
                if let Some(t) = world.records.tasks.get_mut(&arn) {
                    t.protected_until = enabled.then_some(until);
                }
                protected.push(protection_json(world, &world.records.tasks[&arn], now));
            }
        }
    }
    world.timeline.call(
        now,
        "_sim:TaskProtection",
        json!({"cluster": cluster, "enabled": enabled, "until": enabled.then_some(until),
               "tasks": protected.iter().map(|p| p["taskArn"].clone()).collect::<Vec<_>>()}),
        None,
    );
    Ok(json!({"protectedTasks": protected, "failures": failures}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetRequest {
    cluster: Option<String>,
    tasks: Option<Vec<String>>,
}

fn get(world: &mut World, req: GetRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = req.tasks.unwrap_or_default();
    if given.len() > 100 {
        return Err(ApiError::invalid_parameter(format!(
            "tasks: at most 100 tasks can be read at once; {} were given.",
            given.len()
        )));
    }
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for g in &given {
        match resolve(world, &cluster, g) {
            Err(f) => failures.push(f),
            Ok(arn) => protected.push(protection_json(world, &world.records.tasks[&arn], now)),
        }
    }
    Ok(json!({"protectedTasks": protected, "failures": failures}))
}

fn protection_json(world: &World, t: &Task, now: f64) -> Value {
    let mut v = json!({"taskArn": t.arn, "protectionEnabled": t.is_protected(now)});
    if let Some(until) = t.protected_until.filter(|_| t.is_protected(now)) {
        v["expirationDate"] = json!(world.epoch(until));
    }
    v
}
