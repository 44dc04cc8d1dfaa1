//! The operator's hands and eyes on AWS: observing a service (DescribeServices,
//! every page of ListTasks, DescribeTasks in hundreds, DescribeScalableTargets)
//! and performing the decided actions — only through the official SDK
//! clients, configured the standard way, optionally through an assumed role
//! for a service in another account.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, Utc};

use crate::decide::Action;
use crate::observation::{DeploymentView, Observation, ServiceView, TaskView};
use crate::status::ScalingSettings;

/// An AWS call that did not succeed, sorted by what the operator should do.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// Throttled, timed out or unreachable: try again later; never fail a request for it.
    #[error("{action} did not answer in time: {message}")]
    Transient { action: String, message: String },
    /// AWS refused: denied, not found, invalid. Fails the request with this sentence.
    #[error("{action} was refused: {code}: {message}")]
    Refused {
        action: String,
        code: String,
        message: String,
    },
}

const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServerException",
    "ServiceUnavailable",
    "InternalFailure",
];

/// Sorts an SDK error: `action` names the IAM action, e.g. `ecs:StopTask`.
fn classify<E, R>(action: &str, err: aws_sdk_ecs::error::SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let action = action.to_string();
    match err.as_service_error() {
        Some(service_error) => {
            let code = service_error.code().unwrap_or("Unknown").to_string();
            let message = service_error.message().unwrap_or_default().to_string();
            if TRANSIENT_CODES.contains(&code.as_str()) {
                AwsError::Transient {
                    action,
                    message: format!("{code}: {message}"),
                }
            } else {
                AwsError::Refused {
                    action,
                    code,
                    message,
                }
            }
        }
        None => AwsError::Transient {
            action,
            message: aws_smithy_error_text(&err),
        },
    }
}

fn aws_smithy_error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// ECS and Application Auto Scaling clients for one account.
#[derive(Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub aas: aws_sdk_applicationautoscaling::Client,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            ecs: aws_sdk_ecs::Client::new(config),
            aas: aws_sdk_applicationautoscaling::Client::new(config),
        }
    }
}

/// Clients for the operator's own account and, made on first use and kept,
/// for each role it assumes to reach services in other accounts.
pub struct ClientPool {
    base: aws_config::SdkConfig,
    own: Clients,
    assumed: Mutex<HashMap<(String, Option<String>), Clients>>,
    /// Task definition ARN → whether any container has a health check (they never change).
    health_checks: Mutex<HashMap<String, bool>>,
}

impl ClientPool {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        Self {
            own: Clients::new(&base),
            base,
            assumed: Mutex::new(HashMap::new()),
            health_checks: Mutex::new(HashMap::new()),
        }
    }

    /// The operator's own configuration (region, credentials, endpoints).
    pub fn base_config(&self) -> &aws_config::SdkConfig {
        &self.base
    }

    pub async fn for_role(&self, role_arn: Option<&str>, external_id: Option<&str>) -> Clients {
        let Some(role) = role_arn else {
            return self.own.clone();
        };
        let key = (role.to_string(), external_id.map(str::to_string));
        if let Some(c) = self.lock_assumed().get(&key) {
            return c.clone();
        }
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("ecs-recycler")
            .configure(&self.base);
        if let Some(id) = external_id {
            provider = provider.external_id(id);
        }
        let provider = provider.build().await;
        let config = self
            .base
            .to_builder()
            .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build();
        let clients = Clients::new(&config);
        self.lock_assumed().insert(key, clients.clone());
        clients
    }

    fn lock_assumed(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, Option<String>), Clients>> {
        self.assumed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached_health_check(&self, td: &str) -> Option<bool> {
        self.health_checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(td)
            .copied()
    }

    fn remember_health_check(&self, td: &str, has: bool) {
        self.health_checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(td.to_string(), has);
    }
}

