//! The catalogue of faults: each kind's name, how often it is drawn, how
//! its parameters are drawn from a schedule, how it reads, how long it lasts
//! and which requests it may legitimately fail. How each is injected into
//! the running world is `bed::inject`. A new kind is a variant of [`Fault`]
//! and of [`FaultKind`], an arm in each match below and one in `inject`.
//!
//! The kinds that came with the ECS beneath (task protection, Spot, the
//! event feed) are
//! drawn apart, from a generator of their own ([`FaultKind::pick_beneath`]).

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

/// How the event feed misbehaves while a [`Fault::Feed`] lasts (the
/// simulator's `events` config, as EventBridge's at-least-once, unordered
/// delivery can).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FeedMode {
    /// Each event lost with this probability.
    Drop(f64),
    /// Each event sent twice with this probability.
    Duplicate(f64),
    /// Each copy held up to a second more, so they leave out of order.
    Reorder,
    /// Nothing sent.
    Silent,
}

impl FeedMode {
    /// The simulator's `events` settings for it, beside the queue's URL.
    pub fn settings(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Drop(p) => json!({"drop": p}),
            Self::Duplicate(p) => json!({"duplicate": p}),
            Self::Reorder => json!({"reorder": true, "reorderWindow": "1s"}),
            Self::Silent => json!({"silent": true}),
        }
    }
}

/// How long an aimed store stall waits for its write.
pub const AIMED_WINDOW: f64 = 8.0;

/// Which replica a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whom {
    /// This one.
    Replica(usize),
    /// The one holding the most leases when the fault begins (as a nemesis
    /// aims at a leader), else this one.
    Holder(usize),
}

impl Whom {
    fn draw(rng: &mut fastrand::Rng, replicas: usize) -> Self {
        let i = rng.usize(..replicas);
        if rng.f64() < 0.7 {
            Self::Holder(i)
        } else {
            Self::Replica(i)
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Replica(i) => format!("replica {i}"),
            Self::Holder(i) => format!("the lease holder (else replica {i})"),
        }
    }
}

/// The write a store stall is aimed at: from the first status write of a
/// replica that decides this (which lands at once), its traffic is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aim {
    /// The write that decides the surge.
    Surge,
    /// A write that decides (or carries) a batch's stop.
    Stop,
    /// The write that decides the restore.
    Restore,
}

