//! The load-balancing records: load balancers, listeners, target groups and
//! their registered targets, and what DescribeTargetHealth says of a
//! target at a given time.

use std::collections::BTreeMap;

use super::health::{Checks, Verdict};

#[derive(Clone, Debug)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    /// `application` or `network`.
    pub kind: String,
    pub scheme: String,
    pub dns_name: String,
    pub vpc_id: String,
    pub created_at: f64,
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub arn: String,
    pub load_balancer_arn: String,
    pub protocol: String,
    pub port: i64,
    /// The target groups its default action forwards to.
    pub target_groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HealthSettings {
    pub protocol: String,
    /// `traffic-port` or a port number.
    pub port: String,
    pub path: Option<String>,
    pub interval: i64,
    pub timeout: i64,
    pub healthy_threshold: i64,
    pub unhealthy_threshold: i64,
    pub matcher: Option<String>,
}

#[derive(Clone, Debug)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub protocol: String,
    pub port: i64,
    pub vpc_id: String,
    /// `ip` or `instance`.
    pub target_type: String,
    pub health: HealthSettings,
    /// Key → value, every key AWS lists for the kind of target group.
    pub attributes: BTreeMap<String, String>,
    /// The load balancers whose listeners forward to it.
    pub load_balancers: Vec<String>,
    /// When a load balancer first sent it traffic: health checks begin then.
    pub in_use_since: Option<f64>,
    pub targets: Vec<Registration>,
}

/// One registration of a target; a target registered again after it was
/// deregistered is a new registration.
#[derive(Clone, Debug)]
pub struct Registration {
    pub id: String,
    pub port: i64,
    pub registered_at: f64,
    /// From when the target passes health checks; `None`: never.
    pub passes_from: Option<f64>,
    pub deregistered_at: Option<f64>,
    /// When its draining ends (deregistration plus the delay then in force).
    pub drain_until: Option<f64>,
    /// The ECS task it is, when ECS registered it.
    pub task_arn: Option<String>,
    /// Its entry in the timeline's `targets`.
    pub history: usize,
    pub last_state: Option<TargetState>,
}

/// DescribeTargetHealth's `TargetHealth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetState {
    pub state: &'static str,
    pub reason: Option<&'static str>,
    pub description: Option<&'static str>,
}

impl TargetState {
    const fn new(state: &'static str, reason: &'static str, description: &'static str) -> Self {
        Self {
            state,
            reason: Some(reason),
            description: Some(description),
        }
    }

    pub const HEALTHY: Self = Self {
        state: "healthy",
        reason: None,
        description: None,
    };
    pub const REGISTERING: Self = Self::new(
        "initial",
        "Elb.RegistrationInProgress",
        "Target registration is in progress",
    );
    pub const INITIAL_CHECKS: Self = Self::new(
        "initial",
        "Elb.InitialHealthChecking",
        "Initial health checks in progress",
    );
    pub const BAD_CODES: Self = Self::new(
        "unhealthy",
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [502]",
    );
    pub const FAILED_CHECKS: Self = Self::new(
        "unhealthy",
        "Target.FailedHealthChecks",
        "Health checks failed",
    );
    pub const NOT_REGISTERED: Self = Self::new(
        "unused",
        "Target.NotRegistered",
        "Target is not registered to the target group",
    );
    pub const NOT_IN_USE: Self = Self::new(
        "unused",
        "Target.NotInUse",
        "Target group is not configured to receive traffic from the load balancer",
    );
    pub const DRAINING: Self = Self::new(
        "draining",
        "Target.DeregistrationInProgress",
        "Target deregistration is in progress",
    );
}

impl TargetGroup {
    /// The health checks of a registration, on the simulator's clock.
    pub fn checks(&self, r: &Registration, scale: f64) -> Option<Checks> {
        let in_use = self.in_use_since?;
        Some(Checks {
            origin: r.registered_at.max(in_use),
            interval: self.health.interval as f64 / scale,
            healthy_threshold: self.health.healthy_threshold as u32,
            unhealthy_threshold: self.health.unhealthy_threshold as u32,
            passes_from: r.passes_from.map(|p| p.max(r.registered_at.max(in_use))),
        })
    }

