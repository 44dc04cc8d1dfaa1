//! Time in the simulator: each task's walk through ECS's states, and the
//! service scheduler that replaces stopped tasks, scales, places tasks within
//! cluster capacity and rolls deployments within minimumHealthyPercent and
//! maximumPercent.
//!
//! `World::advance(now)` applies every transition due by `now` in time order,
//! sampling the service's counts after each one, then runs the service
//! scheduler for each service whose turn has come.

use super::model::{
    Deployment, Fate, Health, LastStatus, MAX_EVENTS, RolloutState, ServiceEvent, ServiceStatus,
    StopCause, Task,
};
use super::world::World;

type ServiceKey = (String, String);

/// What happens to a task next, and when.
enum Step {
    To(LastStatus),
    Health(Health),
    FailStart,
}

/// The task's next scheduled change, from its state and timings alone.
fn next_step(task: &Task) -> Option<(f64, Step)> {
    let origin = task.phase_origin;
    if task.desired_running {
        let s = task.start_duration;
        return match task.last_status {
            LastStatus::Provisioning if task.placed => {
                Some((origin + 0.25 * s, Step::To(LastStatus::Pending)))
            }
            LastStatus::Pending if task.fate == Fate::FailStart => {
                Some((origin + 0.75 * s, Step::FailStart))
            }
            LastStatus::Pending => Some((origin + 0.75 * s, Step::To(LastStatus::Activating))),
            LastStatus::Activating => Some((origin + s, Step::To(LastStatus::Running))),
            LastStatus::Running if task.has_health_check && task.health == Health::Unknown => {
                let at = task.started_at.unwrap_or(origin) + task.healthy_delay;
                let health = if task.fate == Fate::NeverHealthy {
                    Health::Unhealthy
                } else {
                    Health::Healthy
                };
                Some((at, Step::Health(health)))
            }
            _ => None,
        };
    }
    let d = task.stop_duration;
    // Behind a load balancer, the task waits DEACTIVATING for its targets
    // to drain, then stops as usual.
    if let Some(drain) = task.drain {
        let (offset, next) = match task.last_status {
            LastStatus::Running | LastStatus::Deactivating => (drain, LastStatus::Stopping),
            LastStatus::Stopping => (drain + 0.75 * d, LastStatus::Deprovisioning),
            LastStatus::Deprovisioning => (drain + d, LastStatus::Stopped),
            _ => return None,
        };
        return Some((origin + offset, Step::To(next)));
    }
    let (fraction, next) = match task.last_status {
        LastStatus::Running => (0.4, LastStatus::Deactivating),
        LastStatus::Deactivating => (0.6, LastStatus::Stopping),
        LastStatus::Stopping => (0.9, LastStatus::Deprovisioning),
        LastStatus::Provisioning | LastStatus::Pending | LastStatus::Activating => {
            (0.5, LastStatus::Deprovisioning)
        }
        LastStatus::Deprovisioning => (1.0, LastStatus::Stopped),
        LastStatus::Stopped => return None,
    };
    Some((origin + fraction * d, Step::To(next)))
}

impl World {
    /// Brings the world up to time `now`.
    pub fn advance(&mut self, now: f64) {
        loop {
            let mut due: Vec<(f64, String)> = self
                .records
                .live
                .values()
                .flatten()
                .filter_map(|arn| {
                    let task = self.records.tasks.get(arn)?;
                    let (at, _) = next_step(task)?;
                    (at <= now).then(|| (at, arn.clone()))
                })
                .collect();
            if due.is_empty() {
                break;
            }
            due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            for (_, arn) in due {
                self.apply_step(&arn);
            }
        }
        // Traffic first: it looks back over registrations that
        // `advance_targets` may now forget.
        self.advance_traffic(now);
        self.advance_targets(now);
        self.forget_stopped(now);
        self.run_drivers(now);
        let keys: Vec<ServiceKey> = self
            .records
            .services
            .iter()
            .filter(|(_, s)| s.status != ServiceStatus::Inactive && s.next_scheduler_run <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.reconcile_service(&key, now);
        }
    }

