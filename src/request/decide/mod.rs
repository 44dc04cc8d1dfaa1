//! The decision: given a request's spec and status, an observation of its
//! service, and the time, what the status becomes and which AWS actions
//! follow. Pure: no I/O and no clock of its own.
//!
//! The shell persists the returned status (conditionally on the record's
//! version) *before* it performs the actions, so every action is an intent
//! already on record. A restart decides again from the record and a fresh
//! observation, and the intents let it tell a change made from one never
//! made: a desired-count change is re-sent only while the observed count is
//! still its `from`, a stop only while the task is still desired RUNNING.
//!
//! One file per phase ([`pending`], [`surging`], [`recycling`],
//! [`restoring`]), each read alone; what holds or ends a run whatever its
//! phase first ([`gates`], [`ending`]); the hooks asked at its points
//! ([`hooks`]); the ECS production runs on: tasks protected from scale-in
//! ([`protection`]), steps that wait for capacity ([`capacity`]), tasks
//! Fargate Spot takes ([`spot`]), and a service that cannot be seen whole
//! ([`unseen`]); and what the phases share: the words of a status
//! ([`messages`], [`causes`]), when a service is stable ([`stability`]), how
//! long a step may take ([`timing`]), and what the next look must read
//! ([`needs`]).

mod capacity;
mod causes;
mod ending;
mod gates;
mod hooks;
mod messages;
mod needs;
mod pending;
mod protection;
mod recycling;
mod restoring;
mod spot;
mod stability;
mod surging;
mod timing;
mod unseen;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::gates::decide::AlarmsSeen;
use crate::hooks::decide::Ask;
use crate::request::observation::Observation;
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, RecycleStatus, ScalingSettings};
use crate::request::timeline;

pub(crate) use self::capacity::{needs_room, stability_since, task_size};
pub(crate) use self::ending::refused;
pub(crate) use self::needs::{needs_scaling, needs_tasks};
pub(crate) use self::protection::{READ_AT_ONCE, until_words};
pub(crate) use self::stability::{stable, tasks_show_unfinished};
pub(crate) use self::timing::{drain_blocks_replacements, is_slow};
pub(crate) use self::unseen::{Trouble, unseen};
// What the gates and the hooks reach as `super::`.
use self::ending::end_via_restore;
use self::messages::{target, window_closed};
use self::timing::past_not_after;

/// What the operator does to AWS, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    SetDesired { from: u32, to: u32 },
    StopTask { arn: String, reason: String },
    SetScaling(ScalingSettings),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub status: RecycleStatus,
    pub actions: Vec<Action>,
    /// A hook to call, on record in `status.hook` already; its answer is
    /// recorded in the status before the next decision.
    pub hook: Option<Ask>,
    /// When to look again; `None` once the request has finished.
    pub requeue: Option<Duration>,
    /// Tasks the decision would stop next whose scale-in protection it
    /// must see first (read right before the stop). Such a decision
    /// changes nothing: the shell reads their protection into the
    /// observation and decides again.
    pub read_protection: Vec<String>,
    /// The counts of a look that changed nothing else: the status does not
    /// take them (no write of their own); the shell keeps them and they
    /// ride on the next write ([`timeline::ride`]).
    pub look_kept: Option<timeline::Counts>,
}

/// Everything the decision needs besides the status and the observation.
pub(crate) struct Context<'a> {
    pub name: &'a str,
    pub spec: &'a RecycleSpec,
    pub now: DateTime<Utc>,
    /// How soon to look again while a transition is expected.
    pub poll: Duration,
    /// Another active request on the same service that goes first.
    pub blocked_by: Option<&'a str>,
    /// The gate alarms as seen at this look; `None` when not read (which
    /// holds a gated run: see [`crate::gates`]).
    pub alarms: Option<&'a AlarmsSeen>,
    /// When ECS's own events showed the batch in flight serving, if they
    /// did ([`crate::request::hints`]): a batch this look finds done waits
    /// `wait` from then rather than from now. A hint about when, never
    /// about whether: only a look decides a batch is done.
    pub serving_since: Option<DateTime<Utc>>,
}

pub(crate) fn decide(ctx: &Context, status: &RecycleStatus, obs: &Observation) -> Decision {
    let mut d = Decision {
        status: status.clone(),
        actions: Vec::new(),
        hook: None,
        requeue: Some(ctx.poll),
        read_protection: Vec::new(),
        look_kept: None,
    };
    unseen::seen_again(ctx, &mut d);
    if matches!(status.phase, Phase::Surging | Phase::Recycling) {
        spot::note_interruptions(obs, &mut d);
    }
    match status.phase {
        _ if gates::decided(ctx, obs, &mut d) => {}
        _ if ending::targets_unreadable(ctx, obs, &mut d) => {}
        Phase::Pending => pending::pending(ctx, obs, &mut d),
        Phase::Surging => surging::surging(ctx, obs, &mut d),
        Phase::Recycling => recycling::recycling(ctx, obs, &mut d),
        Phase::Restoring => restoring::restoring(ctx, obs, &mut d),
        Phase::Succeeded | Phase::Failed | Phase::Cancelled | Phase::WindowClosed => {}
    }
    if !d.read_protection.is_empty() {
        // Nothing is decided before the protection is read.
        d.status = status.clone();
        d.actions.clear();
        d.hook = None;
        d.requeue = Some(Duration::ZERO);
        return d;
    }
    if d.status.phase.is_terminal() {
        d.requeue = None;
    }
    d.status.message = crate::message::bounded(std::mem::take(&mut d.status.message));
    if let Some(o) = d.status.outcome.as_mut() {
        o.message = crate::message::bounded(std::mem::take(&mut o.message));
    }
    // Last, so that it sees whether the status is written anyway.
    let (tasks_read, hook_asked) = (needs_tasks(status), d.hook.is_some());
    d.look_kept = timeline::record(status, &mut d.status, obs, ctx.now, tasks_read, hook_asked);
    d
}

#[cfg(test)]
mod tests;
