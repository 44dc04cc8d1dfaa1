//! Each check against a made-up run: it passes the run the operator should
//! make, and fails the one with the bug it is there to catch.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::nemesis::Fault;
use crate::plan::{RequestPlan, ServicePlan, StoreKind, Timed};
use crate::timeline::Timeline;
use crate::watch::{Entry, Reading, Seen};

fn schedule(faults: Vec<Fault>) -> Schedule {
    Schedule {
        seed: 7,
        store: StoreKind::Embedded,
        replicas: 2,
        services: vec![ServicePlan {
            name: "s0".into(),
            tasks: 3,
            health_check: false,
            load_balancer: false,
            autoscaling: None,
            spot: None,
            ec2: false,
        }],
        requests: vec![RequestPlan {
            name: "r0".into(),
            service: 0,
            at: 0.0,
            batch_size: 1,
            maintain_capacity: true,
            wait_ms: 0,
            gate: None,
            hook: None,
            cancel_at: None,
            pause: None,
            protection: crate::shape::Protection::Default,
            shape: crate::shape::Shape::Batches,
        }],
        faults: faults
            .into_iter()
            .map(|fault| Timed { at: 1.0, fault })
            .collect(),
        events: false,
    }
}

fn arn(n: u32) -> String {
    format!("arn:aws:ecs:us-east-1:000000000000:task/c1/t{n}")
}

/// A task of s0 running from `start` (RUNNING at start + 0.3), stopped at
/// `stop` by `by` (a StopTask call's index, or another cause).
fn task(n: u32, start: f64, stop: Option<(f64, Value)>) -> Value {
    let mut transitions = vec![
        json!({"t": start, "lastStatus": "PROVISIONING", "healthStatus": "UNKNOWN", "desiredStatus": "RUNNING"}),
        json!({"t": start + 0.3, "lastStatus": "RUNNING", "healthStatus": "UNKNOWN", "desiredStatus": "RUNNING"}),
    ];
    let mut t = json!({"taskArn": arn(n), "cluster": "c1", "service": "s0", "startedBy": "ecs-svc/1",
                       "taskDefinitionArn": "td", "transitions": []});
    if let Some((at, by)) = stop {
        transitions.push(json!({"t": at, "lastStatus": "RUNNING", "healthStatus": "UNKNOWN", "desiredStatus": "STOPPED"}));
        transitions.push(json!({"t": at + 0.2, "lastStatus": "STOPPED", "healthStatus": "UNKNOWN", "desiredStatus": "STOPPED"}));
        match by {
            Value::Number(call) => {
                t["stoppedBy"] = json!("StopTask");
                t["stopCall"] = Value::Number(call);
            }
            other => t["stoppedBy"] = other,
        }
    }
    t["transitions"] = Value::Array(transitions);
    t
}

fn stop_call(t: f64, n: u32, caller: &str) -> Value {
    json!({"t": t, "op": "StopTask", "params": {"cluster": "c1", "task": arn(n)}, "caller": caller})
}

fn update_call(t: f64, count: u32, caller: &str) -> Value {
    json!({"t": t, "op": "UpdateService", "params": {"cluster": "c1", "service": "s0", "desiredCount": count}, "caller": caller})
}

fn timeline(calls: Vec<Value>, tasks: Vec<Value>, desired: &[(f64, u32)]) -> Timeline {
    let samples: Vec<Value> = desired
        .iter()
        .map(|(t, d)| json!({"t": t, "desired": d, "running": d, "pending": 0, "healthy": d}))
        .collect();
    serde_json::from_value(json!({
        "calls": calls, "tasks": tasks,
        "services": [{"cluster": "c1", "service": "s0", "samples": samples}],
        "now": 30.0
    }))
    .unwrap()
}

fn run(planned: f64, finished: Option<f64>, tasks: &[u32], surge: Option<(u32, u32)>) -> Run {
    Run {
        name: "r0".into(),
        service: "s0".into(),
        phase: if finished.is_some() {
            "Succeeded".into()
        } else {
            "Recycling".into()
        },
        message: String::new(),
        planned_at: Some(planned),
        finished_at: finished,
        original_desired: Some(3),
        tasks: tasks.iter().map(|n| arn(*n)).collect(),
        maintain_capacity: true,
        largest_batch: 1,
        surge,
    }
}

