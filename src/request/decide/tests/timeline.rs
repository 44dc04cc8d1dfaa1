//! The run's timeline as the decision keeps it: a whole run's counts and
//! marks from start to end, the writes it adds (a look that would write
//! nothing else writes nothing), and its size on a 200-task run and on a
//! run held by a gate for an hour. Run with --nocapture for the figures.

use super::*;
use crate::request::timeline::{MarkKind, Timeline};

/// A service as the decision's looks see it: tasks stopped leave at once;
/// each replacement is PROVISIONING for one look, RUNNING unhealthy for
/// the next, then serving.
struct Service {
    desired: u32,
    tasks: Vec<(String, u8)>,
    launched: usize,
}

impl Service {
    fn new(n: usize) -> Self {
        Self {
            desired: n as u32,
            tasks: (0..n).map(|i| (arn(i), 2)).collect(),
            launched: 0,
        }
    }

    fn look(&self) -> Observation {
        let views: Vec<TaskView> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, (arn, age))| match age {
                0 => provisioning(arn, 1000 + i as i64),
                1 => task(arn, "RUNNING", true, false, 1000 + i as i64),
                _ => serving(arn, i as i64),
            })
            .collect();
        let running = self.tasks.iter().filter(|(_, age)| *age > 0).count() as u32;
        let pending = self.tasks.len() as u32 - running;
        obs(service(self.desired, running, pending), views)
    }

    /// The decision's actions, then the scheduler's turn.
    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::SetDesired { to, .. } => self.desired = *to,
                Action::StopTask { arn, .. } => self.tasks.retain(|(a, _)| a != arn),
                Action::SetScaling(_) => {}
            }
        }
        for (_, age) in &mut self.tasks {
            *age = (*age + 1).min(2);
        }
        while (self.tasks.len() as u32) < self.desired {
            self.launched += 1;
            self.tasks.push((arn(1_000_000 + self.launched), 0));
        }
        self.tasks.truncate(self.desired as usize);
    }
}

/// A task ARN as long as ECS's, so that a status weighs what it would.
fn arn(i: usize) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/prod/{i:032x}")
}

/// Looks, writes (a status that changed) and writes made only for the timeline.
#[derive(Debug, Default)]
struct Tally {
    looks: usize,
    writes: usize,
    for_the_timeline: usize,
}

impl Tally {
    fn count(&mut self, before: &RecycleStatus, after: &RecycleStatus) {
        self.looks += 1;
        if before != after {
            self.writes += 1;
            let strip = |s: &RecycleStatus| RecycleStatus {
                timeline: Timeline::default(),
                ..s.clone()
            };
            if strip(before) == strip(after) {
                self.for_the_timeline += 1;
            }
        }
    }
}

fn bytes(status: &RecycleStatus) -> (usize, usize) {
    (
        serde_json::to_string(&status.timeline).unwrap().len(),
        serde_json::to_string(status).unwrap().len(),
    )
}

/// Runs a whole request against the model, a look every second or when
/// the decision asks; the final status and the tally.
fn whole_run(spec: &RecycleSpec, n: usize) -> (RecycleStatus, Tally) {
    let mut svc = Service::new(n);
    let mut status = RecycleStatus::default();
    let mut tally = Tally::default();
    let mut now = 0;
    for _ in 0..100_000 {
        let d = run(spec, &status, &svc.look(), now);
        tally.count(&status, &d.status);
        svc.apply(&d.actions);
        status = d.status;
        match d.requeue {
            None => break,
            Some(after) => now += after.as_secs().max(1) as i64,
        }
    }
    assert_eq!(status.phase, Phase::Succeeded, "{}", status.message);
    (status, tally)
}

