//! Pending: the plan on record before anything is touched, and every way
//! a request may leave Pending.

use super::*;

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
        protection: Vec::new(),
        capacity: Default::default(),
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
        serving_since: None,
    };
    let d = decide(&ctx, &RecycleStatus::default(), &steady3());
    assert_eq!(d.status.phase, Phase::Pending);
    assert!(
        d.status.message.contains("request first"),
        "{}",
        d.status.message
    );
}

/// Found by the fault campaign (seed 2087): the autoscaler set the count to
/// 7, and the look that made the plan read the service before that change
/// and its tasks after: "Original desired count: 3, tasks: 7", the surge
/// sent over the autoscaler's 7 and the restore took it to 3. A look whose
/// tasks outnumber its desired count makes no plan; the next one does.
#[test]
fn no_plan_is_made_from_a_look_whose_tasks_outnumber_its_desired_count() {
    let tasks: Vec<TaskView> = (1..=7).map(|i| serving(&format!("t{i}"), i * 10)).collect();
    let stale = obs(service(3, 7, 0), tasks.clone());
    let d = run(&spec(json!({})), &RecycleStatus::default(), &stale, 100);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Phase::Pending);
    assert!(
        d.status.plan.is_none(),
        "no plan from a look that disagrees with itself"
    );
    assert!(
        d.status
            .message
            .contains("7 tasks meant to run, desired count 3"),
        "{}",
        d.status.message
    );
    let settled = obs(service(7, 7, 0), tasks);
    let d = run(&spec(json!({})), &d.status, &settled, 102);
    let plan = d.status.plan.expect("planned once the look agrees");
    assert_eq!(plan.original_desired, 7);
    assert_eq!(plan.tasks.len(), 7);
}
