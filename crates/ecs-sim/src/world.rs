//! The simulator's whole state behind one lock: the records (ECS's and the
//! load balancers'), the clock, the timings and faults in force, the
//! throttle, the scaling drivers, the traffic and the audit timeline. Operations take `&mut World` and a time `now`.

use std::time::Instant;

use serde_json::{Value, json};

use super::faults::{FaultProfile, Throttle, Timings};
use super::model::{Arns, Records, Service, StopCause, Task};
use super::timeline::{Counts, TaskHistory, Timeline, Transition};

/// An automatic scaling driver: every `every` seconds, the simulated policy
/// asks for the next desired count in `targets`, round and round.
#[derive(Clone, Debug)]
pub struct PolicyDriver {
    pub cluster: String,
    pub service: String,
    pub every: f64,
    pub targets: Vec<u32>,
    pub next_index: usize,
    pub next_at: f64,
}

pub struct World {
    pub records: Records,
    pub timeline: Timeline,
    pub arns: Arns,
    pub timings: Timings,
    pub faults: FaultProfile,
    pub throttle: Throttle,
    pub drivers: Vec<PolicyDriver>,
    pub rng: fastrand::Rng,
    /// Seconds a STOPPED task stays visible to ListTasks and DescribeTasks.
    pub stopped_task_retention: f64,
    pub elb: super::elb::model::Records,
    /// Divides every load-balancer duration (health-check intervals,
    /// deregistration delays, grace periods): a simulator-only speed-up.
    pub target_time_scale: f64,
    pub traffic: super::model::Traffic,
    /// Private IPv4 addresses handed out to task ENIs so far.
    pub addresses: u32,
    /// Container instances, capacity providers and Auto Scaling groups.
    pub capacity: super::capacity::model::Capacity,
    /// Divides ECS's own fixed durations (Fargate Spot's two minutes, the
    /// provisioning timeout, task protection, instance launch and warm-up):
    /// a simulator-only speed-up.
    pub ecs_time_scale: f64,
    /// ECS's events and the feed that delivers them to SQS.
    pub events: super::events::Events,
    started: Instant,
    started_epoch: f64,
}

impl World {
    pub fn new(region: String, timings: Timings, seed: u64) -> Self {
        let started_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            records: Records::default(),
            timeline: Timeline::default(),
            arns: Arns { region },
            timings,
            faults: FaultProfile::default(),
            throttle: Throttle::default(),
            drivers: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            stopped_task_retention: super::model::STOPPED_TASK_RETENTION,
            elb: Default::default(),
            target_time_scale: 1.0,
            traffic: Default::default(),
            addresses: 0,
            capacity: Default::default(),
            ecs_time_scale: 1.0,
            events: super::events::Events::new(seed),
            started: Instant::now(),
            started_epoch,
        }
    }

    /// Seconds since the simulator started: the `t` of the timeline.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Wall-clock epoch seconds for a simulator time, as AWS timestamps are.
    pub fn epoch(&self, t: f64) -> f64 {
        // Millisecond precision, as AWS answers.
        ((self.started_epoch + t) * 1000.0).round() / 1000.0
    }

    pub fn timings_for(&self, service: &Service) -> Timings {
        let mut t = self.timings;
        t.apply(&service.timings);
        t
    }

    pub fn faults_for(&self, service: &Service) -> FaultProfile {
        service
            .faults
            .clone()
            .unwrap_or_else(|| self.faults.clone())
    }

    pub fn random_hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.rng.u32(0..16), 16).unwrap_or('0'))
            .collect()
    }

    pub fn random_digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.rng.u32(0..10), 10).unwrap_or('0'))
            .collect()
    }

    /// A random identifier shaped like a UUID (8-4-4-4-12 hex digits).
    pub fn random_uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.random_hex(8),
            self.random_hex(4),
            self.random_hex(4),
            self.random_hex(4),
            self.random_hex(12)
        )
    }

    /// A factor in `[1 - jitter, 1 + jitter]`.
    pub fn jitter(&mut self, jitter: f64) -> f64 {
        1.0 + jitter * (self.rng.f64() * 2.0 - 1.0)
    }

    pub fn counts(&self, service: &Service) -> Counts {
        let mut c = Counts {
            desired: service.desired,
            running: 0,
            pending: 0,
            healthy: 0,
        };
        for task in self.live_tasks(&service.cluster, &service.name) {
            if task.last_status == super::model::LastStatus::Running {
                c.running += 1;
            }
            if task.last_status.is_pending() {
                c.pending += 1;
            }
            if task.is_healthy() {
                c.healthy += 1;
            }
        }
        c
    }

    /// The service's tasks that have not yet reached STOPPED.
    pub fn live_tasks<'a>(
        &'a self,
        cluster: &'a str,
        service: &'a str,
    ) -> impl Iterator<Item = &'a Task> + 'a {
        self.records
            .live
            .get(&(cluster.to_string(), service.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|arn| self.records.tasks.get(arn))
    }

    /// Samples a service's counts into the timeline if they changed.
    pub fn sample(&mut self, cluster: &str, service: &str, t: f64) {
        let key = (cluster.to_string(), service.to_string());
        let Some(svc) = self.records.services.get(&key) else {
            return;
        };
        let counts = self.counts(svc);
        self.timeline.sample(cluster, service, t, counts);
    }

    /// Appends the task's current state to its history in the timeline.
    pub fn record_transition(&mut self, arn: &str, t: f64) {
        self.record_stop_transition(arn, t, false);
    }

    /// The same, marking a stop of a task that was protected from scale-in.
    pub fn record_stop_transition(&mut self, arn: &str, t: f64, protected: bool) {
        let Some(task) = self.records.tasks.get(arn) else {
            return;
        };
        let history = self.timeline.task_mut(arn, || TaskHistory {
            task_arn: task.arn.clone(),
            cluster: task.cluster.clone(),
            service: task.service.clone(),
            started_by: task.started_by.clone(),
            task_definition_arn: task.task_definition_arn.clone(),
            stopped_reason: None,
            stopped_by: None,
            stop_call: None,
            capacity_provider_name: task.capacity_provider.clone(),
            container_instance_arn: None,
            transitions: Vec::new(),
        });
        history.container_instance_arn = task.container_instance.clone();
        history.stopped_reason = task.stopped_reason.clone();
        history.stopped_by = task.stop_cause.as_ref().map(StopCause::label);
        history.stop_call = match task.stop_cause {
            Some(StopCause::StopTask { call }) => Some(call),
            _ => None,
        };
        history.transitions.push(Transition {
            t,
            last_status: task.last_status.as_str(),
            health_status: task.health.as_str(),
            desired_status: if task.desired_running {
                "RUNNING"
            } else {
                "STOPPED"
            },
            protected,
        });
        self.emit_task_change(arn, t);
    }

    pub fn timeline_json(&self) -> Value {
        let mut v = self.timeline.to_json();
        v["now"] = json!(self.now());
        v["events"] = self.events_summary();
        v
    }
}
