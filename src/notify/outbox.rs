//! The outbox kept in a request's status: notices queued with the
//! transition that caused them, and a bounded record of every delivery
//! attempt. Pure: the reconciler calls [`enqueue`] before it writes a new
//! status and [`apply`] to fold in what the notifier reported.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Channel, NotifyEvent};
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, Reason, RecycleStatus};

/// Notices waiting at most; beyond it the oldest is dropped (and recorded).
pub(crate) const MAX_OUTBOX: usize = 30;
/// Attempts kept in the status; older ones are dropped first.
pub(crate) const MAX_ATTEMPTS_KEPT: usize = 30;
/// Task ids named in one report; the count is always exact.
pub(crate) const MAX_TASKS_NAMED: usize = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyState {
    /// The id of the last notice queued; ids are never reused within a request.
    #[serde(default)]
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Notice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

impl NotifyState {
    pub fn is_empty(&self) -> bool {
        self.seq == 0 && self.outbox.is_empty() && self.attempts.is_empty()
    }
}

/// One event to tell one channel about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub id: u64,
    pub event: NotifyEvent,
    pub channel: Channel,
    pub report: Report,
    pub queued_at: DateTime<Utc>,
    /// Attempts made so far (a replica that takes over goes on counting).
    #[serde(default)]
    pub attempts: u32,
}

/// What a notification says: the original Lambda's email (cluster, service, tasks
/// recycled, timestamp) plus the outcome, the duration and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub request: String,
    pub cluster: String,
    pub service: String,
    pub event: NotifyEvent,
    pub phase: Phase,
    pub message: String,
    /// Tasks planned for the run.
    pub planned: usize,
    /// Tasks stopped and replaced so far.
    pub recycled: usize,
    /// Planned tasks already gone before their turn.
    pub skipped: usize,
    /// Ids of the tasks recycled, at most [`MAX_TASKS_NAMED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_desired: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// Why it failed (failed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Report {
    /// From the start to the end (or to the event, while it runs).
    pub fn duration(&self) -> Option<std::time::Duration> {
        let start = self.started_at?;
        (self.finished_at.unwrap_or(self.at) - start).to_std().ok()
    }
}

/// One delivery attempt as the status records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub notice: u64,
    pub event: NotifyEvent,
    /// The channel, named without secrets (see [`Channel::label`]).
    pub channel: String,
    pub attempt: u32,
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// No further attempt will be made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gave_up: bool,
}

/// What the notifier reports about one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub notice: u64,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// `None` when delivered.
    pub error: Option<String>,
    /// Delivered, or given up: the notice leaves the outbox.
    pub done: bool,
}

/// Queues the notices `after` calls for, compared with `before`: started,
/// each new batch, a hold by a gate alarm and its end, and the end. `spec.notify` says which events and where.
pub(crate) fn enqueue(
    name: &str,
    spec: &RecycleSpec,
    before: &RecycleStatus,
    after: &mut RecycleStatus,
    now: DateTime<Utc>,
) {
    let Some(notify) = &spec.notify else {
        return;
    };
    let mut events = Vec::new();
    if before.started_at.is_none() && after.started_at.is_some() {
        events.push(NotifyEvent::Started);
    }
    for _ in 0..new_events(before, after, Reason::Recycled) {
        events.push(NotifyEvent::Batch);
    }
    for _ in 0..new_events(before, after, Reason::AlarmHeld) {
        events.push(NotifyEvent::Paused);
    }
    for _ in 0..new_events(before, after, Reason::AlarmCleared) {
        events.push(NotifyEvent::Resumed);
    }
    if !before.phase.is_terminal() && after.phase.is_terminal() {
        events.push(match after.phase {
            Phase::Succeeded => NotifyEvent::Succeeded,
            Phase::Cancelled => NotifyEvent::Cancelled,
            Phase::WindowClosed => NotifyEvent::WindowClosed,
            _ => NotifyEvent::Failed,
        });
    }
    for event in events {
        if !notify.events.contains(&event) {
            continue;
        }
        let report = report(name, spec, after, event, now);
        for channel in notify.channels() {
            after.notify.seq += 1;
            after.notify.outbox.push(Notice {
                id: after.notify.seq,
                event,
                channel,
                report: report.clone(),
                queued_at: now,
                attempts: 0,
            });
        }
    }
    while after.notify.outbox.len() > MAX_OUTBOX {
        let dropped = after.notify.outbox.remove(0);
        record(
            &mut after.notify,
            Attempt {
                at: now,
                notice: dropped.id,
                event: dropped.event,
                channel: dropped.channel.label(),
                attempt: dropped.attempts,
                delivered: false,
                error: Some(format!(
                    "dropped undelivered: the outbox holds at most {MAX_OUTBOX} notices"
                )),
                gave_up: true,
            },
        );
    }
}

