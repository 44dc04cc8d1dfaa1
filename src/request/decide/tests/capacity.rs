//! Steps that wait for capacity: named while they last, budgeted by
//! capacityTimeout apart from stabilityTimeout, and ended through
//! Restoring in ECS's words when ECS gives up or nothing can add room.

use super::*;
use crate::request::observation::{InstanceRoom, ServiceEvent};
use crate::request::status::CapacityWait;

/// A task of provider `cp-web` PROVISIONING, unplaced, since `created`.
fn waiting(arn: &str, created: i64) -> TaskView {
    TaskView {
        capacity_provider: Some("cp-web".into()),
        launch_type: Some("EC2".into()),
        ..provisioning(arn, created)
    }
}

/// The surge (3 → 4) on record since 100, its spare task `p1` waiting.
fn surge_waiting() -> (RecycleStatus, Observation) {
    let status = RecycleStatus {
        step_started_at: Some(at(100)),
        ..surged(Phase::Surging)
    };
    let o = obs(
        service(4, 3, 1),
        vec![
            serving("t1", 10),
            serving("t2", 20),
            serving("t3", 30),
            waiting("p1", 101),
        ],
    );
    (status, o)
}

#[test]
fn a_spare_task_waiting_for_an_instance_is_named_and_outlives_the_stability_timeout() {
    let (status, o) = surge_waiting();
    let s = spec(json!({"stabilityTimeout": "1m"}));
    let d = run(&s, &status, &o, 101 + 130);
    assert_eq!(d.status.phase, Phase::Surging, "{}", d.status.message);
    assert!(
        d.status.message.starts_with(
            "waiting for capacity provider cp-web to launch an instance: 1 task PROVISIONING for 2m; the spare task counts against stabilityTimeout once placed (capacityTimeout 15m, "
        ),
        "{}",
        d.status.message
    );
    let wait = d.status.capacity_wait.as_ref().unwrap();
    assert_eq!(
        (wait.since, wait.on.as_str(), wait.tasks.as_slice()),
        (at(101), "cp-web", &["p1".to_string()][..])
    );
    assert!(d.status.events.iter().any(|e| e.reason == Reason::Capacity));
    // Still waiting, well past stabilityTimeout from the step's start.
    let d = run(&s, &d.status, &o, 101 + 600);
    assert_eq!(d.status.phase, Phase::Surging, "{}", d.status.message);
}

#[test]
fn past_the_capacity_timeout_the_run_ends_through_restoring() {
    let (status, o) = surge_waiting();
    let s = spec(json!({"capacityTimeout": "5m"}));
    let d = run(&s, &status, &o, 200);
    assert_eq!(d.status.phase, Phase::Surging);
    let d = run(&s, &d.status, &o, 101 + 301);
    assert_eq!(d.status.phase, Phase::Restoring);
    let outcome = &d.status.outcome.as_ref().unwrap().message;
    assert!(
        outcome.starts_with("the spare task of prod/web waited more than capacityTimeout 5m for capacity: waiting for capacity provider cp-web to launch an instance: 1 task PROVISIONING for 5m"),
        "{outcome}"
    );
}

#[test]
fn when_ecs_gives_up_on_a_waiting_task_the_run_ends_in_ecs_words() {
    let (status, o) = surge_waiting();
    let d = run(&spec(json!({})), &status, &o, 200);
    let mut o = o;
    o.tasks[3] = TaskView {
        last_status: "STOPPED".into(),
        desired_running: false,
        stop_code: Some("TaskFailedToStart".into()),
        stopped_reason: Some(
            "Capacity provider could not provide capacity for the task within the provisioning timeout".into(),
        ),
        ..waiting("p1", 101)
    };
    o.tasks.push(waiting("p2", 1900));
    let d = run(&spec(json!({})), &d.status, &o, 1901);
    assert_eq!(d.status.phase, Phase::Restoring);
    assert_eq!(
        d.status.outcome.as_ref().unwrap().message,
        "ECS gave up on a spare task of prod/web waiting for capacity provider cp-web: Capacity provider could not provide capacity for the task within the provisioning timeout (TaskFailedToStart)"
    );
}

#[test]
fn once_placed_the_stability_timeout_counts_from_the_end_of_the_wait() {
    let status = RecycleStatus {
        step_started_at: Some(at(100)),
        capacity_wait: Some(CapacityWait {
            since: at(101),
            on: "cp-web".into(),
            tasks: vec!["p1".into()],
            ended: Some(at(700)),
        }),
        ..surged(Phase::Surging)
    };
    let starting = task("p1", "RUNNING", true, false, 690);
    let o = obs(
        service(4, 4, 0),
        vec![
            serving("t1", 10),
            serving("t2", 20),
            serving("t3", 30),
            starting,
        ],
    );
    let s = spec(json!({"stabilityTimeout": "1m"}));
    let d = run(&s, &status, &o, 750);
    assert_eq!(d.status.phase, Phase::Surging, "{}", d.status.message);
    let d = run(&s, &status, &o, 761);
    assert_eq!(d.status.phase, Phase::Restoring, "{}", d.status.message);
}

