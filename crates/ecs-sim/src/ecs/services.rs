//! Services: CreateService, UpdateService, DeleteService, DescribeServices,
//! ListServices, their deployment configuration, and a service as
//! DescribeServices answers it (deployments, events, load balancers).

use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{page, page_size, page_token};
use super::{Result, active_service_key, cluster_name, service_key, valid_name};
use crate::model::{
    DeploymentConfig, LastStatus, Service, ServiceStatus, StrategyItem, Task, short_name,
};
use crate::wire::{ApiError, required};
use crate::world::World;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeploymentConfigurationInput {
    maximum_percent: Option<i64>,
    minimum_healthy_percent: Option<i64>,
    deployment_circuit_breaker: Option<CircuitBreakerInput>,
}

#[derive(Deserialize)]
struct CircuitBreakerInput {
    enable: bool,
    rollback: bool,
}

fn merged_config(
    base: DeploymentConfig,
    input: Option<DeploymentConfigurationInput>,
) -> Result<DeploymentConfig> {
    let Some(input) = input else {
        return Ok(base);
    };
    let mut c = base;
    if let Some(max) = input.maximum_percent {
        if !(100..=200).contains(&max) {
            return Err(ApiError::invalid_parameter(format!(
                "deploymentConfiguration.maximumPercent: {max} is outside 100..200."
            )));
        }
        c.maximum_percent = max as u32;
    }
    if let Some(min) = input.minimum_healthy_percent {
        if !(0..=100).contains(&min) {
            return Err(ApiError::invalid_parameter(format!(
                "deploymentConfiguration.minimumHealthyPercent: {min} is outside 0..100."
            )));
        }
        c.minimum_healthy_percent = min as u32;
    }
    if let Some(cb) = input.deployment_circuit_breaker {
        c.circuit_breaker = cb.enable;
        c.rollback = cb.rollback;
    }
    Ok(c)
}

fn desired_count(given: i64) -> Result<u32> {
    u32::try_from(given)
        .ok()
        .filter(|d| *d <= 10_000)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!("desiredCount: {given} is outside 0..10000."))
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateServiceRequest {
    cluster: Option<String>,
    service_name: Option<String>,
    task_definition: Option<String>,
    desired_count: Option<i64>,
    launch_type: Option<String>,
    capacity_provider_strategy: Option<Vec<crate::capacity::providers::StrategyInput>>,
    deployment_configuration: Option<DeploymentConfigurationInput>,
    tags: Option<Vec<crate::tags::Tag>>,
    load_balancers: Option<Vec<crate::service_targets::LoadBalancerInput>>,
    health_check_grace_period_seconds: Option<i64>,
}

pub(super) fn create_service(
    world: &mut World,
    req: CreateServiceRequest,
    now: f64,
) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let name = required(req.service_name, || {
        ApiError::invalid_parameter("serviceName is required.")
    })?;
    if !valid_name(&name) {
        return Err(ApiError::invalid_parameter(
            "serviceName: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed.",
        ));
    }
    let tags = crate::tags::read(req.tags)?;
    let given_td = required(req.task_definition, || {
        ApiError::invalid_parameter("taskDefinition is required.")
    })?;
    let td_arn = world
        .find_task_definition(&given_td)
        .map(|td| td.arn.clone())
        .ok_or_else(|| ApiError::client("TaskDefinition not found."))?;
    let desired = desired_count(required(req.desired_count, || {
        ApiError::invalid_parameter("desiredCount is required for the REPLICA scheduling strategy.")
    })?)?;
    let config = merged_config(DeploymentConfig::default(), req.deployment_configuration)?;
    let (launch_type, capacity_provider_strategy) = placement_of(
        world,
        &cluster,
        req.launch_type,
        req.capacity_provider_strategy,
    )?;
    let load_balancers =
        crate::service_targets::read_load_balancers(world, req.load_balancers, &td_arn)?;
    let health_check_grace = crate::service_targets::read_grace(
        req.health_check_grace_period_seconds,
        !load_balancers.is_empty(),
    )?;
    let key = (cluster.clone(), name.clone());
    if world
        .records
        .services
        .get(&key)
        .is_some_and(|s| s.status != ServiceStatus::Inactive)
    {
        return Err(ApiError::invalid_parameter(
            "Creation of service was not idempotent.",
        ));
    }
    let arn = world.arns.service(&cluster, &name);
    world.records.services.insert(
        key.clone(),
        Service {
            name,
            cluster,
            arn,
            status: ServiceStatus::Active,
            desired,
            task_definition_arn: td_arn.clone(),
            config,
            launch_type,
            capacity_provider_strategy,
            deployments: Vec::new(),
            events: Vec::new(),
            created_at: now,
            steady: false,
            previous_completed_task_definition: None,
            previous_completed_deployment: None,
            next_scheduler_run: now,
            placement_blocked_reported: false,
            protection_blocked_reported: false,
            timings: Default::default(),
            faults: None,
            tags,
            load_balancers,
            health_check_grace,
        },
    );
    world.start_deployment(&key, td_arn, now);
    world.sample(&key.0, &key.1, now);
    Ok(json!({"service": service_json(world, &key)}))
}