fn reading(t: f64, lease: Option<(&str, f64)>, phase: &str) -> Reading {
    let mut records = BTreeMap::new();
    records.insert(
        "r0".to_string(),
        Seen {
            service: "s0".into(),
            lease: lease.map(|(h, u)| (h.to_string(), u)),
            phase: phase.into(),
        },
    );
    Reading {
        sent: t,
        received: t + 0.01,
        records,
    }
}

struct Case {
    schedule: Schedule,
    timeline: Timeline,
    runs: Vec<Run>,
    observed: Observed,
    logs: Vec<(String, String)>,
}

impl Case {
    fn new(timeline: Timeline, runs: Vec<Run>) -> Self {
        Self {
            schedule: schedule(Vec::new()),
            timeline,
            runs,
            observed: Observed::default(),
            logs: Vec::new(),
        }
    }

    fn verdict(&self) -> Verdict {
        let e = Evidence {
            schedule: &self.schedule,
            world: World::new(&self.timeline),
            runs: self
                .runs
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect(),
            observed: &self.observed,
            logs: &self.logs,
            scaling_end: BTreeMap::new(),
            lease: 2.0,
        };
        check(&e)
    }

    fn found(&self) -> Vec<Invariant> {
        self.verdict()
            .violations
            .iter()
            .map(|v| v.invariant)
            .collect()
    }
}

/// A surged recycle of t1 (its plan: a selector left t2, t3 out) by r0-1:
/// surge 3 -> 4 at t=2, t1 stopped at t=3 with t4 (the surge's task) and
/// t2, t3 serving, restore at t=9.
fn good_run() -> Case {
    let calls = vec![
        update_call(2.0, 4, "r0-1"),
        stop_call(3.0, 1, "r0-1"),
        update_call(9.0, 3, "r0-1"),
    ];
    let tasks = vec![
        task(1, 0.0, Some((3.0, json!(1)))),
        task(2, 0.0, None),
        task(3, 0.0, None),
        task(4, 2.1, None),
        task(5, 3.1, None),
    ];
    let timeline = timeline(calls, tasks, &[(0.0, 3), (2.0, 4), (9.0, 3)]);
    Case::new(timeline, vec![run(1.0, Some(10.0), &[1], Some((3, 4)))])
}

#[test]
fn a_good_run_passes_every_check() {
    let case = good_run();
    let verdict = case.verdict();
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
}

#[test]
fn a_stop_that_leaves_fewer_serving_than_the_floor_is_a_capacity_violation() {
    let mut case = good_run();
    // No surge task: the stop leaves 2 of 3.
    case.timeline.tasks.retain(|t| !t.task_arn.ends_with("/t4"));
    assert!(case.found().contains(&Invariant::Capacity));
}

#[test]
fn a_task_lost_to_ecs_just_before_the_stop_is_not_the_operators() {
    let mut case = good_run();
    let lost = serde_json::from_value(task(4, 2.1, Some((2.8, json!("health-check"))))).unwrap();
    case.timeline.tasks[3] = lost;
    assert!(!case.found().contains(&Invariant::Capacity));
}

#[test]
fn a_task_stopped_twice_or_a_replacement_stopped_is_found() {
    let mut case = good_run();
    case.timeline
        .calls
        .push(serde_json::from_value(stop_call(4.0, 1, "r1-1")).unwrap());
    assert!(case.found().contains(&Invariant::StoppedOnce));
    let mut case = good_run();
    case.timeline
        .calls
        .push(serde_json::from_value(stop_call(4.0, 5, "r0-1")).unwrap());
    assert!(case.found().contains(&Invariant::ReplacementStopped));
}

