//! The timeline alone: when a look adds a sample, how marks are read from
//! a decision, and the bound held whatever the run's length.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn counts(desired: u32, running: u32, healthy: u32) -> Counts {
    Counts {
        desired,
        running,
        pending: desired.saturating_sub(running),
        healthy: Some(healthy),
        serving: None,
    }
}

#[test]
fn a_look_that_saw_nothing_new_adds_nothing_unless_written_a_minute_on() {
    let mut t = Timeline::default();
    t.add(at(0), Some(counts(3, 3, 3)), vec![], false);
    // Same counts, nothing marked: not a reason to write, written or not,
    // until a minute has passed; then only on a write made anyway.
    t.add(at(2), Some(counts(3, 3, 3)), vec![], false);
    t.add(at(30), Some(counts(3, 3, 3)), vec![], true);
    t.add(at(90), Some(counts(3, 3, 3)), vec![], false);
    assert_eq!(t.samples.len(), 1, "{t:?}");
    t.add(at(91), Some(counts(3, 3, 3)), vec![], true);
    assert_eq!(t.samples.len(), 2, "a minute on, riding a write: {t:?}");
    assert_eq!(t.samples[1].at, 91_000);
    // Counts that move are sampled at once; a mark keeps its own time.
    t.add(at(92), Some(counts(4, 3, 3)), vec![], false);
    t.add(
        at(93),
        Some(counts(4, 3, 3)),
        vec![(MarkKind::Surge, 0)],
        false,
    );
    assert_eq!(t.samples.len(), 3);
    assert_eq!(
        t.marks,
        [Mark {
            at: 93_000,
            kind: MarkKind::Surge,
            batch: 0
        }]
    );
    // A service that could not be had adds no sample, but its marks stay.
    t.add(at(94), None, vec![(MarkKind::Restoring, 0)], true);
    assert_eq!((t.samples.len(), t.marks.len()), (3, 2));
}

#[test]
fn samples_are_thinned_within_the_bound_keeping_every_dip_and_the_last_look() {
    let mut t = Timeline::default();
    // Ten thousand looks, every one a change: 10 tasks with one stopped and
    // replaced in turn, and once, deep in the run, running down to 6.
    for i in 0..10_000i64 {
        let running = match i {
            7_777 => 6,
            i if i % 3 == 0 => 10,
            _ => 11,
        };
        t.add(at(i * 2), Some(counts(11, running, running)), vec![], false);
        assert!(t.samples.len() <= MAX_SAMPLES, "at look {i}");
    }
    // Merged neighbours of a service that swings between 10 and 11 read
    // alike (their low is 10): those collapse into one, so the count left
    // is whatever came since.
    assert!(t.thinned >= 6, "thinned {} times", t.thinned);
    let lowest = t.samples.iter().map(|s| s.counts.running).min();
    assert_eq!(lowest, Some(6), "the dip survives every thinning");
    let lowest_healthy = t.samples.iter().filter_map(|s| s.counts.healthy).min();
    assert_eq!(lowest_healthy, Some(6));
    let last = t.samples.last().unwrap();
    assert_eq!(
        (last.at, last.counts.running),
        (19_998_000, 10),
        "the last look as it was"
    );
    assert_eq!(t.samples[0].at, 0, "the first look stays first");
    assert!(
        t.samples.windows(2).all(|w| w[0].at < w[1].at),
        "in time order"
    );
}

#[test]
fn marks_are_bounded_and_the_rare_ones_outlive_the_batches() {
    let mut t = Timeline::default();
    t.add(
        at(0),
        Some(counts(200, 200, 200)),
        vec![(MarkKind::Surge, 0)],
        true,
    );
    t.add(at(1), None, vec![(MarkKind::GateHeld, 0)], true);
    t.add(at(2), None, vec![(MarkKind::GateReleased, 0)], true);
    for batch in 1..=200u32 {
        let s = i64::from(batch) * 10;
        t.add(at(s), None, vec![(MarkKind::Stopped, batch)], true);
        t.add(at(s + 5), None, vec![(MarkKind::Serving, batch)], true);
        assert!(t.marks.len() <= MAX_MARKS, "batch {batch}");
    }
    t.add(at(3000), None, vec![(MarkKind::Restoring, 0)], true);
    t.add(at(3001), None, vec![(MarkKind::Restored, 0)], true);
    let kinds: Vec<&MarkKind> = t.marks.iter().map(|m| &m.kind).collect();
    for rare in [
        MarkKind::Surge,
        MarkKind::GateHeld,
        MarkKind::GateReleased,
        MarkKind::Restoring,
        MarkKind::Restored,
    ] {
        assert!(kinds.contains(&&rare), "{rare:?} kept: {kinds:?}");
    }
    let stopped: Vec<u32> = t
        .marks
        .iter()
        .filter(|m| m.kind == MarkKind::Stopped)
        .map(|m| m.batch)
        .collect();
    assert_eq!(stopped.first(), Some(&1), "{stopped:?}");
    assert_eq!(stopped.last(), Some(&200), "{stopped:?}");
    assert!(stopped.len() >= 10, "batches still drawn: {stopped:?}");
    assert!(
        t.marks.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order"
    );
}

