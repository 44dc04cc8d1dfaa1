//! Fenced: a replica sends a mutating call (UpdateService, StopTask,
//! RegisterScalableTarget) about a service only while it holds an
//! unexpired lease on a request of that service.
//!
//! Seen from outside: the simulator stamps each call with its time and
//! signer (each replica incarnation signs with its own id); the campaign
//! read the store every few tens of milliseconds, each record's lease
//! holder and expiry (written by the holder's clock: `expiry = sent +
//! lease`). A call is judged when, for every request record of its service,
//! the readings just before and just after it show the very same lease
//! (holder and expiry): an expiry is a wall-clock instant in milliseconds,
//! so no write happened between them and the lease at the call is known.
//! Then the call must be its caller's, unexpired. A call between readings
//! that differ is counted unjudged, never guessed.
//!
//! A replica resumed from SIGSTOP could send one call it had checked before
//! the pause, if the pause fell in the microseconds between its fence check
//! and the send (assumption 3 of docs/failure-model.md). That is far too
//! rare to excuse every call right after a SIGCONT — and a disabled fence
//! looks exactly like it from outside — so such a call is still a
//! violation, which says that it came first after a SIGCONT.

use std::collections::BTreeSet;

use super::{Evidence, Invariant, Violation, violation};
use crate::timeline::MUTATING;
use crate::watch::Reading;

/// Slack for laying the store's readings (wall clock) on the simulator's
/// clock: calibrated to within a round trip of a few milliseconds.
const SLACK: f64 = 0.05;

/// How soon after SIGCONT a call may be one checked before SIGSTOP: such a
/// call was ready to go, and goes at once.
const LATE: f64 = 0.25;

pub(super) struct FenceVerdict {
    pub(super) violations: Vec<Violation>,
    pub(super) judged: usize,
    pub(super) unjudged: usize,
}

/// Whether the call `replica` sent at `t` is its first mutating call
/// since a SIGCONT just before.
pub(super) fn late_after_resume(e: &Evidence, replica: &str, t: f64) -> bool {
    e.resumed(replica).into_iter().any(|r| {
        r <= t
            && t <= r + LATE
            && !e.world.timeline.calls.iter().any(|c| {
                c.by_replica() == Some(replica)
                    && MUTATING.contains(&c.op.as_str())
                    && c.t >= r
                    && c.t < t
            })
    })
}

pub(super) fn check(e: &Evidence) -> FenceVerdict {
    let mut verdict = FenceVerdict {
        violations: Vec::new(),
        judged: 0,
        unjudged: 0,
    };
    let readings = &e.observed.readings;
    for call in &e.world.timeline.calls {
        let Some(replica) = call.by_replica() else {
            continue;
        };
        if !MUTATING.contains(&call.op.as_str()) {
            continue;
        }
        let Some(service) = e.world.service_of(call) else {
            continue;
        };
        verdict.judged += 1;
        let held = match judge(readings, &service, replica, call.t) {
            Judgement::Holds => continue,
            Judgement::Unknown => {
                verdict.judged -= 1;
                verdict.unjudged += 1;
                continue;
            }
            Judgement::NotHeld(held) => held,
        };
        let what = format!(
            "{replica} sent {} about {service} at t={:.3}{}, when its leases were {}",
            call.op,
            call.t,
            call.error
                .as_deref()
                .map(|e| format!(" (answered {e})"))
                .unwrap_or_default(),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.iter()
                    .map(|(h, u)| format!("{h} until t={u:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let what = if late_after_resume(e, replica, call.t) {
            format!(
                "{what} (its first call since a SIGCONT just before: the one late call assumption 3 leaves to chance only if the pause fell between its fence check and the send)"
            )
        } else {
            what
        };
        verdict.violations.push(violation(Invariant::Fence, what));
    }
    verdict
}

/// What the readings around a call say of its caller's lease.
enum Judgement {
    /// The caller held an unexpired lease on a record of the service.
    Holds,
    /// It did not: the leases (holder, expiry) the records had then.
    NotHeld(Vec<(String, f64)>),
    /// The readings around the call do not tell.
    Unknown,
}

/// Whether `replica` held a lease on a record of `service` at `t`. A
/// record's lease is known at `t` when the readings just before and just
/// after agree on it; or when the one before shows `replica`'s own lease
/// unexpired at `t` (nobody else may take it before it expires); or when
/// both show one other holder, whose lease before was unexpired at `t`
/// (taking it from them and giving it back in between would be two
/// hand-overs within one reading's interval).
fn judge(readings: &[Reading], service: &str, replica: &str, t: f64) -> Judgement {
    let (Some(before), Some(after)) = (
        readings.iter().rev().find(|r| r.received <= t - SLACK),
        readings.iter().find(|r| r.sent >= t + SLACK),
    ) else {
        return Judgement::Unknown;
    };
    let names: BTreeSet<&String> = before
        .records
        .iter()
        .chain(after.records.iter())
        .filter(|(_, seen)| seen.service == service)
        .map(|(name, _)| name)
        .collect();
    let mut held = Vec::new();
    let mut unknown = false;
    for name in names {
        let a = before.records.get(name).and_then(|s| s.lease.as_ref());
        let b = after.records.get(name).and_then(|s| s.lease.as_ref());
        let present = (
            before.records.contains_key(name),
            after.records.contains_key(name),
        );
        match (a, b) {
            (Some((h, until)), _) if h == replica && t <= until + SLACK => return Judgement::Holds,
            _ if a == b && present.0 == present.1 => held.extend(a.cloned()),
            (Some((h, until)), Some((h2, _))) if h != replica && h == h2 && *until >= t + SLACK => {
                held.push((h.clone(), *until));
            }
            _ => unknown = true,
        }
    }
    if unknown {
        Judgement::Unknown
    } else {
        Judgement::NotHeld(held)
    }
}
