//! Tasks: ListTasks, DescribeTasks, StopTask, and a task as DescribeTasks
//! answers it (containers, network interface, times, stop reason).

use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{page, page_size, page_token};
use super::{Result, cluster_name, service_key, task_arn};
use crate::model::{LastStatus, StopCause, Task};
use crate::wire::{ApiError, required};
use crate::world::World;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListTasksRequest {
    cluster: Option<String>,
    service_name: Option<String>,
    desired_status: Option<String>,
    started_by: Option<String>,
    family: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub(super) fn list_tasks(world: &mut World, req: ListTasksRequest) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let max = page_size(req.max_results, 100)?;
    let after = page_token(req.next_token.as_deref())?;
    let want_running = match req.desired_status.as_deref() {
        None | Some("RUNNING") => Some(true),
        Some("STOPPED") => Some(false),
        Some("PENDING") => None,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "desiredStatus: {other:?} is not one of RUNNING, PENDING, STOPPED."
            )));
        }
    };
    let service = match req.service_name.as_deref() {
        Some(s) => Some(service_key(world, &cluster, s)?.1),
        None => None,
    };
    let Some(want_running) = want_running else {
        return Ok(json!({"taskArns": []}));
    };
    let matches = |t: &&Task| {
        t.cluster == cluster
            && t.desired_running == want_running
            && service
                .as_ref()
                .is_none_or(|s| t.service.as_ref() == Some(s))
            && req.started_by.as_ref().is_none_or(|b| &t.started_by == b)
            && req
                .family
                .as_ref()
                .is_none_or(|f| t.task_definition_arn.contains(&format!("/{f}:")))
    };
    let arns: Vec<String> = match (&service, want_running) {
        // The live index holds every running task of the service, in ARN order.
        (Some(s), true) => world
            .live_tasks(&cluster, s)
            .filter(matches)
            .map(|t| t.arn.clone())
            .collect(),
        _ => world
            .records
            .tasks
            .values()
            .filter(matches)
            .map(|t| t.arn.clone())
            .collect(),
    };
    Ok(page("taskArns", arns.into_iter(), after, max))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeTasksRequest {
    cluster: Option<String>,
    tasks: Option<Vec<String>>,
}

