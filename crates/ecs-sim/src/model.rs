//! The simulated world's records: clusters, task definitions, services with
//! their deployments, tasks, scalable targets and services' traffic, plus the
//! ARNs that name them.
//!
//! These are plain data; how they change over time lives in `scheduler`, how
//! they are read and written over the wire lives in `ecs` and `autoscaling`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::faults::{FaultProfile, TimingOverrides};

pub const ACCOUNT: &str = "123456789012";

/// Where in its life a task is, in ECS's own words (`lastStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LastStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl LastStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "PROVISIONING",
            Self::Pending => "PENDING",
            Self::Activating => "ACTIVATING",
            Self::Running => "RUNNING",
            Self::Deactivating => "DEACTIVATING",
            Self::Stopping => "STOPPING",
            Self::Deprovisioning => "DEPROVISIONING",
            Self::Stopped => "STOPPED",
        }
    }

    /// ECS reports these as the service's and deployment's `pendingCount`.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Provisioning | Self::Pending | Self::Activating)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Healthy => "HEALTHY",
            Self::Unhealthy => "UNHEALTHY",
        }
    }
}

/// What the faults decided for a task when it was launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Normal,
    /// The essential container exits before the task reaches RUNNING.
    FailStart,
    /// The container health check never passes.
    NeverHealthy,
}

/// Why a task was told to stop; kept in the timeline so tests can tell
/// the operator's stops from the scheduler's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// A StopTask call; the index of that call in the timeline.
    StopTask {
        call: usize,
    },
    ScaleIn,
    Deployment,
    HealthCheck,
    FailedStart,
    ServiceDeleted,
    /// Fargate Spot took the task back (`/_sim/spot-interruptions`).
    SpotInterruption,
    /// It waited in PROVISIONING for capacity longer than ECS waits.
    ProvisioningTimeout,
}

impl StopCause {
    pub fn label(&self) -> &'static str {
        match self {
            Self::StopTask { .. } => "StopTask",
            Self::ScaleIn => "scale-in",
            Self::Deployment => "deployment",
            Self::HealthCheck => "health-check",
            Self::FailedStart => "failed-start",
            Self::ServiceDeleted => "service-deleted",
            Self::SpotInterruption => "spot-interruption",
            Self::ProvisioningTimeout => "provisioning-timeout",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub arn: String,
    pub cluster: String,
    pub service: Option<String>,
    pub started_by: String,
    pub deployment_id: String,
    pub task_definition_arn: String,
    pub containers: Vec<ContainerSpec>,
    pub last_status: LastStatus,
    pub desired_running: bool,
    pub health: Health,
    pub has_health_check: bool,
    pub fate: Fate,
    pub placed: bool,
    pub created_at: f64,
    /// When the current start or stop sequence began (placement or stop request).
    pub phase_origin: f64,
    pub start_duration: f64,
    pub healthy_delay: f64,
    pub stop_duration: f64,
    pub started_at: Option<f64>,
    pub stopping_at: Option<f64>,
    pub stopped_at: Option<f64>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<&'static str>,
    pub stop_cause: Option<StopCause>,
    pub version: i64,
    /// Its elastic network interface (awsvpc, as on Fargate).
    pub eni: Eni,
    /// Its service sends it traffic through target groups.
    pub behind_lb: bool,
    /// Every one of its targets is `healthy`.
    pub lb_healthy: bool,
    /// A target group its target is `unhealthy` in.
    pub lb_unhealthy_in: Option<String>,
    /// Seconds it waits, DEACTIVATING, for its targets to drain before
    /// STOPPING; `None` when it was stopped without draining.
    pub drain: Option<f64>,
    /// CPU units and MiB of memory it reserves where it is placed.
    pub needs: Needs,
    /// `FARGATE` or `EC2`, as DescribeTasks answers `launchType`.
    pub launch_type: &'static str,
    /// The capacity provider it was launched on, if any.
    pub capacity_provider: Option<String>,
    /// It must be placed on a container instance with room for it.
    pub needs_instance: bool,
    /// The container instance it is placed on (EC2 only).
    pub container_instance: Option<String>,
    /// Protected from scale-in until this simulator time.
    pub protected_until: Option<f64>,
}

/// What a task reserves: CPU units and MiB of memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub cpu: i64,
    pub memory: i64,
}

#[derive(Clone, Debug)]
pub struct Eni {
    pub attachment_id: String,
    pub id: String,
    pub private_ip: String,
    pub mac: String,
}

