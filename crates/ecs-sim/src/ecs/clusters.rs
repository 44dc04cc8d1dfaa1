//! Clusters: CreateCluster, DescribeClusters (ListClusters is answered in
//! `ecs/mod.rs`), and a cluster as DescribeClusters answers it.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Result, valid_name};
use crate::capacity::model::{FARGATE_PROVIDERS, InstanceStatus};
use crate::capacity::providers::strategy_json;
use crate::model::{Cluster, LastStatus, ServiceStatus, short_name};
use crate::wire::ApiError;
use crate::world::World;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateClusterRequest {
    cluster_name: Option<String>,
}

pub(super) fn create_cluster(world: &mut World, req: CreateClusterRequest) -> Result<Value> {
    let name = req.cluster_name.unwrap_or_else(|| "default".into());
    if !valid_name(&name) {
        return Err(ApiError::invalid_parameter(
            "clusterName: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed.",
        ));
    }
    let arn = world.arns.cluster(&name);
    world
        .records
        .clusters
        .entry(name.clone())
        .or_insert_with(|| Cluster {
            name: name.clone(),
            arn,
            capacity: None,
            placed: 0,
            capacity_providers: FARGATE_PROVIDERS.iter().map(|p| p.to_string()).collect(),
            default_strategy: Vec::new(),
        });
    Ok(json!({"cluster": cluster_json(world, &name)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeClustersRequest {
    clusters: Option<Vec<String>>,
}

pub(super) fn describe_clusters(world: &mut World, req: DescribeClustersRequest) -> Result<Value> {
    let names = req.clusters.unwrap_or_else(|| vec!["default".into()]);
    if names.len() > 100 {
        return Err(ApiError::invalid_parameter(
            "clusters: at most 100 clusters can be described at once.",
        ));
    }
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for given in &names {
        let name = short_name(given);
        if world.records.clusters.contains_key(name) {
            clusters.push(cluster_json(world, name));
        } else {
            failures.push(json!({"arn": world.arns.cluster(name), "reason": "MISSING"}));
        }
    }
    Ok(json!({"clusters": clusters, "failures": failures}))
}

pub(crate) fn cluster_json(world: &World, name: &str) -> Value {
    let cluster = &world.records.clusters[name];
    let (mut running, mut pending, mut services) = (0, 0, 0);
    for svc in world
        .records
        .services
        .values()
        .filter(|s| s.cluster == name)
    {
        if svc.status == ServiceStatus::Active {
            services += 1;
        }
        for t in world.live_tasks(&svc.cluster, &svc.name) {
            if t.last_status == LastStatus::Running {
                running += 1;
            } else if t.last_status.is_pending() {
                pending += 1;
            }
        }
    }
    json!({
        "clusterArn": cluster.arn,
        "clusterName": cluster.name,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": world
            .capacity
            .instances
            .values()
            .filter(|i| i.cluster == name && i.status == InstanceStatus::Active)
            .count(),
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": services,
        "capacityProviders": cluster.capacity_providers,
        "defaultCapacityProviderStrategy": strategy_json(&cluster.default_strategy),
    })
}
