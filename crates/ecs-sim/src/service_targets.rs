//! ECS's side of load balancing: each task's network interface and private
//! IP; its targets registered once it is RUNNING and deregistered (drained)
//! before it stops; and tasks whose targets fail health checks after the
//! service's grace period stopped and replaced.

use serde_json::{Value, json};

use super::elb::targets::passes_from;
use super::model::{Eni, LastStatus, LoadBalancerRef, StopCause, Task};
use super::wire::ApiError;
use super::world::World;

type ServiceKey = (String, String);

impl World {
    /// A new elastic network interface with a private IP no other task has.
    pub fn new_eni(&mut self) -> Eni {
        let n = self.addresses;
        self.addresses += 1;
        let mac = (0..5)
            .map(|_| self.random_hex(2))
            .collect::<Vec<_>>()
            .join(":");
        Eni {
            attachment_id: self.random_uuid(),
            id: format!("eni-{}", self.random_hex(17)),
            private_ip: format!("10.0.{}.{}", (n / 250) % 256, n % 250 + 4),
            mac: format!("0e:{mac}"),
        }
    }

    /// Registers a task that just reached RUNNING in its service's target groups.
    pub fn register_task_targets(&mut self, arn: &str, at: f64) {
        let Some(task) = self.records.tasks.get(arn) else {
            return;
        };
        if !task.behind_lb {
            return;
        }
        let key = (
            task.cluster.clone(),
            task.service.clone().unwrap_or_default(),
        );
        let ip = task.eni.private_ip.clone();
        let Some(svc) = self.records.services.get(&key) else {
            return;
        };
        let faults = self.faults_for(svc);
        let (name, refs) = (svc.name.clone(), svc.load_balancers.clone());
        for lb in refs {
            let passes = passes_from(self, &faults, at);
            self.register_target(
                &lb.target_group_arn,
                &ip,
                lb.container_port,
                Some(arn.to_string()),
                passes,
                at,
            );
            self.push_event(
                &key,
                format!(
                    "(service {name}) registered 1 targets in (target-group {})",
                    lb.target_group_arn
                ),
                at,
            );
        }
    }

    /// Deregisters a task's targets; the longest drain among its target
    /// groups, or `None` when none of its targets was registered.
    pub fn drain_task_targets(&mut self, arn: &str, now: f64) -> Option<f64> {
        let task = self.records.tasks.get(arn)?;
        if !task.behind_lb || task.last_status != LastStatus::Running {
            return None;
        }
        let key = (task.cluster.clone(), task.service.clone()?);
        let ip = task.eni.private_ip.clone();
        let svc = self.records.services.get(&key)?;
        let (name, refs) = (svc.name.clone(), svc.load_balancers.clone());
        let mut longest: Option<f64> = None;
        let mut events = Vec::new();
        for lb in refs {
            if let Some(drain) =
                self.deregister_target(&lb.target_group_arn, &ip, lb.container_port, now)
            {
                longest = Some(longest.map_or(drain, |l| l.max(drain)));
                events.push(format!(
                    "(service {name}) deregistered 1 targets in (target-group {})",
                    lb.target_group_arn
                ));
            }
        }
        if longest.is_some() {
            self.push_event(
                &key,
                format!("(service {name}) has begun draining connections on 1 tasks."),
                now,
            );
        }
        for e in events {
            self.push_event(&key, e, now);
        }
        longest
    }

    /// Stops the tasks whose targets are unhealthy once their grace period
    /// is over; answers the ids of those stopped.
    pub fn replace_lb_unhealthy(
        &mut self,
        key: &ServiceKey,
        tasks: &[Task],
        now: f64,
    ) -> Vec<String> {
        let Some(svc) = self.records.services.get(key) else {
            return Vec::new();
        };
        let grace = svc.health_check_grace.unwrap_or(0) as f64 / self.target_time_scale;
        let name = svc.name.clone();
        let mut stopped = Vec::new();
        for t in tasks.iter().filter(|t| t.desired_running) {
            let Some(tg) = &t.lb_unhealthy_in else {
                continue;
            };
            if t.started_at.is_none_or(|s| now < s + grace) {
                continue;
            }
            self.push_event(
                key,
                format!(
                    "(service {name}) (task {}) (port {}) is unhealthy in (target-group {tg}) due to (reason Health checks failed).",
                    t.id,
                    self.records.services[key]
                        .load_balancers
                        .iter()
                        .find(|l| &l.target_group_arn == tg)
                        .map_or(0, |l| l.container_port)
                ),
                now,
            );
            self.request_stop(
                &t.arn,
                format!("Task failed ELB health checks in (target-group {tg})"),
                StopCause::HealthCheck,
                "ServiceSchedulerInitiated",
                now,
            );
            self.count_failure(key, &t.deployment_id, now);
            stopped.push(t.id.clone());
        }
        stopped
    }
}