impl Aim {
    /// The bytes of the aimed write on the wire to DynamoDB, where the
    /// status is a JSON string inside the request's JSON.
    pub fn needles(self) -> &'static [&'static str] {
        match self {
            Self::Surge => &[r#"\"phase\":\"Surging\""#],
            Self::Stop => &[r#"\"phase\":\"Recycling\""#, r#"\"batch\":[\"arn"#],
            Self::Restore => &[r#"\"phase\":\"Restoring\""#],
        }
    }
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL a replica; start it again (a new incarnation) `down` later.
    Kill { whom: Whom, down: f64 },
    /// SIGSTOP a replica; SIGCONT `held` later.
    /// With an aim (DynamoDB), the replica stopped is whichever first
    /// sends the aimed write, right after it left (before its answer).
    Pause {
        whom: Whom,
        held: f64,
        aim: Option<Aim>,
    },
    /// Every byte between a replica and DynamoDB held for `held` (its
    /// proxy, both ways); on the embedded store, its lock file held, which
    /// stalls every replica's store calls.
    /// With an aim (DynamoDB), the replica stalled is whichever first
    /// sends the aimed write after the fault begins, from that write on
    /// (it lands; its answer and everything after wait).
    StoreStall {
        whom: Whom,
        held: f64,
        aim: Option<Aim>,
    },
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
    /// UpdateTaskProtection (signed by the campaign) of `count` of the
    /// service's running tasks, the first at `pick` (a fraction) of them in
    /// ARN order, for `minutes` of ECS's (seconds here: see
    /// [`crate::shape::ECS_TIME_SCALE`]); cleared `cleared_after` later, if
    /// the task does not let it expire.
    Protect {
        service: usize,
        count: u32,
        pick: f64,
        minutes: u32,
        cleared_after: Option<f64>,
    },
    /// Fargate Spot interrupts one of the service's RUNNING FARGATE_SPOT
    /// tasks (`/_sim/spot-interruptions`): the newest (a replacement, once
    /// a run has started one) or the oldest (a planned task).
    Spot { service: usize, newest: bool },
    /// The event feed misbehaves in `mode` for `held`.
    Feed { mode: FeedMode, held: f64 },
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
    Protect,
    Spot,
    Feed,
}

impl FaultKind {
    pub const ALL: [FaultKind; 14] = [
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
        Self::Protect,
        Self::Spot,
        Self::Feed,
    ];

    /// The kinds of the ECS beneath, drawn apart (see [`crate::plan::Schedule::draw`]).
    const BENEATH: [FaultKind; 3] = [Self::Protect, Self::Spot, Self::Feed];

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
            Self::Protect => "tasks protected",
            Self::Spot => "Spot interruption",
            Self::Feed => "event feed faulty",
        }
    }

    /// How often it is drawn, relative to the others.
    fn weight(self) -> u32 {
        match self {
            Self::Kill | Self::Pause | Self::StoreStall | Self::Scale => 6,
            Self::AlarmFires | Self::HookMisbehaves => 4,
            Self::Throttle
            | Self::FailedStarts
            | Self::UnhealthyTargets
            | Self::ForeignDeployment => 2,
            Self::ServiceDeleted => 1,
            Self::Protect | Self::Spot | Self::Feed => 4,
        }
    }

    /// One of the first catalogue's kinds, by weight.
    pub fn pick(rng: &mut fastrand::Rng) -> Self {
        let first: Vec<FaultKind> = Self::ALL
            .into_iter()
            .filter(|k| !Self::BENEATH.contains(k))
            .collect();
        Self::pick_of(rng, &first)
    }

    /// One of the kinds of the ECS beneath, by weight.
    pub fn pick_beneath(rng: &mut fastrand::Rng) -> Self {
        Self::pick_of(rng, &Self::BENEATH)
    }

    fn pick_of(rng: &mut fastrand::Rng, kinds: &[FaultKind]) -> Self {
        let total: u32 = kinds.iter().map(|k| k.weight()).sum();
        let mut n = rng.u32(..total);
        for &kind in kinds {
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
                whom: Whom::draw(rng, s.replicas),
                down: held(rng, 0.1, 2.0),
            },
            // Mostly longer than what is left of a lease (2s at most).
            Self::Pause => Fault::Pause {
                whom: Whom::draw(rng, s.replicas),
                held: held(rng, 1.0, 4.0),
                aim: (s.store == StoreKind::Dynamo && rng.f64() < 0.5)
                    .then(|| [Aim::Surge, Aim::Stop, Aim::Restore][rng.usize(..3)]),
            },
            // Longer than a lease (2s), so another replica may take over.
            // Unaimed, longer than a lease. Aimed, a little longer than
            // what is left of the lease but shorter than the SDK's three
            // one-second attempts, so the aimed write's retry lands as its
            // answer after the lease has lapsed: the case the fence is for.
            Self::StoreStall => {
                let whom = Whom::draw(rng, s.replicas);
                let aim = (s.store == StoreKind::Dynamo && rng.f64() < 0.7)
                    .then(|| [Aim::Surge, Aim::Stop, Aim::Restore][rng.usize(..3)]);
                let held = match aim {
                    Some(_) => held(rng, 1.5, 3.0),
                    None => held(rng, 2.5, 5.0),
                };
                Fault::StoreStall { whom, held, aim }
            }
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
            // Mostly out, and mostly where a request works: the count the
            // autoscaler sets during a run is what Restoring must leave.
            Self::Scale => {
                let scalable = |i: &usize| s.services[*i].autoscaling.is_some();
                let mut able = worked(s, scalable);
                if able.is_empty() {
                    able = (0..s.services.len()).filter(scalable).collect();
                }
                let service = *pick(rng, &able)?;
                let (lo, hi) = s.services[service].autoscaling?;
                let tasks = s.services[service].tasks;
                let to = if rng.f64() < 0.7 {
                    rng.u32(tasks + 2..=hi)
                } else {
                    rng.u32(lo..tasks)
                };
                Fault::Scale { service, to }
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
            // Mostly where a request works, so a planned task is protected.
            Self::Protect => {
                let worked: Vec<usize> = s.requests.iter().map(|r| r.service).collect();
                let service = match pick(rng, &worked) {
                    Some(&i) if rng.f64() < 0.8 => i,
                    _ => any_service(rng),
                };
                Fault::protect(rng, service)
            }
            // Mostly where a request works; a replacement half the time.
            Self::Spot => {
                let on_spot = |i: &usize| s.services[*i].spot.is_some();
                let mut able = worked(s, on_spot);
                if able.is_empty() || rng.f64() < 0.2 {
                    able = (0..s.services.len()).filter(on_spot).collect();
                }
                Fault::Spot {
                    service: *pick(rng, &able)?,
                    newest: rng.bool(),
                }
            }
            Self::Feed if s.events => {
                let mode = match rng.u32(..4) {
                    0 => FeedMode::Drop(held(rng, 0.3, 1.0)),
                    1 => FeedMode::Duplicate(held(rng, 0.3, 1.0)),
                    2 => FeedMode::Reorder,
                    _ => FeedMode::Silent,
                };
                Fault::Feed {
                    mode,
                    held: held(rng, 1.0, 5.0),
                }
            }
            Self::Feed => return None,
        })
    }
}