#[test]
fn a_run_keeps_its_counts_and_marks_from_start_to_end() {
    let spec = spec(json!({"wait": "5s"}));
    let (status, tally) = whole_run(&spec, 3);
    let t = &status.timeline;
    assert_eq!(
        t.start, status.started_at,
        "from the look that began the run"
    );
    let first = t.samples.first().unwrap().counts;
    assert_eq!(
        (first.desired, first.running, first.healthy),
        (3, 3, Some(3))
    );
    let peak = t.samples.iter().map(|s| s.counts.desired).max();
    assert_eq!(peak, Some(4), "the surge is in the counts");
    let lowest = t.samples.iter().filter_map(|s| s.counts.healthy).min();
    assert_eq!(
        lowest,
        Some(3),
        "a replacement that did not serve yet shows"
    );
    assert!(
        t.samples.iter().any(|s| s.counts.pending == 1),
        "a provisioning replacement is pending: {:?}",
        t.samples
    );
    let marks: Vec<(MarkKind, u32)> = t.marks.iter().map(|m| (m.kind.clone(), m.batch)).collect();
    assert_eq!(
        marks,
        [
            (MarkKind::Surge, 0),
            (MarkKind::Stopped, 1),
            (MarkKind::Serving, 1),
            (MarkKind::Stopped, 2),
            (MarkKind::Serving, 2),
            (MarkKind::Stopped, 3),
            (MarkKind::Serving, 3),
            (MarkKind::Restoring, 0),
            (MarkKind::Restored, 0),
        ]
    );
    let last = t.samples.last().unwrap();
    assert_eq!(
        t.time_of(last.at),
        status.finished_at,
        "the last look is the one that ended the run"
    );
    assert_eq!(
        tally.for_the_timeline, 0,
        "every sample rode a write the run made anyway: {tally:?}"
    );
}

#[test]
fn a_200_task_run_stays_within_the_bound_and_adds_few_writes() {
    let spec = spec(json!({"wait": "30s"}));
    let (status, tally) = whole_run(&spec, 200);
    let (timeline, whole) = bytes(&status);
    println!(
        "200 tasks, batch 1: {} looks, {} writes ({} for the timeline alone); timeline {} samples, \
         {} marks, thinned {}x: {timeline} bytes of a {whole}-byte status",
        tally.looks,
        tally.writes,
        tally.for_the_timeline,
        status.timeline.samples.len(),
        status.timeline.marks.len(),
        status.timeline.thinned,
    );
    assert!(status.timeline.samples.len() <= crate::request::timeline::MAX_SAMPLES);
    assert!(timeline <= 8 * 1024, "{timeline} bytes");
    assert_eq!(tally.for_the_timeline, 0, "{tally:?}");
    let stopped: Vec<u32> = status
        .timeline
        .marks
        .iter()
        .filter(|m| m.kind == MarkKind::Stopped)
        .map(|m| m.batch)
        .collect();
    assert_eq!((stopped.first(), stopped.last()), (Some(&1), Some(&200)));
}