    /// What DescribeTargetHealth says of `r` at `t`, and since when.
    pub fn state_of(&self, r: &Registration, t: f64, scale: f64) -> (TargetState, f64) {
        if let (Some(gone), Some(until)) = (r.deregistered_at, r.drain_until)
            && gone <= t
        {
            return if t < until {
                (TargetState::DRAINING, gone)
            } else {
                (TargetState::NOT_REGISTERED, until)
            };
        }
        let Some(checks) = self.checks(r, scale) else {
            return (TargetState::NOT_IN_USE, r.registered_at);
        };
        let unhealthy = if self.protocol.starts_with("HTTP") {
            TargetState::BAD_CODES
        } else {
            TargetState::FAILED_CHECKS
        };
        match checks.verdict_at(t) {
            None => (TargetState::REGISTERING, r.registered_at),
            Some((Verdict::Registering, at)) => (TargetState::REGISTERING, at),
            Some((Verdict::InitialChecks, at)) => (TargetState::INITIAL_CHECKS, at),
            Some((Verdict::Healthy, at)) => (TargetState::HEALTHY, at),
            Some((Verdict::Unhealthy, at)) => (unhealthy, at),
        }
    }

    /// Seconds a deregistered target drains, on the simulator's clock.
    pub fn drain_seconds(&self, scale: f64) -> f64 {
        self.attributes
            .get(DEREGISTRATION_DELAY)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(300.0)
            / scale
    }

    /// Registrations DescribeTargetHealth still shows at `t`.
    pub fn visible(&self, t: f64) -> impl Iterator<Item = &Registration> {
        self.targets
            .iter()
            .filter(move |r| r.drain_until.is_none_or(|until| t < until))
    }
}

pub const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";

/// The attributes AWS lists for a new target group, with its defaults.
pub fn default_attributes(load_balancer_kind_network: bool) -> BTreeMap<String, String> {
    let common = [
        (DEREGISTRATION_DELAY, "300"),
        ("stickiness.enabled", "false"),
        (
            "load_balancing.cross_zone.enabled",
            "use_load_balancer_configuration",
        ),
        (
            "target_group_health.dns_failover.minimum_healthy_targets.count",
            "1",
        ),
        (
            "target_group_health.dns_failover.minimum_healthy_targets.percentage",
            "off",
        ),
        (
            "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
            "1",
        ),
        (
            "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
            "off",
        ),
    ];
    let http = [
        ("stickiness.type", "lb_cookie"),
        ("stickiness.lb_cookie.duration_seconds", "86400"),
        ("stickiness.app_cookie.cookie_name", ""),
        ("stickiness.app_cookie.duration_seconds", "86400"),
        ("slow_start.duration_seconds", "0"),
        ("load_balancing.algorithm.type", "round_robin"),
        ("load_balancing.algorithm.anomaly_mitigation", "off"),
    ];
    let network = [
        ("stickiness.type", "source_ip"),
        (
            "deregistration_delay.connection_termination.enabled",
            "false",
        ),
        ("preserve_client_ip.enabled", "true"),
        ("proxy_protocol_v2.enabled", "false"),
        (
            "target_health_state.unhealthy.connection_termination.enabled",
            "true",
        ),
        (
            "target_health_state.unhealthy.draining_interval_seconds",
            "0",
        ),
    ];
    let specific: &[(&str, &str)] = if load_balancer_kind_network {
        &network
    } else {
        &http
    };
    common
        .iter()
        .chain(specific)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The load-balancing records of the account, keyed by ARN.
#[derive(Default)]
pub struct Records {
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub listeners: BTreeMap<String, Listener>,
    pub target_groups: BTreeMap<String, TargetGroup>,
}

/// Seconds (before the time scale) during which a target that began
/// deregistering still gets new requests: ELB's nodes learn of it late.
pub const PROPAGATION: f64 = 1.0;
