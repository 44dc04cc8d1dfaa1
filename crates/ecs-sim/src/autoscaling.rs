//! Application Auto Scaling for ECS services: scalable targets whose min and
//! max clamp the service's desired count, suspended states, and a simulated
//! dynamic scaling policy that changes the desired count on its own when
//! driven through the control API.

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{ScalableTarget, ScalingActivity, ServiceStatus, SuspendedState};
use super::wire::{ApiError, parse};
use super::world::World;

type Result<T> = std::result::Result<T, ApiError>;

const DIMENSION: &str = "ecs:service:DesiredCount";

pub fn handle(world: &mut World, op: &str, body: &Value, now: f64) -> Result<Value> {
    match op {
        "RegisterScalableTarget" => register(world, parse(body)?, now),
        "DescribeScalableTargets" => describe(world, parse(body)?),
        "DeregisterScalableTarget" => deregister(world, parse(body)?),
        "DescribeScalingActivities" => activities(world, parse(body)?),
        _ => Err(ApiError::unknown_operation(op)),
    }
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "PascalCase")]
struct SuspendedInput {
    dynamic_scaling_in_suspended: Option<bool>,
    dynamic_scaling_out_suspended: Option<bool>,
    scheduled_scaling_suspended: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetId {
    service_namespace: Option<String>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
}

/// Checks namespace and dimension; returns (cluster, service) of the resource id.
fn resolve(id: &TargetId) -> Result<(String, String, String)> {
    let ns = id
        .service_namespace
        .as_deref()
        .ok_or_else(|| ApiError::validation("ServiceNamespace is required."))?;
    if ns != "ecs" {
        return Err(ApiError::validation(format!(
            "Unsupported service namespace {ns:?}: this simulator models ecs only."
        )));
    }
    let resource = id
        .resource_id
        .as_deref()
        .ok_or_else(|| ApiError::validation("ResourceId is required."))?;
    let dimension = id
        .scalable_dimension
        .as_deref()
        .ok_or_else(|| ApiError::validation("ScalableDimension is required."))?;
    if dimension != DIMENSION {
        return Err(ApiError::validation(format!(
            "Unsupported scalable dimension {dimension:?} for namespace ecs; use {DIMENSION}."
        )));
    }
    let parts: Vec<&str> = resource.split('/').collect();
    match parts.as_slice() {
        ["service", cluster, service] if !cluster.is_empty() && !service.is_empty() => Ok((
            resource.to_string(),
            cluster.to_string(),
            service.to_string(),
        )),
        _ => Err(ApiError::validation(format!(
            "Unsupported resource ID {resource:?}: expected service/CLUSTER/SERVICE."
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterRequest {
    #[serde(flatten)]
    id: TargetId,
    min_capacity: Option<i64>,
    max_capacity: Option<i64>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    suspended_state: Option<SuspendedInput>,
}

fn register(world: &mut World, req: RegisterRequest, now: f64) -> Result<Value> {
    let (resource, cluster, service) = resolve(&req.id)?;
    let key = (cluster.clone(), service.clone());
    if !world
        .records
        .services
        .get(&key)
        .is_some_and(|s| s.status == ServiceStatus::Active)
    {
        return Err(ApiError::validation(format!(
            "ECS service doesn't exist: {resource}"
        )));
    }
    for (name, v) in [
        ("MinCapacity", req.min_capacity),
        ("MaxCapacity", req.max_capacity),
    ] {
        if let Some(v) = v
            && !(0..=i64::from(u32::MAX)).contains(&v)
        {
            return Err(ApiError::validation(format!(
                "{name}: {v} must be a whole number of at least 0."
            )));
        }
    }
    let existing = world.records.scalable_targets.get(&resource).cloned();
    let (min, max) = match (&existing, req.min_capacity, req.max_capacity) {
        (Some(t), min, max) => (
            min.map_or(t.min, |v| v as u32),
            max.map_or(t.max, |v| v as u32),
        ),
        (None, Some(min), Some(max)) => (min as u32, max as u32),
        (None, _, _) => {
            return Err(ApiError::validation(
                "MinCapacity and MaxCapacity are required to register a new scalable target.",
            ));
        }
    };
    if min > max {
        return Err(ApiError::validation(format!(
            "Minimum capacity ({min}) cannot be greater than maximum capacity ({max})."
        )));
    }
    // As in AWS: a SuspendedState given replaces the old one, its omitted members false.
    let suspended = match req.suspended_state {
        Some(s) => SuspendedState {
            dynamic_in: s.dynamic_scaling_in_suspended.unwrap_or(false),
            dynamic_out: s.dynamic_scaling_out_suspended.unwrap_or(false),
            scheduled: s.scheduled_scaling_suspended.unwrap_or(false),
        },
        None => existing.as_ref().map(|t| t.suspended).unwrap_or_default(),
    };
    let arn = match &existing {
        Some(t) => t.arn.clone(),
        None => {
            let id = world.random_hex(32);
            world.arns.scalable_target(&id)
        }
    };
    let target = ScalableTarget {
        resource_id: resource.clone(),
        cluster,
        service,
        min,
        max,
        role_arn: req.role_arn.or(existing.as_ref().map(|t| t.role_arn.clone())).unwrap_or_else(|| {
            format!(
                "arn:aws:iam::{}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService",
                super::model::ACCOUNT
            )
        }),
        suspended,
        created_at: existing.as_ref().map_or(now, |t| t.created_at),
        arn: arn.clone(),
    };
    world
        .records
        .scalable_targets
        .insert(resource.clone(), target);
    // Registering a range the desired count is outside of brings it inside.
    let desired = world.records.services[&key].desired;
    let clamped = desired.clamp(min, max);
    if clamped != desired {
        set_desired(
            world,
            &key,
            clamped,
            format!("Setting desired count to {clamped}."),
            format!(
                "the scalable target was registered with the range {min}..{max}, outside which desired count {desired} lay"
            ),
            now,
        );
    }
    Ok(json!({"ScalableTargetARN": arn}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeRequest {
    service_namespace: Option<String>,
    resource_ids: Option<Vec<String>>,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn describe(world: &mut World, req: DescribeRequest) -> Result<Value> {
    match req.service_namespace.as_deref() {
        Some("ecs") => {}
        Some(other) => {
            return Err(ApiError::validation(format!(
                "Unsupported service namespace {other:?}: this simulator models ecs only."
            )));
        }
        None => return Err(ApiError::validation("ServiceNamespace is required.")),
    }
    let max = match req.max_results {
        None => 50,
        Some(n) if (1..=50).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::validation(format!(
                "MaxResults: {n} is outside 1..50."
            )));
        }
    };
    let after = req.next_token.filter(|t| !t.is_empty());
    let targets: Vec<&ScalableTarget> = world
        .records
        .scalable_targets
        .values()
        .filter(|t| {
            req.resource_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == &t.resource_id))
                && req
                    .scalable_dimension
                    .as_deref()
                    .is_none_or(|d| d == DIMENSION)
                && after.as_ref().is_none_or(|a| &t.resource_id > a)
        })
        .collect();
    let page: Vec<Value> = targets
        .iter()
        .take(max)
        .map(|t| target_json(world, t))
        .collect();
    let mut v = json!({"ScalableTargets": page});
    if targets.len() > max {
        v["NextToken"] = json!(targets[max - 1].resource_id);
    }
    Ok(v)
}

fn target_json(world: &World, t: &ScalableTarget) -> Value {
    json!({
        "ServiceNamespace": "ecs",
        "ResourceId": t.resource_id,
        "ScalableDimension": DIMENSION,
        "MinCapacity": t.min,
        "MaxCapacity": t.max,
        "RoleARN": t.role_arn,
        "CreationTime": world.epoch(t.created_at),
        "SuspendedState": {
            "DynamicScalingInSuspended": t.suspended.dynamic_in,
            "DynamicScalingOutSuspended": t.suspended.dynamic_out,
            "ScheduledScalingSuspended": t.suspended.scheduled,
        },
        "ScalableTargetARN": t.arn,
    })
}

fn deregister(world: &mut World, req: TargetId) -> Result<Value> {
    let (resource, _, _) = resolve(&req)?;
    if world.records.scalable_targets.remove(&resource).is_none() {
        return Err(ApiError::new(
            "ObjectNotFoundException",
            format!(
                "No scalable target registered for service namespace: ecs, resource ID: {resource}, scalable dimension: {DIMENSION}"
            ),
        ));
    }
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ActivitiesRequest {
    service_namespace: Option<String>,
    resource_id: Option<String>,
}

fn activities(world: &mut World, req: ActivitiesRequest) -> Result<Value> {
    if req.service_namespace.as_deref() != Some("ecs") {
        return Err(ApiError::validation("ServiceNamespace must be ecs."));
    }
    let list: Vec<Value> = world
        .records
        .scaling_activities
        .iter()
        .rev()
        .filter(|a| req.resource_id.as_ref().is_none_or(|r| r == &a.resource_id))
        .map(|a| {
            json!({
                "ActivityId": a.id,
                "ServiceNamespace": "ecs",
                "ResourceId": a.resource_id,
                "ScalableDimension": DIMENSION,
                "Description": a.description,
                "Cause": a.cause,
                "StartTime": world.epoch(a.at),
                "EndTime": world.epoch(a.at),
                "StatusCode": a.status,
                "StatusMessage": a.message,
            })
        })
        .collect();
    Ok(json!({"ScalingActivities": list}))
}

fn set_desired(
    world: &mut World,
    key: &(String, String),
    desired: u32,
    description: String,
    cause: String,
    now: f64,
) {
    if let Some(svc) = world.records.services.get_mut(key) {
        svc.desired = desired;
    }
    record_activity(
        world,
        key,
        description,
        cause,
        "Successful",
        String::new(),
        now,
    );
    world.sample(&key.0, &key.1, now);
}

fn record_activity(
    world: &mut World,
    key: &(String, String),
    description: String,
    cause: String,
    status: &'static str,
    message: String,
    now: f64,
) {
    let id = world.random_hex(32);
    world.records.scaling_activities.push(ScalingActivity {
        id,
        resource_id: format!("service/{}/{}", key.0, key.1),
        description,
        cause,
        at: now,
        status,
        message,
    });
}

/// What the simulated policy did when asked for a desired count.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyOutcome {
    pub before: u32,
    pub after: u32,
    /// Why the policy did not (fully) get what it asked for, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_scaled_reason: Option<String>,
}

impl World {
    /// The dynamic scaling policy asks for `wanted` tasks: within min and
    /// max, and not in a direction that is suspended.
    pub fn policy_scale(
        &mut self,
        cluster: &str,
        service: &str,
        wanted: u32,
        now: f64,
    ) -> std::result::Result<PolicyOutcome, String> {
        let key = (cluster.to_string(), service.to_string());
        let resource = format!("service/{cluster}/{service}");
        let Some(target) = self.records.scalable_targets.get(&resource).cloned() else {
            return Err(format!("no scalable target is registered for {resource}"));
        };
        let Some(svc) = self.records.services.get(&key) else {
            return Err(format!("service {cluster}/{service} does not exist"));
        };
        let before = svc.desired;
        let goal = wanted.clamp(target.min, target.max);
        let blocked = if goal < before && target.suspended.dynamic_in {
            Some("DynamicScalingInSuspended")
        } else if goal > before && target.suspended.dynamic_out {
            Some("DynamicScalingOutSuspended")
        } else {
            None
        };
        self.timeline.call(
            now,
            "_sim:ScalingPolicy",
            json!({"cluster": cluster, "service": service, "wanted": wanted, "before": before,
                   "after": if blocked.is_some() { before } else { goal }, "blocked": blocked}),
            None,
        );
        let cause = format!("simulated dynamic scaling policy asked for {wanted}");
        if let Some(reason) = blocked {
            record_activity(
                self,
                &key,
                format!("Setting desired count to {goal}."),
                cause,
                "Failed",
                format!("Not scaled: {reason}"),
                now,
            );
            return Ok(PolicyOutcome {
                before,
                after: before,
                not_scaled_reason: Some(reason.into()),
            });
        }
        if goal != before {
            set_desired(
                self,
                &key,
                goal,
                format!("Setting desired count to {goal}."),
                cause,
                now,
            );
        }
        Ok(PolicyOutcome {
            before,
            after: goal,
            not_scaled_reason: (goal != wanted)
                .then(|| format!("clamped to {}..{}", target.min, target.max)),
        })
    }
}