impl Task {
    /// Meant to run, not placed, and needing a container instance with room.
    pub fn waits_for_instance(&self) -> bool {
        self.desired_running && !self.placed && self.needs_instance
    }

    /// Protected from scale-in at `now` (UpdateTaskProtection).
    pub fn is_protected(&self, now: f64) -> bool {
        self.protected_until.is_some_and(|until| now < until)
    }

    pub fn is_active(&self) -> bool {
        self.desired_running && self.last_status != LastStatus::Stopped
    }

    /// Counted as healthy by a rolling deployment: running, passing its
    /// health check when it has one, and healthy in every target group of
    /// its service.
    pub fn is_healthy(&self) -> bool {
        self.last_status == LastStatus::Running
            && (!self.has_health_check || self.health == Health::Healthy)
            && (!self.behind_lb || self.lb_healthy)
    }
}

#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub has_health_check: bool,
}

/// One entry of a capacity provider strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategyItem {
    pub provider: String,
    pub weight: i64,
    pub base: i64,
}

#[derive(Clone, Debug)]
pub struct TaskDefinition {
    pub family: String,
    pub revision: u32,
    pub arn: String,
    pub containers: Vec<ContainerSpec>,
    /// What each of its tasks reserves: the task-level `cpu` and `memory`,
    /// or else the sum of its containers'.
    pub needs: Needs,
    /// The task-level `cpu` and `memory` as given, for DescribeTasks.
    pub task_cpu: Option<String>,
    pub task_memory: Option<String>,
    /// The request as registered, echoed back by DescribeTaskDefinition.
    pub raw: Value,
}

impl TaskDefinition {
    pub fn has_health_check(&self) -> bool {
        self.containers.iter().any(|c| c.has_health_check)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: String,
    pub task_definition_arn: String,
    pub created_at: f64,
    pub updated_at: f64,
    /// Tasks that failed in a row (stopped before RUNNING, or for failing
    /// their health check), counted only while `evaluating`.
    pub failed_tasks: u32,
    /// Whether failures still count: as ECS does, once one of the
    /// deployment's tasks has run successfully, `failed_tasks` is reset to
    /// zero and no longer counted.
    pub evaluating: bool,
    pub rollout: RolloutState,
    pub rollout_reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeploymentConfig {
    pub maximum_percent: u32,
    pub minimum_healthy_percent: u32,
    pub circuit_breaker: bool,
    pub rollback: bool,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self {
            maximum_percent: 200,
            minimum_healthy_percent: 100,
            circuit_breaker: false,
            rollback: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    Active,
    Draining,
    Inactive,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
            Self::Inactive => "INACTIVE",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServiceEvent {
    pub id: String,
    pub at: f64,
    pub message: String,
}

/// One entry of a service's `loadBalancers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerRef {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: i64,
}

#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub cluster: String,
    pub arn: String,
    pub status: ServiceStatus,
    pub desired: u32,
    pub task_definition_arn: String,
    pub config: DeploymentConfig,
    /// `FARGATE` or `EC2`; empty when the service has a capacity provider strategy.
    pub launch_type: String,
    pub capacity_provider_strategy: Vec<StrategyItem>,
    /// Newest first; the first one is PRIMARY.
    pub deployments: Vec<Deployment>,
    /// Newest first, at most `MAX_EVENTS`.
    pub events: Vec<ServiceEvent>,
    pub created_at: f64,
    pub steady: bool,
    /// What a circuit-breaker rollback returns to.
    pub previous_completed_task_definition: Option<String>,
    pub previous_completed_deployment: Option<String>,
    pub next_scheduler_run: f64,
    pub placement_blocked_reported: bool,
    /// The protected-tasks event was written for the present shortfall.
    pub protection_blocked_reported: bool,
    pub timings: TimingOverrides,
    pub faults: Option<FaultProfile>,
    /// Key → value (see `tags`).
    pub tags: std::collections::BTreeMap<String, String>,
    pub load_balancers: Vec<LoadBalancerRef>,
    /// Seconds after a task starts during which ECS ignores its failing
    /// load-balancer health checks.
    pub health_check_grace: Option<i64>,
}

pub const MAX_EVENTS: usize = 100;

#[derive(Clone, Debug)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    /// At most this many tasks placed at once; `None` is unlimited.
    pub capacity: Option<usize>,
    /// Tasks placed now (placed and not yet STOPPED).
    pub placed: usize,
    /// PutClusterCapacityProviders' providers and default strategy.
    pub capacity_providers: Vec<String>,
    pub default_strategy: Vec<StrategyItem>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuspendedState {
    pub dynamic_in: bool,
    pub dynamic_out: bool,
    pub scheduled: bool,
}

#[derive(Clone, Debug)]
pub struct ScalableTarget {
    pub resource_id: String,
    pub cluster: String,
    pub service: String,
    pub min: u32,
    pub max: u32,
    pub role_arn: String,
    pub suspended: SuspendedState,
    pub created_at: f64,
    pub arn: String,
}

#[derive(Clone, Debug)]
pub struct ScalingActivity {
    pub id: String,
    pub resource_id: String,
    pub description: String,
    pub cause: String,
    pub at: f64,
    pub status: &'static str,
    pub message: String,
}

/// The naming scheme AWS uses, for one region of one account.
#[derive(Clone, Debug)]
pub struct Arns {
    pub region: String,
}

impl Arns {
    pub fn cluster(&self, cluster: &str) -> String {
        format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/{cluster}", self.region)
    }
    pub fn service(&self, cluster: &str, service: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:service/{cluster}/{service}",
            self.region
        )
    }
    pub fn task(&self, cluster: &str, id: &str) -> String {
        format!("arn:aws:ecs:{}:{ACCOUNT}:task/{cluster}/{id}", self.region)
    }
    pub fn task_definition(&self, family: &str, revision: u32) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:task-definition/{family}:{revision}",
            self.region
        )
    }
    pub fn container(&self, cluster: &str, task_id: &str, name: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:container/{cluster}/{task_id}/{name}",
            self.region
        )
    }
    pub fn container_instance(&self, cluster: &str, id: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:container-instance/{cluster}/{id}",
            self.region
        )
    }
    pub fn capacity_provider(&self, name: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:capacity-provider/{name}",
            self.region
        )
    }
    pub fn scalable_target(&self, id: &str) -> String {
        format!(
            "arn:aws:application-autoscaling:{}:{ACCOUNT}:scalable-target/{id}",
            self.region
        )
    }
}

