//! The ECS operations: each reads its request, checks it completely, and only
//! then changes the world, so a refused request changes nothing.

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    Cluster, ContainerSpec, DeploymentConfig, LastStatus, Service, ServiceStatus, StopCause, Task,
    TaskDefinition, short_name,
};
use super::wire::{ApiError, parse, required};
use super::world::World;

type Result<T> = std::result::Result<T, ApiError>;

pub fn handle(world: &mut World, op: &str, body: &Value, call: usize, now: f64) -> Result<Value> {
    match op {
        "CreateCluster" => create_cluster(world, parse(body)?),
        "DescribeClusters" => describe_clusters(world, parse(body)?),
        "ListClusters" => Ok(json!({"clusterArns": world
            .records
            .clusters
            .values()
            .map(|c| c.arn.clone())
            .collect::<Vec<_>>()})),
        "RegisterTaskDefinition" => register_task_definition(world, body, now),
        "DescribeTaskDefinition" => describe_task_definition(world, parse(body)?),
        "CreateService" => create_service(world, parse(body)?, now),
        "UpdateService" => update_service(world, parse(body)?, now),
        "DeleteService" => delete_service(world, parse(body)?, now),
        "DescribeServices" => describe_services(world, parse(body)?),
        "ListServices" => list_services(world, parse(body)?),
        "ListTasks" => list_tasks(world, parse(body)?),
        "DescribeTasks" => describe_tasks(world, parse(body)?),
        "StopTask" => stop_task(world, parse(body)?, call, now),
        _ => super::tags::handle(world, op, body)
            .unwrap_or_else(|| Err(ApiError::unknown_operation(op))),
    }
}

// ---- resolution -------------------------------------------------------------

fn cluster_name(world: &World, given: Option<&str>) -> Result<String> {
    let name = short_name(given.unwrap_or("default"));
    if world.records.clusters.contains_key(name) {
        Ok(name.to_string())
    } else {
        Err(ApiError::cluster_not_found())
    }
}

fn service_key(world: &World, cluster: &str, given: &str) -> Result<(String, String)> {
    let key = (cluster.to_string(), short_name(given).to_string());
    if world.records.services.contains_key(&key) {
        Ok(key)
    } else {
        Err(ApiError::service_not_found())
    }
}

fn active_service_key(world: &World, cluster: &str, given: &str) -> Result<(String, String)> {
    let key = service_key(world, cluster, given)?;
    if world.records.services[&key].status != ServiceStatus::Active {
        return Err(ApiError::new(
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
        ));
    }
    Ok(key)
}

fn task_arn(world: &World, cluster: &str, given: &str) -> String {
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

// ---- clusters and task definitions ------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateClusterRequest {
    cluster_name: Option<String>,
}