#[test]
fn a_full_timeline_stays_within_its_bytes() {
    // The most a timeline holds: every sample of a load-balanced service a
    // week into its run (nine-digit offsets) with four-digit counts, and
    // every mark with a batch number of four digits.
    let week = 7 * 24 * 3600 * 1000;
    let t = Timeline {
        start: Some(at(0)),
        samples: (0..MAX_SAMPLES as u64)
            .map(|i| Sample {
                at: week - i,
                counts: Counts {
                    desired: 1001,
                    running: 1000,
                    pending: 1000,
                    healthy: Some(1000),
                    serving: Some(1000),
                },
            })
            .collect(),
        marks: (0..MAX_MARKS as u64)
            .map(|i| Mark {
                at: week - i,
                kind: MarkKind::HookAnswered,
                batch: 1000,
            })
            .collect(),
        thinned: 99,
    };
    let bytes = serde_json::to_string(&t).unwrap().len();
    println!(
        "a full timeline: {} samples, {} marks, {bytes} bytes of JSON",
        t.samples.len(),
        t.marks.len()
    );
    assert!(bytes <= 8 * 1024, "{bytes} bytes");
}

#[test]
fn samples_and_marks_read_back_and_unknown_words_are_kept() {
    let stored = json!({
        "start": "2026-11-30T10:00:00Z",
        "samples": [[0, 3, 3, 0, 3], [1500, 4, 3, 1, null, 3]],
        "marks": [{"at": 1500, "kind": "stopped", "batch": 1}, {"at": 9, "kind": "fromLater"}]
    });
    let t: Timeline = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(t.samples[1].counts.healthy, None);
    assert_eq!(t.samples[1].counts.serving, Some(3));
    assert_eq!(t.marks[1].kind, MarkKind::Other("fromLater".into()));
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        stored,
        "written back as read"
    );
    assert_eq!(
        t.time_of(1500),
        Some("2026-11-30T10:00:01.5Z".parse().unwrap())
    );
    for bad in [
        json!([1, 2]),
        json!([0, 1, 2, 3, 4, 5, 6]),
        json!([0, null, 1, 1, 1]),
    ] {
        assert!(
            serde_json::from_value::<Sample>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    // A status written before the timeline was kept reads, with none.
    let old: crate::request::status::RecycleStatus =
        serde_json::from_value(json!({"phase": "Recycling", "batches": 2})).unwrap();
    assert!(old.timeline.is_empty());
    assert!(
        serde_json::to_value(&old)
            .unwrap()
            .get("timeline")
            .is_none(),
        "and writes none"
    );
}

#[test]
fn looks_that_ended_at_the_tasks_are_added_in_their_place_when_written() {
    use crate::request::observation::TaskView;
    let task = |arn: &str, status: &str, desired_running: bool, healthy: bool| TaskView {
        arn: arn.into(),
        last_status: status.into(),
        desired_running,
        health: if healthy { "HEALTHY" } else { "UNKNOWN" }.into(),
        health_checked: true,
        ..Default::default()
    };
    let mut status = crate::request::status::RecycleStatus {
        started_at: Some(at(0)),
        phase: crate::request::status::Phase::Recycling,
        surge: Some(crate::request::status::DesiredChange { from: 2, to: 3 }),
        ..Default::default()
    };
    status
        .timeline
        .add(at(0), Some(counts(2, 2, 2)), vec![], true);
    // The batch's task still RUNNING though told to stop, its replacement
    // provisioning: running 3 (ECS still counts it), pending 1, healthy 2;
    // desired is the surge's, which the look did not ask for.
    let tasks = [
        task("t1", "RUNNING", false, true),
        task("t2", "RUNNING", true, true),
        task("s", "RUNNING", true, true),
        task("r1", "PROVISIONING", true, false),
    ];
    let seen = tasks_look(&status, &tasks).unwrap();
    assert_eq!(
        seen,
        Counts {
            desired: 3,
            running: 3,
            pending: 1,
            healthy: Some(2),
            serving: None
        }
    );
    // The decision at 20 s saw what the last sample holds: it added none.
    status
        .timeline
        .add(at(20), Some(counts(2, 2, 2)), vec![], true);
    assert_eq!(status.timeline.samples.len(), 1);
    let looks = [(at(5), seen), (at(6), seen), (at(10), counts(3, 3, 2))];
    status.timeline.backfill(&looks, (at(20), counts(2, 2, 2)));
    let samples: Vec<(u64, u32)> = status
        .timeline
        .samples
        .iter()
        .map(|s| (s.at, s.counts.running))
        .collect();
    assert_eq!(
        samples,
        [(0, 2), (5_000, 3), (10_000, 3), (20_000, 2)],
        "in time order, repeats left out, and the decision's own look after them"
    );
    // Outside the run nothing is kept.
    status.phase = crate::request::status::Phase::Succeeded;
    assert_eq!(tasks_look(&status, &tasks), None);
}
