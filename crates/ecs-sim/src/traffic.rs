//! The traffic model: a steady request rate per service, sent through its
//! target groups to the targets that are `healthy` (and, for a moment
//! after they begin deregistering, to the ones draining, as ELB's nodes
//! learn of it late). A request is dropped when no target receives, or when
//! it reaches a task whose containers have stopped. Each simulated second
//! the served and dropped counts go into the timeline.
//!
//! Requests come at fixed instants (`k / rps` after the rate was set) and
//! go round-robin over the receiving targets, so a run is repeatable and
//! nothing is left to chance.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::elb::model::TargetState;
use crate::elb::targets::PROPAGATION;
use crate::model::LastStatus;
use crate::timeline::TrafficSample;
use crate::world::World;

type ServiceKey = (String, String);

struct Flow {
    rps: f64,
    /// When the current rate was set; requests are counted from then.
    rate_origin: f64,
    sent: u64,
    next_sample_at: f64,
    served: u64,
    dropped: u64,
    next_target: u64,
}

#[derive(Default)]
pub struct Traffic {
    flows: BTreeMap<ServiceKey, Flow>,
    /// The fewest healthy targets each service had while traffic ran,
    /// looked at every time the world advanced, not only at the samples.
    lowest: BTreeMap<ServiceKey, u32>,
}

/// The targets receiving requests now: for each, whether it serves them.
struct Receivers {
    serving: Vec<bool>,
    healthy: u32,
    draining: u32,
}

pub fn key_name(cluster: &str, service: &str) -> String {
    format!("{cluster}/{service}")
}

impl World {
    fn receivers(&self, key: &ServiceKey, now: f64) -> Receivers {
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
            for r in &tg.targets {
                let (state, _) = tg.state_of(r, now, scale);
                let receiving = match r.deregistered_at {
                    None => state == TargetState::HEALTHY,
                    Some(gone) => now < gone + propagation,
                };
                if state == TargetState::HEALTHY {
                    out.healthy += 1;
                }
                if state == TargetState::DRAINING {
                    out.draining += 1;
                }
                if receiving {
                    let serving = r.task_arn.as_ref().is_none_or(|arn| {
                        self.records.tasks.get(arn).is_some_and(|t| {
                            matches!(
                                t.last_status,
                                LastStatus::Running | LastStatus::Deactivating
                            )
                        })
                    });
                    out.serving.push(serving);
                }
            }
        }
        out
    }

    /// Sends the requests due by `now` and writes the seconds that ended.
    pub fn advance_traffic(&mut self, now: f64) {
        let keys: Vec<ServiceKey> = self.traffic.flows.keys().cloned().collect();
        for key in keys {
            let receivers = self.receivers(&key, now);
            let lowest = self.traffic.lowest.entry(key.clone()).or_insert(u32::MAX);
            *lowest = (*lowest).min(receivers.healthy);
            let Some(flow) = self.traffic.flows.get_mut(&key) else {
                continue;
            };
            loop {
                let upto = now.min(flow.next_sample_at);
                // A hair over, so that the request due exactly at `upto`
                // is not lost to rounding.
                let due = (((upto - flow.rate_origin) * flow.rps + 1e-6)
                    .floor()
                    .max(0.0) as u64)
                    .saturating_sub(flow.sent);
                for _ in 0..due {
                    let n = receivers.serving.len() as u64;
                    let served = n > 0 && receivers.serving[(flow.next_target % n) as usize];
                    flow.next_target += 1;
                    if served {
                        flow.served += 1;
                    } else {
                        flow.dropped += 1;
                    }
                }
                flow.sent += due;
                if flow.next_sample_at > now {
                    break;
                }
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

    /// Sets a service's request rate; 0 stops its traffic, writing the
    /// second it was in when it had any requests.
    pub fn set_traffic(&mut self, key: ServiceKey, rps: f64, now: f64) {
        if rps <= 0.0 {
            let receivers = self.receivers(&key, now);
            if let Some(flow) = self.traffic.flows.remove(&key)
                && flow.served + flow.dropped > 0
            {
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
        let flow = self.traffic.flows.entry(key).or_insert(Flow {
            rps,
            rate_origin: now,
            sent: 0,
            next_sample_at: now + 1.0,
            served: 0,
            dropped: 0,
            next_target: 0,
        });
        flow.rps = rps;
        flow.rate_origin = now;
        flow.sent = 0;
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
