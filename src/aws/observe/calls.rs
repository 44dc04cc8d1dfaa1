//! The calls a look is made of, each batched and paged as ECS and
//! Application Auto Scaling allow: DescribeServices for up to 10 services a
//! call, ListTasks through every page of a service, DescribeTasks for up to
//! 100 tasks a call (shared with the other looks of the cluster waiting at
//! the same time: see [`crate::aws::task_batches`]), DescribeScalableTargets
//! for up to 50 services a call.
//! A failed call answers an error for every service it was for. The stopped
//! tasks of a service (`stopped_tasks`) are the one bounded exception: one
//! DescribeTasks call at most, whatever ListTasks finds.

use std::collections::{HashMap, HashSet};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::aws::task_batches::TASKS_PER_CALL;
use crate::aws::{AwsError, ClientPool, Clients, classify, resource_id};
use crate::request::observation::{
    DeploymentNote, DeploymentView, Evidence, LoadBalancerView, ServiceEvent, ServiceView,
    StoppedTask, StrategyItem, TaskView,
};
use crate::request::status::ScalingSettings;

const SERVICES_PER_CALL: usize = 10;
const TARGETS_PER_CALL: usize = 50;
/// The newest service events kept from each answer: enough to find the
/// latest that names a cause, few enough that a thousand services' looks
/// stay small (ECS answers up to 100).
const EVENTS_KEPT: usize = 10;
/// Pages of stopped tasks listed for one service, at 100 a page.
const STOPPED_PAGES: usize = 5;

/// A service as DescribeServices answers it: its counters and deployments,
/// and what ECS says of it besides.
#[derive(Clone, Debug)]
pub(in crate::aws) struct Described {
    pub view: ServiceView,
    pub evidence: Evidence,
}

/// What a shared call answered for one service; errors are cloned to each.
pub(in crate::aws) type Shared<T> = Result<T, AwsError>;