#[test]
fn taking_the_surge_off_the_autoscalers_count_is_a_surge_violation() {
    let mut case = good_run();
    // The autoscaler set 7 at t=8; the restore at t=9 sets 6 (7 - 1): even
    // right after the autoscaler's change, 6 is not the run's to set.
    case.timeline.calls.insert(
        2,
        serde_json::from_value(json!({"t": 8.0, "op": "_sim:ScalingPolicy",
            "params": {"cluster": "c1", "service": "s0", "before": 4, "after": 7}}))
        .unwrap(),
    );
    case.timeline.calls[3] = serde_json::from_value(update_call(9.0, 6, "r0-1")).unwrap();
    case.timeline.services[0].samples = serde_json::from_value(json!([
        {"t": 0.0, "desired": 3}, {"t": 2.0, "desired": 4}, {"t": 8.0, "desired": 7}, {"t": 9.0, "desired": 6}
    ]))
    .unwrap();
    assert!(case.found().contains(&Invariant::Surge));
    // Leaving the 7 alone is right.
    case.timeline.calls.remove(3);
    case.timeline.services[0].samples.pop();
    assert!(
        !case.found().contains(&Invariant::Surge),
        "{:?}",
        case.verdict().violations
    );
}

#[test]
fn a_call_while_another_replica_holds_the_lease_is_fenced_off() {
    let mut case = good_run();
    case.observed.readings = vec![
        reading(2.5, Some(("r1-1", 4.0)), "Recycling"),
        reading(3.5, Some(("r1-1", 4.0)), "Recycling"),
    ];
    let verdict = case.verdict();
    assert!(
        verdict
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Fence)
    );
    // The other's lease renewed between the readings: still theirs.
    case.observed.readings[1] = reading(3.5, Some(("r1-1", 5.4)), "Recycling");
    assert!(case.found().contains(&Invariant::Fence));
    // Its own lease: fine.
    case.observed.readings = vec![
        reading(2.5, Some(("r0-1", 4.0)), "Recycling"),
        reading(3.5, Some(("r0-1", 4.0)), "Recycling"),
    ];
    assert!(!case.found().contains(&Invariant::Fence));
    // Taken between the readings: not judged.
    case.observed.readings[0] = reading(2.5, None, "Recycling");
    case.observed.readings[1] = reading(3.5, Some(("r0-1", 5.2)), "Recycling");
    let verdict = case.verdict();
    assert!(
        !verdict
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Fence)
    );
    // The two desired-count calls, outside the readings, were not judged either.
    assert_eq!(verdict.unjudged, 3);
}

#[test]
fn a_late_call_right_after_sigcont_is_still_a_violation_and_says_so() {
    let mut case = good_run();
    case.observed.readings = vec![
        reading(2.5, Some(("r1-1", 4.0)), "Recycling"),
        reading(3.5, Some(("r1-1", 4.0)), "Recycling"),
    ];
    case.observed.journal.push(Entry {
        t: 2.95,
        what: Act::Resumed("r0-1".into()),
    });
    let verdict = case.verdict();
    let fence: Vec<_> = verdict
        .violations
        .iter()
        .filter(|v| v.invariant == Invariant::Fence)
        .collect();
    assert_eq!(fence.len(), 1, "{fence:?}");
    assert!(fence[0].detail.contains("first call since a SIGCONT"));
}

#[test]
fn a_request_failed_without_a_fault_that_may_fail_it_or_unfinished_is_found() {
    let mut case = good_run();
    case.runs[0].phase = "Failed".into();
    assert!(case.found().contains(&Invariant::Liveness));
    case.schedule = schedule(vec![Fault::FailedStarts {
        service: 0,
        fraction: 1.0,
        held: 1.0,
    }]);
    assert!(!case.found().contains(&Invariant::Liveness));
    let mut case = good_run();
    case.runs[0].phase = "Recycling".into();
    assert!(case.found().contains(&Invariant::Liveness));
    case.runs.clear();
    assert!(case.found().contains(&Invariant::Records));
}

#[test]
fn two_requests_working_on_one_service_at_once_are_found() {
    let mut case = good_run();
    let mut a = reading(2.0, None, "Recycling");
    let mut other = a.records["r0"].clone();
    other.phase = "Surging".into();
    a.records.insert("r9".into(), other);
    let mut b = a.clone();
    b.sent = 2.1;
    case.observed.readings = vec![a, b];
    assert!(case.found().contains(&Invariant::OnePerService));
}

