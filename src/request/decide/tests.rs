//! Table-driven tests of the decision: every phase, and every observation
//! that changes what is decided.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::request::observation::{DeploymentNote, DeploymentView, ServiceEvent, StoppedTask};
use crate::request::spec::parse_spec;
use crate::request::status::Event;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn spec(extra: serde_json::Value) -> RecycleSpec {
    let mut v = json!({"cluster": "prod", "service": "web"});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    parse_spec(&v, "spec").unwrap()
}

fn task(arn: &str, status: &str, desired_running: bool, healthy: bool, started: i64) -> TaskView {
    TaskView {
        arn: arn.into(),
        last_status: status.into(),
        desired_running,
        health: if healthy { "HEALTHY" } else { "UNKNOWN" }.into(),
        health_checked: true,
        started_at: Some(at(started)),
        created_at: Some(at(started - 10)),
        ..Default::default()
    }
}

fn serving(arn: &str, started: i64) -> TaskView {
    task(arn, "RUNNING", true, true, started)
}

fn service(desired: u32, running: u32, pending: u32) -> ServiceView {
    ServiceView {
        desired,
        running,
        pending,
        deployments: vec![DeploymentView {
            id: "ecs-svc/1".into(),
            primary: true,
            rollout: "COMPLETED".into(),
        }],
        ..Default::default()
    }
}

fn obs(svc: ServiceView, tasks: Vec<TaskView>) -> Observation {
    Observation {
        service: Ok(svc),
        tasks,
        scaling: None,
        evidence: Default::default(),
        targets_refused: None,
        drain: None,
    }
}

fn steady3() -> Observation {
    obs(
        service(3, 3, 0),
        vec![serving("t2", 20), serving("t1", 10), serving("t3", 30)],
    )
}

fn run(spec: &RecycleSpec, status: &RecycleStatus, o: &Observation, now: i64) -> Decision {
    let ctx = Context {
        name: "rotate",
        spec,
        now: at(now),
        poll: Duration::from_secs(1),
        blocked_by: None,
        alarms: None,
    };
    decide(&ctx, status, o)
}

fn in_phase(phase: Phase) -> RecycleStatus {
    RecycleStatus {
        phase,
        plan: Some(Plan {
            original_desired: 3,
            original_scaling: None,
            tasks: vec!["t1".into(), "t2".into(), "t3".into()],
            planned_at: at(0),
        }),
        started_at: Some(at(0)),
        ..Default::default()
    }
}

fn surged(phase: Phase) -> RecycleStatus {
    RecycleStatus {
        surge: Some(DesiredChange { from: 3, to: 4 }),
        ..in_phase(phase)
    }
}

#[test]
fn pending_persists_the_plan_before_touching_anything() {
    let d = run(&spec(json!({})), &RecycleStatus::default(), &steady3(), 100);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Surging);
    let plan = d.status.plan.unwrap();
    assert_eq!(plan.tasks, ["t1", "t2", "t3"], "oldest first");
    assert_eq!(plan.original_desired, 3);
    let messages: Vec<&str> = d.status.events.iter().map(|e| e.message.as_str()).collect();
    assert!(messages.contains(&"Starting task recycle for prod/web"));
    assert!(messages.contains(&"Original desired count: 3, tasks: 3"));
}

#[test]
fn pending_outcomes() {
    let deploying = {
        let mut o = steady3();
        if let Ok(s) = o.service.as_mut() {
            s.deployments[0].rollout = "IN_PROGRESS".into();
        }
        o
    };
    let missing = Observation {
        service: Err("ServiceNotFoundException: Service not found.".into()),
        tasks: vec![],
        scaling: None,
        evidence: Default::default(),
        targets_refused: None,
        drain: None,
    };
    let young = obs(service(1, 1, 0), vec![serving("t1", 90)]);
    let cases: Vec<(&str, RecycleSpec, Observation, Phase, &str)> = vec![
        (
            "cancel",
            spec(json!({"cancel": true})),
            steady3(),
            Phase::Cancelled,
            "cancelled",
        ),
        (
            "paused",
            spec(json!({"paused": true})),
            steady3(),
            Phase::Pending,
            "paused",
        ),
        (
            "someone's deployment",
            spec(json!({})),
            deploying,
            Phase::Pending,
            "waiting for deployment ecs-svc/1",
        ),
        (
            "missing service",
            spec(json!({})),
            missing,
            Phase::Failed,
            "Service not found",
        ),
        (
            "dry run",
            spec(json!({"dryRun": true})),
            steady3(),
            Phase::Succeeded,
            "would recycle 3 task(s)",
        ),
        (
            "no matching task",
            spec(json!({"selector": {"olderThan": "1h"}})),
            young,
            Phase::Succeeded,
            "nothing to recycle",
        ),
        (
            "window closed",
            spec(json!({"notAfter": "2020-01-01T00:00:00Z"})),
            steady3(),
            Phase::WindowClosed,
            "window closed at 2020-01-01T00:00:00Z before the recycle could start: 0/0 tasks recycled",
        ),
        (
            "no surge",
            spec(json!({"maintainCapacity": false})),
            steady3(),
            Phase::Recycling,
            "without spare",
        ),
    ];
    for (name, spec, o, phase, text) in cases {
        let d = run(&spec, &RecycleStatus::default(), &o, 100);
        assert_eq!(d.status.phase, phase, "{name}: {}", d.status.message);
        assert!(
            d.status.message.contains(text),
            "{name}: {}",
            d.status.message
        );
        assert!(
            d.actions.is_empty(),
            "{name}: nothing is touched while pending"
        );
    }
}

#[test]
fn pending_waits_its_turn_on_the_service() {
    let spec = spec(json!({}));
    let ctx = Context {
        name: "second",
        spec: &spec,
        now: at(1),
        poll: Duration::from_secs(1),
        blocked_by: Some("first"),
        alarms: None,
    };
    let d = decide(&ctx, &RecycleStatus::default(), &steady3());
    assert_eq!(d.status.phase, Phase::Pending);
    assert!(
        d.status.message.contains("request first"),
        "{}",
        d.status.message
    );
}

#[test]
fn surge_suspends_scale_in_raises_max_then_adds_capacity() {
    let mut o = steady3();
    let settings = ScalingSettings {
        min: 1,
        max: 3,
        dynamic_scaling_in_suspended: false,
        dynamic_scaling_out_suspended: false,
        scheduled_scaling_suspended: true,
    };
    o.scaling = Some(settings);
    let d = run(&spec(json!({})), &in_phase(Phase::Surging), &o, 100);
    let wanted = ScalingSettings {
        max: 4,
        dynamic_scaling_in_suspended: true,
        ..settings
    };
    assert_eq!(
        d.actions,
        [
            Action::SetScaling(wanted),
            Action::SetDesired { from: 3, to: 4 }
        ]
    );
    assert_eq!(d.status.surge, Some(DesiredChange { from: 3, to: 4 }));
    assert_eq!(d.status.surge_scaling, Some(wanted));
    assert_eq!(d.status.plan.unwrap().original_scaling, Some(settings));
}

#[test]
fn a_surge_on_record_but_not_observed_is_sent_again_and_only_then() {
    let d = run(&spec(json!({})), &surged(Phase::Surging), &steady3(), 100);
    assert_eq!(d.actions, [Action::SetDesired { from: 3, to: 4 }]);
    let applied = obs(service(4, 3, 1), steady3().tasks);
    let d = run(&spec(json!({})), &surged(Phase::Surging), &applied, 100);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Surging);
}

