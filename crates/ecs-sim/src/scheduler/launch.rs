//! Launching a service's tasks and placing them: a new task of a
//! deployment (its timings, faults, network interface and what it
//! reserves), placement within the cluster's capacity and on a container
//! instance with room when it runs on EC2, and tasks waiting for room
//! placed when there is some, with ECS's event when there is not.

use super::ServiceKey;
use crate::capacity::placement::Shortfall;
use crate::model::{Fate, Health, LastStatus, Task};
use crate::world::World;

impl World {
    /// Launches one task of the service's deployment `deployment_index`;
    /// on EC2 without a capacity provider, only where an instance has room
    /// for it (else no task is made, as in ECS).
    pub(super) fn launch_task(
        &mut self,
        key: &ServiceKey,
        deployment_index: usize,
        now: f64,
    ) -> Result<String, Shortfall> {
        let target = self.target_for(key);
        let needs = {
            let td = &self.records.services[key].deployments[deployment_index].task_definition_arn;
            self.find_task_definition(td)
                .map(|td| td.needs)
                .unwrap_or_default()
        };
        if target.needs_instance && target.provider.is_none() {
            self.fit(&key.0, None, needs)?;
        }
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
            needs,
            launch_type: target.launch_type,
            capacity_provider: target.provider,
            needs_instance: target.needs_instance,
            container_instance: None,
            protected_until: None,
        };
        self.records.tasks.insert(arn.clone(), task);
        self.records
            .live
            .entry(key.clone())
            .or_default()
            .insert(arn.clone());
        // One that finds no room now waits for `place_waiting`.
        let _ = self.try_place(&arn, now);
        self.record_transition(&arn, now);
        Ok(arn)
    }

    /// Places a provisioning task if its cluster has room (and, on EC2, an
    /// instance with room for it); answers why not when it cannot.
    fn try_place(&mut self, arn: &str, now: f64) -> Result<(), Shortfall> {
        let Some(task) = self.records.tasks.get(arn) else {
            return Ok(());
        };
        if task.placed {
            return Ok(());
        }
        let Some(cluster) = self.records.clusters.get(&task.cluster) else {
            return Ok(());
        };
        if cluster.capacity.is_some_and(|cap| cluster.placed >= cap) {
            let closest = Some(self.random_hex(32));
            return Err(Shortfall {
                closest,
                resource: "CPU",
            });
        }
        let instance = if task.needs_instance {
            Some(self.fit(&task.cluster, task.capacity_provider.as_deref(), task.needs)?)
        } else {
            None
        };
        if let Some(cluster) = self.records.clusters.get_mut(&task.cluster) {
            cluster.placed += 1;
        }
        if let Some(task) = self.records.tasks.get_mut(arn) {
            task.placed = true;
            task.phase_origin = now;
            task.container_instance = instance.clone();
        }
        if let Some(ci) = instance {
            self.emit_instance_change(&ci, now);
        }
        Ok(())
    }

    /// Places tasks waiting for capacity. Says so once while some cannot be
    /// placed, or a launch found no room (`launch_blocked`); tasks of an
    /// Auto Scaling group provider wait for managed scaling without a word.
    pub(super) fn place_waiting(
        &mut self,
        key: &ServiceKey,
        launch_blocked: Option<Shortfall>,
        now: f64,
    ) {
        let waiting: Vec<(String, bool)> = self
            .live_tasks(&key.0, &key.1)
            .filter(|t| !t.placed && t.desired_running)
            .map(|t| {
                (
                    t.arn.clone(),
                    t.needs_instance && t.capacity_provider.is_some(),
                )
            })
            .collect();
        let mut blocked = launch_blocked;
        for (arn, scaled) in waiting {
            if let Err(shortfall) = self.try_place(&arn, now)
                && !scaled
            {
                blocked.get_or_insert(shortfall);
            }
        }
        let Some(svc) = self.records.services.get_mut(key) else {
            return;
        };
        match blocked {
            Some(shortfall) if !svc.placement_blocked_reported => {
                svc.placement_blocked_reported = true;
                let message = shortfall.message(&svc.name);
                self.push_event(key, message, now);
                let extra = match &shortfall.closest {
                    Some(id) => serde_json::json!({"reason": shortfall.reason(),
                        "containerInstanceArns": [self.arns.container_instance(&key.0, id)]}),
                    None => serde_json::json!({"reason": shortfall.reason()}),
                };
                self.emit_service_action(
                    key,
                    "ERROR",
                    "SERVICE_TASK_PLACEMENT_FAILURE",
                    extra,
                    now,
                );
            }
            Some(_) => {}
            None => svc.placement_blocked_reported = false,
        }
    }
}