#[test]
fn the_same_warning_many_times_a_second_is_a_storm() {
    let mut case = good_run();
    let line = r#"{"timestamp":"2026-01-01T00:00:01.5Z","level":"WARN","fields":{"message":"could not write status"}}"#;
    case.logs = vec![("r0-1".into(), vec![line; 31].join("\n"))];
    assert!(case.found().contains(&Invariant::ErrorStorm));
    case.logs = vec![("r0-1".into(), vec![line; 30].join("\n"))];
    assert!(!case.found().contains(&Invariant::ErrorStorm));
}

#[test]
fn a_protected_task_stopped_is_found() {
    let mut case = good_run();
    assert!(!case.found().contains(&Invariant::ProtectedStopped));
    // Stopped while protected, its protection never read.
    case.timeline.tasks[0].transitions[2].protected = true;
    assert!(case.found().contains(&Invariant::ProtectedStopped));
    // Read at t=2.9, protected at t=2.95, stopped at t=3: a race ECS
    // leaves open, counted apart.
    let read = json!({"t": 2.9, "op": "GetTaskProtection", "caller": "r0-1",
                      "params": {"cluster": "c1", "tasks": [arn(1)]}});
    let calls = &mut case.timeline.calls;
    calls.insert(1, serde_json::from_value(read).unwrap());
    calls.insert(
        2,
        serde_json::from_value(protect_call(2.95, 1, true, 5)).unwrap(),
    );
    assert!(!case.found().contains(&Invariant::ProtectedStopped));
    assert_eq!(case.verdict().raced, 1);
    // Protected at t=2.8, before the read: the stop is the operator's.
    case.timeline.calls[2].t = 2.8;
    case.timeline.calls.swap(1, 2);
    assert!(case.found().contains(&Invariant::ProtectedStopped));
}

fn protect_call(t: f64, n: u32, enabled: bool, minutes: u32) -> Value {
    json!({"t": t, "op": "UpdateTaskProtection", "caller": "local", "params": {
        "cluster": "c1", "tasks": [arn(n)], "protectionEnabled": enabled, "expiresInMinutes": minutes}})
}

#[test]
fn a_succeeded_run_that_left_an_unprotected_planned_task_running_is_found() {
    let mut case = good_run();
    case.runs[0].tasks.push(arn(2));
    assert!(case.found().contains(&Invariant::LeftRunning));
    // Protected for a minute of ECS's (a second here) from t=4: left for it.
    let protect = serde_json::from_value(protect_call(4.0, 2, true, 1)).unwrap();
    case.timeline.calls.push(protect);
    assert!(!case.found().contains(&Invariant::LeftRunning));
    // Protected only before the run, or cleared before it planned: not a reason.
    case.timeline.calls.pop();
    for call in [
        protect_call(0.1, 2, true, 1),
        protect_call(0.5, 2, false, 1),
    ] {
        case.timeline
            .calls
            .insert(0, serde_json::from_value(call).unwrap());
    }
    case.timeline.calls.swap(0, 1);
    assert!(case.found().contains(&Invariant::LeftRunning));
}

#[test]
fn a_stop_as_one_run_ends_and_the_next_begins_is_judged_by_either_plan() {
    let mut case = good_run();
    // r1 plans t5 (a replacement of r0's) a few milliseconds before r0's
    // end, as the clocks lay them, and stops it.
    let mut next = run(9.98, None, &[5], None);
    next.name = "r1".into();
    case.runs.push(next);
    case.timeline
        .calls
        .push(serde_json::from_value(stop_call(10.01, 5, "r0-1")).unwrap());
    assert!(
        !case.found().contains(&Invariant::ReplacementStopped),
        "{:?}",
        case.verdict().violations
    );
}

#[test]
fn without_a_surge_the_floor_follows_the_largest_batch_of_the_strategy() {
    // Unsurged, t1 and t2 stopped at once at t=3 (no t4): one left serving.
    let mut case = good_run();
    case.timeline.tasks.retain(|t| !t.task_arn.ends_with("/t4"));
    let second = stop_call(3.0, 2, "r0-1");
    case.timeline
        .calls
        .insert(2, serde_json::from_value(second).unwrap());
    case.timeline.tasks[1] = serde_json::from_value(task(2, 0.0, Some((3.0, json!(2))))).unwrap();
    case.runs[0].maintain_capacity = false;
    case.runs[0].tasks = vec![arn(1), arn(2)];
    // Batches of one: a floor of 2, broken.
    assert!(case.found().contains(&Invariant::Capacity));
    // All at once (both planned tasks in one batch): a floor of 1, kept.
    case.runs[0].largest_batch = 2;
    assert!(
        !case.found().contains(&Invariant::Capacity),
        "{:?}",
        case.verdict().violations
    );
}

