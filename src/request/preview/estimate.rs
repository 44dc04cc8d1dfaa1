//! How long one replacement takes: from this service's earlier runs when
//! the table remembers any, else from its live tasks' start times.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::render::approx;
use crate::request::observation::TaskView;
use crate::request::status::{Event, Reason, RecycleStatus};

/// How long one replacement takes, and where the figure comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Estimate {
    /// From the stop of a task to its replacement running, healthy and the service stable.
    pub replacement: Duration,
    pub basis: String,
}

/// Estimates the replacement time: from this service's earlier runs when the
/// table remembers any (the time from each batch's stop to its "recycled"
/// event), else from its live tasks' PROVISIONING → RUNNING times plus an
/// assumed health-check time.
pub(crate) fn estimate(history: &[RecycleStatus], live: &[TaskView]) -> Estimate {
    let mut observed: Vec<Duration> = history
        .iter()
        .flat_map(|s| batch_times(&s.events))
        .collect();
    if !observed.is_empty() {
        observed.sort();
        let median = observed[observed.len() / 2];
        return Estimate {
            replacement: median,
            basis: format!(
                "median of {} replacement(s) observed in {} earlier run(s) on this service",
                observed.len(),
                history.len()
            ),
        };
    }
    let mut starts: Vec<Duration> = live
        .iter()
        .filter_map(|t| (t.started_at? - t.created_at?).to_std().ok())
        .collect();
    starts.sort();
    let start = starts.get(starts.len() / 2).copied();
    let health_checked = live.iter().any(|t| t.health_checked);
    let health = if health_checked {
        Duration::from_secs(30)
    } else {
        Duration::ZERO
    };
    let health_note = if health_checked {
        " + 30s assumed for the health check (one default interval; an earlier run on this service gives the real figure)"
    } else {
        " (no health check)"
    };
    match start {
        Some(start) => Estimate {
            replacement: start + health,
            basis: format!(
                "median start time {} of {} live task(s){health_note}",
                approx(start),
                starts.len()
            ),
        },
        None => Estimate {
            replacement: Duration::from_secs(60) + health,
            basis: format!("no start times observed; 60s assumed{health_note}"),
        },
    }
}

/// Each batch's time from its first stop to its "Recycled" event.
fn batch_times(events: &[Event]) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut stopped_at: Option<DateTime<Utc>> = None;
    for e in events {
        match e.reason {
            Reason::Recycling if stopped_at.is_none() => stopped_at = Some(e.at),
            Reason::Recycled => {
                if let Some(t) = stopped_at.take()
                    && let Ok(d) = (e.at - t).to_std()
                {
                    out.push(d);
                }
            }
            _ => {}
        }
    }
    out
}
