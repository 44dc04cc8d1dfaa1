//! Looking at services, many at once: the observations of one tick are made
//! together, sharing calls within each account and cluster — DescribeServices
//! for up to 10 services a call, ListTasks through every page of each
//! service, DescribeTasks for up to 100 tasks a call across the cluster, and
//! DescribeScalableTargets for up to 50 services a call. Each record still
//! gets exactly the observation it would get alone: its service, every task
//! of it with desired status RUNNING, plus the tasks of its batch in flight
//! whatever their state (so "stable" is judged against the batch).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::{AwsError, ClientPool, Clients, classify, resource_id};
use crate::observation::{DeploymentView, Observation, ServiceView, TaskView};
use crate::status::ScalingSettings;

/// What one record needs looked at.
#[derive(Clone)]
pub struct Want {
    pub clients: Clients,
    pub cluster: String,
    pub service: String,
    /// Task ARNs described whatever their state: the batch in flight.
    pub extra: Vec<String>,
    /// Whether the scalable target is needed (the decision reads it in
    /// every phase but Recycling).
    pub scaling: bool,
}

const SERVICES_PER_CALL: usize = 10;
const TASKS_PER_CALL: usize = 100;
const TARGETS_PER_CALL: usize = 50;

/// Observes one service.
pub async fn observe(pool: &Arc<ClientPool>, want: Want) -> Result<Observation, AwsError> {
    observe_all(pool, vec![want])
        .await
        .pop()
        .unwrap_or_else(unreachable_empty)
}

/// An answer that should always be there was not (a task failed): try again.
fn unreachable_empty() -> Result<Observation, AwsError> {
    Err(AwsError::Transient {
        action: "observe".into(),
        message: "no observation was made".into(),
    })
}

/// Observes every wanted service; the answers are in the order of `wants`.
/// A service that cannot be had is an observation (`service: Err`), not an
/// error; only failures worth trying again are errors.
pub async fn observe_all(
    pool: &Arc<ClientPool>,
    wants: Vec<Want>,
) -> Vec<Result<Observation, AwsError>> {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, w) in wants.iter().enumerate() {
        groups
            .entry((w.clients.account.clone(), w.cluster.clone()))
            .or_default()
            .push(i);
    }
    let wants = Arc::new(wants);
    let mut work = JoinSet::new();
    for (_, members) in groups {
        let pool = pool.clone();
        let wants = wants.clone();
        work.spawn(async move {
            let answers = observe_cluster(&pool, &wants, &members).await;
            members.into_iter().zip(answers).collect::<Vec<_>>()
        });
    }
    let mut out: Vec<Option<Result<Observation, AwsError>>> =
        (0..wants.len()).map(|_| None).collect();
    while let Some(done) = work.join_next().await {
        match done {
            Ok(answers) => {
                for (i, answer) in answers {
                    out[i] = Some(answer);
                }
            }
            Err(e) => tracing::error!(error = %e, "an observation task failed"),
        }
    }
    out.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(AwsError::Transient {
                    action: "observe".into(),
                    message: "the observation task failed".into(),
                })
            })
        })
        .collect()
}

/// What a shared call answered for one service; errors are cloned to each.
type Shared<T> = Result<T, AwsError>;