/// Events with `reason` in `after` that `before` did not have.
fn new_events(before: &RecycleStatus, after: &RecycleStatus, reason: Reason) -> usize {
    crate::request::status::events_added(&before.events, &after.events)
        .iter()
        .filter(|e| e.reason == reason)
        .count()
}

fn report(
    name: &str,
    spec: &RecycleSpec,
    status: &RecycleStatus,
    event: NotifyEvent,
    now: DateTime<Utc>,
) -> Report {
    let planned = status.plan.as_ref().map_or(0, |p| p.tasks.len());
    let recycled: Vec<&String> = status.recycled().collect();
    let message = match &status.outcome {
        Some(o) if status.phase == Phase::Restoring => o.message.clone(),
        _ => status.message.clone(),
    };
    Report {
        request: name.to_string(),
        cluster: spec.cluster.clone(),
        service: spec.service.clone(),
        event,
        phase: status.phase,
        message: message.clone(),
        planned,
        recycled: recycled.len(),
        skipped: status.skipped.len(),
        tasks: recycled
            .iter()
            .take(MAX_TASKS_NAMED)
            .map(|arn| arn.rsplit('/').next().unwrap_or(arn).to_string())
            .collect(),
        original_desired: status.plan.as_ref().map(|p| p.original_desired),
        started_at: status.started_at,
        finished_at: status.finished_at,
        at: now,
        reason: (event == NotifyEvent::Failed).then_some(message),
    }
}

/// Folds receipts into the state: each attempt is recorded once (a receipt
/// already applied is ignored, so applying twice changes nothing), and a
/// notice that was delivered or given up leaves the outbox. True if it changed.
pub(crate) fn apply(state: &mut NotifyState, receipts: &[Receipt]) -> bool {
    let mut changed = false;
    for r in receipts {
        let Some(i) = state.outbox.iter().position(|n| n.id == r.notice) else {
            continue;
        };
        if r.attempt <= state.outbox[i].attempts {
            continue;
        }
        changed = true;
        let notice = &mut state.outbox[i];
        notice.attempts = r.attempt;
        let attempt = Attempt {
            at: r.at,
            notice: notice.id,
            event: notice.event,
            channel: notice.channel.label(),
            attempt: r.attempt,
            delivered: r.done && r.error.is_none(),
            error: r.error.clone(),
            gave_up: r.done && r.error.is_some(),
        };
        if r.done {
            state.outbox.remove(i);
        }
        record(state, attempt);
    }
    changed
}

