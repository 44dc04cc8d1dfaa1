//! The outbox kept in a request's status: notices queued with the
//! transition that caused them, and a bounded record of every delivery
//! attempt. Pure: the request's notices (`request::notices`) are
//! [`queue`]d before the status that caused them is written, and the
//! reconciler calls [`apply`] to fold in what the notifier reported.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Channel, NotifyEvent};

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
    /// The request's phase when the event happened ("Succeeded").
    pub phase: String,
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
    /// The shape of the run, when it is not plain batches ("canary of 1
    /// task baked 5m, then batches of 2 with 30s after each").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Where the run is: "canary 1/1", "step 4 of 10".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
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

/// Queues a notice of `event` for each of `channels`, each with a new id,
/// and drops the oldest beyond [`MAX_OUTBOX`] (recording that it was).
pub(crate) fn queue(
    state: &mut NotifyState,
    event: NotifyEvent,
    channels: Vec<Channel>,
    report: &Report,
    now: DateTime<Utc>,
) {
    for channel in channels {
        state.seq += 1;
        state.outbox.push(Notice {
            id: state.seq,
            event,
            channel,
            report: report.clone(),
            queued_at: now,
            attempts: 0,
        });
    }
    while state.outbox.len() > MAX_OUTBOX {
        let dropped = state.outbox.remove(0);
        record(
            state,
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
    use crate::notify::WebhookChannel;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn report() -> Report {
        Report {
            request: "r".into(),
            cluster: "prod".into(),
            service: "web".into(),
            event: NotifyEvent::Started,
            phase: "Recycling".into(),
            message: "started".into(),
            planned: 3,
            recycled: 0,
            skipped: 0,
            tasks: Vec::new(),
            original_desired: Some(3),
            started_at: Some(at(0)),
            finished_at: None,
            at: at(0),
            reason: None,
            strategy: None,
            batch: None,
        }
    }

    fn webhook(url: &str) -> Channel {
        Channel::Webhook(WebhookChannel {
            url: url.into(),
            format: Default::default(),
        })
    }

    #[test]
    fn receipts_record_each_attempt_once_and_retire_done_notices() {
        let mut s = NotifyState::default();
        queue(
            &mut s,
            NotifyEvent::Started,
            vec![
                webhook("https://a.example.com"),
                webhook("https://b.example.com"),
            ],
            &report(),
            at(0),
        );
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
        assert!(apply(&mut s, &receipts));
        assert_eq!(s.outbox.len(), 1);
        assert_eq!(s.outbox[0].attempts, 1);
        assert_eq!(s.attempts.len(), 3);
        assert!(s.attempts[1].delivered);
        let again = s.clone();
        assert!(!apply(&mut s, &receipts), "applying twice changes nothing");
        assert_eq!(s, again);
        let gave_up = Receipt {
            notice: 2,
            attempt: 2,
            at: at(9),
            error: Some("answered 500".into()),
            done: true,
        };
        assert!(apply(&mut s, &[gave_up]));
        assert!(s.outbox.is_empty());
        assert!(s.attempts.last().unwrap().gave_up);
    }
}