#[test]
fn the_end_of_a_wait_is_noted_once() {
    let (status, o) = surge_waiting();
    let d = run(&spec(json!({})), &status, &o, 200);
    let mut o = o;
    o.tasks[3] = TaskView {
        last_status: "PENDING".into(),
        container_instance: Some("ci-2".into()),
        ..waiting("p1", 101)
    };
    let d = run(&spec(json!({})), &d.status, &o, 500);
    assert_eq!(
        d.status.capacity_wait.as_ref().unwrap().ended,
        Some(at(500))
    );
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message == "capacity provider cp-web placed the waiting tasks after 6m39s"),
        "{:#?}",
        d.status.events
    );
}

/// The surge on a launch type EC2 service that ECS could not place, with
/// `left` (CPU, MiB) on each ACTIVE instance.
fn ec2_full(left: &[(u32, u32)]) -> (RecycleStatus, Observation) {
    let status = RecycleStatus {
        step_started_at: Some(at(100)),
        ..surged(Phase::Surging)
    };
    let sized = |t: TaskView| TaskView {
        cpu: Some(512),
        memory: Some(1024),
        ..t
    };
    let mut o = obs(
        ServiceView {
            launch_type: Some("EC2".into()),
            ..service(4, 3, 0)
        },
        vec![
            sized(serving("t1", 10)),
            sized(serving("t2", 20)),
            sized(serving("t3", 30)),
        ],
    );
    o.evidence.events.push(ServiceEvent {
        at: at(102),
        message: "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance 0a1b) has insufficient memory available. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.".into(),
    });
    o.capacity.room = Some(
        left.iter()
            .enumerate()
            .map(|(i, (cpu, memory))| InstanceRoom {
                arn: format!("ci-{i}"),
                cpu_left: *cpu,
                memory_left: *memory,
                running_tasks: 2,
                provider: None,
            })
            .collect(),
    );
    (status, o)
}

#[test]
fn on_a_full_launch_type_ec2_cluster_the_surge_fails_at_once_in_ecs_words() {
    let (status, o) = ec2_full(&[(1024, 0), (512, 512)]);
    assert!(needs_room(
        o.service.as_ref().unwrap(),
        &o.evidence,
        &o.tasks,
        at(100)
    ));
    // Said at the first look that finds it; the run ends at the next.
    let d = run(&spec(json!({})), &status, &o, 105);
    assert_eq!(d.status.phase, Phase::Surging);
    assert!(
        d.status
            .message
            .starts_with("no room for the spare task of prod/web: ")
            && d.status
                .message
                .ends_with("; the run ends if the next look finds no room either"),
        "{}",
        d.status.message
    );
    let d = run(&spec(json!({})), &d.status, &o, 106);
    assert_eq!(d.status.phase, Phase::Restoring);
    let outcome = &d.status.outcome.as_ref().unwrap().message;
    assert!(
        outcome.starts_with("no room for the spare task of prod/web: launch type EC2 and no capacity provider, so nothing adds an instance; 2 instances with 1024 CPU and 0 MiB, 512 CPU and 512 MiB left, and a task needs 512 CPU and 1024 MiB; ECS: (service web) was unable to place a task because no container instance met all of its requirements."),
        "{outcome}"
    );
}

#[test]
fn a_full_cluster_is_waited_for_while_an_instance_has_room_or_a_stopped_task_still_holds_it() {
    // An instance with room: ECS places the task at its next try.
    let (status, o) = ec2_full(&[(1024, 2048)]);
    let d = run(&spec(json!({})), &status, &o, 105);
    assert_eq!(d.status.phase, Phase::Surging, "{}", d.status.message);
    // No room at one look, the task placed by the next: the run goes on.
    let (status, full) = ec2_full(&[(0, 0)]);
    let d = run(&spec(json!({})), &status, &full, 105);
    let mut placed = full.clone();
    if let Ok(svc) = placed.service.as_mut() {
        svc.running = 4;
    }
    placed.tasks.push(serving("p1", 104));
    placed.protection.push(unprotected("p1"));
    let d = run(&spec(json!({})), &d.status, &placed, 106);
    assert_eq!(d.status.phase, Phase::Recycling, "{}", d.status.message);
    assert!(d.status.capacity_wait.is_none());
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message == "ECS placed the task it could not place 1s earlier"),
        "{:#?}",
        d.status.events
    );
    // Recycling in place: the stopped task holds its room until it stops.
    let (_, mut o) = ec2_full(&[(0, 0)]);
    o.tasks.push(task("t0", "DEACTIVATING", false, false, 5));
    let status = RecycleStatus {
        batch: vec!["t0".into()],
        stopped: vec!["t0".into()],
        step_started_at: Some(at(100)),
        ..in_phase(Phase::Recycling)
    };
    let d = run(&spec(json!({"maintainCapacity": false})), &status, &o, 105);
    assert_eq!(d.status.phase, Phase::Recycling, "{}", d.status.message);
    // An event from before the step is not this step's.
    let (status, mut o) = ec2_full(&[(0, 0)]);
    o.evidence.events[0].at = at(90);
    assert!(!needs_room(
        o.service.as_ref().unwrap(),
        &o.evidence,
        &o.tasks,
        at(100)
    ));
    let d = run(&spec(json!({})), &status, &o, 105);
    assert_eq!(d.status.phase, Phase::Surging);
}
