//! Strategies: the canary's size, its bake watched by the gates and cut
//! short by an alarm, linear steps spaced by `every`, all at once with the
//! surge sized for it — each decided from the record alone, so a restart
//! makes the same batch.

use super::*;
use crate::gates::decide::{AlarmState, AlarmView, AlarmsSeen};

/// Ten tasks t0..t9, all serving, with one spare (t10) from a surge.
fn ten(surge: u32) -> (RecycleStatus, Observation) {
    let arns: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let status = RecycleStatus {
        phase: Phase::Recycling,
        plan: Some(Plan {
            original_desired: 10,
            original_scaling: None,
            tasks: arns.clone(),
            planned_at: at(0),
        }),
        surge: Some(DesiredChange {
            from: 10,
            to: 10 + surge,
        }),
        started_at: Some(at(0)),
        ..Default::default()
    };
    let mut tasks: Vec<TaskView> = arns
        .iter()
        .enumerate()
        .map(|(i, a)| serving(a, i as i64))
        .collect();
    for s in 0..surge {
        tasks.push(serving(&format!("s{s}"), 50));
    }
    (status, obs(service(10 + surge, 10 + surge, 0), tasks))
}

fn stops(d: &Decision) -> Vec<String> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::StopTask { arn, .. } => Some(arn.clone()),
            _ => None,
        })
        .collect()
}

fn canary() -> RecycleSpec {
    spec(
        json!({"batchSize": 3, "wait": "0s", "strategy": {"canary": {"first": 1, "bake": "5m"}},
                "gates": {"alarms": {"names": ["web-5xx"], "onAlarm": "abort"}}}),
    )
}

fn alarms(state: AlarmState) -> AlarmsSeen {
    Ok(vec![AlarmView {
        name: "web-5xx".into(),
        state,
        reason: "Threshold Crossed".into(),
    }])
}

fn gated_run(
    spec: &RecycleSpec,
    status: &RecycleStatus,
    o: &Observation,
    seen: &AlarmsSeen,
    now: i64,
) -> Decision {
    let ctx = Context {
        name: "rotate",
        spec,
        now: at(now),
        poll: Duration::from_secs(5),
        blocked_by: None,
        alarms: Some(seen),
        serving_since: None,
    };
    decide(&ctx, status, o)
}

/// The canary (t0) stopped at 100 and its replacement r0 serving.
fn canary_served() -> (RecycleStatus, Observation) {
    let (mut status, _) = ten(3);
    status.batches = 1;
    status.batch = vec!["t0".into()];
    status.stopped = vec!["t0".into()];
    status.step_started_at = Some(at(100));
    let mut tasks: Vec<TaskView> = (1..10).map(|i| serving(&format!("t{i}"), i)).collect();
    tasks.extend((0..3).map(|s| serving(&format!("s{s}"), 50)));
    tasks.push(serving("r0", 150));
    (status, obs(service(13, 13, 0), tasks))
}

#[test]
fn a_canary_stops_one_task_then_bakes_watched_then_goes_on_in_batches() {
    let spec = canary();
    let ok = alarms(AlarmState::Ok);
    let (status, o) = ten(3);
    let d = gated_run(&spec, &status, &o, &ok, 100);
    assert_eq!(stops(&d), ["t0"], "the canary is one task");
    assert!(
        d.status.message.starts_with("canary 1/1: stopped 1/10"),
        "{}",
        d.status.message
    );

    // Its replacement serves: the bake begins, the batch counts as recycled.
    let (status, o) = canary_served();
    let d = gated_run(&spec, &status, &o, &ok, 200);
    assert!(d.actions.is_empty() && d.status.batch.is_empty());
    assert_eq!(d.status.recycled().count(), 1);
    assert_eq!(
        d.status.wait_until,
        Some(at(500)),
        "baked 5m from when it serves"
    );
    assert_eq!(
        d.requeue,
        Some(Duration::from_secs(10)),
        "looked at as often as an alarm can change while baking"
    );
    assert!(
        d.status
            .message
            .contains("canary 1/1 baking 0s of 5m; the gate alarms are watched"),
        "{}",
        d.status.message
    );

    // Mid-bake: nothing stops.
    let mid = gated_run(&spec, &d.status, &o, &ok, 380);
    assert!(mid.actions.is_empty(), "{:?}", mid.actions);
    assert!(
        mid.status.message.contains("baking 3m of 5m"),
        "{}",
        mid.status.message
    );

    // Baked: the rest in batches of batchSize.
    let after = gated_run(&spec, &mid.status, &o, &ok, 501);
    assert_eq!(stops(&after), ["t1", "t2", "t3"]);
    assert!(
        after.status.message.starts_with("batch 1 of 3"),
        "{}",
        after.status.message
    );
}