fn record(state: &mut NotifyState, attempt: Attempt) {
    state.attempts.push(attempt);
    if state.attempts.len() > MAX_ATTEMPTS_KEPT {
        let excess = state.attempts.len() - MAX_ATTEMPTS_KEPT;
        state.attempts.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::spec::parse_spec;
    use crate::request::status::{Outcome, Plan};
    use serde_json::json;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn spec(events: serde_json::Value) -> RecycleSpec {
        parse_spec(
            &json!({"cluster": "prod", "service": "web", "notify": {
                "events": events,
                "email": {"to": ["ops@example.com"]},
                "webhook": {"url": "https://hooks.example.com/x"},
            }}),
            "spec",
        )
        .unwrap()
    }

    fn running() -> RecycleStatus {
        let mut s = RecycleStatus {
            phase: Phase::Recycling,
            started_at: Some(at(0)),
            plan: Some(Plan {
                original_desired: 3,
                original_scaling: None,
                tasks: vec![
                    "arn:aws:ecs:us-east-1:1:task/prod/a".into(),
                    "arn:aws:ecs:us-east-1:1:task/prod/b".into(),
                    "arn:aws:ecs:us-east-1:1:task/prod/c".into(),
                ],
                planned_at: at(0),
            }),
            ..Default::default()
        };
        s.event(at(0), Reason::Started, "Starting task recycle for prod/web");
        s
    }

    #[test]
    fn a_hold_by_a_gate_alarm_and_its_end_are_queued_by_default() {
        let spec = parse_spec(
            &json!({"cluster": "prod", "service": "web",
                    "notify": {"webhook": {"url": "https://hooks.example.com/x"}}}),
            "spec",
        )
        .unwrap();
        let before = running();
        let mut after = before.clone();
        after.message = "held by alarm \"web-5xx\" in ALARM: Threshold Crossed; holding before the next batch (1/3 tasks recycled); goes on by itself once every gate alarm is OK".into();
        after.event(
            at(60),
            Reason::AlarmHeld,
            "held by alarm \"web-5xx\" in ALARM: Threshold Crossed",
        );
        enqueue("r", &spec, &before, &mut after, at(60));
        let paused: Vec<&Notice> = after.notify.outbox.iter().collect();
        assert_eq!(paused.len(), 1, "{paused:#?}");
        assert_eq!(paused[0].event, NotifyEvent::Paused);
        assert!(
            paused[0]
                .report
                .message
                .contains("held by alarm \"web-5xx\"")
        );
        // Looked at again while held: nothing new to say.
        let before = after.clone();
        enqueue("r", &spec, &before, &mut after, at(61));
        assert_eq!(after.notify.outbox.len(), 1);
        after.event(
            at(90),
            Reason::AlarmCleared,
            "every gate alarm is OK after a hold of 30s; going on",
        );
        enqueue("r", &spec, &before, &mut after, at(90));
        assert_eq!(
            after.notify.outbox.last().unwrap().event,
            NotifyEvent::Resumed
        );
    }

    #[test]
    fn the_start_each_batch_and_the_end_are_queued_per_channel() {
        let spec = spec(json!(["started", "batch", "succeeded", "failed"]));
        let mut after = running();
        enqueue("r", &spec, &RecycleStatus::default(), &mut after, at(0));
        assert_eq!(after.notify.outbox.len(), 2, "started, to two channels");
        assert!(
            after
                .notify
                .outbox
                .iter()
                .all(|n| n.event == NotifyEvent::Started)
        );

        let before = after.clone();
        after.stopped = vec!["arn:aws:ecs:us-east-1:1:task/prod/a".into()];
        after.event(at(60), Reason::Recycled, "Task 1 recycled, waiting 30s");
        enqueue("r", &spec, &before, &mut after, at(60));
        let batch: Vec<&Notice> = after
            .notify
            .outbox
            .iter()
            .filter(|n| n.event == NotifyEvent::Batch)
            .collect();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].report.recycled, 1);
        assert_eq!(batch[0].report.tasks, ["a"]);

        let before = after.clone();
        after.outcome = Some(Outcome {
            phase: Phase::Failed,
            message: "replacements for b were not healthy within 10m".into(),
        });
        after.transition(at(700), Phase::Restoring, "restoring");
        enqueue("r", &spec, &before, &mut after, at(700));
        assert_eq!(after.notify.outbox.len(), 4, "restoring is not an end");
        let before = after.clone();
        after.transition(
            at(720),
            Phase::Failed,
            "replacements for b were not healthy within 10m. Desired count restored: 4 → 3.",
        );
        enqueue("r", &spec, &before, &mut after, at(720));
        let ids: Vec<u64> = after.notify.outbox.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6], "ids are unique and ordered");
        let failed = &after.notify.outbox[4].report;
        assert_eq!(failed.event, NotifyEvent::Failed);
        assert!(failed.reason.as_deref().unwrap().contains("not healthy"));
        assert_eq!(failed.duration(), Some(std::time::Duration::from_secs(720)));
        assert_eq!((failed.planned, failed.recycled), (3, 1));

        let before = after.clone();
        enqueue("r", &spec, &before, &mut after, at(800));
        assert_eq!(after.notify.outbox.len(), 6, "no new event, no new notice");
    }

    #[test]
    fn a_failure_counts_only_the_tasks_whose_replacements_served_and_says_why() {
        let spec = spec(json!(["failed"]));
        let a = "arn:aws:ecs:us-east-1:1:task/prod/a".to_string();
        let b = "arn:aws:ecs:us-east-1:1:task/prod/b".to_string();
        let before = RecycleStatus {
            stopped: vec![a, b.clone()],
            unreplaced: vec![b],
            ..running()
        };
        let mut after = before.clone();
        let why = "replacements for b were not running, healthy and stable within 5s (desired 4, running 3, pending 1, healthy 3): 8 replacement tasks stopped: Essential container in task exited; 2/3 tasks stopped, 1 recycled. Desired count restored: 4 → 3.";
        after.transition(at(60), Phase::Failed, why);
        enqueue("r", &spec, &before, &mut after, at(60));
        let failed = &after.notify.outbox[0].report;
        assert_eq!((failed.planned, failed.recycled), (3, 1));
        assert_eq!(
            failed.tasks,
            ["a"],
            "b stopped, but its replacement never served"
        );
        assert!(
            failed
                .reason
                .as_deref()
                .unwrap()
                .contains("8 replacement tasks stopped: Essential container in task exited"),
            "{failed:?}"
        );
        let body = super::super::render::text_body(failed);
        assert!(body.contains("Tasks recycled: 1 of 3 planned"), "{body}");
        assert!(
            body.contains("Essential container in task exited"),
            "{body}"
        );
    }

    #[test]
    fn events_not_asked_for_are_not_queued() {
        let spec = spec(json!(["succeeded"]));
        let mut after = running();
        enqueue("r", &spec, &RecycleStatus::default(), &mut after, at(0));
        assert!(after.notify.outbox.is_empty());
        let mut before = running();
        before.notify = after.notify.clone();
        after.transition(at(5), Phase::WindowClosed, "window closed");
        enqueue("r", &spec, &before, &mut after, at(5));
        assert!(after.notify.outbox.is_empty());
    }

    #[test]
    fn receipts_record_each_attempt_once_and_retire_done_notices() {
        let spec = spec(json!(["started"]));
        let mut s = running();
        enqueue("r", &spec, &RecycleStatus::default(), &mut s, at(0));
        let receipts = vec![
            Receipt {
                notice: 1,
                attempt: 1,
                at: at(1),
                error: Some("connection refused".into()),
                done: false,
            },
            Receipt {
                notice: 1,
                attempt: 2,
                at: at(3),
                error: None,
                done: true,
            },
            Receipt {
                notice: 2,
                attempt: 1,
                at: at(1),
                error: Some("answered 500".into()),
                done: false,
            },
        ];
        assert!(apply(&mut s.notify, &receipts));
        assert_eq!(s.notify.outbox.len(), 1);
        assert_eq!(s.notify.outbox[0].attempts, 1);
        assert_eq!(s.notify.attempts.len(), 3);
        assert!(s.notify.attempts[1].delivered);
        let again = s.clone();
        assert!(
            !apply(&mut s.notify, &receipts),
            "applying twice changes nothing"
        );
        assert_eq!(s, again);
        let gave_up = Receipt {
            notice: 2,
            attempt: 2,
            at: at(9),
            error: Some("answered 500".into()),
            done: true,
        };
        assert!(apply(&mut s.notify, &[gave_up]));
        assert!(s.notify.outbox.is_empty());
        assert!(s.notify.attempts.last().unwrap().gave_up);
    }

    #[test]
    fn the_outbox_and_the_attempts_are_bounded() {
        let spec = spec(json!(["batch"]));
        let mut s = running();
        for i in 0..40 {
            let before = s.clone();
            s.event(at(i), Reason::Recycled, format!("Task {i} recycled"));
            enqueue("r", &spec, &before, &mut s, at(i));
        }
        assert_eq!(s.notify.outbox.len(), MAX_OUTBOX);
        assert_eq!(s.notify.outbox[0].id, 51, "the oldest were dropped");
        assert_eq!(s.notify.attempts.len(), MAX_ATTEMPTS_KEPT);
        assert!(s.notify.attempts.iter().all(|a| a.gave_up));
    }
}