fn create_cluster(world: &mut World, req: CreateClusterRequest) -> Result<Value> {
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
        });
    Ok(json!({"cluster": cluster_json(world, &name)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeClustersRequest {
    clusters: Option<Vec<String>>,
}

fn describe_clusters(world: &mut World, req: DescribeClustersRequest) -> Result<Value> {
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

fn cluster_json(world: &World, name: &str) -> Value {
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
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": services,
        "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
    })
}

fn register_task_definition(world: &mut World, body: &Value, now: f64) -> Result<Value> {
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
    for (i, def) in defs.iter().enumerate() {
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
struct DescribeTaskDefinitionRequest {
    task_definition: Option<String>,
}

fn describe_task_definition(
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

// ---- services -----------------------------------------------------------------

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
struct CreateServiceRequest {
    cluster: Option<String>,
    service_name: Option<String>,
    task_definition: Option<String>,
    desired_count: Option<i64>,
    launch_type: Option<String>,
    deployment_configuration: Option<DeploymentConfigurationInput>,
    tags: Option<Vec<super::tags::Tag>>,
    load_balancers: Option<Vec<super::service_targets::LoadBalancerInput>>,
    health_check_grace_period_seconds: Option<i64>,
}

fn create_service(world: &mut World, req: CreateServiceRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let name = required(req.service_name, || {
        ApiError::invalid_parameter("serviceName is required.")
    })?;
    if !valid_name(&name) {
        return Err(ApiError::invalid_parameter(
            "serviceName: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed.",
        ));
    }
    let tags = super::tags::read(req.tags)?;
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
    let load_balancers =
        super::service_targets::read_load_balancers(world, req.load_balancers, &td_arn)?;
    let health_check_grace = super::service_targets::read_grace(
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
            launch_type: req.launch_type.unwrap_or_else(|| "FARGATE".into()),
            deployments: Vec::new(),
            events: Vec::new(),
            created_at: now,
            steady: false,
            previous_completed_task_definition: None,
            next_scheduler_run: now,
            placement_blocked_reported: false,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateServiceRequest {
    cluster: Option<String>,
    service: Option<String>,
    desired_count: Option<i64>,
    task_definition: Option<String>,
    force_new_deployment: Option<bool>,
    deployment_configuration: Option<DeploymentConfigurationInput>,
    health_check_grace_period_seconds: Option<i64>,
}

fn update_service(world: &mut World, req: UpdateServiceRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = required(req.service, || {
        ApiError::invalid_parameter("service is required.")
    })?;
    let key = active_service_key(world, &cluster, &given)?;
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
    let grace = super::service_targets::read_grace(
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
struct DeleteServiceRequest {
    cluster: Option<String>,
    service: Option<String>,
    force: Option<bool>,
}

fn delete_service(world: &mut World, req: DeleteServiceRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let given = required(req.service, || {
        ApiError::invalid_parameter("service is required.")
    })?;
    let key = active_service_key(world, &cluster, &given)?;
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
struct DescribeServicesRequest {
    cluster: Option<String>,
    services: Option<Vec<String>>,
    include: Option<Vec<String>>,
}

fn describe_services(world: &mut World, req: DescribeServicesRequest) -> Result<Value> {
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
                    json["tags"] = super::tags::to_json(&world.records.services[&key].tags);
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
struct ListServicesRequest {
    cluster: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn list_services(world: &mut World, req: ListServicesRequest) -> Result<Value> {
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

pub fn service_json(world: &World, key: &(String, String)) -> Value {
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
                "launchType": svc.launch_type,
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
        "launchType": svc.launch_type,
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
        "loadBalancers": super::service_targets::load_balancers_json(&svc.load_balancers),
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
    v
}

// ---- tasks ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTasksRequest {
    cluster: Option<String>,
    service_name: Option<String>,
    desired_status: Option<String>,
    started_by: Option<String>,
    family: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn list_tasks(world: &mut World, req: ListTasksRequest) -> Result<Value> {
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
struct DescribeTasksRequest {
    cluster: Option<String>,
    tasks: Option<Vec<String>>,
}

fn describe_tasks(world: &mut World, req: DescribeTasksRequest) -> Result<Value> {
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
struct StopTaskRequest {
    cluster: Option<String>,
    task: Option<String>,
    reason: Option<String>,
}

fn stop_task(world: &mut World, req: StopTaskRequest, call: usize, now: f64) -> Result<Value> {
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

pub fn task_json(world: &World, t: &Task) -> Value {
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
        "launchType": "FARGATE",
        "availabilityZone": format!("{}a", world.arns.region),
        "containers": containers,
        "version": t.version,
        "cpu": "256",
        "memory": "512",
        "connectivity": if t.placed { "CONNECTED" } else { "DISCONNECTED" },
        "attachments": [super::service_targets::attachment_json(world, t)],
    });
    if let Some(service) = &t.service {
        v["group"] = json!(format!("service:{service}"));
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

fn container_status(task: LastStatus) -> &'static str {
    match task {
        LastStatus::Provisioning | LastStatus::Pending | LastStatus::Activating => "PENDING",
        LastStatus::Running | LastStatus::Deactivating => "RUNNING",
        _ => "STOPPED",
    }
}

// ---- pagination -------------------------------------------------------------------

fn page_size(given: Option<i64>, default: usize) -> Result<usize> {
    match given {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid_parameter(format!(
            "maxResults: {n} is outside 1..100."
        ))),
    }
}

/// Tokens carry the last ARN returned, so pages stay right while tasks come and go.
fn page_token(given: Option<&str>) -> Result<Option<String>> {
    match given {
        None | Some("") => Ok(None),
        Some(t) => t
            .strip_prefix("sim1:")
            .map(|arn| Some(arn.to_string()))
            .ok_or_else(|| ApiError::invalid_parameter("nextToken: the token is not valid.")),
    }
}

fn page(
    field: &str,
    items: impl Iterator<Item = String>,
    after: Option<String>,
    max: usize,
) -> Value {
    let mut rest = items.filter(|a| after.as_ref().is_none_or(|after| a > after));
    let items: Vec<String> = rest.by_ref().take(max).collect();
    let mut v = json!({ field: items });
    if rest.next().is_some()
        && let Some(last) = items.last()
    {
        v["nextToken"] = json!(format!("sim1:{last}"));
    }
    v
}
