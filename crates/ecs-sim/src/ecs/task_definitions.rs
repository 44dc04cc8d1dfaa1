//! Task definitions: RegisterTaskDefinition (a new revision of a family,
//! echoed back as registered, with what its tasks reserve: the task-level
//! `cpu` and `memory`, or else the sum of its containers') and
//! DescribeTaskDefinition.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Result, valid_name};
use crate::model::{ContainerSpec, Needs, TaskDefinition};
use crate::wire::{ApiError, required};
use crate::world::World;

pub(super) fn register_task_definition(world: &mut World, body: &Value, now: f64) -> Result<Value> {
    let family = body
        .get("family")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::client("family: a family name is required."))?;
    if !valid_name(family) {
        return Err(ApiError::client(
            "family: up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.",
        ));
    }
    let defs = body
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ApiError::client("containerDefinitions: at least one container definition is required.")
        })?;
    let mut containers = Vec::new();
    let mut summed = Needs::default();
    for (i, def) in defs.iter().enumerate() {
        let number = |name: &str| def.get(name).and_then(Value::as_i64);
        summed.cpu += number("cpu").unwrap_or(0);
        summed.memory += number("memory")
            .or(number("memoryReservation"))
            .unwrap_or(0);
        let field = |name: &str| def.get(name).and_then(Value::as_str).map(str::to_string);
        let (Some(name), Some(image)) = (field("name"), field("image")) else {
            return Err(ApiError::client(format!(
                "containerDefinitions[{i}]: name and image are required."
            )));
        };
        let has_health_check = match def.get("healthCheck") {
            None | Some(Value::Null) => false,
            Some(hc) if hc.get("command").and_then(Value::as_array).is_some() => true,
            Some(_) => {
                return Err(ApiError::client(format!(
                    "containerDefinitions[{i}].healthCheck: command is required."
                )));
            }
        };
        containers.push(ContainerSpec {
            name,
            image,
            has_health_check,
        });
    }
    let task_cpu = task_size(body, "cpu", "vCPU")?;
    let task_memory = task_size(body, "memory", "GB")?;
    let needs = Needs {
        cpu: task_cpu.as_ref().map_or(summed.cpu, |(_, v)| *v),
        memory: task_memory.as_ref().map_or(summed.memory, |(_, v)| *v),
    };
    let revision = world
        .records
        .task_definitions
        .get(family)
        .map_or(1, |revs| revs.len() as u32 + 1);
    let arn = world.arns.task_definition(family, revision);
    let mut raw = body.clone();
    if let Some(obj) = raw.as_object_mut() {
        obj.insert("taskDefinitionArn".into(), json!(arn));
        obj.insert("revision".into(), json!(revision));
        obj.insert("status".into(), json!("ACTIVE"));
        obj.insert("registeredAt".into(), json!(world.epoch(now)));
        obj.insert("compatibilities".into(), json!(["EC2", "FARGATE"]));
        obj.remove("tags");
    }
    let td = TaskDefinition {
        family: family.to_string(),
        revision,
        arn,
        containers,
        needs,
        task_cpu: task_cpu.map(|(text, _)| text),
        task_memory: task_memory.map(|(text, _)| text),
        raw: raw.clone(),
    };
    world
        .records
        .task_definitions
        .entry(family.to_string())
        .or_default()
        .push(td);
    Ok(json!({"taskDefinition": raw}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeTaskDefinitionRequest {
    task_definition: Option<String>,
}

pub(super) fn describe_task_definition(
    world: &mut World,
    req: DescribeTaskDefinitionRequest,
) -> Result<Value> {
    let given = required(req.task_definition, || {
        ApiError::client("taskDefinition is required.")
    })?;
    let td = world
        .find_task_definition(&given)
        .ok_or_else(|| ApiError::client("Unable to describe task definition."))?;
    Ok(json!({"taskDefinition": td.raw}))
}

/// The task-level `cpu` or `memory` as ECS takes it: units as a number
/// (`"1024"`), or in `unit` (`"1 vCPU"`, `"2 GB"`), each 1024 units.
/// Answers (the text as given, the units).
fn task_size(body: &Value, field: &str, unit: &str) -> Result<Option<(String, i64)>> {
    let Some(given) = body.get(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = given
        .as_str()
        .map(str::to_string)
        .or_else(|| given.as_i64().map(|n| n.to_string()))
        .ok_or_else(|| {
            ApiError::client(format!("{field}: a string such as \"1024\" is required."))
        })?;
    let trimmed = text.trim();
    let units = match trimmed.strip_suffix(unit) {
        Some(n) => n
            .trim()
            .parse::<f64>()
            .ok()
            .map(|n| (n * 1024.0).round() as i64),
        None => trimmed.parse::<i64>().ok(),
    };
    match units {
        Some(u) if u > 0 => Ok(Some((text, u))),
        _ => Err(ApiError::client(format!(
            "Invalid '{field}' setting for task: {text:?}. Give units (\"1024\") or {unit} (\"1 {unit}\")."
        ))),
    }
}