    fn apply_step(&mut self, arn: &str) {
        let Some(task) = self.records.tasks.get(arn) else {
            return;
        };
        let Some((at, step)) = next_step(task) else {
            return;
        };
        let key = (
            task.cluster.clone(),
            task.service.clone().unwrap_or_default(),
        );
        let deployment_id = task.deployment_id.clone();
        let mut failed_start = false;
        let mut now_stopped = false;
        let mut succeeded = false;
        let mut became_running = false;
        if let Some(task) = self.records.tasks.get_mut(arn) {
            task.version += 1;
            match step {
                Step::To(status) => {
                    task.last_status = status;
                    match status {
                        LastStatus::Running => {
                            task.started_at = Some(at);
                            succeeded = !task.has_health_check;
                            became_running = true;
                        }
                        LastStatus::Stopped => {
                            task.stopped_at = Some(at);
                            task.health = Health::Unknown;
                            now_stopped = true;
                        }
                        _ => {}
                    }
                }
                Step::Health(h) => {
                    task.health = h;
                    succeeded = h == Health::Healthy;
                }
                Step::FailStart => {
                    task.desired_running = false;
                    task.last_status = LastStatus::Stopping;
                    task.phase_origin = at;
                    task.stopping_at = Some(at);
                    task.stopped_reason = Some("Essential container in task exited".into());
                    task.stop_code = Some("EssentialContainerExited");
                    task.stop_cause = Some(StopCause::FailedStart);
                    failed_start = true;
                }
            }
        }
        if now_stopped {
            if let Some(set) = self.records.live.get_mut(&key) {
                set.remove(arn);
            }
            self.records.stopped.push_back((at, arn.to_string()));
            if let Some(task) = self.records.tasks.get(arn)
                && task.placed
                && let Some(cluster) = self.records.clusters.get_mut(&key.0)
            {
                cluster.placed = cluster.placed.saturating_sub(1);
            }
        }
        if failed_start {
            self.count_failure(&key, &deployment_id, at);
        }
        if became_running {
            self.register_task_targets(arn, at);
        }
        if succeeded
            && let Some(svc) = self.records.services.get_mut(&key)
            && let Some(d) = svc.deployments.iter_mut().find(|d| d.id == deployment_id)
            && d.evaluating
        {
            d.evaluating = false;
            d.failed_tasks = 0;
            d.updated_at = at;
        }
        self.record_transition(arn, at);
        self.sample(&key.0, &key.1, at);
    }

    /// One more failed task for a deployment still counting its failures.
    pub(crate) fn count_failure(&mut self, key: &ServiceKey, deployment_id: &str, at: f64) {
        if let Some(svc) = self.records.services.get_mut(key)
            && let Some(d) = svc.deployments.iter_mut().find(|d| d.id == deployment_id)
            && d.evaluating
        {
            d.failed_tasks += 1;
            d.updated_at = at;
        }
    }

    /// Forgets the STOPPED tasks kept longer than the retention.
    fn forget_stopped(&mut self, now: f64) {
        while let Some((at, _)) = self.records.stopped.front()
            && *at + self.stopped_task_retention <= now
        {
            if let Some((_, arn)) = self.records.stopped.pop_front() {
                self.records.tasks.remove(&arn);
            }
        }
    }

    /// Tells a task to stop. Stopping a task already told to stop changes nothing.
    pub fn request_stop(
        &mut self,
        arn: &str,
        reason: String,
        cause: StopCause,
        code: &'static str,
        now: f64,
    ) {
        let Some(task) = self.records.tasks.get(arn) else {
            return;
        };
        if !task.desired_running || task.last_status == LastStatus::Stopped {
            return;
        }
        let service = task.service.clone().map(|s| (task.cluster.clone(), s));
        let drain = self.drain_task_targets(arn, now);
        let Some(task) = self.records.tasks.get_mut(arn) else {
            return;
        };
        if let Some(drain) = drain {
            task.last_status = LastStatus::Deactivating;
            task.drain = Some(drain);
            task.lb_healthy = false;
        }
        task.desired_running = false;
        task.phase_origin = now;
        task.stopping_at = Some(now);
        task.stopped_reason = Some(reason);
        task.stop_code = Some(code);
        task.stop_cause = Some(cause);
        task.version += 1;
        self.record_transition(arn, now);
        if let Some((cluster, service)) = service {
            self.sample(&cluster, &service, now);
        }
    }

