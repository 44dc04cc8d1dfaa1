//! What the operator sees of a service at one instant: the service's
//! counters and deployments, its tasks and their load balancer targets, its
//! scalable target, and what ECS says of it beyond the counters (its events,
//! failed tasks, and the tasks it stopped), from which a slow or failing
//! step names its cause; where it needs them, the scale-in protection of
//! the tasks a batch would stop and the room its cluster has. Built by the
//! shell from ECS, Elastic Load Balancing and Application Auto Scaling;
//! read by the pure decision.

use chrono::{DateTime, Utc};

use crate::request::status::ScalingSettings;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observation {
    /// `Err` carries AWS's reason when the service cannot be had (missing, inactive, denied).
    pub service: Result<ServiceView, String>,
    /// Every task of the service with desired status RUNNING, plus the
    /// planned tasks of the current batch whatever their state.
    pub tasks: Vec<TaskView>,
    pub scaling: Option<ScalingSettings>,
    /// Empty when the service cannot be had.
    pub evidence: Evidence,
    /// Why the targets of a load-balanced service could not be read
    /// (denied, target group gone): the run cannot tell whether a
    /// replacement serves, so it does not go on.
    pub targets_refused: Option<String>,
    /// The longest deregistration delay among the service's target groups:
    /// how long ECS drains a stopped task before stopping its containers.
    pub drain: Option<std::time::Duration>,
    /// The scale-in protection of the tasks it was read for (those a batch
    /// would stop, read right before; every task, for a dry run); a task
    /// not listed was not read.
    pub protection: Vec<TaskProtection>,
    /// The cluster's room and capacity providers, read only where a look
    /// needs them (a task that cannot be placed, a dry run).
    pub capacity: Capacity,
}

impl Observation {
    /// What was read of a task's scale-in protection, if it was.
    pub(crate) fn protection_of(&self, arn: &str) -> Option<&TaskProtection> {
        self.protection.iter().find(|p| p.arn == arn)
    }
}

/// One task's scale-in protection as GetTaskProtection answers it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskProtection {
    pub arn: String,
    pub protected: bool,
    /// When the protection ends (`expirationDate`), while it is on.
    pub until: Option<DateTime<Utc>>,
}

/// The cluster's capacity as far as a look needed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Capacity {
    /// The ACTIVE container instances and what they have left; `None`
    /// when not read.
    pub room: Option<Vec<InstanceRoom>>,
    /// The capacity providers of the service's strategy that were described.
    pub providers: Vec<ProviderView>,
    /// What a dry run's look could not read of these (and of the tasks'
    /// protection), as sentences; the dry run says so and goes on.
    pub unread: Vec<String>,
}

/// A container instance's room, as DescribeContainerInstances answers it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InstanceRoom {
    pub arn: String,
    /// CPU units and MiB of memory not yet reserved by a task.
    pub cpu_left: u32,
    pub memory_left: u32,
    pub running_tasks: u32,
    /// The capacity provider that launched it, if one did.
    pub provider: Option<String>,
}

/// A capacity provider as DescribeCapacityProviders answers it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProviderView {
    pub name: String,
    /// Its Auto Scaling group (by name or ARN), for an EC2 provider.
    pub auto_scaling_group: Option<String>,
    /// Whether ECS launches instances for tasks that do not fit (managed scaling).
    pub managed_scaling: bool,
    pub target_capacity: Option<u32>,
}

/// One item of a service's capacity provider strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StrategyItem {
    pub provider: String,
    pub weight: u32,
    pub base: u32,
}

/// The providers that place at once, on Fargate.
pub(crate) fn is_fargate(provider: &str) -> bool {
    matches!(provider, "FARGATE" | "FARGATE_SPOT")
}

/// ECS's stop codes of a Fargate Spot interruption: the warning
/// (`TerminationNotice`, the task still running) and the stop.
pub(crate) fn is_spot_stop(code: &str) -> bool {
    matches!(code, "TerminationNotice" | "SpotInterruption")
}

