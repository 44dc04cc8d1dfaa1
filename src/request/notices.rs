//! Which notices a change of a request's status makes: its start, each
//! batch recycled (when asked for), a hold by a gate alarm and its end, and
//! its end — compared between the status before a step and after it, and
//! queued in the new status's outbox (`crate::notify::outbox`) so they are
//! written with the change that caused them. Pure.

use chrono::{DateTime, Utc};

use crate::notify::NotifyEvent;
use crate::notify::outbox::{self, MAX_TASKS_NAMED, Report};
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, Reason, RecycleStatus, events_added};

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
        if notify.events.contains(&event) {
            let report = report(name, spec, after, event, now);
            outbox::queue(&mut after.notify, event, notify.channels(), &report, now);
        }
    }
}

/// Events with `reason` in `after` that `before` did not have.
fn new_events(before: &RecycleStatus, after: &RecycleStatus, reason: Reason) -> usize {
    events_added(&before.events, &after.events)
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
        phase: status.phase.as_str().to_string(),
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
        strategy: (!spec.strategy.is_batches())
            .then(|| spec.strategy.describe(spec.batch_size, spec.wait)),
        batch: (status.batches > 0).then(|| spec.where_in(status.batches, planned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::outbox::{MAX_ATTEMPTS_KEPT, MAX_OUTBOX, Notice};
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
        let body = crate::notify::render::text_body(failed);
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
