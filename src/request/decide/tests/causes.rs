//! Causes: a slow or failing step says what it waits for and why, in
//! ECS's own words, and never makes a message long.

use super::*;

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
            longest <= crate::message::MAX_MESSAGE_CHARS + 1,
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