#[test]
fn an_hour_held_by_a_gate_writes_only_what_changed() {
    use crate::gates::decide::{AlarmState, AlarmView};
    let spec = spec(json!({"gates": {"alarms": {"names": ["web-5xx"]}}}));
    let alarms = |state| -> crate::gates::decide::AlarmsSeen {
        Ok(vec![AlarmView {
            name: "web-5xx".into(),
            state,
            reason: "Threshold Crossed".into(),
        }])
    };
    let (firing, ok) = (alarms(AlarmState::Alarm), alarms(AlarmState::Ok));
    let mut svc = Service::new(4);
    svc.desired = 4;
    let mut status = RecycleStatus {
        surge: Some(DesiredChange { from: 3, to: 4 }),
        ..in_phase(Phase::Recycling)
    };
    status.plan.as_mut().unwrap().tasks = vec![arn(0), arn(1)];
    let mut tally = Tally::default();
    // What the shell keeps of the looks that wrote nothing.
    let mut kept = Vec::new();
    // A look every 2 s for an hour, the alarm firing; half an hour in, the
    // autoscaler adds a task.
    for look in 0..=1800i64 {
        if look == 900 {
            svc.desired = 5;
        }
        let ctx = Context {
            name: "rotate",
            spec: &spec,
            now: at(100 + look * 2),
            poll: Duration::from_secs(2),
            blocked_by: None,
            alarms: Some(&firing),
            serving_since: None,
        };
        let d = decide(&ctx, &status, &svc.look());
        assert!(d.actions.is_empty(), "held: nothing is done");
        if let Some(counts) = d.look_kept {
            assert_eq!(d.status, status, "kept only by a look that writes nothing");
            // As the shell keeps them: a change each.
            if kept.last().map(|k: &(_, _)| k.1) != Some(counts) {
                kept.push((ctx.now, counts));
            }
        }
        tally.count(&status, &d.status);
        svc.apply(&d.actions);
        status = d.status;
    }
    let (timeline, whole) = bytes(&status);
    println!(
        "an hour held by a gate: {} looks, {} writes ({} for the timeline alone); timeline {} \
         samples, {} marks: {timeline} bytes of a {whole}-byte status",
        tally.looks,
        tally.writes,
        tally.for_the_timeline,
        status.timeline.samples.len(),
        status.timeline.marks.len(),
    );
    // The hold's start is the one write in an hour; the autoscaler's task
    // as it came (asked for, pending, running, healthy) is kept by the
    // shell, not written.
    assert_eq!(tally.writes, 1, "{tally:?}");
    assert_eq!(tally.for_the_timeline, 0, "{tally:?}");
    assert_eq!(status.timeline.samples.len(), 1);
    assert_eq!(kept.len(), 4, "{} kept", kept.len());
    assert_eq!(
        status
            .timeline
            .marks
            .iter()
            .map(|m| &m.kind)
            .collect::<Vec<_>>(),
        [&MarkKind::GateHeld]
    );
    // Released: marked, and the run goes on.
    let ctx = Context {
        name: "rotate",
        spec: &spec,
        now: at(100 + 3602),
        poll: Duration::from_secs(2),
        blocked_by: None,
        alarms: Some(&ok),
        serving_since: None,
    };
    let look = svc.look();
    let mut d = decide(&ctx, &status, &look);
    // The release is written: the kept looks ride on it, in their place.
    crate::request::timeline::ride(&status, &mut d.status, &kept, &look, ctx.now);
    let samples: Vec<u32> = d
        .status
        .timeline
        .samples
        .iter()
        .map(|s| s.counts.desired)
        .collect();
    assert_eq!(samples.first(), Some(&4), "{samples:?}");
    assert!(
        samples.len() >= 5 && samples[1..].contains(&5),
        "{samples:?}"
    );
    let kinds: Vec<&MarkKind> = d.status.timeline.marks.iter().map(|m| &m.kind).collect();
    assert_eq!(
        kinds,
        [
            &MarkKind::GateHeld,
            &MarkKind::GateReleased,
            &MarkKind::Stopped
        ]
    );
}

#[test]
fn nothing_is_kept_before_the_run_starts_nor_after_it_ends() {
    let queued = Context {
        name: "rotate",
        spec: &spec(json!({})),
        now: at(10),
        poll: Duration::from_secs(1),
        blocked_by: Some("earlier"),
        alarms: None,
        serving_since: None,
    };
    let d = decide(&queued, &RecycleStatus::default(), &steady3());
    assert!(d.status.timeline.is_empty(), "queued: not its run yet");
    let mut done = in_phase(Phase::Succeeded);
    done.finished_at = Some(at(50));
    let d = run(&spec(json!({})), &done, &steady3(), 60);
    assert!(d.status.timeline.is_empty(), "{:?}", d.status.timeline);
}

#[test]
fn an_action_aws_refused_marks_the_run_turning_to_restore() {
    let status = batch_t1(Phase::Recycling);
    let stop = Action::StopTask {
        arn: "t1".into(),
        reason: "r".into(),
    };
    let failed = refused(&status, at(100), &stop, "AccessDeniedException".into());
    let kinds: Vec<&MarkKind> = failed.timeline.marks.iter().map(|m| &m.kind).collect();
    assert_eq!(kinds, [&MarkKind::Restoring], "{:?}", failed.timeline);
    assert!(failed.timeline.samples.is_empty(), "no look, no counts");
}
