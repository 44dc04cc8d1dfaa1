//! A service's deployments: a new PRIMARY deployment started, drained ones
//! retired, the primary completed or failed by the circuit breaker (with
//! rollback), and the steady state noted.

use super::ServiceKey;
use crate::model::{Deployment, RolloutState, Task};
use crate::world::World;

impl World {
    /// Retires drained deployments, completes or fails the primary, and
    /// notes the steady state.
    pub(super) fn settle_deployments(&mut self, key: &ServiceKey, now: f64) {
        let live: Vec<Task> = self.live_tasks(&key.0, &key.1).cloned().collect();
        let Some(svc) = self.records.services.get(key) else {
            return;
        };
        let name = svc.name.clone();
        let desired = svc.desired as usize;
        let config = svc.config;
        let mut deployments: Vec<Deployment> = svc.deployments.clone();
        let mut events = Vec::new();
        // Old deployments leave once none of their tasks remain.
        let primary_id = deployments.first().map(|d| d.id.clone());
        deployments.retain(|d| {
            Some(&d.id) == primary_id.as_ref() || live.iter().any(|t| t.deployment_id == d.id)
        });
        let mut rollback_to = None;
        if let Some(primary) = deployments.first_mut() {
            let mine = |t: &&Task| t.deployment_id == primary.id && t.desired_running;
            let healthy = live.iter().filter(mine).filter(|t| t.is_healthy()).count();
            let pending = live.iter().filter(mine).filter(|t| !t.is_healthy()).count();
            let threshold = (desired.div_ceil(2)).clamp(3, 200) as u32;
            if primary.rollout == RolloutState::InProgress
                && config.circuit_breaker
                && primary.failed_tasks >= threshold
            {
                primary.rollout = RolloutState::Failed;
                primary.rollout_reason =
                    "ECS deployment circuit breaker: tasks failed to start.".into();
                primary.updated_at = now;
                events.push(format!(
                    "(service {name}) (deployment {}) deployment failed: tasks failed to start.",
                    primary.id
                ));
                if config.rollback {
                    rollback_to = svc.previous_completed_task_definition.clone();
                }
            } else if primary.rollout == RolloutState::InProgress
                && deployments_len_is_one(&live, primary)
                && healthy == desired
                && pending == 0
            {
                primary.rollout = RolloutState::Completed;
                primary.rollout_reason = format!("ECS deployment {} completed.", primary.id);
                primary.updated_at = now;
                events.push(format!(
                    "(service {name}) (deployment {}) deployment completed.",
                    primary.id
                ));
            }
        }
        let completed_td = deployments
            .first()
            .filter(|d| d.rollout == RolloutState::Completed)
            .map(|d| d.task_definition_arn.clone());
        let only_primary = deployments.len() == 1;
        let counts = {
            let svc = &self.records.services[key];
            self.counts(svc)
        };
        let steady = only_primary
            && deployments[0].rollout == RolloutState::Completed
            && counts.running as usize == desired
            && counts.pending == 0
            && counts.healthy == counts.running
            && live.iter().all(|t| t.desired_running);
        let Some(svc) = self.records.services.get_mut(key) else {
            return;
        };
        svc.deployments = deployments;
        if completed_td.is_some() {
            svc.previous_completed_task_definition = completed_td;
        }
        let became_steady = steady && !svc.steady;
        svc.steady = steady;
        for e in events {
            self.push_event(key, e, now);
        }
        if became_steady {
            self.push_event(
                key,
                format!("(service {name}) has reached a steady state."),
                now,
            );
        }
        if let Some(td) = rollback_to {
            self.start_deployment(key, td, now);
        }
    }

    /// Makes a new PRIMARY deployment of `task_definition_arn`.
    pub fn start_deployment(&mut self, key: &ServiceKey, task_definition_arn: String, now: f64) {
        let id = format!("ecs-svc/{}", self.random_digits(19));
        let Some(svc) = self.records.services.get_mut(key) else {
            return;
        };
        svc.task_definition_arn = task_definition_arn.clone();
        svc.deployments.insert(
            0,
            Deployment {
                id,
                task_definition_arn,
                created_at: now,
                updated_at: now,
                failed_tasks: 0,
                evaluating: true,
                rollout: RolloutState::InProgress,
                rollout_reason: "ECS deployment detected.".into(),
            },
        );
        svc.steady = false;
        svc.next_scheduler_run = now;
    }
}

/// True when no task of another deployment is still alive.
fn deployments_len_is_one(live: &[Task], primary: &Deployment) -> bool {
    live.iter().all(|t| t.deployment_id == primary.id)
}
