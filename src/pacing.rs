//! When to look at a request again. While a step waits for new tasks (the
//! spare capacity, a batch's replacements), the next look is aimed at when
//! they should be serving, predicted from what this run has already seen:
//! how long tasks take from created to RUNNING (exact, from ECS's own
//! `createdAt` and `startedAt`, including the service's existing tasks) and
//! from RUNNING to healthy (bracketed by the looks that saw a task not yet
//! and then healthy). Before anything is known, looks back off from the
//! poll interval. Every other wait is paced by the decision, or slow when
//! nothing but a person can change it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::observation::{Observation, TaskView};
use crate::status::{Phase, RecycleStatus};

/// What one run has learnt about its tasks' timings.
#[derive(Debug, Default)]
pub struct Pace {
    /// Seconds from created to RUNNING, one per task seen running.
    to_running: Vec<f64>,
    /// Seconds from RUNNING to serving, one per new task seen become healthy.
    to_healthy: Vec<f64>,
    /// Tasks whose start is learnt.
    started: HashSet<String>,
    /// New tasks seen running but not yet serving: the last such look.
    not_yet: HashMap<String, DateTime<Utc>>,
    /// Tasks whose health delay is learnt.
    healthy: HashSet<String>,
    /// Looks in a row at a step that was predicted done and was not.
    misses: u32,
}

/// Caps what is kept per run, whatever the number of tasks.
const MAX_SAMPLES: usize = 64;

