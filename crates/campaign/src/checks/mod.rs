//! The invariants checked after every schedule, each a pure function of
//! what was seen: the simulator's timeline, the records as the store held
//! them at the end and as read throughout the run, the campaign's journal
//! and the replicas' logs. Each answers its violations in words that name
//! the service, the task or the call, and the time on the simulator's clock.

mod capacity;
mod ends;
mod fence;
mod logs;
mod stops;
mod surge;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::Value;

use crate::plan::Schedule;
use crate::timeline::World;
use crate::watch::{Act, Clock, Observed};

/// The promises a run is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    Capacity,
    StoppedOnce,
    ReplacementStopped,
    ProtectedStopped,
    LeftRunning,
    Surge,
    Fence,
    Liveness,
    Records,
    OnePerService,
    ErrorStorm,
}

impl Invariant {
    pub const ALL: [Invariant; 11] = [
        Self::Capacity,
        Self::StoppedOnce,
        Self::ReplacementStopped,
        Self::ProtectedStopped,
        Self::LeftRunning,
        Self::Surge,
        Self::Fence,
        Self::Liveness,
        Self::Records,
        Self::OnePerService,
        Self::ErrorStorm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Capacity => "capacity (serving >= floor at each operator stop)",
            Self::StoppedOnce => "each planned task stopped at most once",
            Self::ReplacementStopped => "no replacement or unplanned task stopped",
            Self::ProtectedStopped => "no task stopped while protected from scale-in",
            Self::LeftRunning => "a run that succeeded left only protected tasks running",
            Self::Surge => "surge applied once, taken back once or left",
            Self::Fence => "no mutating call outside the caller's lease",
            Self::Liveness => "every request ends, in a phase its faults allow",
            Self::Records => "every record parses, none lost",
            Self::OnePerService => "at most one request working per service",
            Self::ErrorStorm => "no error storm in the logs",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

fn violation(invariant: Invariant, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// One request's run, as its record said at the end.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub service: String,
    pub phase: String,
    pub message: String,
    pub planned_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub original_desired: Option<u32>,
    pub tasks: Vec<String>,
    pub maintain_capacity: bool,
    /// The largest batch its spec makes of its plan (see
    /// [`crate::shape::largest_batch`]): what may be down at once without a surge.
    pub largest_batch: u32,
    pub surge: Option<(u32, u32)>,
}

impl Run {
    /// From a record's spec and status (`None`: the record was not there).
    pub fn of(name: &str, spec: &Value, status: &Value, clock: &Clock) -> Self {
        let time = |v: &Value| {
            v.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| clock.from_epoch(d.timestamp_millis() as f64 / 1000.0))
        };
        let plan = &status["plan"];
        let tasks: Vec<String> = plan["tasks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name: name.to_string(),
            service: spec["service"].as_str().unwrap_or_default().to_string(),
            phase: status["phase"].as_str().unwrap_or("Pending").to_string(),
            message: status["message"].as_str().unwrap_or_default().to_string(),
            planned_at: time(&plan["plannedAt"]),
            finished_at: time(&status["finishedAt"]),
            original_desired: plan["originalDesired"].as_u64().map(|n| n as u32),
            largest_batch: crate::shape::largest_batch(spec, tasks.len()) as u32,
            tasks,
            maintain_capacity: spec["maintainCapacity"].as_bool().unwrap_or(true),
            surge: status["surge"]["from"]
                .as_u64()
                .zip(status["surge"]["to"].as_u64())
                .map(|(f, t)| (f as u32, t as u32)),
        }
    }

    /// Whether the run was under way at `t` (planned, not yet finished),
    /// its times widened by `slack` at both ends.
    pub fn active_at(&self, t: f64, slack: f64) -> bool {
        self.planned_at.is_some_and(|p| p - slack <= t)
            && self.finished_at.is_none_or(|f| t <= f + slack)
    }
}

/// A run's times are a replica's wall clock laid on the simulator's, to
/// within a few milliseconds: a call that close to either end may be its.
const CLOSE: f64 = 0.05;

/// What the checks read.
pub struct Evidence<'a> {
    pub schedule: &'a Schedule,
    pub world: World<'a>,
    /// Each request's record at the end, by name (absent: lost).
    pub runs: BTreeMap<String, Run>,
    pub observed: &'a Observed,
    /// Each replica incarnation's id and log.
    pub logs: &'a [(String, String)],
    /// Per service with an autoscaling target: its settings at the end
    /// (min, max, any dynamic or scheduled scaling suspended).
    pub scaling_end: BTreeMap<String, (u32, u32, bool)>,
    /// Seconds of every lease, as the replicas ran.
    pub lease: f64,
}

impl Evidence<'_> {
    /// The run of a request on `service` under way at `t`: the one whose
    /// times hold `t`, else one within a few milliseconds of it.
    fn run_at<'r>(&'r self, service: &'r str, t: f64) -> Option<&'r Run> {
        self.runs_at(service, t, 0.0)
            .next()
            .or_else(|| self.runs_at(service, t, CLOSE).next())
    }

    /// The runs on `service` under way at `t`, give or take `slack`: one
    /// ending and the next beginning may both be within it.
    fn runs_at<'r>(
        &'r self,
        service: &'r str,
        t: f64,
        slack: f64,
    ) -> impl Iterator<Item = &'r Run> {
        self.runs
            .values()
            .filter(move |r| r.service == service && r.active_at(t, slack))
    }

    /// When the campaign deleted `service`, if it did.
    fn deleted_at(&self, service: &str) -> Option<f64> {
        self.observed.journal.iter().find_map(|e| match &e.what {
            Act::FaultBegan(what) if what == &format!("DeleteService {service}") => Some(e.t),
            _ => None,
        })
    }

    /// When each replica incarnation was resumed from SIGSTOP.
    fn resumed(&self, replica: &str) -> Vec<f64> {
        self.observed
            .journal
            .iter()
            .filter_map(|e| match &e.what {
                Act::Resumed(id) if id == replica => Some(e.t),
                _ => None,
            })
            .collect()
    }
}

/// What the checks found: the violations, and how many mutating calls the
/// fence check could not judge (the store changed between two readings).
pub struct Verdict {
    pub violations: Vec<Violation>,
    /// Mutating calls the fence check judged, and could not.
    pub judged: usize,
    pub unjudged: usize,
    /// Stops of a task protected after the stopping replica's last read of
    /// its protection (a race ECS leaves open).
    pub raced: usize,
}

pub fn check(e: &Evidence) -> Verdict {
    let mut violations = Vec::new();
    violations.extend(capacity::check(e));
    let (stopped, raced) = stops::check(e);
    violations.extend(stopped);
    violations.extend(surge::check(e));
    let fence = fence::check(e);
    violations.extend(fence.violations);
    violations.extend(ends::check(e));
    violations.extend(logs::check(e));
    Verdict {
        violations,
        judged: fence.judged,
        unjudged: fence.unjudged,
        raced,
    }
}