#[test]
fn an_alarm_during_the_bake_ends_the_run_before_the_next_batch() {
    let spec = canary();
    let (status, o) = canary_served();
    let baking = gated_run(&spec, &status, &o, &alarms(AlarmState::Ok), 200).status;
    let d = gated_run(&spec, &baking, &o, &alarms(AlarmState::Alarm), 260);
    assert!(stops(&d).is_empty(), "no second batch: {:?}", d.actions);
    assert_eq!(d.status.phase, Phase::Restoring);
    let outcome = d.status.outcome.as_ref().unwrap();
    assert!(
        outcome.message.contains("web-5xx"),
        "the alarm is named: {}",
        outcome.message
    );
    assert!(
        d.status.unreplaced.is_empty(),
        "the canary served: it is recycled, not unreplaced"
    );

    // With onAlarm: pause the bake is held instead, and goes on once OK.
    let pause = spec_with_pause();
    let baking = gated_run(&pause, &status, &o, &alarms(AlarmState::Ok), 200).status;
    let held = gated_run(&pause, &baking, &o, &alarms(AlarmState::Alarm), 260);
    assert!(stops(&held).is_empty());
    assert!(
        held.status.alarm_hold.is_some(),
        "a hold during the bake is on record at once: {}",
        held.status.message
    );
    let still = gated_run(&pause, &held.status, &o, &alarms(AlarmState::Alarm), 600);
    assert!(stops(&still).is_empty(), "held past the bake's end");
    let freed = gated_run(&pause, &still.status, &o, &alarms(AlarmState::Ok), 700);
    assert_eq!(stops(&freed), ["t1", "t2", "t3"]);
}

fn spec_with_pause() -> RecycleSpec {
    spec(
        json!({"batchSize": 3, "wait": "0s", "strategy": {"canary": {"first": 1, "bake": "5m"}},
                "gates": {"alarms": {"names": ["web-5xx"], "onAlarm": "pause"}}}),
    )
}

#[test]
fn linear_steps_start_every_apart_and_the_surge_fits_a_step() {
    let spec = spec(json!({"strategy": {"linear": {"step": "20%", "every": "1m"}}}));
    let (status, o) = ten(2);
    let d = run(&spec, &status, &o, 100);
    assert_eq!(stops(&d), ["t0", "t1"], "a fifth of ten");
    assert!(
        d.status.message.starts_with("step 1 of 5"),
        "{}",
        d.status.message
    );

    // The step serves 30s after it was stopped: the next waits for the minute.
    let mut s = d.status.clone();
    let mut tasks: Vec<TaskView> = (2..10).map(|i| serving(&format!("t{i}"), i)).collect();
    tasks.extend([
        serving("s0", 50),
        serving("s1", 50),
        serving("r0", 120),
        serving("r1", 121),
    ]);
    let o = obs(service(12, 12, 0), tasks);
    let served = run(&spec, &s, &o, 130);
    assert_eq!(
        served.status.wait_until,
        Some(at(160)),
        "a minute after the step began"
    );
    assert!(stops(&served).is_empty());
    s = served.status;
    assert!(stops(&run(&spec, &s, &o, 159)).is_empty());
    assert_eq!(stops(&run(&spec, &s, &o, 160)), ["t2", "t3"]);

    // A step that takes longer than `every` is followed at once.
    let (status, o) = ten(2);
    let first = run(&spec, &status, &o, 100).status;
    let mut tasks: Vec<TaskView> = (2..10).map(|i| serving(&format!("t{i}"), i)).collect();
    tasks.extend([
        serving("s0", 50),
        serving("s1", 50),
        serving("r0", 220),
        serving("r1", 221),
    ]);
    let late = run(&spec, &first, &obs(service(12, 12, 0), tasks), 230);
    assert_eq!(late.status.wait_until, None);
    assert_eq!(late.requeue, Some(Duration::ZERO));
}

#[test]
fn all_at_once_surges_for_every_task_and_stops_them_together() {
    let spec = spec(json!({"strategy": "allAtOnce"}));
    let mut status = in_phase(Phase::Surging);
    status.plan.as_mut().unwrap().tasks = (0..10).map(|i| format!("t{i}")).collect();
    let (_, o) = ten(0);
    let d = run(&spec, &status, &o, 50);
    assert!(
        d.actions.contains(&Action::SetDesired { from: 10, to: 20 }),
        "the surge is sized for the one batch: {:?}",
        d.actions
    );
    let (status, o) = ten(10);
    let d = run(&spec, &status, &o, 100);
    assert_eq!(stops(&d).len(), 10);
    assert!(
        d.status.message.starts_with("all at once: stopped 10/10"),
        "{}",
        d.status.message
    );

    // Without the surge the same one batch.
    let spec = spec_without_surge();
    let (mut status, o) = ten(0);
    status.surge = None;
    assert_eq!(stops(&run(&spec, &status, &o, 100)).len(), 10);
}

fn spec_without_surge() -> RecycleSpec {
    spec(json!({"strategy": "allAtOnce", "maintainCapacity": false}))
}

#[test]
fn a_restart_mid_run_makes_the_same_batch() {
    let spec = canary();
    let ok = alarms(AlarmState::Ok);
    let (status, o) = canary_served();
    let baked = gated_run(&spec, &status, &o, &ok, 200).status;
    // The record is read again by another replica: the same decision.
    let again: RecycleStatus =
        serde_json::from_value(serde_json::to_value(&baked).unwrap()).unwrap();
    assert_eq!(
        stops(&gated_run(&spec, &again, &o, &ok, 501)),
        stops(&gated_run(&spec, &baked, &o, &ok, 501))
    );
}
