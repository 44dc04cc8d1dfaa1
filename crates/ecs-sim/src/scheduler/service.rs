//! One pass of the service scheduler over one service: a deleted service
//! drained, unhealthy tasks replaced, the primary deployment scaled to its
//! desired count within maximumPercent, old deployments' tasks retired
//! within minimumHealthyPercent; and the service's events, as ECS words them.

use super::ServiceKey;
use crate::model::{
    DeploymentConfig, Health, LastStatus, MAX_EVENTS, RolloutState, ServiceEvent, ServiceStatus,
    StopCause, Task,
};
use crate::world::World;

impl World {
    /// Adds an event to the service's log, newest first, keeping the last
    /// `MAX_EVENTS`.
    pub fn push_event(&mut self, key: &ServiceKey, message: String, now: f64) {
        let id = self.random_uuid();
        if let Some(svc) = self.records.services.get_mut(key) {
            svc.events.insert(
                0,
                ServiceEvent {
                    id,
                    at: now,
                    message,
                },
            );
            svc.events.truncate(MAX_EVENTS);
        }
    }

    /// One pass of the service scheduler over one service.
    pub(super) fn reconcile_service(&mut self, key: &ServiceKey, now: f64) {
        let Some(svc) = self.records.services.get(key) else {
            return;
        };
        let interval = self.timings_for(svc).scheduler;
        let name = svc.name.clone();
        let status = svc.status;
        let desired = svc.desired as usize;
        let config = svc.config;
        let primary_id = svc.deployments.first().map(|d| d.id.clone());
        let primary_failed = svc
            .deployments
            .first()
            .is_some_and(|d| d.rollout == RolloutState::Failed);
        if let Some(svc) = self.records.services.get_mut(key) {
            svc.next_scheduler_run = now + interval;
        }
        let tasks: Vec<Task> = self.live_tasks(&key.0, &key.1).cloned().collect();
        if status == ServiceStatus::Draining {
            self.drain_deleted(key, &tasks, now);
            return;
        }
        let mut stopped_ids = self.replace_unhealthy(key, &name, &tasks, now);
        stopped_ids.extend(self.replace_lb_unhealthy(key, &tasks, now));
        let active: Vec<Task> = self
            .live_tasks(&key.0, &key.1)
            .filter(|t| t.desired_running)
            .cloned()
            .collect();
        let total = self.live_tasks(&key.0, &key.1).count();
        let plan = plan_pass(
            active,
            total,
            desired,
            config,
            primary_id.as_deref(),
            primary_failed,
            now,
        );
        for (arn, id, cause) in plan.stops {
            let reason = match &cause {
                StopCause::ScaleIn | StopCause::Deployment => format!(
                    "Scaling activity initiated by (deployment {})",
                    primary_id.clone().unwrap_or_default()
                ),
                _ => String::new(),
            };
            self.request_stop(&arn, reason, cause, "ServiceSchedulerInitiated", now);
            stopped_ids.push(id);
        }
        self.push_task_list_event(
            key,
            &name,
            "has stopped",
            "running tasks",
            &stopped_ids,
            now,
        );
        let mut started = Vec::new();
        let mut blocked = None;
        for _ in 0..plan.launch {
            match self.launch_task(key, 0, now) {
                Ok(arn) => started.push(self.records.tasks[&arn].id.clone()),
                Err(shortfall) => {
                    blocked = Some(shortfall);
                    break;
                }
            }
        }
        self.push_task_list_event(key, &name, "has started", "tasks", &started, now);
        self.report_protected_shortfall(
            key,
            &name,
            plan.protected_excess,
            primary_id.as_deref(),
            now,
        );
        self.place_waiting(key, blocked, now);
        self.settle_deployments(key, now);
        self.sample(&key.0, &key.1, now);
    }

    /// A deleted service's tasks are stopped; once none is left, it is INACTIVE.
    fn drain_deleted(&mut self, key: &ServiceKey, tasks: &[Task], now: f64) {
        for t in tasks.iter().filter(|t| t.desired_running) {
            self.request_stop(
                &t.arn,
                "Service is being deleted".into(),
                StopCause::ServiceDeleted,
                "ServiceSchedulerInitiated",
                now,
            );
        }
        if tasks.is_empty()
            && let Some(svc) = self.records.services.get_mut(key)
        {
            svc.status = ServiceStatus::Inactive;
            svc.deployments.clear();
        }
        self.sample(&key.0, &key.1, now);
    }

    /// Unhealthy tasks are replaced, whatever the deployment settings say;
    /// answers the ids of those stopped.
    fn replace_unhealthy(
        &mut self,
        key: &ServiceKey,
        name: &str,
        tasks: &[Task],
        now: f64,
    ) -> Vec<String> {
        let mut stopped = Vec::new();
        for t in tasks
            .iter()
            .filter(|t| t.desired_running && t.health == Health::Unhealthy)
        {
            self.request_stop(
                &t.arn,
                "Task failed container health checks".into(),
                StopCause::HealthCheck,
                "ServiceSchedulerInitiated",
                now,
            );
            self.count_failure(key, &t.deployment_id, now);
            self.push_event(
                key,
                format!(
                    "(service {name}) (task {}) failed container health checks.",
                    t.id
                ),
                now,
            );
            stopped.push(t.id.clone());
        }
        stopped
    }

