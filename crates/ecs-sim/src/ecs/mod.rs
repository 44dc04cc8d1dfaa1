//! The ECS operations, one file per kind of record: clusters, task
//! definitions, services and tasks. Each operation reads its request,
//! checks it completely, and only then changes the world, so a refused
//! request changes nothing. This file dispatches on the operation's name
//! and resolves the names and ARNs every operation takes.

mod clusters;
pub(crate) use clusters::cluster_json;
pub(crate) use tasks::task_json;
mod pages;
pub(crate) use pages::{page, page_size, page_token};
mod services;
mod task_definitions;
mod tasks;

use serde_json::Value;

use super::model::{ServiceStatus, TaskDefinition, short_name};
use super::wire::{ApiError, parse};
use super::world::World;

pub(crate) type Result<T> = std::result::Result<T, ApiError>;

pub fn handle(world: &mut World, op: &str, body: &Value, call: usize, now: f64) -> Result<Value> {
    match op {
        "CreateCluster" => clusters::create_cluster(world, parse(body)?),
        "DescribeClusters" => clusters::describe_clusters(world, parse(body)?),
        "ListClusters" => Ok(serde_json::json!({"clusterArns": world
            .records
            .clusters
            .values()
            .map(|c| c.arn.clone())
            .collect::<Vec<_>>()})),
        "RegisterTaskDefinition" => task_definitions::register_task_definition(world, body, now),
        "DescribeTaskDefinition" => task_definitions::describe_task_definition(world, parse(body)?),
        "CreateService" => services::create_service(world, parse(body)?, now),
        "UpdateService" => services::update_service(world, parse(body)?, now),
        "DeleteService" => services::delete_service(world, parse(body)?, now),
        "DescribeServices" => services::describe_services(world, parse(body)?),
        "ListServices" => services::list_services(world, parse(body)?),
        "ListTasks" => tasks::list_tasks(world, parse(body)?),
        "DescribeTasks" => tasks::describe_tasks(world, parse(body)?),
        "StopTask" => tasks::stop_task(world, parse(body)?, call, now),
        _ => super::tags::handle(world, op, body)
            .or_else(|| super::capacity::handle(world, op, body, now))
            .or_else(|| super::protection::handle(world, op, body, now))
            .unwrap_or_else(|| Err(ApiError::unknown_operation(op))),
    }
}

pub(crate) fn cluster_name(world: &World, given: Option<&str>) -> Result<String> {
    let name = short_name(given.unwrap_or("default"));
    if world.records.clusters.contains_key(name) {
        Ok(name.to_string())
    } else {
        Err(ApiError::cluster_not_found())
    }
}

pub(crate) fn service_key(world: &World, cluster: &str, given: &str) -> Result<(String, String)> {
    let key = (cluster.to_string(), short_name(given).to_string());
    if world.records.services.contains_key(&key) {
        Ok(key)
    } else {
        Err(ApiError::service_not_found())
    }
}

pub(crate) fn active_service_key(
    world: &World,
    cluster: &str,
    given: &str,
) -> Result<(String, String)> {
    let key = service_key(world, cluster, given)?;
    if world.records.services[&key].status != ServiceStatus::Active {
        return Err(ApiError::new(
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
        ));
    }
    Ok(key)
}

pub(crate) fn task_arn(world: &World, cluster: &str, given: &str) -> String {
    if given.starts_with("arn:") {
        given.to_string()
    } else {
        world.arns.task(cluster, given)
    }
}

impl World {
    /// A task definition by `family`, `family:revision` or ARN; the latest revision for a family.
    pub fn find_task_definition(&self, given: &str) -> Option<&TaskDefinition> {
        let spec = if given.starts_with("arn:") {
            given.rsplit('/').next()?
        } else {
            given
        };
        let (family, revision) = match spec.split_once(':') {
            Some((f, r)) => (f, Some(r.parse::<u32>().ok()?)),
            None => (spec, None),
        };
        let revisions = self.records.task_definitions.get(family)?;
        match revision {
            Some(r) => revisions.iter().find(|td| td.revision == r),
            None => revisions.last(),
        }
    }
}

/// A name ECS takes (`field` names it in the error): up to 255 letters,
/// numbers, hyphens and underscores.
pub(crate) fn check_name(field: &str, name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "{field}: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )))
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
