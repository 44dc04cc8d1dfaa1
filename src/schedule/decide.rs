//! The schedule's decision: given its spec, its status, the requests it
//! made (as just read) and the time, which slot is due, which request to
//! create, which to cancel (Replace) and which old ones to delete (history
//! limits). Pure: no I/O and no clock of its own, so tests drive it across
//! daylight-saving changes and missed slots.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::spec::{ConcurrencyPolicy, ScheduleSpec};
use super::{SchedulePhase, ScheduleStatus, ScheduledRequest, request_name};
use crate::duration;
use crate::request::status::{Phase, Reason};

/// Slots walked one by one at most when looking for the due one; past
/// that, the latest is found directly and the rest are counted as "more".
const MAX_SLOTS_WALKED: u32 = 1000;

/// A request as the shell read it just now.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RequestView {
    pub name: String,
    /// `None`: the record is gone (deleted, or expired after its retention).
    pub phase: Option<Phase>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Finished, with notifications not yet delivered.
    pub notifying: bool,
}

pub(crate) struct Input<'a> {
    pub name: &'a str,
    pub spec: &'a ScheduleSpec,
    pub status: &'a ScheduleStatus,
    /// When the schedule was created: no slot before it is run.
    pub created_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// Fresh views of requests it made; a tracked request without a view
    /// is taken as last recorded. Include the due slot's request if it exists.
    pub requests: &'a [RequestView],
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewRequest {
    pub name: String,
    pub slot: DateTime<Utc>,
    /// The template, with `notAfter` at the end of the slot's window.
    pub spec: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScheduleDecision {
    pub status: ScheduleStatus,
    pub create: Option<NewRequest>,
    /// Active requests to cancel (concurrencyPolicy Replace).
    pub cancel: Vec<String>,
    /// Finished requests beyond the history limits.
    pub delete: Vec<String>,
}

/// The due slot: the latest one after the last dealt with (or the
/// schedule's creation) and at or before `now`, with how many earlier ones
/// were missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    pub slot: DateTime<Utc>,
    pub missed: u32,
}

pub(crate) fn due_slot(
    spec: &ScheduleSpec,
    status: &ScheduleStatus,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Due> {
    // A slot at the very second of creation counts: slots fall on whole minutes.
    let floor = status
        .evaluated_through
        .unwrap_or(created_at - chrono::Duration::seconds(1));
    let mut slot = spec.next_after(floor).filter(|s| *s <= now)?;
    let mut missed = 0;
    while let Some(next) = spec.next_after(slot).filter(|s| *s <= now) {
        missed += 1;
        slot = next;
        if missed == MAX_SLOTS_WALKED {
            slot = spec.latest_until(now).unwrap_or(slot);
            break;
        }
    }
    Some(Due { slot, missed })
}

/// When a schedule runs next, as of a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextRun {
    /// A slot has come that no operator has dealt with yet: its request is
    /// made at the operator's next look.
    Due(DateTime<Utc>),
    At(DateTime<Utc>),
    /// `suspend` is true: no run until it is lifted.
    Suspended,
    /// The expression has no slot left.
    Never,
}