/// The services the requests work on that `able` takes, once a request
/// (a busier service is likelier to be drawn).
fn worked(s: &Schedule, able: impl Fn(&usize) -> bool) -> Vec<usize> {
    s.requests.iter().map(|r| r.service).filter(able).collect()
}

fn pick<'a, T>(rng: &mut fastrand::Rng, of: &'a [T]) -> Option<&'a T> {
    (!of.is_empty()).then(|| &of[rng.usize(..of.len())])
}

impl Fault {
    /// One to three of `service`'s running tasks protected for 2–10
    /// minutes of ECS's, a third of the time cleared again 1–4 s later.
    pub fn protect(rng: &mut fastrand::Rng, service: usize) -> Self {
        Self::Protect {
            service,
            count: rng.u32(1..=3),
            pick: rng.f64(),
            minutes: rng.u32(2..=10),
            cleared_after: (rng.f64() < 0.3).then(|| between(rng, 1.0, 4.0)),
        }
    }

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
            Self::Protect { .. } => FaultKind::Protect,
            Self::Spot { .. } => FaultKind::Spot,
            Self::Feed { .. } => FaultKind::Feed,
        }
    }

    /// Seconds from its start until it is healed (0: a single act). An
    /// aimed stall waits up to [`AIMED_WINDOW`] for its write.
    pub fn lasts(&self) -> f64 {
        match *self {
            Self::StoreStall { aim: Some(_), .. } | Self::Pause { aim: Some(_), .. } => {
                AIMED_WINDOW
            }
            Self::Kill { down: t, .. }
            | Self::Pause { held: t, .. }
            | Self::StoreStall { held: t, .. }
            | Self::Throttle { held: t, .. }
            | Self::FailedStarts { held: t, .. }
            | Self::UnhealthyTargets { held: t, .. }
            | Self::AlarmFires { held: t }
            | Self::HookMisbehaves { held: t, .. }
            | Self::Feed { held: t, .. } => t,
            Self::Protect { cleared_after, .. } => cleared_after.unwrap_or(0.0),
            Self::Scale { .. }
            | Self::ForeignDeployment { .. }
            | Self::ServiceDeleted { .. }
            | Self::Spot { .. } => 0.0,
        }
    }

    pub fn describe(&self, s: &Schedule) -> String {
        let service = |i: usize| s.services[i].name.as_str();
        match *self {
            Self::Kill { whom, down } => {
                format!("kill -9 {}, restarted {down:.3}s later", whom.describe())
            }
            Self::Pause {
                aim: Some(aim),
                held,
                ..
            } => format!(
                "SIGSTOP whichever replica next writes a {aim:?} decision, as it sends it; SIGCONT {held:.3}s later"
            ),
            Self::Pause { whom, held, .. } => {
                format!("SIGSTOP {}, SIGCONT {held:.3}s later", whom.describe())
            }
            Self::StoreStall { whom, held, aim } => match (s.store, aim) {
                (StoreKind::Dynamo, Some(aim)) => format!(
                    "stall the DynamoDB traffic of whichever replica next writes a {aim:?} decision, for {held:.3}s"
                ),
                (StoreKind::Dynamo, None) => format!(
                    "stall the DynamoDB traffic of {} for {held:.3}s",
                    whom.describe()
                ),
                (StoreKind::Embedded, _) => format!("hold the store's lock for {held:.3}s"),
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
            Self::Protect {
                service: i,
                count,
                pick,
                minutes,
                cleared_after,
            } => format!(
                "protect {count} of {}'s tasks (from {:.0}% in) for {minutes} min ({:.0}s here){}",
                service(i),
                pick * 100.0,
                f64::from(minutes) * 60.0 / crate::shape::ECS_TIME_SCALE,
                cleared_after
                    .map(|t| format!(", cleared {t:.3}s later"))
                    .unwrap_or_default()
            ),
            Self::Feed { mode, held } => format!("event feed {mode:?} for {held:.3}s"),
            Self::Spot { service: i, newest } => format!(
                "Fargate Spot interrupts the {} of {}'s Spot tasks",
                if newest { "newest" } else { "oldest" },
                service(i)
            ),
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
            | Self::ForeignDeployment { .. }
            | Self::Protect { .. }
            | Self::Spot { .. }
            | Self::Feed { .. } => false,
        }
    }
}