#[test]
fn surge_becomes_recycling_when_the_spare_task_serves() {
    let mut tasks = steady3().tasks;
    tasks.push(serving("new", 50));
    let d = run(
        &spec(json!({})),
        &surged(Phase::Surging),
        &obs(service(4, 4, 0), tasks),
        100,
    );
    assert_eq!(d.status.phase, Phase::Recycling);
}

#[test]
fn surge_that_never_stabilises_fails_through_restore() {
    let mut status = surged(Phase::Surging);
    status.step_started_at = Some(at(0));
    let d = run(
        &spec(json!({"stabilityTimeout": "1m"})),
        &status,
        &obs(service(4, 3, 1), steady3().tasks),
        61,
    );
    assert_eq!(d.status.phase, Phase::Restoring);
    let outcome = d.status.outcome.unwrap();
    assert_eq!(outcome.phase, Phase::Failed);
    assert!(outcome.message.contains("within 1m"), "{}", outcome.message);
}

#[test]
fn recycling_stops_a_batch_with_a_reason_naming_the_request() {
    let d = run(
        &spec(json!({"batchSize": 2})),
        &in_phase(Phase::Recycling),
        &steady3(),
        100,
    );
    let reason = "ecs-recycler: recycled by request rotate".to_string();
    assert_eq!(
        d.actions,
        [
            Action::StopTask {
                arn: "t1".into(),
                reason: reason.clone()
            },
            Action::StopTask {
                arn: "t2".into(),
                reason
            },
        ]
    );
    assert_eq!(d.status.batch, ["t1", "t2"]);
    assert_eq!(d.status.stopped, ["t1", "t2"]);
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message == "Recycling task 2/3: t2")
    );
}

fn batch_t1(phase: Phase) -> RecycleStatus {
    RecycleStatus {
        batch: vec!["t1".into()],
        stopped: vec!["t1".into()],
        step_started_at: Some(at(100)),
        ..surged(phase)
    }
}

#[test]
fn a_batch_is_not_done_while_the_stopped_task_still_counts_as_running() {
    // Right after StopTask: counters say steady, but t1 is still RUNNING.
    let tasks = vec![
        task("t1", "RUNNING", false, true, 10),
        serving("t2", 20),
        serving("t3", 30),
        serving("s", 50),
    ];
    let d = run(
        &spec(json!({})),
        &batch_t1(Phase::Recycling),
        &obs(service(4, 4, 0), tasks),
        101,
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.status.batch, ["t1"], "still in flight");
    assert!(d.status.wait_until.is_none());
}

#[test]
fn a_stop_on_record_but_not_made_is_made_again() {
    let mut tasks = steady3().tasks;
    tasks.push(serving("s", 50));
    let d = run(
        &spec(json!({})),
        &batch_t1(Phase::Recycling),
        &obs(service(4, 4, 0), tasks),
        101,
    );
    assert!(matches!(&d.actions[..], [Action::StopTask { arn, .. }] if arn == "t1"));
}

#[test]
fn a_done_batch_waits_then_clears() {
    let tasks = vec![
        task("t1", "STOPPED", false, false, 10),
        serving("t2", 20),
        serving("t3", 30),
        serving("s", 50),
        serving("r1", 110),
    ];
    let o = obs(service(4, 4, 0), tasks);
    let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &o, 120);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.wait_until, Some(at(150)));
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message == "Task 1 recycled, waiting 30s")
    );
    assert_eq!(d.requeue, Some(Duration::from_secs(30)));
    let d = run(&spec(json!({})), &d.status, &o, 140);
    assert_eq!(d.status.batch, ["t1"], "still waiting");
    let d = run(&spec(json!({})), &d.status, &o, 150);
    assert!(d.status.batch.is_empty());
    assert_eq!(d.status.stopped, ["t1"]);
}

#[test]
fn a_batch_whose_replacements_never_serve_fails_through_restore() {
    let tasks = vec![
        task("t1", "STOPPED", false, false, 10),
        serving("t2", 20),
        serving("t3", 30),
        serving("s", 50),
        task("r1", "RUNNING", true, false, 110),
    ];
    let d = run(
        &spec(json!({"stabilityTimeout": "2m"})),
        &batch_t1(Phase::Recycling),
        &obs(service(4, 4, 0), tasks),
        221,
    );
    assert_eq!(d.status.phase, Phase::Restoring);
    let message = d.status.outcome.unwrap().message;
    assert!(
        message.contains("replacements for t1")
            && message.contains("within 2m")
            && message.contains("healthy 3"),
        "{message}"
    );
    assert!(d.status.batch.is_empty());
}

#[test]
fn recycling_skips_planned_tasks_already_gone_and_finishes() {
    let mut status = surged(Phase::Recycling);
    status.stopped = vec!["t1".into()];
    let o = obs(
        service(4, 4, 0),
        vec![
            serving("t3", 30),
            serving("a", 40),
            serving("b", 50),
            serving("c", 60),
        ],
    );
    let d = run(&spec(json!({})), &status, &o, 200);
    assert_eq!(d.status.skipped, ["t2"]);
    assert!(matches!(&d.actions[..], [Action::StopTask { arn, .. }] if arn == "t3"));

    let mut status = d.status.clone();
    status.batch.clear();
    let o = obs(
        service(4, 4, 0),
        vec![
            serving("a", 40),
            serving("b", 50),
            serving("c", 60),
            serving("d", 70),
        ],
    );
    let d = run(&spec(json!({})), &status, &o, 300);
    assert_eq!(d.status.phase, Phase::Restoring);
    let outcome = d.status.outcome.clone().unwrap();
    assert_eq!(outcome.phase, Phase::Succeeded);
    assert!(
        outcome.message.contains("recycled 2 of 3"),
        "{}",
        outcome.message
    );
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message == "Task recycle completed successfully")
    );
}

#[test]
fn between_batches_pause_holds_and_cancel_restores() {
    let status = surged(Phase::Recycling);
    let o = obs(
        service(4, 4, 0),
        vec![
            serving("t1", 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 40),
        ],
    );
    let d = run(&spec(json!({"paused": true})), &status, &o, 100);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Recycling);
    assert!(d.status.message.contains("paused after 0/3"));
    let d = run(&spec(json!({"cancel": true})), &status, &o, 100);
    assert_eq!(d.status.phase, Phase::Restoring);
    assert_eq!(d.status.outcome.unwrap().phase, Phase::Cancelled);
}

#[test]
fn between_batches_an_unstable_service_is_waited_for_not_raced() {
    let status = surged(Phase::Recycling);
    let mut svc = service(4, 4, 0);
    svc.deployments.push(DeploymentView {
        id: "ecs-svc/2".into(),
        primary: true,
        rollout: "IN_PROGRESS".into(),
    });
    svc.deployments[0].primary = false;
    let o = obs(
        svc,
        vec![
            serving("t1", 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 40),
        ],
    );
    let d = run(&spec(json!({})), &status, &o, 100);
    assert!(d.actions.is_empty());
    assert!(
        d.status
            .message
            .contains("waiting for deployment ecs-svc/2"),
        "{}",
        d.status.message
    );
}

fn restoring(outcome: Phase) -> RecycleStatus {
    RecycleStatus {
        outcome: Some(Outcome {
            phase: outcome,
            message: "recycled 3 of 3 planned tasks (0 already gone)".into(),
        }),
        ..surged(Phase::Restoring)
    }
}

