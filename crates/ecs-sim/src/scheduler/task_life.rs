//! A task's life on its own clock: the next step of a task from its state
//! and timings alone, applying it (with what it means for its service's
//! deployment and targets), telling a task to stop, and forgetting STOPPED
//! tasks once their retention is over.

use super::ServiceKey;
use crate::model::{Fate, Health, LastStatus, StopCause, Task};
use crate::world::World;

/// What happens to a task next, and when.
pub(super) enum Step {
    To(LastStatus),
    Health(Health),
    FailStart,
}

/// The task's next scheduled change, from its state and timings alone.
pub(super) fn next_step(task: &Task) -> Option<(f64, Step)> {
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
    pub(super) fn apply_step(&mut self, arn: &str) {
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
                            // The warning said TerminationNotice; the stop
                            // itself is ECS's SpotInterruption.
                            if task.stop_cause == Some(StopCause::SpotInterruption) {
                                task.stop_code = Some("SpotInterruption");
                            }
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
            if let Some(ci) = self
                .records
                .tasks
                .get(arn)
                .and_then(|t| t.container_instance.clone())
            {
                self.emit_instance_change(&ci, at);
            }
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
    pub(super) fn forget_stopped(&mut self, now: f64) {
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
        self.request_stop_after(arn, reason, cause, code, 0.0, now);
    }

    /// Tells a task to stop, its containers kept running for at least
    /// `wait` seconds first (Fargate Spot's warning) besides any drain of
    /// its targets. The timeline marks the stop of a task that was
    /// protected from scale-in.
    pub fn request_stop_after(
        &mut self,
        arn: &str,
        reason: String,
        cause: StopCause,
        code: &'static str,
        wait: f64,
        now: f64,
    ) {
        let Some(task) = self.records.tasks.get(arn) else {
            return;
        };
        if !task.desired_running || task.last_status == LastStatus::Stopped {
            return;
        }
        let protected = task.is_protected(now);
        let running = task.last_status == LastStatus::Running;
        let service = task.service.clone().map(|s| (task.cluster.clone(), s));
        let drain = self.drain_task_targets(arn, now);
        let Some(task) = self.records.tasks.get_mut(arn) else {
            return;
        };
        if let Some(drain) = drain {
            task.last_status = LastStatus::Deactivating;
            task.drain = Some(drain.max(wait));
            task.lb_healthy = false;
        } else if wait > 0.0 && running {
            task.drain = Some(wait);
        }
        task.desired_running = false;
        task.phase_origin = now;
        task.stopping_at = Some(now);
        task.stopped_reason = Some(reason);
        task.stop_code = Some(code);
        task.stop_cause = Some(cause);
        task.protected_until = None;
        task.version += 1;
        self.record_stop_transition(arn, now, protected);
        if let Some((cluster, service)) = service {
            self.sample(&cluster, &service, now);
        }
    }
}
