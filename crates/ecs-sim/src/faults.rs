//! Timings and injected faults: how long tasks take, which of them fail, and
//! which API calls are answered with ThrottlingException.
//!
//! Everything here can be changed while the simulator runs, through
//! `/_sim/config` (globally) or `/_sim/services/...` (per service).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::buckets::{self, AccountBuckets, RealisticThrottle};
use crate::duration::serde_opt_duration;

/// How long the phases of a task's life take, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timings {
    /// PROVISIONING to RUNNING.
    pub task_start: f64,
    /// RUNNING to HEALTHY, for tasks with a container health check.
    pub task_healthy: f64,
    /// Stop requested to STOPPED.
    pub task_stop: f64,
    /// How often the service scheduler looks at each service.
    pub scheduler: f64,
    /// Each task's start and healthy times vary by up to this fraction.
    pub jitter: f64,
}

impl Timings {
    pub fn apply(&mut self, o: &TimingOverrides) {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        if let Some(v) = secs(o.task_start) {
            self.task_start = v;
        }
        if let Some(v) = secs(o.task_healthy) {
            self.task_healthy = v;
        }
        if let Some(v) = secs(o.task_stop) {
            self.task_stop = v;
        }
        if let Some(v) = secs(o.scheduler) {
            self.scheduler = v;
        }
        if let Some(v) = o.jitter {
            self.jitter = v;
        }
    }

    pub fn as_overrides(&self) -> TimingOverrides {
        let d = Duration::from_secs_f64;
        TimingOverrides {
            task_start: Some(d(self.task_start)),
            task_healthy: Some(d(self.task_healthy)),
            task_stop: Some(d(self.task_stop)),
            scheduler: Some(d(self.scheduler)),
            jitter: Some(self.jitter),
        }
    }
}

/// A partial `Timings`, as sent to the control endpoint: `"250ms"`, `"30s"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimingOverrides {
    #[serde(
        default,
        with = "serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub task_start: Option<Duration>,
    #[serde(
        default,
        with = "serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub task_healthy: Option<Duration>,
    #[serde(
        default,
        with = "serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub task_stop: Option<Duration>,
    #[serde(
        default,
        with = "serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub scheduler: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
}

impl TimingOverrides {
    /// Field-named reasons why these overrides cannot be used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(j) = self.jitter
            && !(0.0..=0.9).contains(&j)
        {
            out.push(format!("jitter: {j} is outside 0.0..=0.9"));
        }
        if self.scheduler == Some(Duration::ZERO) {
            out.push("scheduler: must be greater than zero".into());
        }
        out
    }

    /// Later values win field by field.
    pub fn merge(&mut self, later: &TimingOverrides) {
        macro_rules! take {
            ($($f:ident),*) => {$( if later.$f.is_some() { self.$f = later.$f; } )*};
        }
        take!(task_start, task_healthy, task_stop, scheduler, jitter);
    }
}

/// What can go wrong with the tasks of a service (or of every service).
/// Fractions are probabilities per launched task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultProfile {
    /// The essential container exits before RUNNING ("Essential container in task exited").
    #[serde(default)]
    pub fail_start: f64,
    /// The health check never passes; ECS stops such tasks and launches others.
    #[serde(default)]
    pub never_healthy: f64,
    /// This fraction of tasks start `slowStartFactor` times slower.
    #[serde(default)]
    pub slow_start: f64,
    #[serde(default = "default_slow_factor")]
    pub slow_start_factor: f64,
    /// This fraction of load-balancer targets never pass their health checks.
    #[serde(default)]
    pub target_never_healthy: f64,
    /// This fraction of targets pass their health checks only
    /// `targetLateBy` after registration.
    #[serde(default)]
    pub target_late_healthy: f64,
    /// On ELB's clock, divided by `targetTimeScale` like its health checks;
    /// 60 s when absent.
    #[serde(
        default,
        with = "serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_late_by: Option<Duration>,
}

fn default_slow_factor() -> f64 {
    5.0
}

