//! The catalogue of faults: each kind's name, how often it is drawn, how
//! its parameters are drawn from a schedule, how it reads, how long it lasts
//! and which requests it may legitimately fail. How each is injected into
//! the running world is `bed::inject`. A new kind is a variant of [`Fault`]
//! and of [`FaultKind`], an arm in each match below and one in `inject`.
//!
//! Faults waiting for features not yet in the operator (task protection,
//! Spot, capacity providers, the event feed) are listed in
//! docs/failure-model.md with the simulator's control call for each.

use crate::plan::{OnAlarm, RequestPlan, Schedule, StoreKind, between};

/// How the hook receiver answers while a [`Fault::HookMisbehaves`] lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookMode {
    /// `{"status": "failed"}`: the run ends Failed.
    Fail,
    /// Accepts the call and never answers: each call times out.
    Hang,
    /// `{"status": "inProgress", "retryAfter": "1s"}`.
    InProgress,
    /// HTTP 500: no verdict, retried with backoff.
    Error,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL a replica; start it again (a new incarnation) `down` later.
    Kill { replica: usize, down: f64 },
    /// SIGSTOP a replica; SIGCONT `held` later.
    Pause { replica: usize, held: f64 },
    /// Every byte between a replica and DynamoDB held for `held` (its
    /// proxy, both ways); on the embedded store, its lock file held, which
    /// stalls every replica's store calls.
    StoreStall { replica: usize, held: f64 },
    /// A fraction of every call to the simulator answered ThrottlingException.
    Throttle { fraction: f64, held: f64 },
    /// A fraction of the service's new tasks fail to start.
    FailedStarts {
        service: usize,
        fraction: f64,
        held: f64,
    },
    /// A fraction of the service's new targets (behind a load balancer) or
    /// containers (with a health check) never turn healthy.
    UnhealthyTargets {
        service: usize,
        fraction: f64,
        held: f64,
    },
    /// The autoscaler's policy asks for this desired count (`/_sim/scale`).
    Scale { service: usize, to: u32 },
    /// UpdateService forceNewDeployment, by someone other than the operator.
    ForeignDeployment { service: usize },
    /// The gate alarm in ALARM for `held`.
    AlarmFires { held: f64 },
    /// The hook receiver answers in `mode` for `held`.
    HookMisbehaves { mode: HookMode, held: f64 },
    /// DeleteService (force) of the service.
    ServiceDeleted { service: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    Pause,
    StoreStall,
    Throttle,
    FailedStarts,
    UnhealthyTargets,
    Scale,
    ForeignDeployment,
    AlarmFires,
    HookMisbehaves,
    ServiceDeleted,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        Self::Kill,
        Self::Pause,
        Self::StoreStall,
        Self::Throttle,
        Self::FailedStarts,
        Self::UnhealthyTargets,
        Self::Scale,
        Self::ForeignDeployment,
        Self::AlarmFires,
        Self::HookMisbehaves,
        Self::ServiceDeleted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill -9 + restart",
            Self::Pause => "SIGSTOP/SIGCONT",
            Self::StoreStall => "store stalled",
            Self::Throttle => "throttling burst",
            Self::FailedStarts => "failed task starts",
            Self::UnhealthyTargets => "unhealthy targets",
            Self::Scale => "autoscaler scales",
            Self::ForeignDeployment => "foreign deployment",
            Self::AlarmFires => "alarm flips",
            Self::HookMisbehaves => "hook misbehaves",
            Self::ServiceDeleted => "service deleted",
        }
    }

    /// How often it is drawn, relative to the others.
    fn weight(self) -> u32 {
        match self {
            Self::Kill | Self::Scale => 6,
            Self::Pause | Self::StoreStall | Self::AlarmFires | Self::HookMisbehaves => 4,
            Self::Throttle
            | Self::FailedStarts
            | Self::UnhealthyTargets
            | Self::ForeignDeployment => 2,
            Self::ServiceDeleted => 1,
        }
    }

    pub fn pick(rng: &mut fastrand::Rng) -> Self {
        let total: u32 = Self::ALL.iter().map(|k| k.weight()).sum();
        let mut n = rng.u32(..total);
        for kind in Self::ALL {
            if n < kind.weight() {
                return kind;
            }
            n -= kind.weight();
        }
        unreachable!("the weights add up to the total")
    }

    /// This kind's parameters for `s`, or none when nothing in `s` can suffer it.
    pub fn draw(self, rng: &mut fastrand::Rng, s: &Schedule) -> Option<Fault> {
        let held = |rng: &mut fastrand::Rng, lo, hi| between(rng, lo, hi);
        let any_service = |rng: &mut fastrand::Rng| rng.usize(..s.services.len());
        Some(match self {
            Self::Kill => Fault::Kill {
                replica: rng.usize(..s.replicas),
                down: held(rng, 0.1, 2.0),
            },
            Self::Pause => Fault::Pause {
                replica: rng.usize(..s.replicas),
                held: held(rng, 0.5, 4.0),
            },
            // Longer than a lease (2s), so another replica may take over.
            Self::StoreStall => Fault::StoreStall {
                replica: rng.usize(..s.replicas),
                held: held(rng, 2.5, 5.0),
            },
            Self::Throttle => Fault::Throttle {
                fraction: held(rng, 0.2, 0.6),
                held: held(rng, 1.0, 4.0),
            },
            Self::FailedStarts => Fault::FailedStarts {
                service: any_service(rng),
                fraction: held(rng, 0.3, 1.0),
                held: held(rng, 0.5, 3.0),
            },
            Self::UnhealthyTargets => {
                let able: Vec<usize> = (0..s.services.len())
                    .filter(|&i| s.services[i].load_balancer || s.services[i].health_check)
                    .collect();
                Fault::UnhealthyTargets {
                    service: *pick(rng, &able)?,
                    fraction: held(rng, 0.3, 1.0),
                    held: held(rng, 0.5, 3.0),
                }
            }
            Self::Scale => {
                let able: Vec<usize> = (0..s.services.len())
                    .filter(|&i| s.services[i].autoscaling.is_some())
                    .collect();
                let service = *pick(rng, &able)?;
                let (lo, hi) = s.services[service].autoscaling?;
                Fault::Scale {
                    service,
                    to: rng.u32(lo..=hi),
                }
            }
            Self::ForeignDeployment => Fault::ForeignDeployment {
                service: any_service(rng),
            },
            Self::AlarmFires if s.requests.iter().any(|r| r.gate.is_some()) => Fault::AlarmFires {
                held: held(rng, 0.5, 3.0),
            },
            Self::HookMisbehaves if s.requests.iter().any(|r| r.hook.is_some()) => {
                let modes = [
                    HookMode::Fail,
                    HookMode::Hang,
                    HookMode::InProgress,
                    HookMode::Error,
                ];
                Fault::HookMisbehaves {
                    mode: modes[rng.usize(..modes.len())],
                    held: held(rng, 0.5, 3.0),
                }
            }
            Self::AlarmFires | Self::HookMisbehaves => return None,
            Self::ServiceDeleted => Fault::ServiceDeleted {
                service: any_service(rng),
            },
        })
    }
}

