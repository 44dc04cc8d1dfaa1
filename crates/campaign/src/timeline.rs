//! The simulator's audit timeline (`GET /_sim/timeline`, its shape in
//! crates/ecs-sim/src/timeline.rs), typed for the checks, and the few
//! questions they ask of it: who made a call, which service a call is
//! about, whether a task served at an instant, the desired count before a
//! call. Times are the simulator's `t`, seconds since it started.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Timeline {
    pub calls: Vec<Call>,
    pub tasks: Vec<Task>,
    pub services: Vec<ServiceHistory>,
    #[serde(default)]
    pub targets: Vec<Target>,
    pub now: f64,
}

#[derive(Debug, Deserialize)]
pub struct Call {
    pub t: f64,
    pub op: String,
    #[serde(default)]
    pub params: Value,
    pub error: Option<String>,
    /// The access key that signed it: a replica's id, or the campaign's.
    pub caller: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_arn: String,
    pub service: Option<String>,
    pub stopped_by: Option<String>,
    /// Index into `calls` of the StopTask that stopped it.
    pub stop_call: Option<usize>,
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub t: f64,
    pub last_status: String,
    pub health_status: String,
    pub desired_status: String,
    /// The task was protected from scale-in when it was told to stop.
    #[serde(default)]
    pub protected: bool,
}

#[derive(Debug, Deserialize)]
pub struct ServiceHistory {
    pub service: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
pub struct Sample {
    pub t: f64,
    pub desired: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub task_arn: Option<String>,
    pub transitions: Vec<TargetTransition>,
}

#[derive(Debug, Deserialize)]
pub struct TargetTransition {
    pub t: f64,
    pub state: String,
}

/// The calls that change the world, as the fence counts them.
pub const MUTATING: [&str; 3] = ["UpdateService", "StopTask", "RegisterScalableTarget"];

/// A service's name from a `service` parameter (a name or an ARN) or an
/// Application Auto Scaling resource id (`service/cluster/name`).
fn service_name(text: &str) -> String {
    text.rsplit('/').next().unwrap_or(text).to_string()
}

impl Call {
    /// Made by one of the operator's replicas (their ids sign their calls).
    pub fn by_replica(&self) -> Option<&str> {
        self.caller.as_deref().filter(|c| c.starts_with('r'))
    }

    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }
}

/// The timeline with its tasks found by ARN.
pub struct World<'a> {
    pub timeline: &'a Timeline,
    tasks: HashMap<&'a str, &'a Task>,
    /// Target registrations by task ARN, in the order made.
    targets: HashMap<&'a str, Vec<&'a Target>>,
}

impl<'a> World<'a> {
    pub fn new(timeline: &'a Timeline) -> Self {
        let tasks = timeline
            .tasks
            .iter()
            .map(|t| (t.task_arn.as_str(), t))
            .collect();
        let mut targets: HashMap<&str, Vec<&Target>> = HashMap::new();
        for target in &timeline.targets {
            if let Some(arn) = target.task_arn.as_deref() {
                targets.entry(arn).or_default().push(target);
            }
        }
        Self {
            timeline,
            tasks,
            targets,
        }
    }