pub(super) fn describe_tasks(world: &mut World, req: DescribeTasksRequest) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = req.tasks.unwrap_or_default();
    if given.is_empty() || given.len() > 100 {
        return Err(ApiError::invalid_parameter(format!(
            "tasks: between 1 and 100 tasks can be described at once; {} were given.",
            given.len()
        )));
    }
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for g in &given {
        let arn = task_arn(world, &cluster, g);
        match world
            .records
            .tasks
            .get(&arn)
            .filter(|t| t.cluster == cluster)
        {
            Some(t) => tasks.push(task_json(world, t)),
            None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
        }
    }
    Ok(json!({"tasks": tasks, "failures": failures}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StopTaskRequest {
    cluster: Option<String>,
    task: Option<String>,
    reason: Option<String>,
}

pub(super) fn stop_task(
    world: &mut World,
    req: StopTaskRequest,
    call: usize,
    now: f64,
) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = required(req.task, || {
        ApiError::invalid_parameter("task is required.")
    })?;
    let reason = req.reason.unwrap_or_default();
    if reason.len() > 1024 {
        return Err(ApiError::invalid_parameter(
            "reason: at most 1024 characters are allowed.",
        ));
    }
    let arn = task_arn(world, &cluster, &given);
    if world
        .records
        .tasks
        .get(&arn)
        .is_none_or(|t| t.cluster != cluster)
    {
        return Err(ApiError::invalid_parameter(
            "The referenced task was not found.",
        ));
    }
    world.request_stop(
        &arn,
        reason,
        StopCause::StopTask { call },
        "UserInitiated",
        now,
    );
    let task = &world.records.tasks[&arn];
    Ok(json!({"task": task_json(world, task)}))
}

pub(crate) fn task_json(world: &World, t: &Task) -> Value {
    let td = world.find_task_definition(&t.task_definition_arn);
    let stamp = |v: Option<f64>| v.map(|x| world.epoch(x));
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|c| {
            let mut v = json!({
                "containerArn": world.arns.container(&t.cluster, &t.id, &c.name),
                "taskArn": t.arn,
                "name": c.name,
                "image": c.image,
                "imageDigest": image_digest(&c.image),
                "lastStatus": container_status(t.last_status),
                "healthStatus": if c.has_health_check { t.health.as_str() } else { "UNKNOWN" },
                "networkInterfaces": [{
                    "attachmentId": t.eni.attachment_id,
                    "privateIpv4Address": t.eni.private_ip,
                }],
            });
            if t.last_status == LastStatus::Stopped {
                let exit = if t.stop_code == Some("EssentialContainerExited") {
                    1
                } else {
                    0
                };
                v["exitCode"] = json!(exit);
            }
            v
        })
        .collect();
    let mut v = json!({
        "taskArn": t.arn,
        "clusterArn": world.arns.cluster(&t.cluster),
        "taskDefinitionArn": t.task_definition_arn,
        "lastStatus": t.last_status.as_str(),
        "desiredStatus": if t.desired_running { "RUNNING" } else { "STOPPED" },
        "healthStatus": t.health.as_str(),
        "createdAt": world.epoch(t.created_at),
        "startedBy": t.started_by,
        "launchType": t.launch_type,
        "availabilityZone": format!("{}a", world.arns.region),
        "containers": containers,
        "version": t.version,
        "cpu": td.and_then(|d| d.task_cpu.clone()).unwrap_or_else(|| size(t.needs.cpu, 256)),
        "memory": td.and_then(|d| d.task_memory.clone()).unwrap_or_else(|| size(t.needs.memory, 512)),
        "connectivity": if t.placed { "CONNECTED" } else { "DISCONNECTED" },
        "attachments": [crate::service_targets::attachment_json(world, t)],
    });
    if let Some(service) = &t.service {
        v["group"] = json!(format!("service:{service}"));
    }
    if let Some(p) = &t.capacity_provider {
        v["capacityProviderName"] = json!(p);
    }
    if let Some(ci) = &t.container_instance {
        v["containerInstanceArn"] = json!(ci);
    }
    for (field, value) in [
        ("startedAt", stamp(t.started_at)),
        ("stoppingAt", stamp(t.stopping_at)),
        ("stoppedAt", stamp(t.stopped_at)),
        ("executionStoppedAt", stamp(t.stopped_at)),
    ] {
        if let Some(value) = value {
            v[field] = json!(value);
        }
    }
    if let Some(reason) = &t.stopped_reason {
        v["stoppedReason"] = json!(reason);
    }
    if let Some(code) = t.stop_code {
        v["stopCode"] = json!(code);
    }
    v
}

/// What a task without task-level sizes answers: its containers' sum, or
/// Fargate's smallest size when they name none.
fn size(summed: i64, smallest: i64) -> String {
    if summed > 0 { summed } else { smallest }.to_string()
}

fn container_status(task: LastStatus) -> &'static str {
    match task {
        LastStatus::Provisioning | LastStatus::Pending | LastStatus::Activating => "PENDING",
        LastStatus::Running | LastStatus::Deactivating => "RUNNING",
        _ => "STOPPED",
    }
}

/// The digest ECS resolved the container's image to when the deployment
/// began (software version consistency): the digest an image written as
/// `name@sha256:...` names, or, for a tag, a stand-in the simulator makes
/// from the image's name — the same for every task started from it, as
/// ECS starts every task of a deployment from one digest.
fn image_digest(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.to_string();
    }
    // FNV-1a, four lanes: stable across runs and platforms.
    let mut out = String::from("sha256:");
    for lane in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ lane;
        for b in image.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}