/// Service name → its view, or the reason it cannot be had (missing, not ACTIVE).
pub(in crate::aws) async fn describe_services(
    clients: &Clients,
    cluster: &str,
    names: &[String],
) -> HashMap<String, Shared<Result<Described, String>>> {
    let mut out = HashMap::new();
    for chunk in names.chunks(SERVICES_PER_CALL) {
        let action = "ecs:DescribeServices";
        let answer = clients
            .call(action, || async {
                clients
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await;
        let described = match answer {
            Ok(d) => d,
            Err(e) => {
                for name in chunk {
                    out.insert(name.clone(), Err(e.clone()));
                }
                continue;
            }
        };
        for name in chunk {
            let svc = described
                .services()
                .iter()
                .find(|s| s.service_name() == Some(name.as_str()) || s.service_arn() == Some(name));
            let view = match svc {
                None => {
                    let reason = described
                        .failures()
                        .iter()
                        .find(|f| f.arn().is_some_and(|a| a.ends_with(&format!("/{name}"))))
                        .or(described.failures().first())
                        .and_then(|f| f.reason())
                        .unwrap_or("MISSING");
                    Err(format!(
                        "service {name} not found in cluster {cluster} ({reason})"
                    ))
                }
                Some(svc) => {
                    let status = svc.status().unwrap_or_default();
                    if status != "ACTIVE" {
                        Err(format!("service {cluster}/{name} is {status}"))
                    } else {
                        Ok(Described {
                            view: service_view(svc),
                            evidence: evidence(svc),
                        })
                    }
                }
            };
            out.insert(name.clone(), Ok(view));
        }
    }
    out
}

fn service_view(svc: &aws_sdk_ecs::types::Service) -> ServiceView {
    ServiceView {
        desired: svc.desired_count().max(0) as u32,
        running: svc.running_count().max(0) as u32,
        pending: svc.pending_count().max(0) as u32,
        deployments: svc
            .deployments()
            .iter()
            .map(|d| DeploymentView {
                id: d.id().unwrap_or_default().to_string(),
                primary: d.status() == Some("PRIMARY"),
                rollout: d
                    .rollout_state()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_else(|| "COMPLETED".into()),
            })
            .collect(),
        load_balancers: svc
            .load_balancers()
            .iter()
            .filter_map(|lb| {
                // A Classic Load Balancer (a name, no target group) has no
                // target health to read here.
                Some(LoadBalancerView {
                    target_group_arn: lb.target_group_arn()?.to_string(),
                    container_name: lb.container_name().unwrap_or_default().to_string(),
                    container_port: lb.container_port()?.clamp(0, u16::MAX as i32) as u16,
                })
            })
            .collect(),
        maximum_percent: svc
            .deployment_configuration()
            .and_then(|c| c.maximum_percent())
            .map_or(200, |p| p.max(0) as u32),
        launch_type: svc.launch_type().map(|l| l.as_str().to_string()),
        strategy: svc
            .capacity_provider_strategy()
            .iter()
            .map(|s| StrategyItem {
                provider: s.capacity_provider().to_string(),
                weight: s.weight().max(0) as u32,
                base: s.base().max(0) as u32,
            })
            .collect(),
    }
}

fn evidence(svc: &aws_sdk_ecs::types::Service) -> Evidence {
    Evidence {
        events: svc
            .events()
            .iter()
            .take(EVENTS_KEPT)
            .filter_map(|e| {
                Some(ServiceEvent {
                    at: to_utc(e.created_at())?,
                    message: e.message()?.to_string(),
                })
            })
            .collect(),
        deployments: svc
            .deployments()
            .iter()
            .map(|d| DeploymentNote {
                id: d.id().unwrap_or_default().to_string(),
                failed_tasks: d.failed_tasks().max(0) as u32,
                rollout_reason: d.rollout_state_reason().unwrap_or_default().to_string(),
            })
            .collect(),
        stopped: Vec::new(),
    }
}

/// Service name → the ARNs of its tasks with desired status RUNNING, every page.
pub(super) async fn list_tasks(
    clients: &Clients,
    cluster: &str,
    services: &[String],
) -> HashMap<String, Shared<Vec<String>>> {
    let mut work = JoinSet::new();
    for name in services {
        let clients = clients.clone();
        let cluster = cluster.to_string();
        let name = name.clone();
        work.spawn(async move {
            let listed = list_service_tasks(&clients, &cluster, &name).await;
            (name, listed)
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = work.join_next().await {
        if let Ok((name, listed)) = done {
            out.insert(name, listed);
        }
    }
    out
}

async fn list_service_tasks(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> Result<Vec<String>, AwsError> {
    list_pages(
        clients,
        cluster,
        Some(service),
        DesiredStatus::Running,
        usize::MAX,
    )
    .await
}

/// The ARNs of the service's tasks ECS has stopped (desired STOPPED, kept
/// by ECS for at least an hour), at most `STOPPED_PAGES` pages of them.
pub(super) async fn list_stopped(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> Result<Vec<String>, AwsError> {
    list_pages(
        clients,
        cluster,
        Some(service),
        DesiredStatus::Stopped,
        STOPPED_PAGES,
    )
    .await
}

/// Up to `pages` pages of the tasks of `service` (of the whole cluster without one).
pub(crate) async fn list_pages(
    clients: &Clients,
    cluster: &str,
    service: Option<&str>,
    status: DesiredStatus,
    pages: usize,
) -> Result<Vec<String>, AwsError> {
    let action = "ecs:ListTasks";
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..pages {
        let page = clients
            .call(action, || async {
                clients
                    .ecs
                    .list_tasks()
                    .cluster(cluster)
                    .set_service_name(service.map(str::to_string))
                    .desired_status(status.clone())
                    .max_results(100)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        arns.extend(page.task_arns().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(arns),
        }
    }
    Ok(arns)
}

/// The stopped tasks among `arns` as ECS describes them: the first
/// `TASKS_PER_CALL` only, in one call, so a service that stopped many tasks
/// this hour costs no more.
pub(super) async fn stopped_tasks(
    clients: &Clients,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<StoppedTask>, AwsError> {
    let Some(chunk) = arns.chunks(TASKS_PER_CALL).next() else {
        return Ok(Vec::new());
    };
    let described = describe_chunk(clients, cluster, chunk).await?;
    Ok(described
        .tasks()
        .iter()
        .map(|t| StoppedTask {
            arn: t.task_arn().unwrap_or_default().to_string(),
            last_status: t.last_status().unwrap_or_default().to_string(),
            stopped_reason: t.stopped_reason().unwrap_or_default().to_string(),
            stop_code: t
                .stop_code()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            created_at: to_utc(t.created_at()),
            stopped_at: to_utc(t.stopped_at().or(t.stopping_at())),
        })
        .collect())
}

/// One DescribeTasks call, for at most [`TASKS_PER_CALL`] tasks.
pub(crate) async fn describe_chunk(
    clients: &Clients,
    cluster: &str,
    chunk: &[String],
) -> Result<aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput, AwsError> {
    let action = "ecs:DescribeTasks";
    clients
        .call(action, || async {
            clients
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify(action, e))
        })
        .await
}

pub(crate) fn to_utc(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Task ARN → its view, for every task ECS still knows.
pub(super) async fn describe_tasks(
    pool: &ClientPool,
    clients: &Clients,
    cluster: &str,
    arns: &[String],
) -> Result<HashMap<String, TaskView>, AwsError> {
    let mut out = HashMap::new();
    for chunk in arns.chunks(TASKS_PER_CALL) {
        // The call may be shared with other looks of the cluster: it may
        // describe more tasks than these.
        let described = pool
            .looks
            .task_batches
            .describe(clients, cluster, chunk)
            .await?;
        let asked: HashSet<&str> = chunk.iter().map(String::as_str).collect();
        for t in described
            .tasks()
            .iter()
            .filter(|t| t.task_arn().is_some_and(|a| asked.contains(a)))
        {
            let td = t.task_definition_arn().unwrap_or_default();
            let health_checked = health_checked(pool, clients, td).await?;
            let view = TaskView {
                arn: t.task_arn().unwrap_or_default().to_string(),
                last_status: t.last_status().unwrap_or_default().to_string(),
                desired_running: t.desired_status() == Some("RUNNING"),
                health: t
                    .health_status()
                    .map(|h| h.as_str().to_string())
                    .unwrap_or_else(|| "UNKNOWN".into()),
                health_checked,
                started_at: to_utc(t.started_at()),
                created_at: to_utc(t.created_at()),
                private_ip: private_ip(t),
                host_ports: t
                    .containers()
                    .iter()
                    .flat_map(|c| {
                        let name = c.name().unwrap_or_default();
                        c.network_bindings().iter().filter_map(move |b| {
                            let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
                            Some((
                                name.to_string(),
                                port(b.container_port())?,
                                port(b.host_port())?,
                            ))
                        })
                    })
                    .collect(),
                targets: Vec::new(),
                capacity_provider: t.capacity_provider_name().map(str::to_string),
                launch_type: t.launch_type().map(|l| l.as_str().to_string()),
                container_instance: t.container_instance_arn().map(str::to_string),
                cpu: t.cpu().and_then(units),
                memory: t.memory().and_then(units),
                stop_code: t.stop_code().map(|c| c.as_str().to_string()),
                stopped_reason: t.stopped_reason().map(str::to_string),
            };
            out.insert(view.arn.clone(), view);
        }
    }
    Ok(out)
}

/// CPU units or MiB as DescribeTasks answers them (`"512"`).
fn units(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// The private IP of the task's ENI (`awsvpc`), as DescribeTasks attaches it.
fn private_ip(t: &aws_sdk_ecs::types::Task) -> Option<String> {
    t.attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .map(str::to_string)
}

async fn health_checked(pool: &ClientPool, clients: &Clients, td: &str) -> Result<bool, AwsError> {
    if td.is_empty() {
        return Ok(false);
    }
    if let Some(known) = pool.looks.health_checks.get(td) {
        return Ok(known);
    }
    let action = "ecs:DescribeTaskDefinition";
    let out = clients
        .call(action, || async {
            clients
                .ecs
                .describe_task_definition()
                .task_definition(td)
                .send()
                .await
                .map_err(|e| classify(action, e))
        })
        .await?;
    let has = out.task_definition().is_some_and(|d| {
        d.container_definitions()
            .iter()
            .any(|c| c.health_check().is_some())
    });
    pool.looks.health_checks.remember(td, has);
    Ok(has)
}

/// Service name → its scalable target, for the services that have one.
pub(super) async fn scalable_targets(
    clients: &Clients,
    cluster: &str,
    services: &[String],
) -> Shared<HashMap<String, ScalingSettings>> {
    let mut out = HashMap::new();
    for chunk in services.chunks(TARGETS_PER_CALL) {
        let action = "application-autoscaling:DescribeScalableTargets";
        let ids: Vec<String> = chunk.iter().map(|s| resource_id(cluster, s)).collect();
        let described = clients
            .call(action, || async {
                clients
                    .aas
                    .describe_scalable_targets()
                    .service_namespace(ServiceNamespace::Ecs)
                    .set_resource_ids(Some(ids.clone()))
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        for t in described.scalable_targets() {
            let Some(name) = chunk
                .iter()
                .find(|s| t.resource_id() == resource_id(cluster, s))
            else {
                continue;
            };
            let s = t.suspended_state();
            out.insert(
                name.clone(),
                ScalingSettings {
                    min: t.min_capacity().max(0) as u32,
                    max: t.max_capacity().max(0) as u32,
                    dynamic_scaling_in_suspended: s
                        .and_then(|s| s.dynamic_scaling_in_suspended())
                        .unwrap_or(false),
                    dynamic_scaling_out_suspended: s
                        .and_then(|s| s.dynamic_scaling_out_suspended())
                        .unwrap_or(false),
                    scheduled_scaling_suspended: s
                        .and_then(|s| s.scheduled_scaling_suspended())
                        .unwrap_or(false),
                },
            );
        }
    }
    Ok(out)
}
