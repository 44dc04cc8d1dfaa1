//! The `detail` of each kind of ECS event, shaped after AWS's documented
//! examples ("Amazon ECS events" in the ECS developer guide): a task state
//! change is the task as DescribeTasks answers it with ISO times, a
//! container instance state change the instance as
//! DescribeContainerInstances answers it, and service actions and
//! deployment state changes their few documented fields.

use serde_json::{Value, json};

use crate::world::World;

/// Epoch seconds as an ISO 8601 time with milliseconds, as event details
/// carry them (`2020-01-23T17:57:58.103Z`).
pub fn iso_millis(epoch: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(epoch.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// The envelope's `time`, to the second (`2020-01-23T17:57:58Z`).
pub fn iso_seconds(epoch: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(epoch.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

const TASK_TIMES: [&str; 5] = [
    "createdAt",
    "startedAt",
    "stoppingAt",
    "stoppedAt",
    "executionStoppedAt",
];

/// "ECS Task State Change": the task with its `version`, `group`,
/// statuses, stop reason and code, `startedBy`, containers (each with its
/// health; the task's own health is not in ECS's event), capacity
/// provider, and its times as ISO strings plus `updatedAt`.
pub fn task(world: &World, arn: &str, at: f64) -> Option<Value> {
    let t = world.records.tasks.get(arn)?;
    let mut v = crate::ecs::task_json(world, t);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("healthStatus");
        for field in TASK_TIMES {
            if let Some(epoch) = obj.get(field).and_then(Value::as_f64) {
                obj.insert(field.into(), json!(iso_millis(epoch)));
            }
        }
        obj.insert("updatedAt".into(), json!(iso_millis(world.epoch(at))));
        if let Some(attachments) = obj.get_mut("attachments").and_then(Value::as_array_mut) {
            for a in attachments {
                a["type"] = json!("eni");
            }
        }
    }
    Some(v)
}

/// "ECS Container Instance State Change": the instance, times as ISO.
pub fn instance(world: &World, arn: &str, at: f64) -> Option<Value> {
    let mut v = crate::capacity::instances::instance_json(world, arn);
    if v.is_null() {
        return None;
    }
    if let Some(epoch) = v.get("registeredAt").and_then(Value::as_f64) {
        v["registeredAt"] = json!(iso_millis(epoch));
    }
    v["clusterArn"] = json!(world.arns.cluster(&world.capacity.instances[arn].cluster));
    v["updatedAt"] = json!(iso_millis(world.epoch(at)));
    Some(v)
}

/// "ECS Service Action": `eventType` INFO, WARN or ERROR, `eventName`,
/// `clusterArn`, `createdAt`, and what the event names (`reason`,
/// `capacityProviderArns`, `containerInstanceArns`).
pub fn service_action(
    world: &World,
    cluster: &str,
    event_type: &str,
    name: &str,
    extra: Value,
    at: f64,
) -> Value {
    let mut v = json!({
        "eventType": event_type,
        "eventName": name,
        "clusterArn": world.arns.cluster(cluster),
        "createdAt": iso_millis(world.epoch(at)),
    });
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    v
}

/// "ECS Deployment State Change": `eventType`, `eventName`,
/// `deploymentId`, `updatedAt` and `reason`, as ECS's examples have them.
pub fn deployment(
    world: &World,
    event_type: &str,
    name: &str,
    id: &str,
    reason: String,
    at: f64,
) -> Value {
    json!({
        "eventType": event_type,
        "eventName": name,
        "deploymentId": id,
        "updatedAt": iso_seconds(world.epoch(at)),
        "reason": reason,
    })
}