/// A new service's launch type, or capacity provider strategy: the one
/// given, else the cluster's default strategy, else FARGATE. ECS takes one
/// or the other, never both.
fn placement_of(
    world: &World,
    cluster: &str,
    launch_type: Option<String>,
    strategy: Option<Vec<crate::capacity::providers::StrategyInput>>,
) -> Result<(String, Vec<StrategyItem>)> {
    if launch_type.is_some() && strategy.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_parameter(
            "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
        ));
    }
    if let Some(lt) = launch_type {
        if !matches!(lt.as_str(), "FARGATE" | "EC2") {
            return Err(ApiError::invalid_parameter(format!(
                "launchType: {lt:?} is not FARGATE or EC2 in this simulator."
            )));
        }
        return Ok((lt, Vec::new()));
    }
    let strategy = crate::capacity::providers::read_strategy(world, cluster, strategy, None)?;
    if !strategy.is_empty() {
        return Ok((String::new(), strategy));
    }
    let default = world.records.clusters[cluster].default_strategy.clone();
    if default.is_empty() {
        Ok(("FARGATE".into(), Vec::new()))
    } else {
        Ok((String::new(), default))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateServiceRequest {
    cluster: Option<String>,
    service: Option<String>,
    desired_count: Option<i64>,
    task_definition: Option<String>,
    force_new_deployment: Option<bool>,
    deployment_configuration: Option<DeploymentConfigurationInput>,
    health_check_grace_period_seconds: Option<i64>,
}

/// The ACTIVE service a request names by `cluster` and `service`.
fn named_active_service(
    world: &World,
    cluster: Option<&str>,
    service: Option<String>,
) -> Result<(String, String)> {
    let cluster = cluster_name(world, cluster)?;
    let given = required(service, || {
        ApiError::invalid_parameter("service is required.")
    })?;
    active_service_key(world, &cluster, &given)
}

pub(super) fn update_service(
    world: &mut World,
    req: UpdateServiceRequest,
    now: f64,
) -> Result<Value> {
    let key = named_active_service(world, req.cluster.as_deref(), req.service)?;
    let desired = req.desired_count.map(desired_count).transpose()?;
    let new_td = match req.task_definition {
        Some(given) => Some(
            world
                .find_task_definition(&given)
                .map(|td| td.arn.clone())
                .ok_or_else(|| ApiError::client("TaskDefinition not found."))?,
        ),
        None => None,
    };
    let svc = &world.records.services[&key];
    let config = merged_config(svc.config, req.deployment_configuration)?;
    let grace = crate::service_targets::read_grace(
        req.health_check_grace_period_seconds,
        !svc.load_balancers.is_empty(),
    )?;
    let new_deployment = req.force_new_deployment.unwrap_or(false)
        || new_td
            .as_ref()
            .is_some_and(|td| *td != svc.task_definition_arn);
    let td = new_td.unwrap_or_else(|| svc.task_definition_arn.clone());

    let svc = world
        .records
        .services
        .get_mut(&key)
        .ok_or_else(ApiError::service_not_found)?;
    svc.config = config;
    if grace.is_some() {
        svc.health_check_grace = grace;
    }
    if let Some(d) = desired {
        svc.desired = d;
    }
    if new_deployment {
        world.start_deployment(&key, td, now);
    }
    world.sample(&key.0, &key.1, now);
    Ok(json!({"service": service_json(world, &key)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeleteServiceRequest {
    cluster: Option<String>,
    service: Option<String>,
    force: Option<bool>,
}

pub(super) fn delete_service(
    world: &mut World,
    req: DeleteServiceRequest,
    now: f64,
) -> Result<Value> {
    let key = named_active_service(world, req.cluster.as_deref(), req.service)?;
    let svc = world
        .records
        .services
        .get_mut(&key)
        .ok_or_else(ApiError::service_not_found)?;
    if svc.desired > 0 && !req.force.unwrap_or(false) {
        return Err(ApiError::invalid_parameter(
            "The service cannot be stopped while it is scaled above 0.",
        ));
    }
    svc.desired = 0;
    svc.status = ServiceStatus::Draining;
    svc.next_scheduler_run = now;
    world.sample(&key.0, &key.1, now);
    Ok(json!({"service": service_json(world, &key)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeServicesRequest {
    cluster: Option<String>,
    services: Option<Vec<String>>,
    include: Option<Vec<String>>,
}

pub(super) fn describe_services(world: &mut World, req: DescribeServicesRequest) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let names = req.services.unwrap_or_default();
    if names.is_empty() || names.len() > 10 {
        return Err(ApiError::invalid_parameter(format!(
            "services: between 1 and 10 services can be described at once; {} were given.",
            names.len()
        )));
    }
    let include = req.include.unwrap_or_default();
    if let Some(other) = include.iter().find(|i| *i != "TAGS") {
        return Err(ApiError::invalid_parameter(format!(
            "include: {other:?} is not TAGS."
        )));
    }
    let with_tags = !include.is_empty();
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for given in &names {
        match service_key(world, &cluster, given) {
            Ok(key) => {
                let mut json = service_json(world, &key);
                if with_tags {
                    json["tags"] = crate::tags::to_json(&world.records.services[&key].tags);
                }
                services.push(json)
            }
            Err(_) => failures.push(json!({
                "arn": world.arns.service(&cluster, short_name(given)),
                "reason": "MISSING",
            })),
        }
    }
    Ok(json!({"services": services, "failures": failures}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListServicesRequest {
    cluster: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub(super) fn list_services(world: &mut World, req: ListServicesRequest) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let max = page_size(req.max_results, 10)?;
    let after = page_token(req.next_token.as_deref())?;
    let arns = world
        .records
        .services
        .values()
        .filter(|s| s.cluster == cluster && s.status != ServiceStatus::Inactive)
        .map(|s| s.arn.clone());
    Ok(page("serviceArns", arns, after, max))
}

pub(crate) fn service_json(world: &World, key: &(String, String)) -> Value {
    let svc = &world.records.services[key];
    let counts = world.counts(svc);
    let live: Vec<&Task> = world.live_tasks(&key.0, &key.1).collect();
    let deployments: Vec<Value> = svc
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mine = || live.iter().filter(|t| t.deployment_id == d.id);
            let running = mine()
                .filter(|t| t.last_status == LastStatus::Running)
                .count();
            let pending = mine().filter(|t| t.last_status.is_pending()).count();
            let desired = if i == 0 {
                svc.desired as usize
            } else {
                mine().filter(|t| t.desired_running).count()
            };
            json!({
                "id": d.id,
                "status": if i == 0 { "PRIMARY" } else { "ACTIVE" },
                "taskDefinition": d.task_definition_arn,
                "desiredCount": desired,
                "pendingCount": pending,
                "runningCount": running,
                "failedTasks": d.failed_tasks,
                "createdAt": world.epoch(d.created_at),
                "updatedAt": world.epoch(d.updated_at),
                "rolloutState": d.rollout.as_str(),
                "rolloutStateReason": d.rollout_reason,
            })
        })
        .collect();
    let events: Vec<Value> = svc
        .events
        .iter()
        .map(|e| json!({"id": e.id, "createdAt": world.epoch(e.at), "message": e.message}))
        .collect();
    let mut v = json!({
        "serviceArn": svc.arn,
        "serviceName": svc.name,
        "clusterArn": world.arns.cluster(&svc.cluster),
        "status": svc.status.as_str(),
        "desiredCount": svc.desired,
        "runningCount": counts.running,
        "pendingCount": counts.pending,
        "taskDefinition": svc.task_definition_arn,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": svc.config.circuit_breaker, "rollback": svc.config.rollback},
            "maximumPercent": svc.config.maximum_percent,
            "minimumHealthyPercent": svc.config.minimum_healthy_percent,
        },
        "deployments": deployments,
        "events": events,
        "createdAt": world.epoch(svc.created_at),
        "placementConstraints": [],
        "placementStrategy": [],
        "loadBalancers": crate::service_targets::load_balancers_json(&svc.load_balancers),
        "serviceRegistries": [],
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "enableECSManagedTags": false,
        "propagateTags": "NONE",
        "enableExecuteCommand": false,
    });
    if let Some(grace) = svc.health_check_grace {
        v["healthCheckGracePeriodSeconds"] = json!(grace);
    }
    // ECS answers a launch type or a capacity provider strategy, never both,
    // for the service and each of its deployments alike.
    let (field, value) = if svc.capacity_provider_strategy.is_empty() {
        ("launchType", json!(svc.launch_type))
    } else {
        (
            "capacityProviderStrategy",
            crate::capacity::providers::strategy_json(&svc.capacity_provider_strategy),
        )
    };
    v[field] = value.clone();
    if let Some(ds) = v["deployments"].as_array_mut() {
        for d in ds {
            d[field] = value.clone();
        }
    }
    v
}
