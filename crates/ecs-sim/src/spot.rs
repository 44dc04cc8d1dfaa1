//! Fargate Spot interruptions, driven through the control API
//! (`/_sim/spot-interruptions`): the warning as ECS sends it (the task
//! told to stop with "Your Spot Task was interrupted." and stop code
//! `TerminationNotice`, its service scheduler free to launch a replacement
//! at once), then the task STOPPED two minutes later (divided by
//! `ecsTimeScale`) with stop code `SpotInterruption`. Only tasks launched
//! on FARGATE_SPOT can be interrupted.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{LastStatus, StopCause};
use crate::world::World;

/// ECS's words for a task Fargate Spot takes back (its documented task
/// state change event).
pub const SPOT_REASON: &str = "Your Spot Task was interrupted.";

/// The two minutes' warning Fargate Spot gives, before `ecsTimeScale`.
pub const SPOT_WARNING: f64 = 120.0;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InterruptRequest {
    cluster: String,
    service: Option<String>,
    count: Option<usize>,
    /// One task, by ARN or id.
    task: Option<String>,
}

/// `POST /_sim/spot-interruptions`: interrupts `count` (1 by default)
/// running FARGATE_SPOT tasks of a service, or one task; answers their ARNs
/// and when they stop.
pub fn interrupt(world: &mut World, body: Value, now: f64) -> Result<Value, String> {
    let req: InterruptRequest =
        serde_json::from_value(body).map_err(|e| format!("invalid request: {e}"))?;
    let cluster = req.cluster;
    let on_spot = |t: &crate::model::Task| t.capacity_provider.as_deref() == Some("FARGATE_SPOT");
    let arns: Vec<String> = match (&req.service, &req.task) {
        (Some(service), None) => {
            let count = req.count.unwrap_or(1);
            if count == 0 {
                return Err("count: at least 1".into());
            }
            if !world
                .records
                .services
                .contains_key(&(cluster.clone(), service.clone()))
            {
                return Err(format!("service {cluster}/{service} does not exist"));
            }
            let candidates: Vec<String> = world
                .live_tasks(&cluster, service)
                .filter(|t| t.desired_running && t.last_status == LastStatus::Running && on_spot(t))
                .map(|t| t.arn.clone())
                .collect();
            if candidates.len() < count {
                return Err(format!(
                    "service {cluster}/{service} has {} running tasks on FARGATE_SPOT, fewer than the {count} asked for; only tasks on FARGATE_SPOT can be interrupted",
                    candidates.len()
                ));
            }
            candidates.into_iter().take(count).collect()
        }
        (None, Some(task)) => {
            let t = world
                .records
                .tasks
                .values()
                .find(|t| t.cluster == cluster && (t.arn == *task || t.id == *task))
                .ok_or_else(|| format!("task {task} does not exist in cluster {cluster}"))?;
            if !on_spot(t) {
                return Err(format!(
                    "task {task} runs on {}, not FARGATE_SPOT: only tasks on FARGATE_SPOT can be interrupted",
                    t.capacity_provider.as_deref().unwrap_or(t.launch_type)
                ));
            }
            if !t.desired_running {
                return Err(format!("task {task} is already stopping"));
            }
            vec![t.arn.clone()]
        }
        _ => return Err("give either service (and count) or task".into()),
    };
    let wait = SPOT_WARNING / world.ecs_time_scale;
    world.timeline.call(
        now,
        "_sim:SpotInterruption",
        json!({"cluster": cluster, "tasks": arns, "stopsAt": now + wait}),
        None,
    );
    for arn in &arns {
        world.request_stop_after(
            arn,
            SPOT_REASON.into(),
            StopCause::SpotInterruption,
            "TerminationNotice",
            wait,
            now,
        );
    }
    Ok(json!({"interrupted": arns, "stopsAt": now + wait}))
}