#[test]
fn restore_takes_the_surge_back_only_from_the_count_it_set() {
    // (case, desired observed, change made, what the final message says)
    let cases = [
        ("as left", 4, Some((4, 3)), ""),
        (
            "the autoscaler scaled out to 6 meanwhile",
            6,
            None,
            "Desired count left at 6, set by someone else during the run.",
        ),
        (
            "someone lowered it to 2",
            2,
            None,
            "Desired count left at 2, set by someone else during the run.",
        ),
        (
            "surge never applied",
            3,
            None,
            "Desired count left at 3, as it was before the surge.",
        ),
    ];
    for (name, observed, change, says) in cases {
        let d = run(
            &spec(json!({})),
            &restoring(Phase::Succeeded),
            &obs(service(observed, observed, 0), vec![]),
            500,
        );
        match change {
            Some((from, to)) => {
                assert_eq!(d.actions, [Action::SetDesired { from, to }], "{name}");
                assert_eq!(
                    d.status.phase,
                    Phase::Restoring,
                    "{name}: finishes only once observed"
                );
            }
            None => {
                assert!(d.actions.is_empty(), "{name}");
                assert_eq!(d.status.phase, Phase::Succeeded, "{name}");
                assert!(
                    d.status.message.ends_with(says),
                    "{name}: {}",
                    d.status.message
                );
                let event = d.status.events.iter().find(|e| e.reason == Reason::Restore);
                assert!(
                    event.is_some_and(|e| says.starts_with(&e.message)),
                    "{name}: {event:?}"
                );
            }
        }
    }
}

#[test]
fn a_count_left_alone_is_still_named_once_the_scaling_settings_are_back() {
    let original = ScalingSettings {
        min: 1,
        max: 6,
        dynamic_scaling_in_suspended: false,
        dynamic_scaling_out_suspended: false,
        scheduled_scaling_suspended: false,
    };
    let ours = ScalingSettings {
        dynamic_scaling_in_suspended: true,
        ..original
    };
    let mut status = restoring(Phase::Succeeded);
    status.surge_scaling = Some(ours);
    if let Some(p) = status.plan.as_mut() {
        p.original_scaling = Some(original);
    }
    // The autoscaler's 7: kept, and scale-in handed back to it.
    let mut o = obs(service(7, 7, 0), vec![]);
    o.scaling = Some(ours);
    let d = run(&spec(json!({})), &status, &o, 500);
    assert_eq!(d.actions, [Action::SetScaling(original)]);
    assert_eq!(d.status.restore, Some(DesiredChange { from: 7, to: 7 }));
    o.scaling = Some(original);
    let d = run(&spec(json!({})), &d.status, &o, 501);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert!(
        d.status
            .message
            .ends_with("Desired count left at 7, set by someone else during the run."),
        "{}",
        d.status.message
    );
}

#[test]
fn restore_is_resent_until_observed_then_finishes() {
    let mut status = restoring(Phase::Failed);
    status.restore = Some(DesiredChange { from: 4, to: 3 });
    let d = run(
        &spec(json!({})),
        &status,
        &obs(service(4, 4, 0), vec![]),
        500,
    );
    assert_eq!(d.actions, [Action::SetDesired { from: 4, to: 3 }]);
    let d = run(
        &spec(json!({})),
        &status,
        &obs(service(3, 4, 0), vec![]),
        501,
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(
        d.status.message.contains("Desired count restored: 4 → 3"),
        "{}",
        d.status.message
    );
    assert_eq!(d.requeue, None);
    assert_eq!(d.status.finished_at, Some(at(501)));
}

#[test]
fn restore_brings_back_scaling_settings_but_keeps_others_changes() {
    let original = ScalingSettings {
        min: 1,
        max: 3,
        dynamic_scaling_in_suspended: false,
        dynamic_scaling_out_suspended: false,
        scheduled_scaling_suspended: false,
    };
    let ours = ScalingSettings {
        max: 4,
        dynamic_scaling_in_suspended: true,
        ..original
    };
    let mut status = restoring(Phase::Succeeded);
    status.restore = Some(DesiredChange { from: 4, to: 3 });
    status.surge_scaling = Some(ours);
    if let Some(p) = status.plan.as_mut() {
        p.original_scaling = Some(original);
    }
    let mut o = obs(service(3, 3, 0), vec![]);
    o.scaling = Some(ours);
    let d = run(&spec(json!({})), &status, &o, 500);
    assert_eq!(d.actions, [Action::SetScaling(original)]);

    // Someone raised max to 10 during the run: that stays.
    o.scaling = Some(ScalingSettings { max: 10, ..ours });
    let d = run(&spec(json!({})), &status, &o, 500);
    assert_eq!(
        d.actions,
        [Action::SetScaling(ScalingSettings {
            max: 10,
            ..original
        })]
    );

    o.scaling = Some(original);
    let d = run(&spec(json!({})), &status, &o, 500);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Succeeded);
}

#[test]
fn a_service_gone_during_the_run_fails_with_the_reason() {
    let gone = Observation {
        service: Err("ServiceNotActiveException: Service was not ACTIVE.".into()),
        tasks: vec![],
        scaling: None,
        evidence: Default::default(),
        targets_refused: None,
        drain: None,
    };
    let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &gone, 200);
    assert_eq!(d.status.phase, Phase::Restoring);
    let d = run(&spec(json!({})), &d.status, &gone, 201);
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(
        d.status.message.contains("Service was not ACTIVE"),
        "{}",
        d.status.message
    );
    assert!(
        d.status.message.contains("capacity could not be restored"),
        "{}",
        d.status.message
    );
}

#[test]
fn finished_requests_are_left_alone() {
    for phase in [Phase::Succeeded, Phase::Failed, Phase::Cancelled] {
        let status = in_phase(phase);
        let d = run(&spec(json!({"cancel": true})), &status, &steady3(), 100);
        assert_eq!(d.status, status);
        assert!(d.actions.is_empty());
        assert_eq!(d.requeue, None);
    }
}

/// `notAfter` as `at(secs)` in the spec.
fn window_until(secs: i64) -> RecycleSpec {
    let t = at(secs).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    spec(json!({ "notAfter": t }))
}

#[test]
fn a_closed_window_ends_through_restore_saying_how_far_it_got() {
    let until = at(200).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let between = {
        let mut s = surged(Phase::Recycling);
        s.stopped = vec!["t1".into()];
        s
    };
    let four = || {
        obs(
            service(4, 4, 0),
            vec![
                serving("t2", 20),
                serving("t3", 30),
                serving("s", 40),
                serving("r1", 110),
            ],
        )
    };
    let done_batch = obs(
        service(4, 4, 0),
        vec![
            task("t1", "STOPPED", false, false, 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 50),
            serving("r1", 110),
        ],
    );
    let waiting = RecycleStatus {
        wait_until: Some(at(230)),
        ..batch_t1(Phase::Recycling)
    };
    // (case, status, observation, how far)
    let cases: Vec<(&str, RecycleStatus, Observation, &str)> = vec![
        ("between batches", between, four(), "between batches: 1/3"),
        (
            "while adding spare capacity",
            in_phase(Phase::Surging),
            steady3(),
            "while adding spare capacity: 0/3",
        ),
        (
            "a batch done, its pause not over",
            waiting,
            done_batch.clone(),
            "after a batch: 1/3",
        ),
        (
            "a batch done, before its pause",
            batch_t1(Phase::Recycling),
            done_batch,
            "after a batch: 1/3",
        ),
    ];
    for (name, status, o, how_far) in cases {
        let d = run(&window_until(200), &status, &o, 201);
        assert!(d.actions.is_empty(), "{name}: nothing new is started");
        assert_eq!(d.status.phase, Phase::Restoring, "{name}");
        assert!(d.status.batch.is_empty(), "{name}");
        let outcome = d.status.outcome.clone().unwrap();
        assert_eq!(outcome.phase, Phase::WindowClosed, "{name}");
        assert!(
            outcome.message.starts_with(&format!(
                "window closed at {until} {how_far} tasks recycled"
            )),
            "{name}: {}",
            outcome.message
        );
        assert!(
            outcome.message.contains("no further batch was started"),
            "{name}"
        );
    }
}