/// The next run of a schedule, from its spec and what its status records
/// (the default before any operator has written one): the decision itself,
/// made with no I/O on what the status records — what the operator would
/// do and write now — so `get`, `describe` and `apply` show it before an
/// operator has seen the schedule.
pub(crate) fn next_run(
    name: &str,
    spec: &ScheduleSpec,
    status: &ScheduleStatus,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> NextRun {
    let d = decide(&Input {
        name,
        spec,
        status,
        created_at,
        now,
        requests: &[],
    });
    match (d.create, spec.suspend, d.status.next_schedule_time) {
        (Some(new), _, _) => NextRun::Due(new.slot),
        (None, true, _) => NextRun::Suspended,
        (None, false, Some(t)) => NextRun::At(t),
        (None, false, None) => NextRun::Never,
    }
}

fn late_by(slot: DateTime<Utc>, now: DateTime<Utc>) -> std::time::Duration {
    (now - slot).to_std().unwrap_or_default()
}

pub(crate) fn decide(input: &Input) -> ScheduleDecision {
    let now = input.now;
    let mut s = input.status.clone();
    let mut d = ScheduleDecision {
        status: ScheduleStatus::default(),
        create: None,
        cancel: Vec::new(),
        delete: Vec::new(),
    };
    refresh(&mut s, input.requests, now);
    if s.phase == SchedulePhase::Failed {
        s.event(
            now,
            Reason::Valid,
            "the record is valid again; making requests",
        );
    }
    if let Some(due) = due_slot(input.spec, &s, input.created_at, now) {
        take_slot(input, due, &mut s, &mut d);
    }
    d.delete = history(input.spec, &mut s);
    for gone in &d.delete {
        s.event(
            now,
            Reason::Deleted,
            format!("deleted request {gone}: beyond the history limits"),
        );
    }
    s.last_successful_time = s
        .requests
        .iter()
        .filter(|r| r.phase == Phase::Succeeded)
        .filter_map(|r| r.finished_at)
        .chain(s.last_successful_time)
        .max();
    say_next(input.spec, now, &mut s);
    d.status = s;
    d
}

/// Why a due slot gets no request.
enum Skip {
    /// Suspended: slots pass without a word.
    Quietly,
    Because(String),
}

/// Deals with the due slot: its request adopted when it exists already,
/// else the slot skipped, or its request made (the active ones cancelled
/// first under Replace).
fn take_slot(input: &Input, due: Due, s: &mut ScheduleStatus, d: &mut ScheduleDecision) {
    let Input {
        name, spec, now, ..
    } = *input;
    let slot_name = request_name(name, due.slot);
    let when = spec.local(due.slot);
    if due.missed > 0 && !spec.suspend {
        let more = if due.missed >= MAX_SLOTS_WALKED {
            " or more"
        } else {
            ""
        };
        s.event(
            now,
            Reason::MissedSlots,
            format!(
                "{}{more} earlier slot(s) passed while no operator ran; only the latest, {when}, is considered",
                due.missed
            ),
        );
    }
    let existing = input
        .requests
        .iter()
        .find(|r| r.name == slot_name && r.phase.is_some());
    if let Some(found) = existing {
        // Made already (by us before a lost write, or by another replica).
        track(s, found, due.slot);
        s.event(
            now,
            Reason::Adopted,
            format!("request {slot_name} for {when} already exists; it is this slot's request"),
        );
        return record_run(s, &slot_name, due.slot);
    }
    match skip(spec, s, due, now, &when) {
        Some(skip) => {
            s.evaluated_through = Some(due.slot);
            if let Skip::Because(reason) = skip {
                s.event(now, Reason::Skipped, reason);
            }
        }
        None => create(input, due, &slot_name, &when, s, d),
    }
}

/// Whether the due slot is skipped, and why: suspended, found past its
/// startingDeadline, too late for one batch in its window, or another
/// request still active under Forbid.
fn skip(
    spec: &ScheduleSpec,
    s: &ScheduleStatus,
    due: Due,
    now: DateTime<Utc>,
    when: &str,
) -> Option<Skip> {
    if spec.suspend {
        Some(Skip::Quietly)
    } else if let Some(deadline) = spec
        .starting_deadline
        .filter(|d| late_by(due.slot, now) > *d)
    {
        Some(Skip::Because(format!(
            "slot {when} skipped: found {} late, past startingDeadline {}",
            duration::format(secs(late_by(due.slot, now))),
            duration::format(deadline)
        )))
    } else if let Some(window) = spec
        .window
        .filter(|w| late_by(due.slot, now) + ScheduleSpec::min_window(&spec.template) > *w)
    {
        Some(Skip::Because(format!(
            "slot {when} skipped: found {} late, too little of its {} window was left for one batch ({})",
            duration::format(secs(late_by(due.slot, now))),
            duration::format(window),
            duration::format(ScheduleSpec::min_window(&spec.template))
        )))
    } else if let (ConcurrencyPolicy::Forbid, Some(active)) =
        (spec.concurrency_policy, s.active().next())
    {
        Some(Skip::Because(format!(
            "slot {when} skipped: request {} is still {:?} (concurrencyPolicy Forbid)",
            active.name, active.phase
        )))
    } else {
        None
    }
}

/// Makes the slot's request, cancelling the active ones first under
/// Replace, and tracks it.
fn create(
    input: &Input,
    due: Due,
    slot_name: &str,
    when: &str,
    s: &mut ScheduleStatus,
    d: &mut ScheduleDecision,
) {
    let Input { spec, now, .. } = *input;
    if spec.concurrency_policy == ConcurrencyPolicy::Replace {
        d.cancel = s.active().map(|r| r.name.clone()).collect();
        for old in &d.cancel {
            s.event(
                now,
                Reason::Replaced,
                format!("cancelling request {old} for the slot {when} (concurrencyPolicy Replace)"),
            );
        }
    }
    d.create = Some(new_request(spec, slot_name, due.slot));
    s.requests.push(ScheduledRequest {
        name: slot_name.to_string(),
        slot: due.slot,
        phase: Phase::Pending,
        finished_at: None,
        notifying: false,
    });
    s.event(
        now,
        Reason::Created,
        format!("created request {slot_name} for the slot {when}"),
    );
    record_run(s, slot_name, due.slot);
}

/// The schedule's phase and message: suspended, or when it runs next.
fn say_next(spec: &ScheduleSpec, now: DateTime<Utc>, s: &mut ScheduleStatus) {
    let (phase, message, next) = if spec.suspend {
        (
            SchedulePhase::Suspended,
            "suspended: slots pass without requests and are not made up later".to_string(),
            None,
        )
    } else {
        let next = spec.next_after(now.max(s.evaluated_through.unwrap_or(now)));
        let message = match next {
            Some(t) => format!("next run {}", spec.local(t)),
            None => "no slot is left on this schedule".to_string(),
        };
        (SchedulePhase::Active, message, next)
    };
    s.phase = phase;
    s.message = message;
    s.next_schedule_time = next;
}

fn secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

fn record_run(s: &mut ScheduleStatus, name: &str, slot: DateTime<Utc>) {
    s.last_schedule_time = Some(slot);
    s.last_request = Some(name.to_string());
    s.evaluated_through = Some(slot);
}

/// Brings the tracked requests up to date with what was just read.
fn refresh(s: &mut ScheduleStatus, views: &[RequestView], now: DateTime<Utc>) {
    let mut gone = Vec::new();
    for r in &mut s.requests {
        let Some(view) = views.iter().find(|v| v.name == r.name) else {
            continue;
        };
        match view.phase {
            Some(phase) => {
                r.phase = phase;
                r.finished_at = view.finished_at;
                r.notifying = view.notifying;
            }
            None => gone.push(r.name.clone()),
        }
    }
    for name in gone {
        s.requests.retain(|r| r.name != name);
        s.event(
            now,
            Reason::Gone,
            format!("request {name} no longer exists"),
        );
    }
}

fn track(s: &mut ScheduleStatus, view: &RequestView, slot: DateTime<Utc>) {
    if s.requests.iter().any(|r| r.name == view.name) {
        return;
    }
    s.requests.push(ScheduledRequest {
        name: view.name.clone(),
        slot,
        phase: view.phase.unwrap_or_default(),
        finished_at: view.finished_at,
        notifying: view.notifying,
    });
    s.requests.sort_by_key(|r| r.slot);
}

fn new_request(spec: &ScheduleSpec, name: &str, slot: DateTime<Utc>) -> NewRequest {
    let mut value = spec.template_value.clone();
    if let (Some(window), Some(o)) = (spec.window, value.as_object_mut()) {
        let end = slot + chrono::Duration::from_std(window).unwrap_or_default();
        o.insert(
            "notAfter".into(),
            Value::String(end.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
    }
    NewRequest {
        name: name.to_string(),
        slot,
        spec: value,
    }
}

/// The finished requests beyond the limits, newest kept; one still
/// notifying is kept until its notices are out.
fn history(spec: &ScheduleSpec, s: &mut ScheduleStatus) -> Vec<String> {
    let mut finished: Vec<&ScheduledRequest> = s
        .requests
        .iter()
        .filter(|r| r.phase.is_terminal())
        .collect();
    finished.sort_by_key(|r| std::cmp::Reverse(r.slot));
    let (mut ok, mut other) = (0, 0);
    let mut delete = Vec::new();
    for r in finished {
        let (kept, limit) = if r.phase == Phase::Succeeded {
            (&mut ok, spec.successful_history_limit)
        } else {
            (&mut other, spec.failed_history_limit)
        };
        if *kept < limit {
            *kept += 1;
        } else if !r.notifying {
            delete.push(r.name.clone());
        }
    }
    s.requests.retain(|r| !delete.contains(&r.name));
    delete
}