    pub fn task(&self, arn: &str) -> Option<&'a Task> {
        self.tasks.get(arn).copied().or_else(|| {
            // A task named by its id alone.
            self.timeline
                .tasks
                .iter()
                .find(|t| t.task_arn.ends_with(&format!("/{arn}")))
        })
    }

    /// The service a call is about, if it names one.
    pub fn service_of(&self, call: &Call) -> Option<String> {
        match call.op.as_str() {
            "StopTask" => self
                .task(call.param("task")?)
                .and_then(|t| t.service.clone()),
            "RegisterScalableTarget" => call.param("ResourceId").map(service_name),
            _ => call.param("service").map(service_name),
        }
    }

    /// The tasks of `service`.
    pub fn tasks_of(&self, service: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        self.timeline
            .tasks
            .iter()
            .filter(move |t| t.service.as_deref() == Some(service))
    }

    /// Whether `task` served at `t`: RUNNING, not told to stop, HEALTHY when
    /// its container has a health check, and its target healthy when the
    /// service is behind a load balancer.
    pub fn serving(&self, task: &Task, t: f64, health_check: bool, load_balancer: bool) -> bool {
        let Some(state) = task.transitions.iter().rev().find(|x| x.t <= t) else {
            return false;
        };
        let running = state.last_status == "RUNNING" && state.desired_status == "RUNNING";
        let healthy = !health_check || state.health_status == "HEALTHY";
        running && healthy && (!load_balancer || self.target_healthy(&task.task_arn, t))
    }

    /// Whether `task` served at any instant from `from` to `to`: at `from`,
    /// or just after one of its changes (or its target's) in between.
    pub fn served_during(
        &self,
        task: &Task,
        from: f64,
        to: f64,
        health_check: bool,
        load_balancer: bool,
    ) -> bool {
        let target_changes = self
            .targets
            .get(task.task_arn.as_str())
            .into_iter()
            .flatten()
            .flat_map(|r| r.transitions.iter().map(|x| x.t));
        std::iter::once(from)
            .chain(task.transitions.iter().map(|x| x.t))
            .chain(target_changes)
            .filter(|t| *t >= from && *t <= to)
            .any(|t| self.serving(task, t, health_check, load_balancer))
    }

    fn target_healthy(&self, task: &str, t: f64) -> bool {
        let Some(registrations) = self.targets.get(task) else {
            return false;
        };
        registrations.iter().any(|r| {
            r.transitions
                .iter()
                .rev()
                .find(|x| x.t <= t)
                .is_some_and(|x| x.state == "healthy")
        })
    }

    /// Whether the operator stopped `task` (a replica's StopTask), by `t`.
    pub fn stopped_by_operator(&self, task: &Task, t: f64) -> bool {
        task.stop_call
            .and_then(|i| self.timeline.calls.get(i))
            .is_some_and(|c| c.by_replica().is_some() && c.t <= t)
    }

    /// Whether anyone but the operator protected `task` from scale-in
    /// (UpdateTaskProtection) for any instant from `from` to `to`: from
    /// each call that protected it until it expired (its minutes divided by
    /// `time_scale`) or a call cleared it.
    pub fn protected_during(&self, task: &Task, from: f64, to: f64, time_scale: f64) -> bool {
        let mut since: Option<(f64, f64)> = None;
        let mut spans = Vec::new();
        for c in &self.timeline.calls {
            if c.op != "UpdateTaskProtection" || !c.succeeded() || c.by_replica().is_some() {
                continue;
            }
            let names = c.params["tasks"].as_array().into_iter().flatten();
            let named = names
                .filter_map(Value::as_str)
                .any(|n| self.task(n).is_some_and(|t| t.task_arn == task.task_arn));
            if !named {
                continue;
            }
            if let Some((start, end)) = since.take() {
                spans.push((start, end.min(c.t)));
            }
            if c.params["protectionEnabled"].as_bool() == Some(true) {
                let minutes = c.params["expiresInMinutes"].as_f64().unwrap_or(120.0);
                since = Some((c.t, c.t + minutes * 60.0 / time_scale));
            }
        }
        spans.extend(since);
        spans
            .iter()
            .any(|(start, end)| *start <= to && from <= *end)
    }

    /// Whether `task` was running and meant to run at `t`.
    pub fn running_at(&self, task: &Task, t: f64) -> bool {
        task.transitions
            .iter()
            .rev()
            .find(|x| x.t <= t)
            .is_some_and(|x| x.last_status == "RUNNING" && x.desired_status == "RUNNING")
    }

    /// When `task` was first seen.
    pub fn started(&self, task: &Task) -> f64 {
        task.transitions.first().map_or(0.0, |x| x.t)
    }

    /// The desired count of `service` just before `t`.
    pub fn desired_before(&self, service: &str, t: f64) -> Option<u32> {
        self.last_desired(service, |at| at < t)
    }

    /// The desired count of `service` at `t` (changes at `t` included).
    pub fn desired_at(&self, service: &str, t: f64) -> Option<u32> {
        self.last_desired(service, |at| at <= t)
    }

    /// The desired count of the last sample of `service` whose time passes `when`.
    fn last_desired(&self, service: &str, when: impl Fn(f64) -> bool) -> Option<u32> {
        let history = self
            .timeline
            .services
            .iter()
            .find(|s| s.service == service)?;
        history
            .samples
            .iter()
            .rev()
            .find(|s| when(s.t))
            .map(|s| s.desired)
    }

    /// The desired counts set by someone other than the operator: the
    /// simulated autoscaler's decisions and UpdateService calls signed by
    /// anyone but a replica, as (t, service, count).
    pub fn others_desired(&self) -> Vec<(f64, String, u32)> {
        self.timeline
            .calls
            .iter()
            .filter(|c| c.succeeded() && c.by_replica().is_none())
            .filter_map(|c| {
                let count = match c.op.as_str() {
                    "_sim:ScalingPolicy" if c.params["after"] != c.params["before"] => {
                        c.params["after"].as_u64()?
                    }
                    "UpdateService" => c.params.get("desiredCount")?.as_u64()?,
                    _ => return None,
                };
                Some((c.t, self.service_of(c)?, count as u32))
            })
            .collect()
    }
}
