//! The capacity side of a look, read only where the decision needs it: the
//! room left on a cluster's ACTIVE container instances (ListContainerInstances,
//! every page, then DescribeContainerInstances for up to 100 a call) when a
//! task of a launch type EC2 service could not be placed, or for a dry run;
//! and the capacity providers (DescribeCapacityProviders, up to 100 a
//! call) a task waits on, or a dry run's strategy names, kept for a while
//! since they seldom change. A Fargate service's look makes none of these.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::ContainerInstanceStatus;
use parking_lot::Mutex;

use crate::aws::{AwsError, Clients, classify};
use crate::request::observation::{InstanceRoom, ProviderView};

/// Container instances described a call, and capacity providers.
const PER_CALL: usize = 100;
/// How long a capacity provider, once described, is trusted.
const PROVIDER_KEPT: Duration = Duration::from_secs(600);

/// The ACTIVE container instances of `cluster` and the room each has left.
pub(super) async fn room(clients: &Clients, cluster: &str) -> Result<Vec<InstanceRoom>, AwsError> {
    let arns = list_instances(clients, cluster).await?;
    let mut out = Vec::new();
    for chunk in arns.chunks(PER_CALL) {
        let action = "ecs:DescribeContainerInstances";
        let described = clients
            .call(action, || async {
                clients
                    .ecs
                    .describe_container_instances()
                    .cluster(cluster)
                    .set_container_instances(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        for ci in described.container_instances() {
            let left = |name: &str| {
                ci.remaining_resources()
                    .iter()
                    .find(|r| r.name() == Some(name))
                    .map_or(0, |r| r.integer_value().max(0) as u32)
            };
            out.push(InstanceRoom {
                arn: ci.container_instance_arn().unwrap_or_default().to_string(),
                cpu_left: left("CPU"),
                memory_left: left("MEMORY"),
                running_tasks: ci.running_tasks_count().max(0) as u32,
                provider: ci.capacity_provider_name().map(str::to_string),
            });
        }
    }
    Ok(out)
}

async fn list_instances(clients: &Clients, cluster: &str) -> Result<Vec<String>, AwsError> {
    let action = "ecs:ListContainerInstances";
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .call(action, || async {
                clients
                    .ecs
                    .list_container_instances()
                    .cluster(cluster)
                    .status(ContainerInstanceStatus::Active)
                    .max_results(PER_CALL as i32)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        arns.extend(page.container_instance_arns().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(arns),
        }
    }
}

/// (account, provider name) → the provider, and when it was described.
#[derive(Default)]
pub(crate) struct Providers(Mutex<HashMap<(String, String), (Instant, ProviderView)>>);

/// The capacity providers named, each described at most once a
/// [`PROVIDER_KEPT`]; Fargate's are known without asking.
pub(super) async fn providers(
    kept: &Providers,
    clients: &Clients,
    names: &[String],
) -> Result<Vec<ProviderView>, AwsError> {
    let key = |n: &str| (clients.account.clone(), n.to_string());
    let mut out = Vec::new();
    let mut ask = Vec::new();
    for name in names {
        if crate::request::observation::is_fargate(name) {
            out.push(ProviderView {
                name: name.clone(),
                auto_scaling_group: None,
                managed_scaling: false,
                target_capacity: None,
            });
            continue;
        }
        let known = kept.0.lock().get(&key(name)).cloned();
        match known.filter(|(at, _)| at.elapsed() < PROVIDER_KEPT) {
            Some((_, p)) => out.push(p),
            None => ask.push(name.clone()),
        }
    }
    for chunk in ask.chunks(PER_CALL) {
        let action = "ecs:DescribeCapacityProviders";
        let described = clients
            .call(action, || async {
                clients
                    .ecs
                    .describe_capacity_providers()
                    .set_capacity_providers(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        for p in described.capacity_providers() {
            let group = p.auto_scaling_group_provider();
            let scaling = group.and_then(|g| g.managed_scaling());
            let view = ProviderView {
                name: p.name().unwrap_or_default().to_string(),
                auto_scaling_group: group.map(|g| g.auto_scaling_group_arn().to_string()),
                managed_scaling: scaling
                    .and_then(|m| m.status())
                    .is_some_and(|s| s.as_str() == "ENABLED"),
                target_capacity: scaling
                    .and_then(|m| m.target_capacity())
                    .map(|t| t.max(0) as u32),
            };
            kept.0
                .lock()
                .insert(key(&view.name), (Instant::now(), view.clone()));
            out.push(view);
        }
    }
    Ok(out)
}