fn push_capped(v: &mut Vec<f64>, x: f64) {
    if v.len() == MAX_SAMPLES {
        v.remove(0);
    }
    v.push(x);
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

impl Pace {
    /// Learns from one observation made at `now` for a run started at `since`.
    pub fn learn(&mut self, obs: &Observation, since: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        for t in &obs.tasks {
            if let (Some(created), Some(started)) = (t.created_at, t.started_at)
                && self.started.insert(t.arn.clone())
            {
                push_capped(&mut self.to_running, secs(created, started).max(0.0));
            }
            let new = since.is_some_and(|s| t.created_at.is_some_and(|c| c >= s));
            if !new || !t.desired_running || self.healthy.contains(&t.arn) {
                continue;
            }
            let Some(started) = t.started_at else {
                continue;
            };
            if t.is_serving() {
                // Healthy somewhere between the last look that saw it not yet and now.
                let upper = secs(started, now).max(0.0);
                let sample = match self.not_yet.remove(&t.arn) {
                    Some(before) => (secs(started, before).max(0.0) + upper) / 2.0,
                    None => upper,
                };
                if t.health_checked {
                    push_capped(&mut self.to_healthy, sample);
                }
                self.healthy.insert(t.arn.clone());
            } else if t.last_status == "RUNNING" {
                self.not_yet.insert(t.arn.clone(), now);
            }
        }
        if self.not_yet.len() > MAX_SAMPLES {
            self.not_yet.clear();
        }
    }

    /// When a task not yet serving should be: `None` when nothing is known to predict it.
    fn serving_at(&self, t: &TaskView, step: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let health = if t.health_checked {
            median(&self.to_healthy)?
        } else {
            0.0
        };
        let at = |base: DateTime<Utc>, s: f64| {
            base + chrono::Duration::milliseconds((s * 1000.0).round() as i64)
        };
        match (t.started_at, t.created_at) {
            (Some(started), _) => Some(at(started, health)),
            (None, Some(created)) => Some(at(created, median(&self.to_running)? + health)),
            (None, None) => Some(at(step, median(&self.to_running)? + health)),
        }
    }

    /// How long to wait before the next look at a step that waits for new
    /// tasks since `step` (the time its action was decided): at the predicted
    /// time, or backing off from `poll` while there is nothing to predict from.
    pub fn next_look(
        &mut self,
        obs: &Observation,
        step: DateTime<Utc>,
        now: DateTime<Utc>,
        poll: Duration,
    ) -> Duration {
        let awaited: Vec<&TaskView> = obs
            .tasks
            .iter()
            .filter(|t| t.desired_running && !t.is_serving())
            .filter(|t| t.created_at.is_none_or(|c| c >= step))
            .collect();
        // Nothing launched yet: a replacement is about to be; expect it as a whole start.
        let predicted = if awaited.is_empty() {
            let stub = TaskView {
                arn: String::new(),
                last_status: "PROVISIONING".into(),
                desired_running: true,
                health: "UNKNOWN".into(),
                health_checked: obs.tasks.iter().any(|t| t.health_checked),
                started_at: None,
                created_at: None,
            };
            self.serving_at(&stub, step)
        } else {
            awaited
                .iter()
                .map(|t| self.serving_at(t, step))
                .collect::<Option<Vec<_>>>()
                .and_then(|ts| ts.into_iter().max())
        };
        match predicted.and_then(|at| (at - now).to_std().ok()) {
            Some(wait) if wait > Duration::from_millis(1) => {
                self.misses = 0;
                wait
            }
            _ => {
                // Past the prediction, or none: look again soon, then less often.
                let n = self.misses.min(3);
                self.misses += 1;
                poll * 2u32.pow(n)
            }
        }
    }
}

/// Whether the status waits for new tasks to serve: the surge applied, or a
/// batch stopped, and the step not yet seen stable.
pub fn awaits_tasks(status: &RecycleStatus) -> Option<DateTime<Utc>> {
    let waiting = match status.phase {
        Phase::Surging => status.surge.is_some(),
        Phase::Recycling => !status.batch.is_empty() && status.wait_until.is_none(),
        _ => false,
    };
    status.step_started_at.filter(|_| waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn task(arn: &str, created: i64, started: Option<i64>, healthy: bool) -> TaskView {
        TaskView {
            arn: arn.into(),
            last_status: if started.is_some() {
                "RUNNING"
            } else {
                "PENDING"
            }
            .into(),
            desired_running: true,
            health: if healthy { "HEALTHY" } else { "UNKNOWN" }.into(),
            health_checked: true,
            started_at: started.map(at),
            created_at: Some(at(created)),
        }
    }

    fn obs(tasks: Vec<TaskView>) -> Observation {
        Observation {
            service: Err(String::new()),
            tasks,
            scaling: None,
        }
    }

    #[test]
    fn without_history_looks_back_off_from_the_poll_interval() {
        let mut pace = Pace::default();
        let o = obs(vec![task("new", 100, None, false)]);
        let poll = Duration::from_millis(100);
        let looks: Vec<Duration> = (0..5)
            .map(|_| pace.next_look(&o, at(0), at(200), poll))
            .collect();
        assert_eq!(
            looks,
            [100, 200, 400, 800, 800]
                .map(Duration::from_millis)
                .to_vec()
        );
    }

    #[test]
    fn learns_start_and_health_times_and_aims_at_them() {
        let mut pace = Pace::default();
        // Existing tasks took 2 s to start.
        pace.learn(
            &obs(vec![task("old1", -10_000, Some(-8_000), true)]),
            Some(at(0)),
            at(0),
        );
        // A new task seen running at 3.0 s, healthy at 4.2 s: health took 0.6 to 1.2 s.
        pace.learn(
            &obs(vec![task("a", 1_000, Some(3_000), false)]),
            Some(at(0)),
            at(3_600),
        );
        pace.learn(
            &obs(vec![task("a", 1_000, Some(3_000), true)]),
            Some(at(0)),
            at(4_200),
        );
        assert_eq!(pace.to_running, vec![2.0, 2.0]);
        assert_eq!(pace.to_healthy.len(), 1);
        assert!(
            (pace.to_healthy[0] - 0.9).abs() < 1e-9,
            "{:?}",
            pace.to_healthy
        );
        // The next replacement, created at 10 s, should serve at 10 + 2 + 0.9.
        let o = obs(vec![task("b", 10_000, None, false)]);
        let wait = pace.next_look(&o, at(9_950), at(10_100), Duration::from_millis(100));
        assert_eq!(wait, Duration::from_millis(2_800));
        // Once running (at 12.3 s), from its real start.
        let o = obs(vec![task("b", 10_000, Some(12_300), false)]);
        let wait = pace.next_look(&o, at(9_950), at(12_400), Duration::from_millis(100));
        assert_eq!(wait, Duration::from_millis(800));
    }

    #[test]
    fn only_surge_and_batches_in_flight_await_tasks() {
        let mut s = RecycleStatus {
            phase: Phase::Recycling,
            step_started_at: Some(at(0)),
            ..Default::default()
        };
        assert_eq!(
            awaits_tasks(&s),
            None,
            "no batch: waiting for stability only"
        );
        s.batch = vec!["t".into()];
        assert_eq!(awaits_tasks(&s), Some(at(0)));
        s.wait_until = Some(at(5));
        assert_eq!(awaits_tasks(&s), None, "the wait is paced by the decision");
    }
}
