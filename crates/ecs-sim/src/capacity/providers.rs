//! Capacity providers over the wire: CreateCapacityProvider (an Auto
//! Scaling group provider with managed scaling and managed termination
//! protection), DescribeCapacityProviders (FARGATE and FARGATE_SPOT
//! included), PutClusterCapacityProviders with the cluster's default
//! strategy, and the strategies services give, checked as ECS checks them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    CapacityProvider, DEFAULT_MAXIMUM_STEP, DEFAULT_MINIMUM_STEP, DEFAULT_TARGET_CAPACITY,
    DEFAULT_WARMUP, FARGATE_PROVIDERS,
};
use crate::ecs::{Result, cluster_name};
use crate::model::{ServiceStatus, StrategyItem, short_name};
use crate::wire::{ApiError, required};
use crate::world::World;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ManagedScalingInput {
    status: Option<String>,
    target_capacity: Option<i64>,
    minimum_scaling_step_size: Option<i64>,
    maximum_scaling_step_size: Option<i64>,
    instance_warmup_period: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupProviderInput {
    auto_scaling_group_arn: Option<String>,
    managed_scaling: Option<ManagedScalingInput>,
    managed_termination_protection: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateRequest {
    name: Option<String>,
    auto_scaling_group_provider: Option<GroupProviderInput>,
    tags: Option<Vec<crate::tags::Tag>>,
}

fn in_range(field: &str, v: Option<i64>, range: std::ops::RangeInclusive<i64>) -> Result<()> {
    match v {
        Some(v) if !range.contains(&v) => Err(ApiError::invalid_parameter(format!(
            "{field}: {v} is outside {}..{}.",
            range.start(),
            range.end()
        ))),
        _ => Ok(()),
    }
}

fn enabled(field: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("DISABLED") => Ok(false),
        Some("ENABLED") => Ok(true),
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "{field}: {other:?} is not ENABLED or DISABLED."
        ))),
    }
}

pub(super) fn create(world: &mut World, req: CreateRequest) -> Result<Value> {
    let name = required(req.name, || {
        ApiError::invalid_parameter("name is required.")
    })?;
    crate::ecs::check_name("name", &name)?;
    let lower = name.to_ascii_lowercase();
    if ["aws", "ecs", "fargate"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(ApiError::invalid_parameter(
            "The capacity provider name can't be prefixed with aws, ecs, or fargate.",
        ));
    }
    crate::tags::read(req.tags)?;
    let group_input = required(req.auto_scaling_group_provider, || {
        ApiError::invalid_parameter("autoScalingGroupProvider is required.")
    })?;
    let group_given = required(group_input.auto_scaling_group_arn, || {
        ApiError::invalid_parameter("autoScalingGroupProvider.autoScalingGroupArn is required.")
    })?;
    let group = world
        .capacity
        .groups
        .values()
        .find(|g| g.arn == group_given || g.name == group_given)
        .ok_or_else(|| {
            ApiError::client(format!(
                "The specified Auto Scaling group {group_given} does not exist (create it with POST /_sim/auto-scaling-groups)."
            ))
        })?;
    let settings = scaling_settings(
        group_input.managed_scaling,
        group_input.managed_termination_protection.as_deref(),
    )?;
    if world.capacity.providers.contains_key(&name) || FARGATE_PROVIDERS.contains(&name.as_str()) {
        return Err(ApiError::client(
            "The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider.",
        ));
    }
    if world
        .capacity
        .providers
        .values()
        .any(|p| p.group == group.name)
    {
        return Err(ApiError::client(
            "The specified Auto Scaling group ARN is already being used by another capacity provider.",
        ));
    }
    let provider = CapacityProvider {
        arn: world.arns.capacity_provider(&name),
        name: name.clone(),
        group: group.name.clone(),
        group_arn: group.arn.clone(),
        cluster: None,
        ..settings
    };
    world.capacity.providers.insert(name.clone(), provider);
    Ok(json!({"capacityProvider": provider_json(world, &name)}))
}

