//! Time in the simulator: each task's walk through ECS's states, and the
//! service scheduler that replaces stopped tasks, scales, places tasks within
//! cluster capacity and rolls deployments within minimumHealthyPercent and
//! maximumPercent.
//!
//! `World::advance(now)` applies every transition due by `now` in time order,
//! sampling the service's counts after each one, then runs the service
//! scheduler for each service whose turn has come. The pieces: a task's life
//! (`task_life`), launching and placing tasks (`launch`), one pass of the
//! scheduler over a service (`service`), and its deployments (`deployments`).

mod deployments;
mod launch;
mod service;
mod task_life;

use super::model::ServiceStatus;
use super::world::World;
use task_life::next_step;

type ServiceKey = (String, String);

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
        self.advance_capacity(now);
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
        self.flush_events(now);
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
