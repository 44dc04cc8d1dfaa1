//! When to look at a request again. While a step waits for new tasks (the
//! spare capacity, a batch's replacements), the next look is aimed at when
//! they should be serving, predicted from what this run has already seen.
//!
//! - The first look at a step comes a learnt time after its action. That
//!   time is tracked so that about 40% of first looks find the step done:
//!   shortened a little after each hit, lengthened a little after each miss
//!   (a quantile tracker). A look that misses costs one or two calls (the
//!   tasks are looked at first: see `aws::observe`), a late look delays
//!   every later batch; 40% met both the overhead and the calls targets of
//!   the benchmark, 50% missed the overhead (docs/performance.md).
//! - A look that finds the step not done aims the next one from what the
//!   tasks show: ECS's own `createdAt` and `startedAt` give how long a start
//!   takes exactly (the service's existing tasks teach it before the first
//!   step), and looks that saw a task running but not yet healthy, then
//!   healthy, bracket how long health takes. After a miss, the next look is
//!   aimed at the 80th percentile of those health times, not the median:
//!   one more look is dearer than a sliver of delay.
//! - With nothing to predict from, looks come every poll interval, then
//!   back off (two looks at each of 1, 2, 4 and 8 intervals).
//!
//! Every other wait is paced by the decision, or slow when nothing but a
//! person can change it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::request::observation::TaskView;
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, RecycleStatus};

/// What one run has learnt about its tasks' timings.
#[derive(Debug, Default)]
pub(crate) struct Pace {
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
    /// Seconds from a step's action to its first look, once learnt.
    first_look: Option<f64>,
    /// The step being looked at: when it began, looks scheduled, and when
    /// the last look that found it not done was made.
    step: Option<StepLooks>,
    /// Looks in a row at a step that was predicted done and was not.
    misses: u32,
    /// Seconds from a step's action to when ECS's events showed it done,
    /// one per step (see [`Pace::deadline`]).
    settle: Vec<f64>,
    /// The step last sampled into `settle`.
    settled_step: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
struct StepLooks {
    began: DateTime<Utc>,
    scheduled: u32,
    missed_at: Option<DateTime<Utc>>,
    /// This run saw the step begin (its first look was paced within a poll
    /// of the action). A step begun by another replica or release, found on
    /// resuming, teaches nothing of how long a step takes.
    witnessed: bool,
}

/// The share of first looks meant to find the step done.
const HIT_RATE: f64 = 0.4;
/// Where in the learnt health times a look after a miss is aimed.
const HEALTH_QUANTILE: f64 = 0.8;
/// Where in the learnt settle times the look standing in for a lost event is aimed.
const SETTLE_QUANTILE: f64 = 0.8;
/// The margin past it, as a share of it (at least a poll interval).
const SETTLE_MARGIN: f64 = 0.25;
/// How far one step moves the first-look time: a small step, so that one
/// unlucky look does not shift the next by more than the tasks' own jitter.
const GAIN: f64 = 0.05;

/// Caps what is kept per run, whatever the number of tasks.
const MAX_SAMPLES: usize = 64;

fn push_capped(v: &mut Vec<f64>, x: f64) {
    if v.len() == MAX_SAMPLES {
        v.remove(0);
    }
    v.push(x);
}

fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() as f64 * q) as usize).min(s.len() - 1);
    Some(s[i])
}

fn median(v: &[f64]) -> Option<f64> {
    quantile(v, 0.5)
}

