//! The service as the rehearsal sees it: the calls the decision makes
//! applied to a model of its tasks, and a scheduler that keeps `desired` of
//! them, each replacement serving once the estimate has passed.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::short;
use crate::request::decide::Action;
use crate::request::observation::{
    DeploymentView, Observation, ServiceView, TaskProtection, TaskView,
};
use crate::request::status::ScalingSettings;

/// The service as the rehearsal sees it: tasks that run and serve as soon
/// as the estimate says, and a scheduler that keeps `desired` of them.
pub(super) struct Model {
    pub(super) desired: u32,
    /// The service's load balancers and maximumPercent, as observed.
    balanced: ServiceView,
    drain: Option<Duration>,
    /// The scale-in protection read of the service's tasks: each counts
    /// as protected until its `until` (the rehearsal's clock moves on).
    protection: Vec<TaskProtection>,
    tasks: Vec<ModelTask>,
    scaling: Option<ScalingSettings>,
    launched: usize,
}

struct ModelTask {
    arn: String,
    /// Desired RUNNING and not stopped.
    up: bool,
    /// Running and healthy (a launched replacement is not, until `settle`).
    serving: bool,
    started_at: Option<DateTime<Utc>>,
}

impl Model {
    pub(super) fn from(obs: &Observation) -> Self {
        let desired = obs.service.as_ref().map_or(0, |s| s.desired);
        let balanced = obs.service.clone().unwrap_or_default();
        Self {
            desired,
            balanced: ServiceView {
                load_balancers: balanced.load_balancers,
                maximum_percent: balanced.maximum_percent,
                ..Default::default()
            },
            drain: obs.drain,
            protection: obs.protection.clone(),
            tasks: obs
                .tasks
                .iter()
                .filter(|t| t.desired_running)
                .map(|t| ModelTask {
                    arn: t.arn.clone(),
                    up: true,
                    serving: t.is_serving(),
                    started_at: t.started_at,
                })
                .collect(),
            scaling: obs.scaling,
            launched: 0,
        }
    }

    pub(super) fn serving(&self) -> u32 {
        self.tasks.iter().filter(|t| t.up && t.serving).count() as u32
    }

    pub(super) fn observe(
        &self,
        batch: &[String],
        scaling: Option<ScalingSettings>,
        now: DateTime<Utc>,
    ) -> Observation {
        let running = self.tasks.iter().filter(|t| t.up).count() as u32;
        Observation {
            service: Ok(ServiceView {
                desired: self.desired,
                running,
                pending: 0,
                deployments: vec![DeploymentView {
                    id: "ecs-svc/rehearsal".into(),
                    primary: true,
                    rollout: "COMPLETED".into(),
                }],
                ..self.balanced.clone()
            }),
            tasks: self
                .tasks
                .iter()
                .filter(|t| t.up || batch.contains(&t.arn))
                .map(|t| TaskView {
                    arn: t.arn.clone(),
                    last_status: if t.up { "RUNNING" } else { "STOPPED" }.into(),
                    desired_running: t.up,
                    health: "HEALTHY".into(),
                    health_checked: false,
                    started_at: t.started_at,
                    created_at: t.started_at,
                    ..Default::default()
                })
                .collect(),
            scaling: self.scaling.or(scaling),
            evidence: Default::default(),
            targets_refused: None,
            drain: self.drain,
            protection: self
                .tasks
                .iter()
                .map(|t| self.protection_at(&t.arn, now))
                .collect(),
            capacity: Default::default(),
        }
    }

    /// A task's protection at `now`: as read while it lasts; a task whose
    /// protection was not read (a replacement) is not protected.
    fn protection_at(&self, arn: &str, now: DateTime<Utc>) -> TaskProtection {
        let read = self.protection.iter().find(|p| p.arn == arn);
        let until = read.filter(|p| p.protected).and_then(|p| p.until);
        TaskProtection {
            arn: arn.to_string(),
            protected: read.is_some_and(|p| p.protected) && until.is_none_or(|u| u > now),
            until,
        }
    }

    /// Makes the change and answers the call in words.
    pub(super) fn apply(&mut self, action: &Action) -> String {
        match action {
            Action::SetDesired { from, to } => {
                self.desired = *to;
                let up: Vec<usize> = (0..self.tasks.len())
                    .filter(|i| self.tasks[*i].up)
                    .collect();
                // Scaling in, ECS stops tasks; the newest go first here.
                for i in up.iter().rev().take(up.len().saturating_sub(*to as usize)) {
                    self.tasks[*i].up = false;
                }
                self.fill();
                format!("ecs:UpdateService desiredCount {from} → {to}")
            }
            Action::StopTask { arn, reason } => {
                if let Some(t) = self.tasks.iter_mut().find(|t| &t.arn == arn) {
                    t.up = false;
                }
                self.fill();
                format!("ecs:StopTask {} (reason {reason:?})", short(arn))
            }
            Action::SetScaling(s) => {
                self.scaling = Some(*s);
                format!(
                    "application-autoscaling:RegisterScalableTarget min {}, max {}, dynamic scale-in {}",
                    s.min,
                    s.max,
                    if s.dynamic_scaling_in_suspended {
                        "suspended"
                    } else {
                        "resumed"
                    }
                )
            }
        }
    }

    /// The scheduler launches replacements up to desired; they serve after `settle`.
    fn fill(&mut self) {
        while (self.tasks.iter().filter(|t| t.up).count() as u32) < self.desired {
            self.launched += 1;
            self.tasks.push(ModelTask {
                arn: format!("replacement-{}", self.launched),
                up: true,
                serving: false,
                started_at: None,
            });
        }
    }

    pub(super) fn settle(&mut self) {
        for t in &mut self.tasks {
            t.serving = t.up;
        }
        self.tasks.retain(|t| t.up);
    }
}
