//! The traffic model: a steady request rate per service, sent through its
//! target groups to the targets that are `healthy` (and, for a moment
//! after they begin deregistering, to the ones draining, as ELB's nodes
//! learn of it late). A request is dropped when no target receives, or when
//! it reaches a task whose containers have stopped. Each simulated second
//! the served and dropped counts go into the timeline.
//!
//! Requests come at fixed instants (`k / rps` after the rate was set) and
//! go round-robin over the targets receiving at the end of their slice of
//! time (a fifth of the propagation time, on a grid from when the rate was
//! set). Who receives and who serves are worked out from the records for
//! that instant, not from when the world happened to advance, so a run
//! gives the same counts however late the simulator's ticks come.

use serde_json::{Value, json};

use crate::elb::model::PROPAGATION;
use crate::elb::model::TargetState;
use crate::model::{Flow, Task};
use crate::timeline::TrafficSample;
use crate::world::World;

type ServiceKey = (String, String);

/// The targets receiving requests at an instant: for each, whether it serves them.
struct Receivers {
    serving: Vec<bool>,
    healthy: u32,
    draining: u32,
}

pub fn key_name(cluster: &str, service: &str) -> String {
    format!("{cluster}/{service}")
}

/// Whether a task's containers are up at `t`: started, and not yet stopping.
fn serves_at(task: &Task, t: f64) -> bool {
    let started = task.started_at.is_some_and(|s| s <= t);
    let stopped_at = if task.desired_running {
        None
    } else {
        // As the scheduler walks a stopping task: STOPPING after the drain,
        // or at 60% of the stop time when there was none.
        Some(task.phase_origin + task.drain.unwrap_or(0.6 * task.stop_duration))
    };
    started && stopped_at.is_none_or(|s| t < s)
}

impl World {
    fn receivers(&self, key: &ServiceKey, t: f64) -> Receivers {
        let mut out = Receivers {
            serving: Vec::new(),
            healthy: 0,
            draining: 0,
        };
        let Some(svc) = self.records.services.get(key) else {
            return out;
        };
        let scale = self.target_time_scale;
        let propagation = PROPAGATION / scale;
        for lb in &svc.load_balancers {
            let Some(tg) = self.elb.target_groups.get(&lb.target_group_arn) else {
                continue;
            };
            for r in tg.targets.iter().filter(|r| r.registered_at <= t) {
                let (state, _) = tg.state_of(r, t, scale);
                let receiving = match r.deregistered_at {
                    Some(gone) if gone <= t => t < gone + propagation,
                    _ => state == TargetState::HEALTHY,
                };
                if state == TargetState::HEALTHY {
                    out.healthy += 1;
                }
                if state == TargetState::DRAINING {
                    out.draining += 1;
                }
                if receiving {
                    let serving = r.task_arn.as_ref().is_none_or(|arn| {
                        self.records
                            .tasks
                            .get(arn)
                            .is_some_and(|task| serves_at(task, t))
                    });
                    out.serving.push(serving);
                }
            }
        }
        out
    }

    fn slice(&self) -> f64 {
        (PROPAGATION / self.target_time_scale / 5.0).max(0.001)
    }

    /// Sends a flow's requests up to `upto`: whole slices only, unless
    /// `partial` (the flow ends or changes now).
    fn run_flow(&mut self, key: &ServiceKey, flow: &mut Flow, upto: f64, partial: bool) {
        let slice = self.slice();
        loop {
            let next_grid = flow.rate_origin
                + (((flow.done_upto - flow.rate_origin) / slice + 1e-9).floor() + 1.0) * slice;
            let mut end = next_grid.min(flow.next_sample_at);
            if end > upto {
                if !partial || flow.done_upto >= upto {
                    break;
                }
                end = upto;
            }
            let receivers = self.receivers(key, end);
            let lowest = self.traffic.lowest.entry(key.clone()).or_insert(u32::MAX);
            *lowest = (*lowest).min(receivers.healthy);
            // A hair over, so that the request due exactly at `end` is not
            // lost to rounding.
            let due = (((end - flow.rate_origin) * flow.rps + 1e-6)
                .floor()
                .max(0.0) as u64)
                .saturating_sub(flow.sent);
            let n = receivers.serving.len() as u64;
            for _ in 0..due {
                let served = n > 0 && receivers.serving[(flow.next_target % n) as usize];
                flow.next_target += 1;
                if served {
                    flow.served += 1;
                } else {
                    flow.dropped += 1;
                }
            }
            flow.sent += due;
            flow.done_upto = end;
            if end >= flow.next_sample_at {
                let sample = TrafficSample {
                    t: flow.next_sample_at,
                    served: std::mem::take(&mut flow.served),
                    dropped: std::mem::take(&mut flow.dropped),
                    healthy_targets: receivers.healthy,
                    draining_targets: receivers.draining,
                };
                flow.next_sample_at += 1.0;
                self.timeline
                    .traffic
                    .entry(key_name(&key.0, &key.1))
                    .or_default()
                    .push(sample);
            }
        }
    }

    /// Sends the requests due by `now` and writes the seconds that ended.
    pub fn advance_traffic(&mut self, now: f64) {
        let keys: Vec<ServiceKey> = self.traffic.flows.keys().cloned().collect();
        for key in keys {
            if let Some(mut flow) = self.traffic.flows.remove(&key) {
                self.run_flow(&key, &mut flow, now, false);
                self.traffic.flows.insert(key, flow);
            }
        }
    }

    /// Sets a service's request rate; 0 stops its traffic, writing the
    /// second it was in when it had any requests.
    pub fn set_traffic(&mut self, key: ServiceKey, rps: f64, now: f64) {
        let existing = self.traffic.flows.remove(&key).map(|mut flow| {
            self.run_flow(&key, &mut flow, now, true);
            flow
        });
        if rps <= 0.0 {
            if let Some(flow) = existing
                && flow.served + flow.dropped > 0
            {
                let receivers = self.receivers(&key, now);
                self.timeline
                    .traffic
                    .entry(key_name(&key.0, &key.1))
                    .or_default()
                    .push(TrafficSample {
                        t: now,
                        served: flow.served,
                        dropped: flow.dropped,
                        healthy_targets: receivers.healthy,
                        draining_targets: receivers.draining,
                    });
            }
            return;
        }
        let mut flow = existing.unwrap_or(Flow {
            rps,
            rate_origin: now,
            sent: 0,
            done_upto: now,
            next_sample_at: now + 1.0,
            served: 0,
            dropped: 0,
            next_target: 0,
        });
        flow.rps = rps;
        flow.rate_origin = now;
        flow.done_upto = now;
        flow.sent = 0;
        self.traffic.flows.insert(key, flow);
    }

    /// The totals of a service's traffic samples so far, and the fewest
    /// healthy targets it had while its traffic ran (at most the fewest
    /// of the samples: it is looked at between them too).
    pub fn traffic_summary(&self, cluster: &str, service: &str) -> Value {
        let lowest = self
            .traffic
            .lowest
            .get(&(cluster.to_string(), service.to_string()))
            .copied();
        let samples = self
            .timeline
            .traffic
            .get(&key_name(cluster, service))
            .map(Vec::as_slice)
            .unwrap_or_default();
        json!({
            "served": samples.iter().map(|s| s.served).sum::<u64>(),
            "dropped": samples.iter().map(|s| s.dropped).sum::<u64>(),
            "minHealthyTargets": match (samples.iter().map(|s| s.healthy_targets).min(), lowest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            "samples": samples.len(),
        })
    }
}