impl FaultProfile {
    /// How late a late target passes, before the time scale.
    pub fn late_by_seconds(&self) -> f64 {
        self.target_late_by.map_or(60.0, |d| d.as_secs_f64())
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [
            ("failStart", self.fail_start),
            ("neverHealthy", self.never_healthy),
            ("slowStart", self.slow_start),
            ("targetNeverHealthy", self.target_never_healthy),
            ("targetLateHealthy", self.target_late_healthy),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{name}: {v} is not a fraction between 0 and 1"));
            }
        }
        if !(self.slow_start_factor >= 1.0 && self.slow_start_factor.is_finite()) {
            out.push(format!(
                "slowStartFactor: {} must be at least 1",
                self.slow_start_factor
            ));
        }
        out
    }
}

/// API throttling: a random fraction of calls, a token bucket per
/// operation, and/or ECS's own buckets per category, account and Region
/// (`realistic`), answered with ThrottlingException.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottleConfig {
    #[serde(default)]
    pub fraction: f64,
    /// Limit `fraction` to these operations; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// Operation name → bucket.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub buckets: BTreeMap<String, BucketConfig>,
    /// AWS's published buckets, one per category, account and Region
    /// (see [`crate::buckets`]); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realistic: Option<RealisticThrottle>,
    /// Operations answered with AccessDeniedException, as when IAM lacks the action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Operation name → how long its answer takes (`"150ms"`): a slow API.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, String>,
    /// Cluster name → how long the answer to any call about it takes
    /// (`"1h"`: a cluster, account or route that has gone silent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_latency: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketConfig {
    pub capacity: f64,
    pub refill_per_second: f64,
}

impl ThrottleConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.fraction) {
            out.push(format!(
                "throttle.fraction: {} is not a fraction between 0 and 1",
                self.fraction
            ));
        }
        for (op, d) in &self.latency {
            if let Err(e) = crate::duration::parse(d) {
                out.push(format!("throttle.latency.{op}: {e}"));
            }
        }
        for (cluster, d) in &self.cluster_latency {
            if let Err(e) = crate::duration::parse(d) {
                out.push(format!("throttle.clusterLatency.{cluster}: {e}"));
            }
        }
        if let Some(r) = &self.realistic {
            out.extend(r.problems());
        }
        for (op, b) in &self.buckets {
            if !(b.capacity >= 1.0 && b.refill_per_second >= 0.0) {
                out.push(format!(
                    "throttle.buckets.{op}: capacity must be at least 1 and refillPerSecond at least 0"
                ));
            }
        }
        out
    }
}

/// The live throttling state: configuration plus the buckets' levels.
#[derive(Default)]
pub struct Throttle {
    pub config: ThrottleConfig,
    levels: BTreeMap<String, (f64, f64)>,
    accounts: AccountBuckets,
}

/// Who made a call, as far as throttling cares.
pub struct Caller<'a> {
    /// The access key that signed it; `None` when unsigned.
    pub account: Option<&'a str>,
    /// The Region of its signature's scope.
    pub region: &'a str,
}

impl Throttle {
    /// How late the answer to `op` with `params` comes: the longer of the
    /// operation's latency and that of the cluster it names.
    pub fn latency(&self, op: &str, params: &serde_json::Value) -> Option<std::time::Duration> {
        let of_op = self
            .config
            .latency
            .get(op)
            .and_then(|d| crate::duration::parse(d).ok());
        let of_cluster = cluster_named(params)
            .and_then(|c| self.config.cluster_latency.get(&c))
            .and_then(|d| crate::duration::parse(d).ok());
        of_op.max(of_cluster)
    }

    pub fn denies(&self, op: &str) -> bool {
        self.config.deny.iter().any(|o| o == op)
    }

    pub fn configure(&mut self, config: ThrottleConfig) {
        self.config = config;
        self.levels.clear();
        self.accounts.clear();
    }