/// The last path segment of an ARN, or the value itself when it is a name.
/// `arn:...:service/cluster/web` and `web` both name the service `web`.
pub fn short_name(name_or_arn: &str) -> &str {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.rsplit('/').next().unwrap_or(name_or_arn)
    } else {
        name_or_arn
    }
}

/// How long a STOPPED task stays visible to ListTasks and DescribeTasks
/// unless `/_sim/config` says otherwise: ECS keeps them at least an hour.
pub const STOPPED_TASK_RETENTION: f64 = 3600.0;

/// Every record of the simulated account, keyed by name.
#[derive(Default)]
pub struct Records {
    pub clusters: BTreeMap<String, Cluster>,
    /// Family → revisions in order.
    pub task_definitions: BTreeMap<String, Vec<TaskDefinition>>,
    /// (cluster, service) → service.
    pub services: BTreeMap<(String, String), Service>,
    /// Task ARN → task; ordered so that ListTasks pages are stable.
    pub tasks: BTreeMap<String, Task>,
    /// (cluster, service) → ARNs of its tasks not yet STOPPED.
    pub live: BTreeMap<(String, String), BTreeSet<String>>,
    /// (when it stopped, ARN) of every STOPPED task still kept, oldest
    /// first: the order in which they are forgotten.
    pub stopped: VecDeque<(f64, String)>,
    /// Resource id (`service/cluster/name`) → target.
    pub scalable_targets: BTreeMap<String, ScalableTarget>,
    pub scaling_activities: Vec<ScalingActivity>,
}

/// One service's steady request rate, and what it has sent so far.
pub struct Flow {
    pub rps: f64,
    /// When the current rate was set: requests are counted, and slices
    /// laid out, from then.
    pub rate_origin: f64,
    pub sent: u64,
    /// The time up to which requests have been sent.
    pub done_upto: f64,
    pub next_sample_at: f64,
    pub served: u64,
    pub dropped: u64,
    pub next_target: u64,
}

/// The traffic of every service, as `traffic.rs` sends it.
#[derive(Default)]
pub struct Traffic {
    pub flows: BTreeMap<(String, String), Flow>,
    /// The fewest healthy targets each service had while traffic ran, at
    /// every slice, not only at the samples.
    pub lowest: BTreeMap<(String, String), u32>,
}