fn pick<'a, T>(rng: &mut fastrand::Rng, of: &'a [T]) -> Option<&'a T> {
    (!of.is_empty()).then(|| &of[rng.usize(..of.len())])
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Self::Kill { .. } => FaultKind::Kill,
            Self::Pause { .. } => FaultKind::Pause,
            Self::StoreStall { .. } => FaultKind::StoreStall,
            Self::Throttle { .. } => FaultKind::Throttle,
            Self::FailedStarts { .. } => FaultKind::FailedStarts,
            Self::UnhealthyTargets { .. } => FaultKind::UnhealthyTargets,
            Self::Scale { .. } => FaultKind::Scale,
            Self::ForeignDeployment { .. } => FaultKind::ForeignDeployment,
            Self::AlarmFires { .. } => FaultKind::AlarmFires,
            Self::HookMisbehaves { .. } => FaultKind::HookMisbehaves,
            Self::ServiceDeleted { .. } => FaultKind::ServiceDeleted,
        }
    }

    /// Seconds from its start until it is healed (0: a single act).
    pub fn lasts(&self) -> f64 {
        match *self {
            Self::Kill { down: t, .. }
            | Self::Pause { held: t, .. }
            | Self::StoreStall { held: t, .. }
            | Self::Throttle { held: t, .. }
            | Self::FailedStarts { held: t, .. }
            | Self::UnhealthyTargets { held: t, .. }
            | Self::AlarmFires { held: t }
            | Self::HookMisbehaves { held: t, .. } => t,
            Self::Scale { .. } | Self::ForeignDeployment { .. } | Self::ServiceDeleted { .. } => 0.0,
        }
    }

    pub fn describe(&self, s: &Schedule) -> String {
        let service = |i: usize| s.services[i].name.as_str();
        match *self {
            Self::Kill { replica, down } => {
                format!("kill -9 replica {replica}, restarted {down:.3}s later")
            }
            Self::Pause { replica, held } => {
                format!("SIGSTOP replica {replica}, SIGCONT {held:.3}s later")
            }
            Self::StoreStall { replica, held } => match s.store {
                StoreKind::Dynamo => {
                    format!("stall replica {replica}'s DynamoDB traffic for {held:.3}s")
                }
                StoreKind::Embedded => format!("hold the store's lock for {held:.3}s"),
            },
            Self::Throttle { fraction, held } => {
                format!("throttle {:.0}% of calls for {held:.3}s", fraction * 100.0)
            }
            Self::FailedStarts {
                service: i,
                fraction,
                held,
            } => format!(
                "{:.0}% of {}'s task starts fail for {held:.3}s",
                fraction * 100.0,
                service(i)
            ),
            Self::UnhealthyTargets {
                service: i,
                fraction,
                held,
            } => format!(
                "{:.0}% of {}'s new tasks never healthy for {held:.3}s",
                fraction * 100.0,
                service(i)
            ),
            Self::Scale { service: i, to } => format!("autoscaler asks {} for {to}", service(i)),
            Self::ForeignDeployment { service: i } => {
                format!("UpdateService forceNewDeployment of {}", service(i))
            }
            Self::AlarmFires { held } => format!("gate alarm in ALARM for {held:.3}s"),
            Self::HookMisbehaves { mode, held } => format!("hook answers {mode:?} for {held:.3}s"),
            Self::ServiceDeleted { service: i } => format!("DeleteService {}", service(i)),
        }
    }

    /// Whether this fault may end `r` Failed, by the operator's promises
    /// (a step that cannot become stable times out; a gate that aborts; a
    /// hook that fails; a service gone). Conservative: the fault's timing
    /// against the request's run is not weighed.
    pub fn may_fail(&self, r: &RequestPlan) -> bool {
        match *self {
            Self::FailedStarts { service, .. }
            | Self::UnhealthyTargets { service, .. }
            | Self::ServiceDeleted { service } => service == r.service,
            Self::AlarmFires { .. } => r.gate == Some(OnAlarm::Abort),
            // No verdict within the deadline (hanging, erring, or in
            // progress past it) fails the run only with `onTimeout: fail`.
            Self::HookMisbehaves { mode, .. } => r
                .hook
                .as_ref()
                .is_some_and(|h| mode == HookMode::Fail || h.on_timeout_fail),
            Self::Kill { .. }
            | Self::Pause { .. }
            | Self::StoreStall { .. }
            | Self::Throttle { .. }
            | Self::Scale { .. }
            | Self::ForeignDeployment { .. } => false,
        }
    }
}
