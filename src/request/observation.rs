//! What the operator sees of a service at one instant: the service's
//! counters and deployments, its tasks, its scalable target, and what ECS
//! says of it beyond the counters (its events, failed tasks, and the tasks
//! it stopped), from which a slow or failing step names its cause. Built by
//! the shell from ECS and Application Auto Scaling; read by the pure
//! decision.

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

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceView {
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    pub deployments: Vec<DeploymentView>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DeploymentView {
    pub id: String,
    pub primary: bool,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout: String,
}

#[derive(Clone, Debug, PartialEq)]
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
}

impl TaskView {
    pub(crate) fn is_serving(&self) -> bool {
        self.desired_running
            && self.last_status == "RUNNING"
            && (!self.health_checked || self.health == "HEALTHY")
    }
}

impl ServiceView {
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
