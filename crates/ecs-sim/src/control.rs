//! The simulator's control API under `/_sim/`: timings, faults, throttling,
//! how long stopped tasks are kept, the load balancers' time scale, cluster
//! capacity, the scaling policy, traffic, and the audit timeline. Each
//! function takes the parsed JSON body and answers JSON or a sentence saying
//! what was wrong; a refused request changes nothing.

use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::{FaultProfile, ThrottleConfig, TimingOverrides};
use super::world::{PolicyDriver, World};
use crate::duration::serde_opt_duration;

type Result<T> = std::result::Result<T, String>;

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T> {
    serde_json::from_value(body).map_err(|e| format!("invalid request: {e}"))
}

fn refuse(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GlobalConfig {
    timings: Option<TimingOverrides>,
    faults: Option<FaultProfile>,
    throttle: Option<ThrottleConfig>,
    /// How long STOPPED tasks stay visible (`"1h"`, ECS's own minimum, by default).
    #[serde(default, with = "serde_opt_duration")]
    stopped_task_retention: Option<std::time::Duration>,
    /// Divides the load balancers' durations (health-check intervals,
    /// deregistration delays, grace periods): a simulator-only speed-up.
    target_time_scale: Option<f64>,
    /// Divides ECS's own fixed durations (Spot's warning, the provisioning
    /// timeout, task protection, instances' launch and warm-up).
    ecs_time_scale: Option<f64>,
    /// ECS's events to an SQS queue, and the feed's faults.
    events: Option<crate::events::EventsConfig>,
}

pub fn config(world: &World) -> Value {
    json!({
        "timings": world.timings.as_overrides(),
        "faults": world.faults,
        "throttle": world.throttle.config,
        "stoppedTaskRetention": crate::duration::format(
            std::time::Duration::from_secs_f64(world.stopped_task_retention)
        ),
        "targetTimeScale": world.target_time_scale,
        "ecsTimeScale": world.ecs_time_scale,
        "events": world.events_summary(),
    })
}

/// `POST /_sim/config`: global timings, faults and throttling.
pub fn set_config(world: &mut World, body: Value) -> Result<Value> {
    let req: GlobalConfig = parse(body)?;
    let mut problems = Vec::new();
    if let Some(t) = &req.timings {
        problems.extend(t.problems());
    }
    if let Some(f) = &req.faults {
        problems.extend(f.problems());
    }
    if let Some(t) = &req.throttle {
        problems.extend(t.problems());
    }
    if let Some(s) = req.target_time_scale
        && !(s > 0.0 && s.is_finite())
    {
        problems.push(format!("targetTimeScale: {s} must be more than 0"));
    }
    if let Some(s) = req.ecs_time_scale
        && !(s > 0.0 && s.is_finite())
    {
        problems.push(format!("ecsTimeScale: {s} must be more than 0"));
    }
    if let Some(e) = &req.events {
        problems.extend(e.problems());
    }
    refuse(problems)?;
    // First, as it alone can still fail (a queue URL that is not one).
    if let Some(e) = req.events {
        world.configure_events(e)?;
    }
    if let Some(s) = req.ecs_time_scale {
        world.ecs_time_scale = s;
    }
    if let Some(s) = req.target_time_scale {
        world.target_time_scale = s;
    }
    if let Some(t) = req.timings {
        world.timings.apply(&t);
    }
    if let Some(f) = req.faults {
        world.faults = f;
    }
    if let Some(t) = req.throttle {
        world.throttle.configure(t);
    }
    if let Some(r) = req.stopped_task_retention {
        world.stopped_task_retention = r.as_secs_f64();
    }
    Ok(config(world))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceConfig {
    timings: Option<TimingOverrides>,
    /// `null` returns the service to the global faults.
    #[serde(default, deserialize_with = "present")]
    faults: Option<Option<FaultProfile>>,
}

/// Tells `"faults": null` (clear) from no `faults` at all (keep).
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /_sim/services/{cluster}/{service}`: timings and faults of one service.
pub fn set_service(world: &mut World, cluster: &str, service: &str, body: Value) -> Result<Value> {
    let req: ServiceConfig = parse(body)?;
    let key = (cluster.to_string(), service.to_string());
    if !world.records.services.contains_key(&key) {
        return Err(format!("service {cluster}/{service} does not exist"));
    }
    let mut problems = Vec::new();
    if let Some(t) = &req.timings {
        problems.extend(t.problems());
    }
    if let Some(Some(f)) = &req.faults {
        problems.extend(f.problems());
    }
    refuse(problems)?;
    let svc = world
        .records
        .services
        .get_mut(&key)
        .ok_or("service vanished")?;
    if let Some(t) = &req.timings {
        svc.timings.merge(t);
    }
    if let Some(f) = req.faults {
        svc.faults = f;
    }
    let effective = world.timings_for(&world.records.services[&key]);
    let faults = world.faults_for(&world.records.services[&key]);
    Ok(json!({"timings": effective.as_overrides(), "faults": faults}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClusterConfig {
    /// Tasks that can be placed at once; `null` for unlimited.
    capacity: Option<usize>,
}

/// `POST /_sim/clusters/{cluster}`: the cluster's capacity.
pub fn set_cluster(world: &mut World, cluster: &str, body: Value) -> Result<Value> {
    let req: ClusterConfig = parse(body)?;
    let c = world
        .records
        .clusters
        .get_mut(cluster)
        .ok_or_else(|| format!("cluster {cluster} does not exist"))?;
    c.capacity = req.capacity;
    Ok(json!({"cluster": cluster, "capacity": c.capacity, "placed": c.placed}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaleRequest {
    cluster: String,
    service: String,
    desired_count: u32,
}

/// `POST /_sim/scale`: the simulated scaling policy asks for a desired count now.
pub fn scale(world: &mut World, body: Value, now: f64) -> Result<Value> {
    let req: ScaleRequest = parse(body)?;
    let outcome = world.policy_scale(&req.cluster, &req.service, req.desired_count, now)?;
    serde_json::to_value(outcome).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyRequest {
    cluster: String,
    service: String,
    #[serde(default, with = "serde_opt_duration")]
    every: Option<std::time::Duration>,
    #[serde(default)]
    targets: Vec<u32>,
}

/// `POST /_sim/policies`: the policy asks for each of `targets` in turn,
/// every `every`, on its own; empty `targets` stops it.
pub fn set_policy(world: &mut World, body: Value, now: f64) -> Result<Value> {
    let req: PolicyRequest = parse(body)?;
    world
        .drivers
        .retain(|d| !(d.cluster == req.cluster && d.service == req.service));
    if req.targets.is_empty() {
        return Ok(json!({"drivers": world.drivers.len()}));
    }
    let every = req
        .every
        .filter(|d| !d.is_zero())
        .ok_or("every: a duration greater than zero is required, like 500ms")?
        .as_secs_f64();
    let resource = format!("service/{}/{}", req.cluster, req.service);
    if !world.records.scalable_targets.contains_key(&resource) {
        return Err(format!("no scalable target is registered for {resource}"));
    }
    world.drivers.push(PolicyDriver {
        cluster: req.cluster,
        service: req.service,
        every,
        targets: req.targets,
        next_index: 0,
        next_at: now + every,
    });
    Ok(json!({"drivers": world.drivers.len()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AgeRequest {
    cluster: String,
    /// Every live task of this service, and the service itself.
    service: Option<String>,
    /// One task, by ARN or id.
    task: Option<String>,
    /// How far back to move `createdAt` and `startedAt`, like "8d".
    by: String,
}

/// `POST /_sim/age`: makes tasks older than they are, as if they had
/// started `by` earlier — for tests of a maximum task age. A task that was
/// not healthy yet turns healthy as if it had started earlier too.
pub fn age(world: &mut World, body: Value) -> Result<Value> {
    let req: AgeRequest = parse(body)?;
    let by = crate::duration::parse(&req.by)
        .map_err(|e| format!("by: {e}"))?
        .as_secs_f64();
    let cluster = req.cluster;
    let arns: Vec<String> = match (&req.service, &req.task) {
        (Some(service), None) => {
            let key = (cluster.clone(), service.clone());
            let svc = world
                .records
                .services
                .get_mut(&key)
                .ok_or_else(|| format!("service {cluster}/{service} does not exist"))?;
            svc.created_at -= by;
            world
                .live_tasks(&cluster, service)
                .map(|t| t.arn.clone())
                .collect()
        }
        (None, Some(task)) => {
            let found = world
                .records
                .tasks
                .values()
                .find(|t| t.cluster == cluster && (t.arn == *task || t.id == *task))
                .ok_or_else(|| format!("task {task} does not exist in cluster {cluster}"))?;
            vec![found.arn.clone()]
        }
        _ => return Err("give either service or task".into()),
    };
    for arn in &arns {
        if let Some(t) = world.records.tasks.get_mut(arn) {
            t.created_at -= by;
            if let Some(s) = t.started_at.as_mut() {
                *s -= by;
            }
        }
    }
    Ok(json!({"aged": arns.len()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrafficRequest {
    cluster: String,
    service: String,
    rps: f64,
}

/// `POST /_sim/traffic`: a steady request rate through the service's
/// target groups; `rps: 0` stops it.
pub fn set_traffic(world: &mut World, body: Value, now: f64) -> Result<Value> {
    let req: TrafficRequest = parse(body)?;
    if !(req.rps >= 0.0 && req.rps.is_finite()) {
        return Err(format!("rps: {} must be 0 or more", req.rps));
    }
    let key = (req.cluster.clone(), req.service.clone());
    let svc = world
        .records
        .services
        .get(&key)
        .ok_or_else(|| format!("service {}/{} does not exist", req.cluster, req.service))?;
    if svc.load_balancers.is_empty() && req.rps > 0.0 {
        return Err(format!(
            "service {}/{} has no load balancers to send traffic through",
            req.cluster, req.service
        ));
    }
    world.set_traffic(key, req.rps, now);
    Ok(json!({"cluster": req.cluster, "service": req.service, "rps": req.rps}))
}

/// `GET /_sim/traffic?cluster=c&service=web`: the totals of its samples.
pub fn traffic(world: &World, query: &std::collections::BTreeMap<String, String>) -> Result<Value> {
    let (Some(cluster), Some(service)) = (query.get("cluster"), query.get("service")) else {
        return Err("cluster and service are required, like ?cluster=c1&service=web".into());
    };
    Ok(world.traffic_summary(cluster, service))
}
