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
        // (eventType, eventName, deployment, reason) of ECS's deployment events.
        let mut changes: Vec<(&str, &str, String, String)> = Vec::new();
        // Old deployments leave once none of their tasks remain.
        let primary_id = deployments.first().map(|d| d.id.clone());
        deployments.retain(|d| {
            Some(&d.id) == primary_id.as_ref() || live.iter().any(|t| t.deployment_id == d.id)
        });
        let mut rollback_to = None;
        if let Some(primary) = deployments.first_mut() {
            match judge_primary(primary, &live, desired, config.circuit_breaker, now) {
                Some(RolloutState::Failed) => {
                    events.push(format!(
                        "(service {name}) (deployment {}) deployment failed: tasks failed to start.",
                        primary.id
                    ));
                    changes.push((
                        "ERROR",
                        "SERVICE_DEPLOYMENT_FAILED",
                        primary.id.clone(),
                        "ECS deployment circuit breaker: task failed to start.".into(),
                    ));
                    if config.rollback {
                        rollback_to = svc.previous_completed_task_definition.clone();
                    }
                }
                Some(_) => {
                    events.push(format!(
                        "(service {name}) (deployment {}) deployment completed.",
                        primary.id
                    ));
                    changes.push((
                        "INFO",
                        "SERVICE_DEPLOYMENT_COMPLETED",
                        primary.id.clone(),
                        primary.rollout_reason.clone(),
                    ));
                }
                None => {}
            }
        }
        let completed = deployments
            .first()
            .filter(|d| d.rollout == RolloutState::Completed)
            .map(|d| (d.id.clone(), d.task_definition_arn.clone()));
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
        if let Some((id, td)) = completed {
            svc.previous_completed_deployment = Some(id);
            svc.previous_completed_task_definition = Some(td);
        }
        let became_steady = steady && !svc.steady;
        svc.steady = steady;
        for e in events {
            self.push_event(key, e, now);
        }
        for (kind, event, id, reason) in changes {
            self.emit_deployment(key, kind, event, &id, reason, now);
        }
        if became_steady {
            self.note_steady_state(key, &name, now);
        }
        if let Some(td) = rollback_to {
            let to = self.records.services[key]
                .previous_completed_deployment
                .clone()
                .unwrap_or_default();
            let reason =
                format!("ECS deployment circuit breaker: rolling back to deploymentId {to}.");
            self.begin_deployment(key, td, Some(reason), now);
        }
    }

    /// The service reached a steady state: its event, ECS's
    /// SERVICE_STEADY_STATE, and CAPACITY_PROVIDER_STEADY_STATE for a
    /// service on Auto Scaling group capacity providers.
    fn note_steady_state(&mut self, key: &ServiceKey, name: &str, now: f64) {
        self.push_event(
            key,
            format!("(service {name}) has reached a steady state."),
            now,
        );
        self.emit_service_action(
            key,
            "INFO",
            "SERVICE_STEADY_STATE",
            serde_json::json!({}),
            now,
        );
        let providers: Vec<String> = self.records.services[key]
            .capacity_provider_strategy
            .iter()
            .filter(|i| self.capacity.providers.contains_key(&i.provider))
            .map(|i| self.arns.capacity_provider(&i.provider))
            .collect();
        if !providers.is_empty() {
            let extra = serde_json::json!({"capacityProviderArns": providers});
            self.emit_service_action(key, "INFO", "CAPACITY_PROVIDER_STEADY_STATE", extra, now);
        }
    }

    /// Makes a new PRIMARY deployment of `task_definition_arn`.
    pub fn start_deployment(&mut self, key: &ServiceKey, task_definition_arn: String, now: f64) {
        self.begin_deployment(key, task_definition_arn, None, now);
    }

    /// The same, with ECS's SERVICE_DEPLOYMENT_IN_PROGRESS: its reason
    /// names a rollback when it is one (`rollback`).
    fn begin_deployment(
        &mut self,
        key: &ServiceKey,
        task_definition_arn: String,
        rollback: Option<String>,
        now: f64,
    ) {
        let id = format!("ecs-svc/{}", self.random_digits(19));
        let reason = rollback.unwrap_or_else(|| format!("ECS deployment {id} in progress."));
        self.emit_deployment(
            key,
            "INFO",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            &id,
            reason,
            now,
        );
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

/// Fails the primary deployment by the circuit breaker, or completes it
/// once its tasks are all healthy and no other deployment's remain;
/// answers its new rollout state when it changed.
fn judge_primary(
    primary: &mut Deployment,
    live: &[Task],
    desired: usize,
    circuit_breaker: bool,
    now: f64,
) -> Option<RolloutState> {
    if primary.rollout != RolloutState::InProgress {
        return None;
    }
    let mine = |t: &&Task| t.deployment_id == primary.id && t.desired_running;
    let healthy = live.iter().filter(mine).filter(|t| t.is_healthy()).count();
    let pending = live.iter().filter(mine).filter(|t| !t.is_healthy()).count();
    let threshold = (desired.div_ceil(2)).clamp(3, 200) as u32;
    if circuit_breaker && primary.failed_tasks >= threshold {
        primary.rollout = RolloutState::Failed;
        primary.rollout_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
    } else if deployments_len_is_one(live, primary) && healthy == desired && pending == 0 {
        primary.rollout = RolloutState::Completed;
        primary.rollout_reason = format!("ECS deployment {} completed.", primary.id);
    } else {
        return None;
    }
    primary.updated_at = now;
    Some(primary.rollout)
}

/// True when no task of another deployment is still alive.
fn deployments_len_is_one(live: &[Task], primary: &Deployment) -> bool {
    live.iter().all(|t| t.deployment_id == primary.id)
}