/// The services of one account and cluster, in the order of `members`.
async fn observe_cluster(
    pool: &Arc<ClientPool>,
    wants: &[Want],
    members: &[usize],
) -> Vec<Result<Observation, AwsError>> {
    let first = &wants[members[0]];
    let clients = first.clients.clone();
    let cluster = first.cluster.clone();
    let mut names: Vec<String> = members.iter().map(|i| wants[*i].service.clone()).collect();
    names.sort();
    names.dedup();

    let services = describe_services(&clients, &cluster, &names).await;
    let active: Vec<String> = names
        .iter()
        .filter(|n| matches!(services.get(*n), Some(Ok(Ok(_)))))
        .cloned()
        .collect();
    let listed = list_tasks(&clients, &cluster, &active).await;

    // Every task any member needs, described once.
    let mut arns: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in members {
        let w = &wants[*i];
        if let Some(Ok(list)) = listed.get(&w.service) {
            for arn in list.iter().chain(&w.extra) {
                if seen.insert(arn.clone()) {
                    arns.push(arn.clone());
                }
            }
        }
    }
    let described = describe_tasks(pool, &clients, &cluster, &arns).await;

    let scaled: Vec<String> = {
        let mut s: Vec<String> = members
            .iter()
            .filter(|i| wants[**i].scaling)
            .map(|i| wants[*i].service.clone())
            .filter(|n| active.contains(n))
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let scaling = scalable_targets(&clients, &cluster, &scaled).await;

    members
        .iter()
        .map(|i| {
            let w = &wants[*i];
            let view = match services.get(&w.service) {
                Some(Ok(Ok(view))) => view.clone(),
                Some(Ok(Err(reason))) => return Ok(gone(reason.clone())),
                // AWS refusing to show the service (denied, no such cluster) is
                // what the request fails with; anything else is tried again.
                Some(Err(e @ AwsError::Refused { .. })) => return Ok(gone(e.to_string())),
                Some(Err(e)) => return Err(e.clone()),
                None => return Err(unreachable_empty().unwrap_err()),
            };
            let list = match listed.get(&w.service) {
                Some(Ok(list)) => list,
                Some(Err(e @ AwsError::Refused { .. })) => return Ok(gone(e.to_string())),
                Some(Err(e)) => return Err(e.clone()),
                None => return Err(unreachable_empty().unwrap_err()),
            };
            let described = match &described {
                Ok(d) => d,
                Err(e) => return Err(e.clone()),
            };
            let mut tasks = Vec::new();
            let mut added = std::collections::HashSet::new();
            for arn in list.iter().chain(&w.extra) {
                if added.insert(arn)
                    && let Some(t) = described.get(arn)
                {
                    tasks.push(t.clone());
                }
            }
            let scaling = if w.scaling {
                match &scaling {
                    Ok(s) => s.get(&w.service).copied(),
                    Err(e) => return Err(e.clone()),
                }
            } else {
                None
            };
            Ok(Observation {
                service: Ok(view),
                tasks,
                scaling,
            })
        })
        .collect()
}

fn gone(reason: String) -> Observation {
    Observation {
        service: Err(reason),
        tasks: Vec::new(),
        scaling: None,
    }
}

/// Service name → its view, or the reason it cannot be had (missing, not ACTIVE).
async fn describe_services(
    clients: &Clients,
    cluster: &str,
    names: &[String],
) -> HashMap<String, Shared<Result<ServiceView, String>>> {
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
                        Ok(service_view(svc))
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
    }
}

/// Service name → the ARNs of its tasks with desired status RUNNING, every page.
async fn list_tasks(
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
    let action = "ecs:ListTasks";
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .call(action, || async {
                clients
                    .ecs
                    .list_tasks()
                    .cluster(cluster)
                    .service_name(service)
                    .desired_status(DesiredStatus::Running)
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
}

fn to_utc(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Task ARN → its view, for every task ECS still knows.
async fn describe_tasks(
    pool: &ClientPool,
    clients: &Clients,
    cluster: &str,
    arns: &[String],
) -> Result<HashMap<String, TaskView>, AwsError> {
    let mut out = HashMap::new();
    for chunk in arns.chunks(TASKS_PER_CALL) {
        let action = "ecs:DescribeTasks";
        let described = clients
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
            .await?;
        for t in described.tasks() {
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
            };
            out.insert(view.arn.clone(), view);
        }
    }
    Ok(out)
}

async fn health_checked(pool: &ClientPool, clients: &Clients, td: &str) -> Result<bool, AwsError> {
    if td.is_empty() {
        return Ok(false);
    }
    if let Some(known) = pool.cached_health_check(td) {
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
    pool.remember_health_check(td, has);
    Ok(has)
}

/// Service name → its scalable target, for the services that have one.
async fn scalable_targets(
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
