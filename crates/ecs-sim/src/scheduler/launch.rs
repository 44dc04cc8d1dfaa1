//! Launching a service's tasks and placing them: a new task of a
//! deployment (its timings, faults and network interface), placement within
//! the cluster's capacity, and tasks waiting for room placed when there is
//! some, with ECS's event when there is not.

use super::ServiceKey;
use crate::model::{Fate, Health, LastStatus, Task};
use crate::world::World;

impl World {
    /// Launches one task of the service's deployment `deployment_index`.
    pub(super) fn launch_task(
        &mut self,
        key: &ServiceKey,
        deployment_index: usize,
        now: f64,
    ) -> String {
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

    /// Places tasks waiting for capacity; says so once when some cannot be.
    pub(super) fn place_waiting(&mut self, key: &ServiceKey, now: f64) {
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
}