#[test]
fn a_batch_in_flight_when_the_window_closes_is_finished_not_abandoned() {
    // t1 still RUNNING (stopping): the batch goes on; no new batch, no end yet.
    let tasks = vec![
        task("t1", "RUNNING", false, true, 10),
        serving("t2", 20),
        serving("t3", 30),
        serving("s", 50),
    ];
    let d = run(
        &window_until(200),
        &batch_t1(Phase::Recycling),
        &obs(service(4, 4, 0), tasks),
        201,
    );
    assert_eq!(d.status.phase, Phase::Recycling);
    assert_eq!(d.status.batch, ["t1"]);
}

#[test]
fn window_closed_restores_capacity_then_is_its_own_outcome() {
    let mut status = surged(Phase::Restoring);
    status.stopped = vec!["t1".into()];
    status.outcome = Some(Outcome {
        phase: Phase::WindowClosed,
        message: "window closed at 2027-01-15T08:03:20Z between batches: 1/3 tasks recycled; no further batch was started".into(),
    });
    let d = run(
        &window_until(200),
        &status,
        &obs(service(4, 4, 0), vec![]),
        300,
    );
    assert_eq!(d.actions, [Action::SetDesired { from: 4, to: 3 }]);
    let mut restored = d.status.clone();
    restored.restore = Some(DesiredChange { from: 4, to: 3 });
    let d = run(
        &window_until(200),
        &restored,
        &obs(service(3, 3, 0), vec![]),
        301,
    );
    assert_eq!(d.status.phase, Phase::WindowClosed);
    assert!(d.status.phase.is_terminal());
    assert!(
        d.status.message.contains("1/3 tasks recycled")
            && d.status.message.contains("Desired count restored: 4 → 3"),
        "{}",
        d.status.message
    );
    assert_eq!(d.requeue, None);
}

/// Every combination of three tasks' states, with t1 as the batch.
fn task_states() -> Vec<Vec<TaskView>> {
    let states = |arn: &str| {
        vec![
            Some(serving(arn, 20)),
            Some(task(arn, "RUNNING", true, false, 20)),
            Some(task(arn, "PENDING", true, false, 20)),
            Some(task(arn, "RUNNING", false, true, 20)),
            Some(task(arn, "STOPPED", false, false, 20)),
            None,
        ]
    };
    let mut out = Vec::new();
    for a in states("t1") {
        for b in states("t2") {
            for c in states("new") {
                out.push([a.clone(), b.clone(), c].into_iter().flatten().collect());
            }
        }
    }
    out
}

#[test]
fn what_the_tasks_alone_show_unfinished_no_service_count_can_finish() {
    let views = [
        service(3, 3, 0),
        service(3, 2, 1),
        service(3, 4, 0),
        service(2, 2, 0),
        service(4, 4, 0),
    ];
    let mut unfinished = 0;
    for tasks in task_states() {
        if !tasks_show_unfinished(&["t1".into()], &tasks) {
            continue;
        }
        unfinished += 1;
        for view in &views {
            let o = obs(view.clone(), tasks.clone());
            let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &o, 101);
            assert!(d.actions.is_empty(), "{tasks:?} {view:?}: {:?}", d.actions);
            assert_eq!(d.status.batch, ["t1"], "{tasks:?} {view:?}");
            assert!(d.status.wait_until.is_none(), "{tasks:?} {view:?}");
        }
    }
    assert!(unfinished > 50, "checked on {unfinished} batches in flight");
    let surging = RecycleStatus {
        step_started_at: Some(at(100)),
        ..surged(Phase::Surging)
    };
    let mut unfinished = 0;
    for tasks in task_states() {
        if !tasks_show_unfinished(&[], &tasks) {
            continue;
        }
        unfinished += 1;
        for view in &views {
            let d = run(
                &spec(json!({})),
                &surging,
                &obs(view.clone(), tasks.clone()),
                101,
            );
            assert_eq!(d.status.phase, Phase::Surging, "{tasks:?} {view:?}");
        }
    }
    assert!(unfinished > 50, "checked on {unfinished} surges in flight");
    // A stop on record but not made is the decision's to make again.
    let tasks = vec![serving("t1", 10), task("new", "PENDING", true, false, 20)];
    assert!(!tasks_show_unfinished(&["t1".into()], &tasks));
}

fn provisioning(arn: &str, created: i64) -> TaskView {
    TaskView {
        arn: arn.into(),
        last_status: "PROVISIONING".into(),
        desired_running: true,
        health: "UNKNOWN".into(),
        health_checked: true,
        started_at: None,
        created_at: Some(at(created)),
        ..Default::default()
    }
}

fn stopped_task(arn: &str, created: i64, reason: &str) -> StoppedTask {
    StoppedTask {
        arn: arn.into(),
        last_status: "STOPPED".into(),
        stopped_reason: reason.into(),
        stop_code: "EssentialContainerExited".into(),
        created_at: Some(at(created)),
        stopped_at: Some(at(created + 5)),
    }
}

fn service_event(secs: i64, message: &str) -> ServiceEvent {
    ServiceEvent {
        at: at(secs),
        message: message.into(),
    }
}

const EXITED: &str = "Essential container in task exited";
const UNHEALTHY: &str = "Task failed container health checks";
const UNPLACED: &str = "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance 5a6f) has insufficient CPU units available.";

/// t1's batch (begun at 100) with its replacement r1 still provisioning.
fn batch_waiting() -> Observation {
    obs(
        service(4, 3, 1),
        vec![
            task("t1", "STOPPED", false, false, 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 50),
            provisioning("r1", 150),
        ],
    )
}