/// Managed scaling and termination protection as given, checked, with
/// ECS's defaults (the provider's names are filled in by the caller).
fn scaling_settings(
    scaling: Option<ManagedScalingInput>,
    termination: Option<&str>,
) -> Result<CapacityProvider> {
    let s = |f: fn(&ManagedScalingInput) -> Option<i64>| scaling.as_ref().and_then(f);
    in_range(
        "managedScaling.targetCapacity",
        s(|m| m.target_capacity),
        1..=100,
    )?;
    in_range(
        "managedScaling.minimumScalingStepSize",
        s(|m| m.minimum_scaling_step_size),
        1..=10_000,
    )?;
    in_range(
        "managedScaling.maximumScalingStepSize",
        s(|m| m.maximum_scaling_step_size),
        1..=10_000,
    )?;
    in_range(
        "managedScaling.instanceWarmupPeriod",
        s(|m| m.instance_warmup_period),
        0..=10_000,
    )?;
    let managed = enabled(
        "managedScaling.status",
        scaling.as_ref().and_then(|m| m.status.as_deref()),
    )?;
    let termination = enabled("managedTerminationProtection", termination)?;
    if termination && !managed {
        return Err(ApiError::invalid_parameter(
            "The managed termination protection setting for the capacity provider is invalid. To enable managed termination protection for a capacity provider, managed scaling must be enabled.",
        ));
    }
    let (minimum, maximum) = (
        s(|m| m.minimum_scaling_step_size).unwrap_or(DEFAULT_MINIMUM_STEP),
        s(|m| m.maximum_scaling_step_size).unwrap_or(DEFAULT_MAXIMUM_STEP),
    );
    if minimum > maximum {
        return Err(ApiError::invalid_parameter(
            "managedScaling: minimumScalingStepSize must not be greater than maximumScalingStepSize.",
        ));
    }
    Ok(CapacityProvider {
        name: String::new(),
        arn: String::new(),
        group: String::new(),
        group_arn: String::new(),
        managed_scaling: managed,
        target_capacity: s(|m| m.target_capacity).unwrap_or(DEFAULT_TARGET_CAPACITY),
        minimum_step: minimum,
        maximum_step: maximum,
        warmup: s(|m| m.instance_warmup_period),
        termination_protection: termination,
        cluster: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeRequest {
    capacity_providers: Option<Vec<String>>,
}

pub(super) fn describe(world: &mut World, req: DescribeRequest) -> Result<Value> {
    let names: Vec<String> = match req.capacity_providers {
        Some(names) if !names.is_empty() => names,
        _ => FARGATE_PROVIDERS
            .iter()
            .map(|s| s.to_string())
            .chain(world.capacity.providers.keys().cloned())
            .collect(),
    };
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for given in &names {
        let name = short_name(given);
        if FARGATE_PROVIDERS.contains(&name) || world.capacity.providers.contains_key(name) {
            found.push(provider_json(world, name));
        } else {
            failures.push(json!({"arn": world.arns.capacity_provider(name), "reason": "MISSING"}));
        }
    }
    Ok(json!({"capacityProviders": found, "failures": failures}))
}

/// A capacity provider as DescribeCapacityProviders answers it.
pub fn provider_json(world: &World, name: &str) -> Value {
    let Some(p) = world.capacity.providers.get(name) else {
        return json!({
            "capacityProviderArn": world.arns.capacity_provider(name),
            "name": name,
            "status": "ACTIVE",
            "tags": [],
        });
    };
    let flag = |on: bool| if on { "ENABLED" } else { "DISABLED" };
    json!({
        "capacityProviderArn": p.arn,
        "name": p.name,
        "status": "ACTIVE",
        "autoScalingGroupProvider": {
            "autoScalingGroupArn": p.group_arn,
            "managedScaling": {
                "status": flag(p.managed_scaling),
                "targetCapacity": p.target_capacity,
                "minimumScalingStepSize": p.minimum_step,
                "maximumScalingStepSize": p.maximum_step,
                "instanceWarmupPeriod": p.warmup.unwrap_or(DEFAULT_WARMUP),
            },
            "managedTerminationProtection": flag(p.termination_protection),
            "managedDraining": "ENABLED",
        },
        "updateStatus": "CREATE_COMPLETE",
        "tags": [],
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyInput {
    capacity_provider: Option<String>,
    weight: Option<i64>,
    base: Option<i64>,
}

/// A capacity provider strategy, checked as ECS checks it against the
/// providers associated with `cluster`.
pub fn read_strategy(
    world: &World,
    cluster: &str,
    given: Option<Vec<StrategyInput>>,
    associated: Option<&[String]>,
) -> Result<Vec<StrategyItem>> {
    let given = given.unwrap_or_default();
    if given.len() > 20 {
        return Err(ApiError::invalid_parameter(
            "capacityProviderStrategy: at most 20 capacity providers can be given.",
        ));
    }
    let associated = associated.map_or_else(
        || world.records.clusters[cluster].capacity_providers.clone(),
        <[String]>::to_vec,
    );
    let mut out: Vec<StrategyItem> = Vec::new();
    for item in given {
        let provider = required(item.capacity_provider, || {
            ApiError::invalid_parameter("capacityProviderStrategy: capacityProvider is required.")
        })?;
        in_range("capacityProviderStrategy.weight", item.weight, 0..=1000)?;
        in_range("capacityProviderStrategy.base", item.base, 0..=100_000)?;
        if !associated.contains(&provider) {
            return Err(ApiError::invalid_parameter(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.",
            ));
        }
        if out.iter().any(|i| i.provider == provider) {
            return Err(ApiError::invalid_parameter(format!(
                "capacityProviderStrategy: {provider} is given twice."
            )));
        }
        out.push(StrategyItem {
            provider,
            weight: item.weight.unwrap_or(0),
            base: item.base.unwrap_or(0),
        });
    }
    if out.iter().filter(|i| i.base > 0).count() > 1 {
        return Err(ApiError::invalid_parameter(
            "capacityProviderStrategy: only one capacity provider can have a base defined.",
        ));
    }
    let fargate = out
        .iter()
        .any(|i| FARGATE_PROVIDERS.contains(&i.provider.as_str()));
    let groups = out
        .iter()
        .any(|i| !FARGATE_PROVIDERS.contains(&i.provider.as_str()));
    if fargate && groups {
        return Err(ApiError::invalid_parameter(
            "A capacity provider strategy can contain either Fargate capacity providers or Auto Scaling group capacity providers, not both.",
        ));
    }
    Ok(out)
}

pub fn strategy_json(items: &[StrategyItem]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| json!({"capacityProvider": i.provider, "weight": i.weight, "base": i.base}))
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutRequest {
    cluster: Option<String>,
    capacity_providers: Option<Vec<String>>,
    default_capacity_provider_strategy: Option<Vec<StrategyInput>>,
}

pub(super) fn put_cluster(world: &mut World, req: PutRequest, now: f64) -> Result<Value> {
    let cluster = cluster_name(world, req.cluster.as_deref())?;
    let providers = required(req.capacity_providers, || {
        ApiError::invalid_parameter("capacityProviders is required.")
    })?;
    for p in &providers {
        if FARGATE_PROVIDERS.contains(&p.as_str()) {
            continue;
        }
        let known = world.capacity.providers.get(p).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "The specified capacity provider {p} does not exist."
            ))
        })?;
        if known.cluster.as_deref().is_some_and(|c| c != cluster) {
            return Err(ApiError::invalid_parameter(format!(
                "The specified capacity provider {p} is already associated with another cluster."
            )));
        }
    }
    let strategy = read_strategy(
        world,
        &cluster,
        req.default_capacity_provider_strategy,
        Some(&providers),
    )?;
    let in_use = world.records.services.values().find(|s| {
        s.cluster == cluster
            && s.status != ServiceStatus::Inactive
            && s.capacity_provider_strategy
                .iter()
                .any(|i| !providers.contains(&i.provider))
    });
    if let Some(s) = in_use {
        return Err(ApiError::new(
            "ResourceInUseException",
            format!(
                "The capacity provider cannot be removed from the cluster because it is used by the service {}.",
                s.name
            ),
        ));
    }
    for p in world.capacity.providers.values_mut() {
        if providers.contains(&p.name) {
            p.cluster = Some(cluster.clone());
        } else if p.cluster.as_deref() == Some(cluster.as_str()) {
            p.cluster = None;
        }
    }
    if let Some(c) = world.records.clusters.get_mut(&cluster) {
        c.capacity_providers = providers;
        c.default_strategy = strategy;
    }
    // Instances already up register with the cluster they now serve.
    world.register_group_instances(now);
    Ok(json!({"cluster": crate::ecs::cluster_json(world, &cluster)}))
}
