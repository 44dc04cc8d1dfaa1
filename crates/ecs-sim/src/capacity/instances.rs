//! Container instances over the wire: RegisterContainerInstance as the ECS
//! agent calls it (its `totalResources` CPU and MEMORY), the instances an
//! Auto Scaling group launches registered the same way,
//! DeregisterContainerInstance, ListContainerInstances and
//! DescribeContainerInstances with registered and remaining resources and
//! the counts of running and pending tasks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{ContainerInstance, InstanceStatus};
use crate::ecs::{Result, cluster_name, page, page_size, page_token};
use crate::model::{LastStatus, Needs};
use crate::wire::{ApiError, required};
use crate::world::World;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResourceInput {
    name: Option<String>,
    integer_value: Option<i64>,
    long_value: Option<i64>,
    double_value: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RegisterRequest {
    cluster: Option<String>,
    total_resources: Option<Vec<ResourceInput>>,
    instance_identity_document: Option<String>,
}

pub(super) fn register(world: &mut World, req: RegisterRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let resources = req.total_resources.unwrap_or_default();
    let amount = |name: &str| {
        resources
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
            .and_then(|r| {
                r.integer_value
                    .or(r.long_value)
                    .or(r.double_value.map(|d| d as i64))
            })
    };
    let (Some(cpu), Some(memory)) = (amount("CPU"), amount("MEMORY")) else {
        return Err(ApiError::invalid_parameter(
            "totalResources: CPU and MEMORY are required.",
        ));
    };
    if cpu < 0 || memory < 0 {
        return Err(ApiError::invalid_parameter(
            "totalResources: CPU and MEMORY must not be negative.",
        ));
    }
    let ec2 = req
        .instance_identity_document
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|d| d.get("instanceId")?.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("i-{}", world.random_hex(17)));
    let arn = world.register_instance(&cluster, Needs { cpu, memory }, ec2, None, now);
    Ok(json!({"containerInstance": instance_json(world, &arn)}))
}

