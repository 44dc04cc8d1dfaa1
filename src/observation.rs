//! What the operator sees of a service at one instant: the service's
//! counters and deployments, its tasks, and its scalable target. Built by the
//! shell from ECS and Application Auto Scaling; read by the pure decision.

use chrono::{DateTime, Utc};

use crate::status::ScalingSettings;

#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `Err` carries AWS's reason when the service cannot be had (missing, inactive, denied).
    pub service: Result<ServiceView, String>,
    /// Every task of the service with desired status RUNNING, plus the
    /// planned tasks of the current batch whatever their state.
    pub tasks: Vec<TaskView>,
    pub scaling: Option<ScalingSettings>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    pub deployments: Vec<DeploymentView>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentView {
    pub id: String,
    pub primary: bool,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    pub arn: String,
    pub last_status: String,
    pub desired_running: bool,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN`.
    pub health: String,
    /// Whether any container of the task has a health check, so that
    /// UNKNOWN means "not yet" rather than "never".
    pub health_checked: bool,
    pub started_at: Option<DateTime<Utc>>,
    /// When ECS created the task (PROVISIONING): with `started_at`, how long a start takes.
    pub created_at: Option<DateTime<Utc>>,
}

impl TaskView {
    pub fn is_serving(&self) -> bool {
        self.desired_running
            && self.last_status == "RUNNING"
            && (!self.health_checked || self.health == "HEALTHY")
    }
}

impl ServiceView {
    /// A deployment someone else started is still rolling.
    pub fn deployment_in_progress(&self) -> Option<&DeploymentView> {
        if self.deployments.len() > 1 {
            return self.deployments.iter().find(|d| d.primary);
        }
        self.deployments
            .iter()
            .find(|d| d.primary && d.rollout == "IN_PROGRESS")
    }
}