/// What ECS says of the service beyond its counters, in its own words.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Evidence {
    /// The service's newest events, newest first (DescribeServices answers
    /// them with the service: no call of their own).
    pub events: Vec<ServiceEvent>,
    /// Each deployment's failed tasks and rollout reason, as DescribeServices
    /// answers them.
    pub deployments: Vec<DeploymentNote>,
    /// Tasks of the service ECS has stopped (desired STOPPED), with its
    /// reasons: asked for only when the look finds the service unsettled
    /// (see `aws::observe`), so empty on most looks.
    pub stopped: Vec<StoppedTask>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceEvent {
    pub at: DateTime<Utc>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DeploymentNote {
    pub id: String,
    /// ECS's count of tasks that failed in a row; it stops counting (and
    /// reads 0) once one of the deployment's tasks has run.
    pub failed_tasks: u32,
    /// `rolloutStateReason`, e.g. "ECS deployment circuit breaker: tasks failed to start."
    pub rollout_reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoppedTask {
    pub arn: String,
    pub last_status: String,
    /// ECS's `stoppedReason`, e.g. "Essential container in task exited".
    pub stopped_reason: String,
    /// ECS's `stopCode`, e.g. `EssentialContainerExited`.
    pub stop_code: String,
    pub created_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ServiceView {
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    pub deployments: Vec<DeploymentView>,
    /// The target groups ECS registers the service's tasks in.
    pub load_balancers: Vec<LoadBalancerView>,
    /// The deployment configuration's `maximumPercent` (ECS's default 200).
    pub maximum_percent: u32,
    /// `EC2`, `FARGATE` or `EXTERNAL` when the service names a launch
    /// type; `None` when it has a capacity provider strategy instead.
    pub launch_type: Option<String>,
    /// Its capacity provider strategy, when it has one.
    pub strategy: Vec<StrategyItem>,
}

/// One of a service's `loadBalancers`: a target group, and the container
/// port ECS registers as each task's target in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadBalancerView {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

/// `tg/web-80` for `arn:aws:elasticloadbalancing:…:targetgroup/web-80/0123…`.
pub(crate) fn target_group_name(arn: &str) -> String {
    match arn.split_once(":targetgroup/") {
        Some((_, rest)) => format!("tg/{}", rest.split('/').next().unwrap_or(rest)),
        None => arn.to_string(),
    }
}

/// A task's target in one of its service's target groups, as Elastic Load
/// Balancing reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetSeen {
    /// `tg/web-80`.
    pub group: String,
    /// `initial`, `healthy`, `unhealthy`, `draining`, `unused`,
    /// `unavailable`, or `unregistered` when ELB does not list it yet.
    pub state: String,
    /// ELB's reason code, e.g. `Elb.InitialHealthChecking`.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DeploymentView {
    pub id: String,
    pub primary: bool,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TaskView {
    pub arn: String,
    pub last_status: String,
    pub desired_running: bool,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN`.
    pub health: String,
    /// Whether any container of the task has a health check, so that
    /// UNKNOWN means "not yet" rather than "never".
    pub health_checked: bool,
    pub started_at: Option<DateTime<Utc>>,
    /// When ECS accepted the task; with `started_at`, how long tasks take to start.
    pub created_at: Option<DateTime<Utc>>,
    /// Its ENI's private IP (`awsvpc`): its target's id in `ip` target groups.
    pub private_ip: Option<String>,
    /// (container name, container port, host port) of each binding
    /// (`bridge`, `host`): its target's port in `instance` target groups.
    pub host_ports: Vec<(String, u16, u16)>,
    /// Its target in every target group of its service, filled in by a
    /// whole look of a load-balanced service; empty otherwise.
    pub targets: Vec<TargetSeen>,
    /// Where ECS placed it: the capacity provider (`FARGATE_SPOT`,
    /// `cp-web`), the launch type, and the container instance once placed.
    pub capacity_provider: Option<String>,
    pub launch_type: Option<String>,
    pub container_instance: Option<String>,
    /// The CPU units and MiB it reserves, as ECS answers them.
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    /// Why ECS stops or stopped it (`SpotInterruption`, `TaskFailedToStart`).
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
}

impl TaskView {
    /// RUNNING and, where a container has a health check, HEALTHY: what
    /// ECS itself says of the task.
    pub(crate) fn is_running_healthy(&self) -> bool {
        self.desired_running
            && self.last_status == "RUNNING"
            && (!self.health_checked || self.health == "HEALTHY")
    }

    /// Taking traffic: running and healthy, and `healthy` in every target
    /// group of its service.
    pub(crate) fn is_serving(&self) -> bool {
        self.is_running_healthy() && self.targets.iter().all(|t| t.state == "healthy")
    }

    /// Running and healthy, but not yet (or no longer) healthy in a target group.
    pub(crate) fn awaits_targets(&self) -> bool {
        self.is_running_healthy() && !self.is_serving()
    }

    /// Stopped by someone and still taking no new traffic while ECS drains
    /// it (DEACTIVATING), or stopping its containers.
    pub(crate) fn is_draining(&self) -> bool {
        !self.desired_running && matches!(self.last_status.as_str(), "DEACTIVATING" | "STOPPING")
    }

    /// Waiting in PROVISIONING for a capacity provider of EC2 instances to
    /// have room for it (Fargate places at once; launch type EC2 makes no
    /// task where none fits).
    pub(crate) fn waits_for_capacity(&self) -> bool {
        self.desired_running
            && self.last_status == "PROVISIONING"
            && self.container_instance.is_none()
            && self
                .capacity_provider
                .as_deref()
                .is_some_and(|p| !is_fargate(p))
    }

    /// Taken away by Fargate Spot: warned (still running) or stopped.
    pub(crate) fn taken_by_spot(&self) -> bool {
        self.stop_code.as_deref().is_some_and(is_spot_stop)
    }
}

impl ServiceView {
    /// Placed by launch type EC2 with no capacity provider: nothing ECS
    /// manages adds an instance when a task does not fit.
    pub(crate) fn on_fixed_ec2(&self) -> bool {
        self.strategy.is_empty() && self.launch_type.as_deref() == Some("EC2")
    }

    /// Placed on EC2 instances: launch type EC2, or a capacity provider
    /// that is not Fargate's.
    pub(crate) fn on_ec2(&self) -> bool {
        self.launch_type.as_deref() == Some("EC2")
            || self.strategy.iter().any(|s| !is_fargate(&s.provider))
    }

    /// A deployment someone else started is still rolling.
    pub(crate) fn deployment_in_progress(&self) -> Option<&DeploymentView> {
        if self.deployments.len() > 1 {
            return self.deployments.iter().find(|d| d.primary);
        }
        self.deployments
            .iter()
            .find(|d| d.primary && d.rollout == "IN_PROGRESS")
    }
}

/// One container's image: as its task definition writes it, and as a
/// running task of the service runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerImage {
    pub container: String,
    /// As the task definition writes it: `repo:tag` or `repo@sha256:…`.
    pub written: String,
    /// The digest the task runs, as ECS reports it.
    pub digest: Option<String>,
    /// `versionConsistency: disabled` in the task definition: ECS pulls
    /// the tag afresh for each task instead of pinning a digest.
    pub pinned: bool,
}