    /// Whether this call is throttled; takes a token when it is not.
    /// `service` is the API called (`None`: none the buckets know).
    pub fn should_throttle(
        &mut self,
        op: &str,
        service: Option<api_limits::Service>,
        caller: &Caller<'_>,
        now: f64,
        roll: f64,
    ) -> bool {
        let applies =
            self.config.operations.is_empty() || self.config.operations.iter().any(|o| o == op);
        if applies && roll < self.config.fraction {
            return true;
        }
        if let (Some(settings), Some(category)) = (
            &self.config.realistic,
            service.and_then(|s| buckets::category(s, op)),
        ) && !self.accounts.take(
            settings,
            category,
            caller.account.unwrap_or("unsigned"),
            caller.region,
            now,
        ) {
            return true;
        }
        let Some(bucket) = self.config.buckets.get(op) else {
            return false;
        };
        let (level, at) = self
            .levels
            .entry(op.to_string())
            .or_insert((bucket.capacity, now));
        *level = (*level + (now - *at) * bucket.refill_per_second).min(bucket.capacity);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            false
        } else {
            true
        }
    }
}

/// The cluster a call is about: ECS's `cluster` (a name or an ARN), or
/// the `service/<cluster>/<service>` resource of Application Auto Scaling.
fn cluster_named(params: &serde_json::Value) -> Option<String> {
    if let Some(c) = params.get("cluster").and_then(|c| c.as_str()) {
        return c.rsplit('/').next().map(str::to_string);
    }
    let resource = params
        .get("ResourceId")
        .and_then(|r| r.as_str())
        .or_else(|| params.get("ResourceIds")?.get(0)?.as_str())?;
    resource.split('/').nth(1).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANYONE: Caller<'static> = Caller {
        account: Some("test"),
        region: "us-east-1",
    };

    #[test]
    fn realistic_buckets_are_shared_by_the_callers_of_one_account() {
        let mut t = Throttle::default();
        t.configure(ThrottleConfig {
            realistic: Some(RealisticThrottle::default()),
            ..Default::default()
        });
        let ecs = Some(api_limits::Service::Ecs);
        let other = Caller {
            account: Some("other"),
            region: "us-east-1",
        };
        for _ in 0..50 {
            assert!(!t.should_throttle("UpdateService", ecs, &ANYONE, 0.0, 1.0));
        }
        assert!(t.should_throttle("CreateService", ecs, &ANYONE, 0.0, 1.0));
        assert!(!t.should_throttle("UpdateService", ecs, &other, 0.0, 1.0));
        assert!(!t.should_throttle("ListTasks", ecs, &ANYONE, 0.0, 1.0));
    }

    #[test]
    fn a_silent_cluster_delays_every_call_about_it() {
        let mut t = Throttle::default();
        t.configure(ThrottleConfig {
            cluster_latency: [("quiet".to_string(), "1h".to_string())].into(),
            ..Default::default()
        });
        let hour = Some(std::time::Duration::from_secs(3600));
        let ecs =
            serde_json::json!({"cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/quiet"});
        assert_eq!(t.latency("ListTasks", &ecs), hour);
        let aas = serde_json::json!({"ResourceIds": ["service/quiet/web"]});
        assert_eq!(t.latency("DescribeScalableTargets", &aas), hour);
        let other = serde_json::json!({"cluster": "loud"});
        assert_eq!(t.latency("ListTasks", &other), None);
    }

    #[test]
    fn bucket_refills_over_time() {
        let mut t = Throttle::default();
        t.configure(ThrottleConfig {
            buckets: [(
                "ListTasks".to_string(),
                BucketConfig {
                    capacity: 2.0,
                    refill_per_second: 1.0,
                },
            )]
            .into(),
            ..Default::default()
        });
        let mut call = |op: &str, now: f64| t.should_throttle(op, None, &ANYONE, now, 1.0);
        assert!(!call("ListTasks", 0.0));
        assert!(!call("ListTasks", 0.0));
        assert!(call("ListTasks", 0.0));
        assert!(!call("DescribeTasks", 0.0));
        assert!(!call("ListTasks", 1.0));
    }

    #[test]
    fn fraction_limited_to_named_operations() {
        let mut t = Throttle::default();
        t.configure(ThrottleConfig {
            fraction: 0.5,
            operations: vec!["StopTask".into()],
            ..Default::default()
        });
        assert!(t.should_throttle("StopTask", None, &ANYONE, 0.0, 0.4));
        assert!(!t.should_throttle("StopTask", None, &ANYONE, 0.0, 0.6));
        assert!(!t.should_throttle("ListTasks", None, &ANYONE, 0.0, 0.1));
    }
}