#[test]
fn a_failing_batch_names_its_cause_in_ecs_words() {
    let failed = |note: DeploymentNote| {
        move |o: &mut Observation| {
            if let Ok(s) = o.service.as_mut() {
                s.deployments[0].rollout = "FAILED".into();
            }
            o.evidence.deployments = vec![note.clone()];
        }
    };
    type Change = Box<dyn Fn(&mut Observation)>;
    // (case, what ECS says, what the failure must say, what it must not)
    let cases: Vec<(&str, Change, &str, &str)> = vec![
        (
            "replacements that keep exiting",
            Box::new(|o| {
                o.evidence.stopped = (0..8)
                    .map(|i| stopped_task(&format!("x{i}"), 101 + i, EXITED))
                    .collect();
            }),
            "(desired 4, running 3, pending 1, healthy 3): 8 replacement tasks stopped: Essential container in task exited; 1/3 tasks stopped, 0 recycled",
            "waiting for",
        ),
        (
            "several reasons, most frequent first; earlier and our own stops are not counted",
            Box::new(|o| {
                o.evidence.stopped = vec![
                    stopped_task("x1", 120, UNHEALTHY),
                    stopped_task("x2", 130, EXITED),
                    stopped_task("x3", 140, EXITED),
                    stopped_task("before", 90, EXITED),
                    stopped_task("t1", 100, "ecs-recycler: recycled by request rotate"),
                ];
            }),
            ": 3 replacement tasks stopped: Essential container in task exited (2), Task failed container health checks (1); 1/3",
            "recycled by request",
        ),
        (
            "a placement the cluster cannot make",
            Box::new(|o| {
                o.evidence.events = vec![
                    service_event(160, "(service web) has started 1 tasks: (task r1)."),
                    service_event(150, UNPLACED),
                    service_event(
                        50,
                        "(service web) (task old) failed container health checks.",
                    ),
                ];
            }),
            "latest service event: (service web) was unable to place a task because no container instance met all of its requirements.",
            "task old",
        ),
        (
            "the circuit breaker",
            Box::new(failed(DeploymentNote {
                id: "ecs-svc/1".into(),
                failed_tasks: 3,
                rollout_reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
            })),
            "deployment ecs-svc/1 failed: ECS deployment circuit breaker: tasks failed to start.",
            "has 3 failed",
        ),
        (
            "a deployment still counting failures",
            Box::new(|o| {
                o.evidence.deployments = vec![DeploymentNote {
                    id: "ecs-svc/1".into(),
                    failed_tasks: 3,
                    rollout_reason: String::new(),
                }];
            }),
            "deployment ecs-svc/1 has 3 failed tasks",
            "waiting for",
        ),
        (
            "ECS says nothing: what is still awaited",
            Box::new(|_| {}),
            "(desired 4, running 3, pending 1, healthy 3): waiting for 1 replacement: PROVISIONING for 1m10s; 1/3 tasks stopped, 0 recycled",
            "service event",
        ),
    ];
    for (name, change, says, not) in cases {
        let mut o = batch_waiting();
        change(&mut o);
        let d = run(
            &spec(json!({"stabilityTimeout": "2m"})),
            &batch_t1(Phase::Recycling),
            &o,
            221,
        );
        assert_eq!(d.status.phase, Phase::Restoring, "{name}");
        let message = d.status.outcome.clone().unwrap().message;
        assert!(
            message
                .starts_with("replacements for t1 were not running, healthy and stable within 2m"),
            "{name}: {message}"
        );
        assert!(message.contains(says), "{name}: {message}");
        assert!(!message.contains(not), "{name}: {message}");
        assert_eq!(d.status.unreplaced, ["t1"], "{name}");
        assert_eq!(d.status.recycled().count(), 0, "{name}");
        let transition = d.status.events.last().unwrap();
        assert!(
            transition.message.contains(says),
            "{name}: the event names it too"
        );
    }
}

#[test]
fn a_slow_step_says_what_it_waits_for_and_why_once_past_half_its_timeout() {
    let spec = spec(json!({"stabilityTimeout": "2m"}));
    let mut o = batch_waiting();
    o.evidence.events = vec![service_event(150, UNPLACED)];
    // Before half the timeout: the plain message, no event.
    let d = run(&spec, &batch_t1(Phase::Recycling), &o, 150);
    assert!(
        d.status.message.starts_with(
            "stopped 1/3; waiting for the replacements to be running and healthy (desired 4"
        ),
        "{}",
        d.status.message
    );
    assert!(d.status.events.iter().all(|e| e.reason != Reason::Slow));
    // Past it: what it waits for, for how long, and ECS's word on why.
    let d = run(&spec, &batch_t1(Phase::Recycling), &o, 195);
    assert_eq!(
        d.status.message,
        format!(
            "stopped 1/3; waiting for 1 replacement: PROVISIONING for 40s; service event: {UNPLACED}"
        )
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.status.batch, ["t1"]);
    let slow: Vec<&Event> = d
        .status
        .events
        .iter()
        .filter(|e| e.reason == Reason::Slow)
        .collect();
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].message, d.status.message);
    // Said once a step, however often it is looked at.
    let again = run(&spec, &d.status, &o, 205);
    assert_eq!(
        again
            .status
            .events
            .iter()
            .filter(|e| e.reason == Reason::Slow)
            .count(),
        1
    );
    assert!(
        again.status.message.contains("PROVISIONING for 50s"),
        "{}",
        again.status.message
    );
    // A few seconds more change nothing (no write for every look).
    let later = run(&spec, &again.status, &o, 208);
    assert_eq!(later.status, again.status);
}

#[test]
fn a_slow_surge_names_its_unhealthy_spare_tasks() {
    let spec = spec(json!({"stabilityTimeout": "2m"}));
    let mut status = surged(Phase::Surging);
    status.step_started_at = Some(at(100));
    let mut tasks = steady3().tasks;
    tasks.push(TaskView {
        health: "UNHEALTHY".into(),
        ..task("s2", "RUNNING", true, false, 155)
    });
    let mut o = obs(service(4, 4, 0), tasks);
    o.evidence.stopped = vec![
        stopped_task("s0", 101, UNHEALTHY),
        stopped_task("s1", 130, UNHEALTHY),
    ];
    o.evidence.events = vec![service_event(
        140,
        "(service web) (task s1) failed container health checks.",
    )];
    let d = run(&spec, &status, &o, 175);
    assert_eq!(
        d.status.message,
        "adding spare capacity; waiting for 1 spare task: RUNNING, health UNHEALTHY, for 20s; 2 spare tasks stopped: Task failed container health checks; service event: (service web) (task s1) failed container health checks."
    );
    let d = run(&spec, &status, &o, 221);
    let message = d.status.outcome.unwrap().message;
    assert!(
        message.starts_with("the spare capacity did not become stable within 2m (desired 4, running 4, pending 0, healthy 3): 2 spare tasks stopped: Task failed container health checks; latest service event: (service web) (task s1) failed container health checks."),
        "{message}"
    );
    assert!(
        d.status.unreplaced.is_empty(),
        "nothing of the plan was stopped"
    );
}

#[test]
fn causes_never_make_a_message_or_an_event_long() {
    let mut o = batch_waiting();
    o.evidence.stopped = (0..150)
        .map(|i| {
            stopped_task(
                &format!("x{i}"),
                101,
                &format!("{i} {}", "why ".repeat(100)),
            )
        })
        .collect();
    o.evidence.events = vec![service_event(150, &"placement trouble ".repeat(300))];
    let spec = spec(json!({"stabilityTimeout": "2m"}));
    let mut status = batch_t1(Phase::Recycling);
    status.batch = (0..100)
        .map(|i| format!("arn:aws:ecs:us-east-1:123456789012:task/prod/{i:032}"))
        .collect();
    for now in [195, 221] {
        let d = run(&spec, &status, &o, now);
        let longest = d
            .status
            .events
            .iter()
            .map(|e| e.message.chars().count())
            .chain([d.status.message.chars().count()])
            .chain(d.status.outcome.iter().map(|o| o.message.chars().count()))
            .max()
            .unwrap();
        assert!(
            longest <= crate::request::status::MAX_MESSAGE_CHARS + 1,
            "{longest}"
        );
        assert!(
            d.status.message.contains("150 replacement tasks stopped")
                || d.status.phase == Phase::Restoring,
            "{}",
            d.status.message
        );
    }
    let d = run(&spec, &status, &o, 221);
    let message = d.status.outcome.unwrap().message;
    assert!(
        message.contains(" and 97 more were not running"),
        "{message}"
    );
    assert!(message.ends_with('…'), "cut, not dropped: {message}");
}