#[test]
fn a_task_spot_warned_just_before_the_stop_is_not_the_operators() {
    let mut case = good_run();
    // t4 (the surge's) warned by Fargate Spot at t=2.8: still RUNNING, told
    // to stop, STOPPED two (scaled) seconds later; never a replica's stop.
    let mut warned = task(4, 2.1, Some((2.8, json!("spot-interruption"))));
    warned["transitions"][3]["t"] = json!(4.8);
    case.timeline.tasks[3] = serde_json::from_value(warned).unwrap();
    assert!(
        !case.found().contains(&Invariant::Capacity),
        "{:?}",
        case.verdict().violations
    );
    // Warned long before the stop, and no replacement: the stop is the operator's to answer for.
    let mut long_ago = task(4, 0.0, Some((0.2, json!("spot-interruption"))));
    long_ago["transitions"][3]["t"] = json!(2.2);
    case.timeline.tasks[3] = serde_json::from_value(long_ago).unwrap();
    assert!(case.found().contains(&Invariant::Capacity));
}

#[test]
fn a_count_the_autoscaler_set_after_a_slow_plan_look_is_left_not_blamed() {
    // The plan stamped t=6 was made on a look whose DescribeServices came
    // at t=1.5 (its reads slowed by the API share); the autoscaler set 5
    // at t=2, before the plan, after its look. No surge was sent, and the
    // run ended leaving the autoscaler's 5: right.
    let describe = json!({"t": 1.5, "op": "DescribeServices", "caller": "r0-1",
                          "params": {"cluster": "c1", "services": ["s0"]}});
    let scaled = json!({"t": 2.0, "op": "_sim:ScalingPolicy",
                        "params": {"cluster": "c1", "service": "s0", "before": 3, "after": 5}});
    let calls = vec![describe, scaled];
    let tasks = vec![task(1, 0.0, None), task(2, 0.0, None), task(3, 0.0, None)];
    let timeline = timeline(calls, tasks, &[(0.0, 3), (2.0, 5)]);
    let mut failed = run(6.0, Some(9.0), &[1], Some((3, 4)));
    failed.phase = "Failed".into();
    let mut case = Case::new(timeline, vec![failed]);
    assert!(
        !case.found().contains(&Invariant::Surge),
        "{:?}",
        case.verdict().violations
    );
    // Without that look the change is older than any look the plan could
    // have been made on: the count should be back at 3.
    case.timeline.calls.remove(0);
    assert!(case.found().contains(&Invariant::Surge));
}

#[test]
fn a_foreign_deployment_held_by_protected_tasks_may_fail_a_run_neither_alone() {
    let mut case = good_run();
    case.runs[0].phase = "Failed".into();
    let deployment = Fault::ForeignDeployment { service: 0 };
    let protect = Fault::Protect {
        service: 0,
        count: 2,
        pick: 0.0,
        minutes: 6,
        cleared_after: None,
    };
    case.schedule = schedule(vec![deployment.clone()]);
    assert!(case.found().contains(&Invariant::Liveness));
    case.schedule = schedule(vec![protect.clone()]);
    assert!(case.found().contains(&Invariant::Liveness));
    case.schedule = schedule(vec![deployment, protect]);
    assert!(!case.found().contains(&Invariant::Liveness));
}

#[test]
fn a_scale_out_past_an_ec2_groups_room_may_fail_a_run_not_on_fargate() {
    let mut case = good_run();
    case.runs[0].phase = "Failed".into();
    case.schedule = schedule(vec![Fault::Scale { service: 0, to: 7 }]);
    assert!(case.found().contains(&Invariant::Liveness));
    case.schedule.services[0].ec2 = true;
    assert!(!case.found().contains(&Invariant::Liveness));
}