impl World {
    /// A new ACTIVE container instance of `cluster`; answers its ARN.
    pub fn register_instance(
        &mut self,
        cluster: &str,
        registered: Needs,
        ec2_instance_id: String,
        capacity_provider: Option<String>,
        at: f64,
    ) -> String {
        let id = self.random_hex(32);
        let arn = self.arns.container_instance(cluster, &id);
        self.capacity.instances.insert(
            arn.clone(),
            ContainerInstance {
                id,
                arn: arn.clone(),
                cluster: cluster.to_string(),
                ec2_instance_id: ec2_instance_id.clone(),
                registered,
                status: InstanceStatus::Active,
                capacity_provider,
                registered_at: at,
                version: 0,
            },
        );
        self.timeline
            .instance_registered(&arn, cluster, &ec2_instance_id, at);
        self.emit_instance_change(&arn, at);
        arn
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeregisterRequest {
    cluster: Option<String>,
    container_instance: Option<String>,
    force: Option<bool>,
}

pub(super) fn deregister(world: &mut World, req: DeregisterRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = required(req.container_instance, || {
        ApiError::invalid_parameter("containerInstance is required.")
    })?;
    let arn = instance_arn(world, &cluster, &given)?;
    if world.tasks_on(&arn).next().is_some() && !req.force.unwrap_or(false) {
        return Err(ApiError::invalid_parameter(
            "The container instance has tasks that are not stopped; stop them first, or deregister it with force.",
        ));
    }
    if let Some(ci) = world.capacity.instances.get_mut(&arn) {
        ci.status = InstanceStatus::Inactive;
    }
    world.emit_instance_change(&arn, now);
    world.timeline.instance_deregistered(&arn, now);
    Ok(json!({"containerInstance": instance_json(world, &arn)}))
}

/// The ARN of an instance of `cluster` given by ARN or id.
fn instance_arn(world: &World, cluster: &str, given: &str) -> Result<String> {
    let arn = if given.starts_with("arn:") {
        given.to_string()
    } else {
        world.arns.container_instance(cluster, given)
    };
    match world.capacity.instances.get(&arn) {
        Some(ci) if ci.cluster == cluster => Ok(arn),
        _ => Err(ApiError::invalid_parameter(format!(
            "The referenced container instance {given} was not found."
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListRequest {
    cluster: Option<String>,
    status: Option<String>,
    filter: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub(super) fn list(world: &mut World, req: ListRequest) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    if req.filter.is_some() {
        return Err(ApiError::invalid_parameter(
            "filter: cluster query language filters are not modelled by this simulator.",
        ));
    }
    let max = page_size(req.max_results, 100)?;
    let after = page_token(req.next_token.as_deref())?;
    let wanted = match req.status.as_deref() {
        None => None,
        Some("ACTIVE") => Some(InstanceStatus::Active),
        Some("DRAINING" | "REGISTERING" | "DEREGISTERING" | "REGISTRATION_FAILED") => {
            return Ok(json!({"containerInstanceArns": []}));
        }
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "status: {other:?} is not one of ACTIVE, DRAINING, REGISTERING, DEREGISTERING, REGISTRATION_FAILED."
            )));
        }
    };
    let arns = world
        .capacity
        .instances
        .values()
        .filter(|i| {
            i.cluster == cluster
                && i.status != InstanceStatus::Inactive
                && wanted.is_none_or(|w| i.status == w)
        })
        .map(|i| i.arn.clone());
    Ok(page("containerInstanceArns", arns, after, max))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeRequest {
    cluster: Option<String>,
    container_instances: Option<Vec<String>>,
}

pub(super) fn describe(world: &mut World, req: DescribeRequest) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = req.container_instances.unwrap_or_default();
    if given.is_empty() || given.len() > 100 {
        return Err(ApiError::invalid_parameter(format!(
            "containerInstances: between 1 and 100 container instances can be described at once; {} were given.",
            given.len()
        )));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for g in &given {
        match instance_arn(world, &cluster, g) {
            Ok(arn) => found.push(instance_json(world, &arn)),
            Err(_) => {
                let arn = if g.starts_with("arn:") {
                    g.clone()
                } else {
                    world.arns.container_instance(&cluster, g)
                };
                failures.push(json!({"arn": arn, "reason": "MISSING"}));
            }
        }
    }
    Ok(json!({"containerInstances": found, "failures": failures}))
}

fn resources_json(n: Needs) -> Value {
    json!([
        {"name": "CPU", "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": n.cpu},
        {"name": "MEMORY", "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": n.memory},
        {"name": "PORTS", "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0,
         "stringSetValue": ["22", "2375", "2376", "51678", "51679"]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0,
         "stringSetValue": []},
    ])
}

/// A container instance as DescribeContainerInstances answers it.
pub fn instance_json(world: &World, arn: &str) -> Value {
    let Some(ci) = world.capacity.instances.get(arn) else {
        return Value::Null;
    };
    let (mut running, mut pending) = (0, 0);
    for t in world.tasks_on(arn) {
        match t.last_status {
            LastStatus::Running => running += 1,
            LastStatus::Pending | LastStatus::Activating => pending += 1,
            _ => {}
        }
    }
    let mut v = json!({
        "containerInstanceArn": ci.arn,
        "ec2InstanceId": ci.ec2_instance_id,
        "version": ci.version,
        "versionInfo": {"agentVersion": "1.89.0", "agentHash": "5a6c4bf2", "dockerVersion": "DockerVersion: 25.0.8"},
        "remainingResources": resources_json(world.remaining(arn)),
        "registeredResources": resources_json(ci.registered),
        "status": ci.status.as_str(),
        "agentConnected": ci.status == InstanceStatus::Active,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "attributes": [
            {"name": "ecs.instance-type", "value": "m5.large"},
            {"name": "ecs.os-type", "value": "linux"},
        ],
        "registeredAt": world.epoch(ci.registered_at),
        "attachments": [],
        "tags": [],
    });
    if let Some(p) = &ci.capacity_provider {
        v["capacityProviderName"] = json!(p);
    }
    v
}