#[test]
fn a_task_counts_as_recycled_only_once_its_batch_finished_with_replacements_serving() {
    let done = obs(
        service(4, 4, 0),
        vec![
            task("t1", "STOPPED", false, false, 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 50),
            serving("r1", 110),
        ],
    );
    let status = batch_t1(Phase::Recycling);
    assert_eq!(status.recycled().count(), 0, "in flight: not yet");
    let d = run(&spec(json!({"wait": "0s"})), &status, &done, 120);
    assert!(d.status.batch.is_empty());
    assert_eq!(d.status.recycled().collect::<Vec<_>>(), ["t1"]);

    let d = run(
        &spec(json!({"stabilityTimeout": "2m"})),
        &status,
        &batch_waiting(),
        221,
    );
    assert_eq!(d.status.stopped, ["t1"]);
    assert_eq!(d.status.unreplaced, ["t1"]);
    assert_eq!(d.status.recycled().count(), 0);
}

#[test]
fn a_request_in_flight_stored_by_earlier_code_is_read_and_finished() {
    // Written before `unreplaced` existed: t0 recycled, t1's batch in flight.
    let stored = json!({
        "phase": "Recycling",
        "message": "stopped 2/3; waiting for the replacements to be running and healthy",
        "plan": {"originalDesired": 3, "tasks": ["t0", "t1", "t3"], "plannedAt": at(0)},
        "stopped": ["t0", "t1"],
        "batch": ["t1"],
        "stepStartedAt": at(100),
        "surge": {"from": 3, "to": 4},
        "startedAt": at(0),
        "events": [{"at": at(0), "reason": "Started", "message": "Starting task recycle for prod/web"}]
    });
    let status: RecycleStatus = serde_json::from_value(stored).unwrap();
    assert!(status.unreplaced.is_empty());
    assert_eq!(status.recycled().collect::<Vec<_>>(), ["t0"]);

    let failing = run(
        &spec(json!({"stabilityTimeout": "2m"})),
        &status,
        &batch_waiting(),
        221,
    );
    assert_eq!(failing.status.unreplaced, ["t1"]);
    assert_eq!(failing.status.recycled().collect::<Vec<_>>(), ["t0"]);
    assert!(
        failing
            .status
            .outcome
            .unwrap()
            .message
            .ends_with("2/3 tasks stopped, 1 recycled"),
    );

    let done = obs(
        service(4, 4, 0),
        vec![
            task("t1", "STOPPED", false, false, 10),
            serving("t3", 30),
            serving("s", 50),
            serving("r0", 60),
            serving("r1", 110),
        ],
    );
    let d = run(&spec(json!({"wait": "0s"})), &status, &done, 120);
    assert!(d.status.batch.is_empty());
    assert_eq!(d.status.recycled().collect::<Vec<_>>(), ["t0", "t1"]);
    // And written back, it reads the same.
    let again: RecycleStatus =
        serde_json::from_value(serde_json::to_value(&d.status).unwrap()).unwrap();
    assert_eq!(again, d.status);
}

#[test]
fn an_outcome_quoting_ecs_ends_with_one_full_stop() {
    let mut status = restoring(Phase::Failed);
    status.outcome = Some(Outcome {
        phase: Phase::Failed,
        message: "the spare capacity did not become stable within 2s: latest service event: (service web) (task a) failed container health checks.".into(),
    });
    status.restore = Some(DesiredChange { from: 4, to: 3 });
    let d = run(
        &spec(json!({})),
        &status,
        &obs(service(3, 3, 0), vec![]),
        500,
    );
    assert!(
        d.status
            .message
            .ends_with("failed container health checks. Desired count restored: 4 → 3."),
        "{}",
        d.status.message
    );
}

#[test]
fn a_stop_aws_refused_is_not_counted_as_stopped() {
    let status = batch_t1(Phase::Recycling);
    assert!(status.stopped.contains(&"t1".to_string()));
    let stop = Action::StopTask {
        arn: "t1".into(),
        reason: "r".into(),
    };
    let failed = refused(
        &status,
        at(100),
        &stop,
        "ecs:StopTask was refused: AccessDeniedException: no".into(),
    );
    assert_eq!(failed.phase, Phase::Restoring);
    assert!(!failed.stopped.contains(&"t1".to_string()), "{failed:?}");
    assert!(!failed.unreplaced.contains(&"t1".to_string()), "{failed:?}");
    // Any other refusal leaves the stops on record as they are.
    let other = refused(
        &status,
        at(100),
        &Action::SetDesired { from: 4, to: 3 },
        "no".into(),
    );
    assert!(other.unreplaced.contains(&"t1".to_string()), "{other:?}");
}

fn gated(on_alarm: &str) -> RecycleSpec {
    spec(json!({"gates": {"alarms": {"names": ["web-5xx"], "onAlarm": on_alarm}}}))
}

fn alarm_in(state: crate::gates::decide::AlarmState) -> crate::gates::decide::AlarmsSeen {
    Ok(vec![crate::gates::decide::AlarmView {
        name: "web-5xx".into(),
        state,
        reason: "Threshold Crossed".into(),
    }])
}

fn run_gated(
    spec: &RecycleSpec,
    status: &RecycleStatus,
    o: &Observation,
    alarms: Option<&crate::gates::decide::AlarmsSeen>,
    now: i64,
) -> Decision {
    let ctx = Context {
        name: "rotate",
        spec,
        now: at(now),
        poll: Duration::from_secs(1),
        blocked_by: None,
        alarms,
    };
    decide(&ctx, status, o)
}