fn after(t: DateTime<Utc>, secs: f64) -> DateTime<Utc> {
    t + chrono::Duration::milliseconds((secs * 1000.0).round() as i64)
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

impl Pace {
    /// Learns from the tasks seen at `now` by a run started at `since`.
    pub(crate) fn learn(
        &mut self,
        tasks: &[TaskView],
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        for t in tasks {
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
                // Healthy somewhere between the last look that saw it not
                // yet and now; without such a look, `now` only bounds it
                // from above, and upper bounds alone would only ever grow.
                let upper = secs(started, now).max(0.0);
                if let Some(before) = self.not_yet.remove(&t.arn)
                    && t.health_checked
                {
                    push_capped(
                        &mut self.to_healthy,
                        (secs(started, before).max(0.0) + upper) / 2.0,
                    );
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

    /// When a task not yet serving should be: `None` when nothing is known
    /// to predict it. With its health delay unknown, when it should be running.
    fn serving_at(&self, t: &TaskView, step: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let health = if t.health_checked {
            quantile(&self.to_healthy, HEALTH_QUANTILE)
        } else {
            Some(0.0)
        };
        match (t.started_at, t.created_at) {
            (Some(started), _) => Some(after(started, health?)),
            (None, Some(created)) => Some(after(
                created,
                median(&self.to_running)? + health.unwrap_or(0.0),
            )),
            (None, None) => Some(after(
                step,
                median(&self.to_running)? + health.unwrap_or(0.0),
            )),
        }
    }

    /// The step that began at `began` was seen done at `now`: the first-look
    /// time moves towards the hit rate.
    pub(crate) fn step_done(&mut self, began: DateTime<Utc>, now: DateTime<Utc>) {
        let Some(step) = self.step.filter(|s| s.began == began) else {
            return;
        };
        self.step = None;
        if !step.witnessed {
            return;
        }
        let took = secs(began, now).max(0.0);
        self.first_look = Some(match self.first_look {
            // The first step: between the last look that missed and the hit.
            None => step
                .missed_at
                .map_or(took, |m| (secs(began, m).max(0.0) + took) / 2.0),
            Some(d) if step.scheduled <= 1 => d * (1.0 - GAIN * (1.0 - HIT_RATE)),
            Some(d) => d * (1.0 + GAIN * HIT_RATE),
        });
    }

    /// ECS's events showed the step that began at `began` done at `at`:
    /// one sample of how long such a step takes, once per step.
    pub(crate) fn settled(&mut self, began: DateTime<Utc>, at: DateTime<Utc>) {
        if self.settled_step == Some(began) {
            return;
        }
        self.settled_step = Some(began);
        push_capped(&mut self.settle, secs(began, at).max(0.0));
    }

    /// With ECS's events flowing, how long until the look that stands in
    /// for an event that never came (lost, or read by another replica) at
    /// the step that began at `step`: when the step should be done by what
    /// the events showed of this run's earlier steps (their 80th
    /// percentile) — before any, by twice how long the service's tasks take
    /// to start (ECS's `createdAt` to `startedAt`) — plus a margin (a
    /// quarter of that, at least `poll`). `None` while nothing is learnt:
    /// the step is paced as without events.
    pub(crate) fn deadline(
        &self,
        step: DateTime<Utc>,
        now: DateTime<Utc>,
        poll: Duration,
    ) -> Option<Duration> {
        let typical = match quantile(&self.settle, SETTLE_QUANTILE) {
            Some(seen) => seen,
            None => 2.0 * median(&self.to_running)?,
        };
        let margin = (typical * SETTLE_MARGIN).max(poll.as_secs_f64());
        let at = after(step, typical + margin);
        Some((at - now).to_std().unwrap_or(Duration::ZERO).max(poll))
    }

    /// How long to wait before the next look at a step that waits for new
    /// tasks since `step` (the time its action was decided): at the predicted
    /// time, or backing off from `poll` while there is nothing to predict from.
    pub(crate) fn next_look(
        &mut self,
        tasks: &[TaskView],
        step: DateTime<Utc>,
        now: DateTime<Utc>,
        poll: Duration,
    ) -> Duration {
        let looks = match &mut self.step {
            Some(s) if s.began == step => {
                // Called again for this step: the look just made missed.
                s.missed_at = Some(now);
                s.scheduled += 1;
                s.scheduled
            }
            _ => {
                let since = (now - step).to_std().unwrap_or_default();
                self.step = Some(StepLooks {
                    began: step,
                    scheduled: 1,
                    missed_at: None,
                    witnessed: since <= poll,
                });
                self.misses = 0;
                1
            }
        };
        if looks == 1
            && let Some(d) = self.first_look
            && let Ok(wait) = (after(step, d) - now).to_std()
        {
            return wait.max(Duration::from_millis(1));
        }
        let awaited: Vec<&TaskView> = tasks
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
                health_checked: tasks.iter().any(|t| t.health_checked),
                started_at: None,
                created_at: None,
                ..Default::default()
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
                // Past the prediction, or none: look again soon, then less
                // often; gently, since a look that finds the tasks not done
                // costs one call (two looks at each of 1, 2, 4, 8 polls).
                let n = (self.misses / 2).min(3);
                self.misses += 1;
                poll * 2u32.pow(n)
            }
        }
    }
}

/// When the step began, if the record waits for new tasks and nothing but
/// them can move it on: no cancel or closed window to act on, and not yet
/// slow (past half its stability timeout the decision says what it waits
/// for and why, and past all of it fails the request, naming the cause: it
/// needs whole looks). Such a record's tasks are looked at first
/// (`aws::observe::Look::NotYet`).
pub(crate) fn tasks_first(
    spec: &RecycleSpec,
    status: &RecycleStatus,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let step = awaits_tasks(status)?;
    let open = spec.not_after.is_none_or(|t| now <= t);
    let counted = crate::request::decide::stability_since(status, step);
    let slow = crate::request::decide::is_slow(spec, counted, now);
    (!spec.cancel && open && !slow).then_some(step)
}

/// Whether the status waits for new tasks to serve: the surge applied, or a
/// batch stopped, and the step not yet seen stable.
pub(crate) fn awaits_tasks(status: &RecycleStatus) -> Option<DateTime<Utc>> {
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
            ..Default::default()
        }
    }

    /// The tasks a look saw.
    fn obs(tasks: Vec<TaskView>) -> Vec<TaskView> {
        tasks
    }

    #[test]
    fn without_history_looks_back_off_from_the_poll_interval() {
        let mut pace = Pace::default();
        let o = obs(vec![task("new", 100, None, false)]);
        let poll = Duration::from_millis(100);
        let looks: Vec<Duration> = (0..10)
            .map(|_| pace.next_look(&o, at(0), at(200), poll))
            .collect();
        assert_eq!(
            looks,
            [100, 100, 200, 200, 400, 400, 800, 800, 800, 800]
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
    fn the_first_look_time_tracks_a_hit_rate() {
        let mut pace = Pace::default();
        let o = obs(vec![]);
        let poll = Duration::from_millis(100);
        // First step: looks at 1 s (missed) and 3 s (done): learnt as 2 s.
        pace.next_look(&o, at(0), at(0), poll);
        pace.next_look(&o, at(0), at(1_000), poll);
        pace.step_done(at(0), at(3_000));
        assert_eq!(pace.first_look, Some(2.0));
        // Next step: the first look comes 2 s after its action.
        let wait = pace.next_look(&o, at(10_000), at(10_050), poll);
        assert_eq!(wait, Duration::from_millis(1_950));
        // Done at the first look: a little sooner next time.
        pace.step_done(at(10_000), at(12_000));
        let hit = pace.first_look.unwrap();
        assert!(
            (hit - 2.0 * (1.0 - GAIN * (1.0 - HIT_RATE))).abs() < 1e-9,
            "{hit}"
        );
        // Missed at the first look: later next time.
        pace.next_look(&o, at(20_000), at(20_000), poll);
        pace.next_look(&o, at(20_000), at(22_000), poll);
        pace.step_done(at(20_000), at(22_500));
        let missed = pace.first_look.unwrap();
        assert!(
            (missed - hit * (1.0 + GAIN * HIT_RATE)).abs() < 1e-9,
            "{missed}"
        );
        // A step the tracker never saw begin teaches nothing.
        pace.step_done(at(30_000), at(31_000));
        assert_eq!(pace.first_look, Some(missed));
        // Nor one begun long before this run first looked at it (another
        // replica or release began it, and this one took the run over).
        pace.next_look(&o, at(40_000), at(220_000), poll);
        pace.step_done(at(40_000), at(221_000));
        assert_eq!(
            pace.first_look,
            Some(missed),
            "a resumed step is not a sample"
        );
    }

    #[test]
    fn the_look_standing_in_for_a_lost_event_comes_past_the_settle_times_seen() {
        let mut pace = Pace::default();
        let poll = Duration::from_millis(100);
        assert_eq!(pace.deadline(at(0), at(0), poll), None, "nothing learnt");
        // The service's tasks take 2 s to start: before any step is seen
        // through, twice that and a quarter more.
        pace.learn(
            &obs(vec![task("old", -10_000, Some(-8_000), true)]),
            Some(at(0)),
            at(0),
        );
        assert_eq!(
            pace.deadline(at(0), at(0), poll),
            Some(Duration::from_secs(5))
        );
        for (began, took) in [(0, 3_000), (10_000, 3_400), (20_000, 2_800)] {
            pace.settled(at(began), at(began + took));
            // A second report of the same step is no second sample.
            pace.settled(at(began), at(began + took + 5_000));
        }
        assert_eq!(pace.settle, vec![3.0, 3.4, 2.8]);
        // The 80th percentile (3.4 s) and a quarter more: 4.25 s after the step.
        let wait = pace.deadline(at(30_000), at(30_250), poll).unwrap();
        assert_eq!(wait, Duration::from_millis(4_000));
        // Past it: look within a poll interval.
        assert_eq!(pace.deadline(at(30_000), at(40_000), poll), Some(poll));
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