/// The task's ENI as DescribeTasks answers it.
pub fn attachment_json(world: &World, t: &Task) -> Value {
    let status = match t.last_status {
        LastStatus::Provisioning => "PRECREATED",
        LastStatus::Deprovisioning | LastStatus::Stopped => "DELETED",
        _ => "ATTACHED",
    };
    let host = format!("ip-{}", t.eni.private_ip.replace('.', "-"));
    // Outside us-east-1, EC2's private names carry the Region.
    let dns = if world.arns.region == "us-east-1" {
        format!("{host}.ec2.internal")
    } else {
        format!("{host}.{}.compute.internal", world.arns.region)
    };
    json!({
        "id": t.eni.attachment_id,
        "type": "ElasticNetworkInterface",
        "status": status,
        "details": [
            {"name": "subnetId", "value": "subnet-0sima"},
            {"name": "networkInterfaceId", "value": t.eni.id},
            {"name": "macAddress", "value": t.eni.mac},
            {"name": "privateDnsName", "value": dns},
            {"name": "privateIPv4Address", "value": t.eni.private_ip},
        ],
    })
}

/// One entry of CreateService's `loadBalancers`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerInput {
    target_group_arn: Option<String>,
    load_balancer_name: Option<String>,
    container_name: Option<String>,
    container_port: Option<i64>,
}

/// Checks a service's load balancers as ECS does, against the target
/// groups and the task definition's containers and port mappings.
pub fn read_load_balancers(
    world: &World,
    given: Option<Vec<LoadBalancerInput>>,
    task_definition_arn: &str,
) -> Result<Vec<LoadBalancerRef>, ApiError> {
    let given = given.unwrap_or_default();
    if given.len() > 5 {
        return Err(ApiError::invalid_parameter(
            "loadBalancers: a service can have at most 5 target groups.",
        ));
    }
    let td = world.find_task_definition(task_definition_arn);
    let mut out = Vec::new();
    for lb in given {
        if lb.load_balancer_name.is_some() && lb.target_group_arn.is_none() {
            return Err(ApiError::invalid_parameter(
                "loadBalancerName: Classic Load Balancers are not modelled by this simulator; give targetGroupArn.",
            ));
        }
        let arn = lb.target_group_arn.ok_or_else(|| {
            ApiError::invalid_parameter("Target group ARN must be specified for a load balancer.")
        })?;
        let (Some(container), Some(port)) = (lb.container_name, lb.container_port) else {
            return Err(ApiError::invalid_parameter(
                "containerName and containerPort must be specified for a load balancer.",
            ));
        };
        let tg = world.elb.target_groups.get(&arn).ok_or_else(|| {
            ApiError::invalid_parameter(
                "Unable to assume role and validate the specified targetGroupArn. Please verify that the ECS service role being passed has the proper permissions.",
            )
        })?;
        if tg.load_balancers.is_empty() {
            return Err(ApiError::invalid_parameter(format!(
                "The target group with targetGroupArn {arn} does not have an associated load balancer."
            )));
        }
        if tg.target_type != "ip" {
            return Err(ApiError::invalid_parameter(format!(
                "The provided target group {arn} has target type {}, which is incompatible with the awsvpc network mode specified in the task definition.",
                tg.target_type
            )));
        }
        let definition = td
            .and_then(|td| td.raw.get("containerDefinitions")?.as_array())
            .and_then(|defs| {
                defs.iter()
                    .find(|d| d.get("name").and_then(Value::as_str) == Some(container.as_str()))
            })
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "The container {container} does not exist in the task definition."
                ))
            })?;
        let mapped = definition
            .get("portMappings")
            .and_then(Value::as_array)
            .is_some_and(|ms| {
                ms.iter()
                    .any(|m| m.get("containerPort").and_then(Value::as_i64) == Some(port))
            });
        if !mapped {
            return Err(ApiError::invalid_parameter(format!(
                "The container {container} did not have a container port {port} defined."
            )));
        }
        out.push(LoadBalancerRef {
            target_group_arn: arn,
            container_name: container,
            container_port: port,
        });
    }
    Ok(out)
}

/// `healthCheckGracePeriodSeconds`, which ECS takes only with load balancers.
pub fn read_grace(given: Option<i64>, with_load_balancers: bool) -> Result<Option<i64>, ApiError> {
    let Some(g) = given else {
        return Ok(None);
    };
    if !with_load_balancers {
        return Err(ApiError::invalid_parameter(
            "Health check grace period is only valid for services configured to use load balancers",
        ));
    }
    if !(0..=i64::from(i32::MAX)).contains(&g) {
        return Err(ApiError::invalid_parameter(format!(
            "healthCheckGracePeriodSeconds: {g} is outside 0..2147483647."
        )));
    }
    Ok(Some(g))
}

pub fn load_balancers_json(refs: &[LoadBalancerRef]) -> Value {
    Value::Array(
        refs.iter()
            .map(|l| {
                json!({
                    "targetGroupArn": l.target_group_arn,
                    "containerName": l.container_name,
                    "containerPort": l.container_port,
                })
            })
            .collect(),
    )
}