#[test]
fn an_alarm_holds_the_run_before_each_stop_in_every_phase() {
    use crate::gates::decide::AlarmState;
    let pause = gated("pause");
    let firing = alarm_in(AlarmState::Alarm);
    let surged_steady = obs(
        service(4, 4, 0),
        vec![
            serving("t1", 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("t4", 40),
        ],
    );
    for (what, status, o) in [
        ("before the plan", RecycleStatus::default(), steady3()),
        ("before the surge", in_phase(Phase::Surging), steady3()),
        (
            "between batches",
            surged(Phase::Recycling),
            surged_steady.clone(),
        ),
    ] {
        let d = run_gated(&pause, &status, &o, Some(&firing), 100);
        assert!(
            d.actions.is_empty(),
            "{what}: nothing is done: {:?}",
            d.actions
        );
        assert_eq!(d.status.phase, status.phase, "{what}");
        assert!(
            d.status
                .message
                .contains("held by alarm \"web-5xx\" in ALARM: Threshold Crossed"),
            "{what}: {}",
            d.status.message
        );
        let hold = d.status.alarm_hold.clone().expect("the hold is on record");
        assert_eq!(hold.since, at(100));
        assert_eq!(
            d.requeue,
            Some(Duration::from_secs(1)),
            "{what}: looked at again at the poll"
        );
        // A restart reads the record and a fresh look: still held, and
        // the hold is not announced twice.
        let again = run_gated(&pause, &d.status, &o, Some(&firing), 105);
        assert!(again.actions.is_empty());
        assert_eq!(again.status.alarm_hold.as_ref().unwrap().since, at(100));
        let held = again
            .status
            .events
            .iter()
            .filter(|e| e.reason == Reason::AlarmHeld)
            .count();
        assert_eq!(held, 1, "{what}");
        // Alarms never read hold too: a gate fails closed.
        let unread = run_gated(&pause, &status, &o, None, 100);
        assert!(
            unread.actions.is_empty() && unread.status.alarm_hold.is_some(),
            "{what}"
        );
        // Back to OK: the run goes on at this very look.
        let ok = alarm_in(AlarmState::Ok);
        let on = run_gated(&pause, &again.status, &o, Some(&ok), 110);
        assert!(on.status.alarm_hold.is_none(), "{what}");
        assert!(
            on.status
                .events
                .iter()
                .any(|e| e.reason == Reason::AlarmCleared),
            "{what}"
        );
        assert!(
            on.status.phase != status.phase || !on.actions.is_empty(),
            "{what}: went on: {:?}",
            on.status
        );
    }
    // A person's cancel still wins over a hold.
    let cancel = spec(json!({"cancel": true, "gates": {"alarms": {"names": ["web-5xx"]}}}));
    let d = run_gated(
        &cancel,
        &surged(Phase::Recycling),
        &surged_steady,
        Some(&firing),
        100,
    );
    assert_eq!(d.status.phase, Phase::Restoring);
}

#[test]
fn a_batch_in_flight_is_seen_through_under_pause_and_ended_under_abort() {
    use crate::gates::decide::AlarmState;
    let firing = alarm_in(AlarmState::Alarm);
    let mut status = batch_t1(Phase::Recycling);
    status.surge = Some(DesiredChange { from: 3, to: 4 });
    let o = obs(
        service(4, 3, 1),
        vec![
            serving("t2", 20),
            serving("t3", 30),
            task("t4", "PENDING", true, false, 40),
        ],
    );
    let d = run_gated(&gated("pause"), &status, &o, Some(&firing), 100);
    assert_eq!(d.status.phase, Phase::Recycling);
    assert_eq!(d.status.batch, ["t1"], "the batch goes on");
    assert!(
        d.status.alarm_hold.is_none(),
        "the hold meets the next stop"
    );
    let d = run_gated(&gated("abort"), &status, &o, Some(&firing), 100);
    assert_eq!(d.status.phase, Phase::Restoring);
    let outcome = d.status.outcome.unwrap();
    assert_eq!(outcome.phase, Phase::Failed);
    assert!(
        outcome
            .message
            .starts_with("aborted by alarm \"web-5xx\" in ALARM"),
        "{}",
        outcome.message
    );
    assert!(d.status.unreplaced.contains(&"t1".to_string()));
}

#[test]
fn a_gate_that_cannot_work_fails_the_run_and_touches_nothing_before_it_starts() {
    let missing = Ok(vec![]);
    let d = run_gated(
        &gated("pause"),
        &RecycleStatus::default(),
        &steady3(),
        Some(&missing),
        100,
    );
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(
        d.status.message.contains("do not exist")
            && d.status.message.contains("prod/web was not touched"),
        "{}",
        d.status.message
    );
    assert!(d.actions.is_empty() && d.status.plan.is_none());
}

#[test]
fn a_dry_run_is_not_held_by_an_alarm_but_fails_on_a_missing_one() {
    use crate::gates::decide::AlarmState;
    let dry = spec(
        json!({"dryRun": true, "gates": {"alarms": {"names": ["web-5xx"], "onAlarm": "abort"}}}),
    );
    let firing = alarm_in(AlarmState::Alarm);
    let d = run_gated(
        &dry,
        &RecycleStatus::default(),
        &steady3(),
        Some(&firing),
        100,
    );
    assert_eq!(d.status.phase, Phase::Succeeded, "{}", d.status.message);
    assert!(
        d.status
            .message
            .starts_with("dry run: would recycle 3 task(s)")
    );
    let d = run_gated(
        &dry,
        &RecycleStatus::default(),
        &steady3(),
        Some(&Ok(vec![])),
        100,
    );
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(
        d.status.message.contains("do not exist"),
        "{}",
        d.status.message
    );
}

// Hooks: asked at each point, the run held until they pass.

fn hooked(at: &str) -> RecycleSpec {
    spec(
        json!({"hooks": [{"url": "https://smoke.example.com/h", "at": [at],
                           "secret": {"env": "S"}}]}),
    )
}

/// The hook's answer to the call on record, as the shell records it.
fn answered(d: &Decision, answer: crate::hooks::decide::Answer) -> RecycleStatus {
    let ask = d.hook.as_ref().expect("a hook call");
    let mut s = d.status.clone();
    crate::hooks::decide::record(&mut s.hook, &ask.key, answer);
    s
}

fn succeeded() -> crate::hooks::decide::Answer {
    crate::hooks::decide::Answer::Succeeded {
        message: String::new(),
    }
}

#[test]
fn before_start_is_asked_before_the_surge_and_nothing_changes_until_it_passes() {
    let spec = hooked("beforeStart");
    let d = run(&spec, &in_phase(Phase::Surging), &steady3(), 100);
    assert!(
        d.actions.is_empty(),
        "no surge before the hook: {:?}",
        d.actions
    );
    let ask = d.hook.clone().expect("asked");
    assert_eq!(
        (ask.point, ask.batch, ask.tasks.len()),
        (Point::BeforeStart, 0, 3)
    );
    assert!(
        d.status.hook.is_some(),
        "the call is on record before it is made"
    );
    let d = run(&spec, &answered(&d, succeeded()), &steady3(), 101);
    assert_eq!(d.actions, [Action::SetDesired { from: 3, to: 4 }]);
    assert!(d.hook.is_none());
}

#[test]
fn a_failed_after_batch_ends_the_run_with_that_batch_counted_recycled() {
    let spec = hooked("afterBatch");
    let mut s = surged(Phase::Recycling);
    s.stopped = vec!["t1".into()];
    s.batch = vec!["t1".into()];
    s.batches = 1;
    s.step_started_at = Some(at(50));
    let o = obs(
        service(4, 4, 0),
        vec![
            serving("t2", 20),
            serving("t3", 30),
            serving("t4", 40),
            serving("n1", 60),
        ],
    );
    let d = run(&spec, &s, &o, 100);
    let ask = d.hook.clone().expect("asked after the batch");
    assert_eq!((ask.point, ask.batch), (Point::AfterBatch, 1));
    assert_eq!(ask.replacements, ["n1"], "told the replacement");
    let failed = answered(
        &d,
        crate::hooks::decide::Answer::Failed {
            message: "p99 3s".into(),
        },
    );
    let d = run(&spec, &failed, &o, 101);
    assert_eq!(d.status.phase, Phase::Restoring);
    assert!(
        d.status.unreplaced.is_empty(),
        "its replacement serves: {:?}",
        d.status
    );
    assert_eq!(d.status.recycled().count(), 1);
    assert!(
        d.status
            .message
            .contains("aborted by hook smoke.example.com at afterBatch of batch 1 answered failed: p99 3s; 1/3 tasks stopped"),
        "{}",
        d.status.message
    );
}

#[test]
fn after_end_is_asked_once_restoring_is_done_and_its_failure_keeps_the_outcome() {
    let spec = hooked("afterEnd");
    let mut s = surged(Phase::Restoring);
    s.restore = Some(DesiredChange { from: 4, to: 3 });
    s.outcome = Some(Outcome {
        phase: Phase::Succeeded,
        message: "recycled 3 of 3 planned tasks (0 already gone)".into(),
    });
    let d = run(&spec, &s, &steady3(), 100);
    assert_eq!(d.status.phase, Phase::Restoring, "waits for the hook");
    assert_eq!(d.hook.as_ref().map(|a| a.point), Some(Point::AfterEnd));
    let failed = answered(
        &d,
        crate::hooks::decide::Answer::Failed {
            message: "report not filed".into(),
        },
    );
    let d = run(&spec, &failed, &steady3(), 101);
    assert_eq!(d.status.phase, Phase::Succeeded, "the outcome stands");
    assert!(
        d.status
            .message
            .contains("then hook smoke.example.com at afterEnd answered failed: report not filed"),
        "{}",
        d.status.message
    );
}

#[test]
fn a_cancel_while_a_hook_is_in_progress_ends_the_run() {
    let spec = hooked("beforeBatch");
    let d = run(&spec, &surged(Phase::Recycling), &steady3(), 100);
    let waiting = answered(
        &d,
        crate::hooks::decide::Answer::InProgress {
            message: String::new(),
            retry_after: Duration::from_secs(60),
        },
    );
    let d = run(&spec, &waiting, &steady3(), 101);
    assert!(
        d.hook.is_none() && d.actions.is_empty(),
        "held: {:?}",
        d.actions
    );
    assert_eq!(d.requeue, Some(Duration::from_secs(60)));
    let mut cancelled = spec.clone();
    cancelled.cancel = true;
    let d = run(&cancelled, &d.status, &steady3(), 102);
    assert_eq!(d.status.phase, Phase::Restoring);
    assert!(d.status.hook.is_none());
}

const TG: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-80/73e2d6bc24d8a067";

fn balanced(mut svc: ServiceView, maximum_percent: u32) -> ServiceView {
    svc.load_balancers = vec![crate::request::observation::LoadBalancerView {
        target_group_arn: TG.into(),
        container_name: "web".into(),
        container_port: 80,
    }];
    svc.maximum_percent = maximum_percent;
    svc
}

fn with_target(mut t: TaskView, state: &str) -> TaskView {
    t.targets = vec![crate::request::observation::TargetSeen {
        group: "tg/web-80".into(),
        state: state.into(),
        reason: (state == "initial").then(|| "Elb.InitialHealthChecking".into()),
    }];
    t
}

#[test]
fn a_replacement_serves_only_once_its_target_is_healthy_and_the_wait_says_so() {
    // r1 is RUNNING (no container health check) but the load balancer has
    // not passed it yet: the batch is not done, and the status names the target.
    let mut r1 = task("r1", "RUNNING", true, false, 110);
    r1.health_checked = false;
    let tasks = |r1_state: &str| {
        vec![
            with_target(task("t1", "DEACTIVATING", false, true, 10), "draining"),
            with_target(serving("t2", 20), "healthy"),
            with_target(serving("t3", 30), "healthy"),
            with_target(serving("s", 50), "healthy"),
            with_target(r1.clone(), r1_state),
        ]
    };
    let svc = balanced(service(4, 4, 0), 200);
    let d = run(
        &spec(json!({})),
        &batch_t1(Phase::Recycling),
        &obs(svc.clone(), tasks("initial")),
        120,
    );
    assert_eq!(d.status.batch, ["t1"], "still in flight");
    assert!(
        d.status
            .message
            .contains("waiting for 1 target: initial in tg/web-80"),
        "{}",
        d.status.message
    );
    // Healthy in the target group: done, though t1 still drains.
    let d = run(
        &spec(json!({})),
        &batch_t1(Phase::Recycling),
        &obs(svc, tasks("healthy")),
        121,
    );
    assert_eq!(d.status.wait_until, Some(at(151)), "{}", d.status.message);
}

#[test]
fn spare_capacity_counts_only_once_its_targets_are_healthy() {
    let status = surged(Phase::Surging);
    let tasks = |state: &str| {
        vec![
            with_target(serving("t1", 10), "healthy"),
            with_target(serving("t2", 20), "healthy"),
            with_target(serving("t3", 30), "healthy"),
            with_target(serving("s", 50), state),
        ]
    };
    let svc = balanced(service(4, 4, 0), 200);
    let d = run(
        &spec(json!({})),
        &status,
        &obs(svc.clone(), tasks("initial")),
        60,
    );
    assert_eq!(d.status.phase, Phase::Surging);
    assert!(
        d.status
            .message
            .contains("waiting for 1 target: initial in tg/web-80"),
        "{}",
        d.status.message
    );
    let d = run(&spec(json!({})), &status, &obs(svc, tasks("healthy")), 61);
    assert_eq!(d.status.phase, Phase::Recycling);
}

#[test]
fn a_drain_that_blocks_the_replacements_is_allowed_for_and_named() {
    // maximumPercent 100 at desired 4: no room for r1 until t1 has drained
    // (300s), so a 2m stability timeout is not yet up at 250s.
    let tasks = vec![
        with_target(task("t1", "DEACTIVATING", false, true, 10), "draining"),
        with_target(serving("t2", 20), "healthy"),
        with_target(serving("t3", 30), "healthy"),
        with_target(serving("s", 50), "healthy"),
    ];
    let mut o = obs(balanced(service(4, 3, 0), 100), tasks);
    o.drain = Some(Duration::from_secs(300));
    let sp = spec(json!({"stabilityTimeout": "2m"}));
    let d = run(&sp, &batch_t1(Phase::Recycling), &o, 350);
    assert_eq!(d.status.phase, Phase::Recycling, "{}", d.status.message);
    assert!(
        d.status
            .message
            .contains("1 stopped task draining, and maximumPercent 100% leaves no room"),
        "{}",
        d.status.message
    );
    // Past the timeout plus the drain, it fails saying both.
    let d = run(&sp, &batch_t1(Phase::Recycling), &o, 521);
    assert_eq!(d.status.phase, Phase::Restoring);
    let message = d.status.outcome.unwrap().message;
    assert!(
        message
            .contains("within 7m (the stability timeout, plus 5m for the stopped tasks to drain)"),
        "{message}"
    );
    // With room to launch beside the drain, the drain is not allowed for.
    let mut roomy = o.clone();
    roomy.service = Ok(balanced(service(4, 3, 0), 200));
    let d = run(&sp, &batch_t1(Phase::Recycling), &roomy, 250);
    assert_eq!(d.status.phase, Phase::Restoring);
}

#[test]
fn unreadable_targets_stop_the_run_before_it_touches_anything_or_through_restore() {
    let why = "elasticloadbalancing:DescribeTargetHealth was refused: AccessDenied: not authorized";
    let mut o = steady3();
    o.service = Ok(balanced(service(3, 3, 0), 200));
    o.targets_refused = Some(why.into());
    let d = run(&spec(json!({})), &RecycleStatus::default(), &o, 100);
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(d.actions.is_empty());
    assert!(
        d.status
            .message
            .contains("cannot read the load balancer targets of prod/web")
            && d.status.message.contains("AccessDenied"),
        "{}",
        d.status.message
    );
    let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &o, 120);
    assert_eq!(d.status.phase, Phase::Restoring);
}