fn to_utc(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Looks at the service, its tasks (and `extra` task ARNs, such as the batch
/// in flight), and its scalable target. A service that cannot be had is an
/// observation (`service: Err`), not an error; only transient failures are.
pub async fn observe(
    pool: &ClientPool,
    clients: &Clients,
    cluster: &str,
    service: &str,
    extra: &[String],
) -> Result<Observation, AwsError> {
    let gone = |reason: String| Observation {
        service: Err(reason),
        tasks: Vec::new(),
        scaling: None,
    };
    let described = match clients
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return refusal_as_observation(classify("ecs:DescribeServices", e)),
    };
    let Some(svc) = described.services().first() else {
        let reason = described
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("MISSING");
        return Ok(gone(format!(
            "service {service} not found in cluster {cluster} ({reason})"
        )));
    };
    let status = svc.status().unwrap_or_default();
    if status != "ACTIVE" {
        return Ok(gone(format!("service {cluster}/{service} is {status}")));
    }
    let view = ServiceView {
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
    };

    let mut arns = Vec::new();
    let mut pages = clients
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Running)
        .max_results(100)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) => return refusal_as_observation(classify("ecs:ListTasks", e)),
        };
        arns.extend(page.task_arns().iter().cloned());
    }
    for arn in extra {
        if !arns.contains(arn) {
            arns.push(arn.clone());
        }
    }

    let mut tasks = Vec::with_capacity(arns.len());
    for chunk in arns.chunks(100) {
        let out = clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify("ecs:DescribeTasks", e))?;
        for t in out.tasks() {
            let td = t.task_definition_arn().unwrap_or_default();
            let health_checked = health_checked(pool, clients, td).await?;
            tasks.push(TaskView {
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
            });
        }
    }

    let scaling = observe_scaling(clients, cluster, service).await?;
    Ok(Observation {
        service: Ok(view),
        tasks,
        scaling,
    })
}

async fn health_checked(pool: &ClientPool, clients: &Clients, td: &str) -> Result<bool, AwsError> {
    if td.is_empty() {
        return Ok(false);
    }
    if let Some(known) = pool.cached_health_check(td) {
        return Ok(known);
    }
    let out = clients
        .ecs
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .map_err(|e| classify("ecs:DescribeTaskDefinition", e))?;
    let has = out.task_definition().is_some_and(|d| {
        d.container_definitions()
            .iter()
            .any(|c| c.health_check().is_some())
    });
    pool.remember_health_check(td, has);
    Ok(has)
}

/// AWS refusing to show the service (denied, not found) is what the request
/// fails with; anything transient is tried again.
fn refusal_as_observation(err: AwsError) -> Result<Observation, AwsError> {
    match err {
        AwsError::Refused { .. } => Ok(Observation {
            service: Err(err.to_string()),
            tasks: Vec::new(),
            scaling: None,
        }),
        transient => Err(transient),
    }
}

fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

async fn observe_scaling(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> Result<Option<ScalingSettings>, AwsError> {
    let out = clients
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(resource_id(cluster, service))
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Err(classify(
                "application-autoscaling:DescribeScalableTargets",
                e,
            ));
        }
    };
    Ok(out.scalable_targets().first().map(|t| {
        let s = t.suspended_state();
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
        }
    }))
}

/// Performs one decided action.
pub async fn act(
    clients: &Clients,
    cluster: &str,
    service: &str,
    action: &Action,
) -> Result<(), AwsError> {
    match action {
        Action::SetDesired { to, .. } => clients
            .ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(*to as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("ecs:UpdateService", e)),
        Action::StopTask { arn, reason } => clients
            .ecs
            .stop_task()
            .cluster(cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("ecs:StopTask", e)),
        Action::SetScaling(s) => clients
            .aas
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(resource_id(cluster, service))
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .max_capacity(s.max as i32)
            .suspended_state(
                SuspendedState::builder()
                    .dynamic_scaling_in_suspended(s.dynamic_scaling_in_suspended)
                    .dynamic_scaling_out_suspended(s.dynamic_scaling_out_suspended)
                    .scheduled_scaling_suspended(s.scheduled_scaling_suspended)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("application-autoscaling:RegisterScalableTarget", e)),
    }
}