    /// Says once, in ECS's words, that protected tasks keep the service
    /// above its desired count; forgets it once they no longer do.
    fn report_protected_shortfall(
        &mut self,
        key: &ServiceKey,
        name: &str,
        protected_excess: usize,
        deployment: Option<&str>,
        now: f64,
    ) {
        let Some(svc) = self.records.services.get_mut(key) else {
            return;
        };
        if protected_excess == 0 {
            svc.protection_blocked_reported = false;
            return;
        }
        if svc.protection_blocked_reported {
            return;
        }
        svc.protection_blocked_reported = true;
        let set = deployment.unwrap_or_default().to_string();
        self.push_event(
            key,
            format!(
                "(service {name}) was unable to reach steady state because task set ({set}) was unable to scale in. Reason: The number of protected tasks are more than the desired count of tasks."
            ),
            now,
        );
    }

    /// "(service web) has started 2 tasks: (task a) (task b)." and the like;
    /// nothing when `ids` is empty.
    fn push_task_list_event(
        &mut self,
        key: &ServiceKey,
        name: &str,
        verb: &str,
        noun: &str,
        ids: &[String],
        now: f64,
    ) {
        if ids.is_empty() {
            return;
        }
        let list: Vec<String> = ids.iter().map(|i| format!("(task {i})")).collect();
        self.push_event(
            key,
            format!(
                "(service {name}) {verb} {} {noun}: {}.",
                ids.len(),
                list.join(" ")
            ),
            now,
        );
    }
}

/// What one pass decides for a service: the tasks to stop (ARN, id, why),
/// how many to launch, and how many tasks beyond the desired count stay
/// because they are protected from scale-in.
struct PassPlan {
    stops: Vec<(String, String, StopCause)>,
    launch: usize,
    protected_excess: usize,
}

/// Scales the primary deployment to `desired` within maximumPercent, and
/// retires old deployments' tasks while minimumHealthyPercent holds; as
/// ECS does, neither stops a task protected from scale-in at `now`.
/// `active` are the service's tasks still meant to run; `total` every task
/// not yet STOPPED.
fn plan_pass(
    mut active: Vec<Task>,
    total: usize,
    desired: usize,
    config: DeploymentConfig,
    primary_id: Option<&str>,
    primary_failed: bool,
    now: f64,
) -> PassPlan {
    // Not yet running first, then the newest: the cheapest to give up.
    active.sort_by(|a, b| {
        (a.last_status == LastStatus::Running)
            .cmp(&(b.last_status == LastStatus::Running))
            .then(b.created_at.total_cmp(&a.created_at))
    });
    let in_primary = |t: &Task| Some(t.deployment_id.as_str()) == primary_id;

    // Scale in the primary deployment.
    let primary_active: Vec<&Task> = active.iter().filter(|t| in_primary(t)).collect();
    let excess = primary_active.len().saturating_sub(desired);
    let mut stops: Vec<(String, String, StopCause)> = primary_active
        .iter()
        .filter(|t| !t.is_protected(now))
        .take(excess)
        .map(|t| (t.arn.clone(), t.id.clone(), StopCause::ScaleIn))
        .collect();
    let protected_excess = excess - stops.len();
    let primary_count = primary_active.len() - stops.len();
    let old: Vec<&Task> = active.iter().filter(|t| !in_primary(t)).collect();

    // Launch within maximumPercent, which counts RUNNING, STOPPING and
    // PENDING tasks alike: a task told to stop holds its place until STOPPED.
    let max_total = (desired * config.maximum_percent as usize / 100).max(desired);
    let mut launch = desired
        .saturating_sub(primary_count)
        .min(max_total.saturating_sub(total));
    if primary_failed || primary_id.is_none() {
        launch = 0;
    }

    // Retire old deployments' tasks while minimumHealthyPercent holds.
    let min_healthy = (desired * config.minimum_healthy_percent as usize).div_ceil(100);
    let mut healthy = active.iter().filter(|t| t.is_healthy()).count()
        - stops
            .iter()
            .filter(|(arn, _, _)| active.iter().any(|t| &t.arn == arn && t.is_healthy()))
            .count();
    for t in old.iter().filter(|t| !t.is_protected(now)) {
        if !t.is_healthy() {
            stops.push((t.arn.clone(), t.id.clone(), StopCause::Deployment));
        } else if healthy > min_healthy {
            healthy -= 1;
            stops.push((t.arn.clone(), t.id.clone(), StopCause::Deployment));
        }
    }
    PassPlan {
        stops,
        launch,
        protected_excess,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{SimOptions, ecs};

    fn world_with_service() -> (World, ServiceKey) {
        let options = SimOptions::default();
        let mut world = World::new(options.region, options.timings, 7);
        let calls = [
            ("CreateCluster", json!({"clusterName": "prod"})),
            (
                "RegisterTaskDefinition",
                json!({"family": "web", "containerDefinitions": [{"name": "app", "image": "nginx:1"}]}),
            ),
            (
                "CreateService",
                json!({"cluster": "prod", "serviceName": "web", "taskDefinition": "web", "desiredCount": 1}),
            ),
        ];
        for (i, (op, body)) in calls.into_iter().enumerate() {
            ecs::handle(&mut world, op, &body, i, 0.0).expect(op);
        }
        (world, ("prod".into(), "web".into()))
    }

    #[test]
    fn a_service_keeps_its_last_100_events_newest_first() {
        let (mut world, key) = world_with_service();
        for i in 0..150 {
            world.push_event(&key, format!("event {i}"), f64::from(i));
        }
        let events = &world.records.services[&key].events;
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events[0].message, "event 149");
        assert_eq!(events[99].message, "event 50");
        let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), MAX_EVENTS, "every event has its own id");
    }
}