    /// Launches one task of the service's deployment `deployment_index`.
    fn launch_task(&mut self, key: &ServiceKey, deployment_index: usize, now: f64) -> String {
        let eni = self.new_eni();
        let svc = &self.records.services[key];
        let behind_lb = !svc.load_balancers.is_empty();
        let timings = self.timings_for(svc);
        let faults = self.faults_for(svc);
        let deployment = &svc.deployments[deployment_index];
        let deployment_id = deployment.id.clone();
        let td_arn = deployment.task_definition_arn.clone();
        let (containers, has_health_check) = self
            .find_task_definition(&td_arn)
            .map(|td| (td.containers.clone(), td.has_health_check()))
            .unwrap_or_default();
        let fate = if self.rng.f64() < faults.fail_start {
            Fate::FailStart
        } else if has_health_check && self.rng.f64() < faults.never_healthy {
            Fate::NeverHealthy
        } else {
            Fate::Normal
        };
        let slow = if self.rng.f64() < faults.slow_start {
            faults.slow_start_factor
        } else {
            1.0
        };
        let start_duration = timings.task_start * self.jitter(timings.jitter) * slow;
        let healthy_delay = timings.task_healthy * self.jitter(timings.jitter);
        let id = self.random_hex(32);
        let arn = self.arns.task(&key.0, &id);
        let task = Task {
            id,
            arn: arn.clone(),
            cluster: key.0.clone(),
            service: Some(key.1.clone()),
            started_by: deployment_id.clone(),
            deployment_id,
            task_definition_arn: td_arn,
            containers,
            last_status: LastStatus::Provisioning,
            desired_running: true,
            health: Health::Unknown,
            has_health_check,
            fate,
            placed: false,
            created_at: now,
            phase_origin: now,
            start_duration,
            healthy_delay,
            stop_duration: timings.task_stop,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            stopped_reason: None,
            stop_code: None,
            stop_cause: None,
            version: 1,
            eni,
            behind_lb,
            lb_healthy: false,
            lb_unhealthy_in: None,
            drain: None,
        };
        self.records.tasks.insert(arn.clone(), task);
        self.records
            .live
            .entry(key.clone())
            .or_default()
            .insert(arn.clone());
        self.try_place(&arn, now);
        self.record_transition(&arn, now);
        arn
    }

    /// Places a provisioning task if its cluster has room.
    fn try_place(&mut self, arn: &str, now: f64) -> bool {
        let Some(task) = self.records.tasks.get(arn) else {
            return false;
        };
        if task.placed {
            return true;
        }
        let Some(cluster) = self.records.clusters.get_mut(&task.cluster) else {
            return false;
        };
        if cluster.capacity.is_some_and(|cap| cluster.placed >= cap) {
            return false;
        }
        cluster.placed += 1;
        if let Some(task) = self.records.tasks.get_mut(arn) {
            task.placed = true;
            task.phase_origin = now;
        }
        true
    }

