//! The audit timeline: every API call, every task state change, every
//! change in a service's desired/running/pending/healthy counts, every
//! load-balancer target's state change and the traffic each service served
//! and dropped, each stamped with `t`, seconds since the simulator started.
//! Tests compute the invariants from it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, Serialize)]
pub struct CallRecord {
    pub t: f64,
    pub op: String,
    pub params: Value,
    /// The error code answered, if the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The access key that signed the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub t: f64,
    pub last_status: &'static str,
    pub health_status: &'static str,
    pub desired_status: &'static str,
    /// The task was protected from scale-in when it was told to stop.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskHistory {
    pub task_arn: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub started_by: String,
    pub task_definition_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// `StopTask`, `scale-in`, `deployment`, `health-check`, `failed-start` or `service-deleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<&'static str>,
    /// Index into `calls` of the StopTask call that stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_call: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_name: Option<String>,
    /// The container instance it was placed on, once placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    pub transitions: Vec<Transition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    pub healthy: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub t: f64,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceHistory {
    pub cluster: String,
    pub service: String,
    pub samples: Vec<Sample>,
}

/// One registration of a target in a target group, and its states.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHistory {
    pub target_group_arn: String,
    pub id: String,
    pub port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    pub transitions: Vec<TargetTransition>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetTransition {
    pub t: f64,
    /// DescribeTargetHealth's `State`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One EC2 instance: launched by an Auto Scaling group and/or registered
/// as a container instance, with when each happened.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceHistory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_scaling_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<f64>,
    /// When it counts toward managed scaling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<f64>,
}

/// One simulated second of a service's traffic, ending at `t`.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSample {
    pub t: f64,
    pub served: u64,
    pub dropped: u64,
    pub healthy_targets: u32,
    pub draining_targets: u32,
}

#[derive(Default)]
pub struct Timeline {
    pub calls: Vec<CallRecord>,
    tasks: BTreeMap<String, TaskHistory>,
    /// Insertion order of tasks, so the output lists them as they appeared.
    task_order: Vec<String>,
    services: BTreeMap<(String, String), ServiceHistory>,
    /// ThrottlingException answers by category (the operation's name when
    /// it is in none).
    throttled: BTreeMap<String, u64>,
    /// Every registration of a target, in the order they were made.
    pub targets: Vec<TargetHistory>,
    /// `cluster/service` → its traffic, a sample a second while it runs.
    pub traffic: BTreeMap<String, Vec<TrafficSample>>,
    /// Every EC2 instance launched or registered, in that order.
    instances: Vec<InstanceHistory>,
}

impl Timeline {
    pub fn call(&mut self, t: f64, op: &str, params: Value, error: Option<String>) -> usize {
        self.calls.push(CallRecord {
            t,
            op: op.to_string(),
            params,
            error,
            caller: None,
        });
        self.calls.len() - 1
    }

    pub fn set_call_caller(&mut self, index: usize, caller: Option<String>) {
        if let Some(c) = self.calls.get_mut(index) {
            c.caller = caller;
        }
    }

    pub fn set_call_error(&mut self, index: usize, error: String) {
        if let Some(c) = self.calls.get_mut(index) {
            c.error = Some(error);
        }
    }

    pub fn count_throttled(&mut self, category: &str) {
        *self.throttled.entry(category.to_string()).or_default() += 1;
    }

    pub fn instance_launched(&mut self, group: &str, ec2: &str, at: f64, _up: f64, warm: f64) {
        self.instances.push(InstanceHistory {
            auto_scaling_group: Some(group.to_string()),
            ec2_instance_id: Some(ec2.to_string()),
            launched_at: Some(at),
            warm_at: Some(warm),
            ..Default::default()
        });
    }

    /// A container instance registered: the launched instance it is, when
    /// the ARN says which (`ec2` given), else a new entry.
    pub fn instance_registered(&mut self, arn: &str, cluster: &str, ec2: &str, at: f64) {
        let entry = match self.instances.iter_mut().find(|i| {
            i.ec2_instance_id.as_deref() == Some(ec2) && i.container_instance_arn.is_none()
        }) {
            Some(e) => e,
            None => {
                self.instances.push(InstanceHistory {
                    ec2_instance_id: Some(ec2.to_string()),
                    ..Default::default()
                });
                self.instances.last_mut().expect("just pushed")
            }
        };
        entry.container_instance_arn = Some(arn.to_string());
        entry.cluster = Some(cluster.to_string());
        entry.registered_at = Some(at);
    }

    pub fn instance_deregistered(&mut self, arn: &str, at: f64) {
        if let Some(e) = self
            .instances
            .iter_mut()
            .find(|i| i.container_instance_arn.as_deref() == Some(arn))
        {
            e.deregistered_at = Some(at);
        }
    }

    pub fn task_mut(&mut self, arn: &str, new: impl FnOnce() -> TaskHistory) -> &mut TaskHistory {
        if !self.tasks.contains_key(arn) {
            self.task_order.push(arn.to_string());
        }
        self.tasks.entry(arn.to_string()).or_insert_with(new)
    }

    /// Records the counts if they differ from the last sample.
    pub fn sample(&mut self, cluster: &str, service: &str, t: f64, counts: Counts) {
        let history = self
            .services
            .entry((cluster.to_string(), service.to_string()))
            .or_insert_with(|| ServiceHistory {
                cluster: cluster.to_string(),
                service: service.to_string(),
                samples: Vec::new(),
            });
        if history.samples.last().map(|s| s.counts) != Some(counts) {
            history.samples.push(Sample { t, counts });
        }
    }

    pub fn last_counts(&self, cluster: &str, service: &str) -> Option<Counts> {
        self.services
            .get(&(cluster.to_string(), service.to_string()))
            .and_then(|h| h.samples.last().map(|s| s.counts))
    }

    pub fn to_json(&self) -> Value {
        let tasks: Vec<&TaskHistory> = self.task_order.iter().map(|a| &self.tasks[a]).collect();
        let services: Vec<&ServiceHistory> = self.services.values().collect();
        serde_json::json!({
            "calls": self.calls,
            "tasks": tasks,
            "services": services,
            "throttled": self.throttled,
            "targets": self.targets,
            "traffic": self.traffic,
            "instances": self.instances,
        })
    }
}