    pub fn push_event(&mut self, key: &ServiceKey, message: String, now: f64) {
        let id = format!(
            "{}-{}-{}-{}-{}",
            self.random_hex(8),
            self.random_hex(4),
            self.random_hex(4),
            self.random_hex(4),
            self.random_hex(12)
        );
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
    fn reconcile_service(&mut self, key: &ServiceKey, now: f64) {
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
        let mut stopped_ids = Vec::new();

        if status == ServiceStatus::Draining {
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
            return;
        }

        // Unhealthy tasks are replaced, whatever the deployment settings say.
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
            let short = t.id.clone();
            self.push_event(
                key,
                format!("(service {name}) (task {short}) failed container health checks."),
                now,
            );
            stopped_ids.push(short);
        }
        stopped_ids.extend(self.replace_lb_unhealthy(key, &tasks, now));
        let mut active: Vec<Task> = self
            .live_tasks(&key.0, &key.1)
            .filter(|t| t.desired_running)
            .cloned()
            .collect();
        // Not yet running first, then the newest: the cheapest to give up.
        active.sort_by(|a, b| {
            (a.last_status == LastStatus::Running)
                .cmp(&(b.last_status == LastStatus::Running))
                .then(b.created_at.total_cmp(&a.created_at))
        });
        let in_primary = |t: &Task| Some(&t.deployment_id) == primary_id.as_ref();

        // Scale in the primary deployment.
        let primary_active: Vec<&Task> = active.iter().filter(|t| in_primary(t)).collect();
        let excess = primary_active.len().saturating_sub(desired);
        let mut stop_now: Vec<(String, String, StopCause)> = primary_active
            .iter()
            .take(excess)
            .map(|t| (t.arn.clone(), t.id.clone(), StopCause::ScaleIn))
            .collect();
        let primary_count = primary_active.len() - excess;
        let old: Vec<&Task> = active.iter().filter(|t| !in_primary(t)).collect();

        // Launch within maximumPercent, which counts RUNNING, STOPPING and
        // PENDING tasks alike: a task told to stop holds its place until STOPPED.
        let max_total = (desired * config.maximum_percent as usize / 100).max(desired);
        let total = self.live_tasks(&key.0, &key.1).count();
        let mut launch = desired
            .saturating_sub(primary_count)
            .min(max_total.saturating_sub(total));
        if primary_failed || primary_id.is_none() {
            launch = 0;
        }

        // Retire old deployments' tasks while minimumHealthyPercent holds.
        let min_healthy = (desired * config.minimum_healthy_percent as usize).div_ceil(100);
        let mut healthy = active.iter().filter(|t| t.is_healthy()).count()
            - stop_now
                .iter()
                .filter(|(arn, _, _)| active.iter().any(|t| &t.arn == arn && t.is_healthy()))
                .count();
        for t in &old {
            if !t.is_healthy() {
                stop_now.push((t.arn.clone(), t.id.clone(), StopCause::Deployment));
            } else if healthy > min_healthy {
                healthy -= 1;
                stop_now.push((t.arn.clone(), t.id.clone(), StopCause::Deployment));
            }
        }

        for (arn, id, cause) in stop_now {
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
        if !stopped_ids.is_empty() {
            let list: Vec<String> = stopped_ids.iter().map(|i| format!("(task {i})")).collect();
            self.push_event(
                key,
                format!(
                    "(service {name}) has stopped {} running tasks: {}.",
                    stopped_ids.len(),
                    list.join(" ")
                ),
                now,
            );
        }

        let mut started = Vec::new();
        for _ in 0..launch {
            let arn = self.launch_task(key, 0, now);
            started.push(self.records.tasks[&arn].id.clone());
        }
        if !started.is_empty() {
            let list: Vec<String> = started.iter().map(|i| format!("(task {i})")).collect();
            self.push_event(
                key,
                format!(
                    "(service {name}) has started {} tasks: {}.",
                    started.len(),
                    list.join(" ")
                ),
                now,
            );
        }

        self.place_waiting(key, now);
        self.settle_deployments(key, now);
        self.sample(&key.0, &key.1, now);
    }

    /// Places tasks waiting for capacity; says so once when some cannot be.
    fn place_waiting(&mut self, key: &ServiceKey, now: f64) {
        let waiting: Vec<String> = self
            .live_tasks(&key.0, &key.1)
            .filter(|t| !t.placed && t.desired_running)
            .map(|t| t.arn.clone())
            .collect();
        let mut blocked = false;
        for arn in waiting {
            if !self.try_place(&arn, now) {
                blocked = true;
            }
        }
        let Some(svc) = self.records.services.get_mut(key) else {
            return;
        };
        if blocked && !svc.placement_blocked_reported {
            svc.placement_blocked_reported = true;
            let name = svc.name.clone();
            let instance = self.random_hex(32);
            self.push_event(
                key,
                format!(
                    "(service {name}) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance {instance}) has insufficient CPU units available. For more information, see the Troubleshooting section."
                ),
                now,
            );
        } else if !blocked {
            svc.placement_blocked_reported = false;
        }
    }

    /// Retires drained deployments, completes or fails the primary, and
    /// notes the steady state.
    fn settle_deployments(&mut self, key: &ServiceKey, now: f64) {
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

    /// Drives the automatic scaling policies whose time has come.
    fn run_drivers(&mut self, now: f64) {
        let mut due = Vec::new();
        for d in &mut self.drivers {
            while d.next_at <= now && !d.targets.is_empty() {
                due.push((
                    d.cluster.clone(),
                    d.service.clone(),
                    d.targets[d.next_index],
                    d.next_at,
                ));
                d.next_index = (d.next_index + 1) % d.targets.len();
                d.next_at += d.every;
            }
        }
        for (cluster, service, target, at) in due {
            let _ = self.policy_scale(&cluster, &service, target, at);
        }
    }
}

/// True when no task of another deployment is still alive.
fn deployments_len_is_one(live: &[Task], primary: &Deployment) -> bool {
    live.iter().all(|t| t.deployment_id == primary.id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{SimOptions, ecs};
    use super::*;

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
