//! Protected work: a task protected from scale-in is never put in a batch;
//! its protection is asked for right before its batch; `wait` holds it
//! last up to `protectionWait`, `skip` leaves it running; a stop on record
//! whose task became protected meanwhile is withdrawn.

use super::*;

fn protected(arn: &str, until: i64) -> TaskProtection {
    TaskProtection {
        arn: arn.into(),
        protected: true,
        until: Some(at(until)),
    }
}

/// The steady service with `arn`'s protection read as `p`.
fn steady_with(p: TaskProtection) -> Observation {
    let mut o = steady3();
    o.protection.retain(|x| x.arn != p.arn);
    o.protection.push(p);
    o
}

fn stops(d: &Decision) -> Vec<&str> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::StopTask { arn, .. } => Some(arn.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_stopped_before_the_protection_of_the_next_tasks_is_read() {
    let mut o = steady3();
    o.protection.clear();
    let status = in_phase(Phase::Recycling);
    let d = run(&spec(json!({})), &status, &o, 100);
    assert_eq!(
        d.read_protection,
        ["t1", "t2", "t3"],
        "the next tasks, in order"
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.status, status, "a decision that asks changes nothing");
    assert_eq!(d.requeue, Some(Duration::ZERO));
}

#[test]
fn a_protected_task_is_held_back_and_the_next_one_stopped() {
    let d = run(
        &spec(json!({})),
        &in_phase(Phase::Recycling),
        &steady_with(protected("t1", 900)),
        100,
    );
    assert_eq!(stops(&d), ["t2"]);
    assert_eq!(d.status.batch, ["t2"]);
    assert_eq!(
        d.status.held().map(|p| p.task.as_str()).collect::<Vec<_>>(),
        ["t1"]
    );
    assert!(!d.status.skipped.contains(&"t1".to_string()));
    let said = d
        .status
        .events
        .iter()
        .find(|e| e.reason == Reason::Protected)
        .unwrap();
    assert!(
        said.message
            .starts_with("Task t1 is protected from scale-in until ")
            && said.message.contains(
                "it goes last, once its protection ends (protectedTasks: wait, up to 30m)"
            ),
        "{}",
        said.message
    );
}

#[test]
fn with_skip_a_protected_task_is_left_running_and_said_so() {
    let d = run(
        &spec(json!({"protectedTasks": "skip"})),
        &in_phase(Phase::Recycling),
        &steady_with(protected("t1", 900)),
        100,
    );
    assert_eq!(stops(&d), ["t2"]);
    assert_eq!(d.status.skipped, ["t1"]);
    assert_eq!(d.status.left_protected().count(), 1);
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message.ends_with("left running (protectedTasks: skip)"))
    );
}

/// t2 and t3 recycled, t1 held back since 200.
fn only_t1_held() -> RecycleStatus {
    RecycleStatus {
        stopped: vec!["t2".into(), "t3".into()],
        protected: vec![ProtectedTask {
            task: "t1".into(),
            until: Some(at(900)),
        }],
        ..surged(Phase::Recycling)
    }
}

#[test]
fn with_only_protected_tasks_left_the_run_waits_for_them_within_protection_wait() {
    let o = steady_with(protected("t1", 900));
    let d = run(&spec(json!({})), &only_t1_held(), &o, 300);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Phase::Recycling);
    assert_eq!(d.status.protection_wait, Some(at(300)));
    assert!(
        d.status
            .message
            .starts_with("2/3 tasks recycled; waiting for 1 task protected from scale-in until ")
            && d.status
                .message
                .contains("(t1) to end their protection; they are left running after ")
            && d.status.message.ends_with("(protectionWait 30m)"),
        "{}",
        d.status.message
    );
    let requeue = d.requeue.unwrap();
    assert!(
        requeue >= Duration::from_secs(1) && requeue <= Duration::from_secs(10),
        "{requeue:?}"
    );
    // Its protection ended: it is stopped now.
    let d = run(&spec(json!({})), &d.status, &steady3(), 400);
    assert_eq!(stops(&d), ["t1"]);
    assert_eq!(d.status.held().count(), 0);
}

#[test]
fn past_protection_wait_the_protected_tasks_are_left_running_and_the_run_ends() {
    let waiting = RecycleStatus {
        protection_wait: Some(at(300)),
        ..only_t1_held()
    };
    let o = steady_with(protected("t1", 5000));
    let d = run(&spec(json!({})), &waiting, &o, 300 + 1800);
    assert_eq!(d.status.phase, Phase::Restoring);
    assert!(d.actions.is_empty(), "nothing stopped: {:?}", d.actions);
    assert_eq!(d.status.skipped, ["t1"]);
    let outcome = &d.status.outcome.as_ref().unwrap().message;
    assert!(
        outcome.starts_with("recycled 2 of 3 planned tasks (0 already gone); 1 task skipped: protected from scale-in until "),
        "{outcome}"
    );
    assert!(
        d.status.events.iter().any(|e| e.reason == Reason::Protected
            && e.message.contains("protectionWait 30m ran out: t1")),
        "{:#?}",
        d.status.events
    );
}

#[test]
fn a_stop_on_record_is_made_only_after_its_protection_is_read() {
    let mut tasks = steady3().tasks;
    tasks.push(serving("s", 50));
    let mut o = obs(service(4, 4, 0), tasks);
    o.protection.clear();
    let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &o, 101);
    assert_eq!(d.read_protection, ["t1"]);
    assert!(d.actions.is_empty());
}

#[test]
fn a_task_protected_after_its_stop_was_decided_is_not_stopped() {
    let mut tasks = steady3().tasks;
    tasks.push(serving("s", 50));
    let mut o = obs(service(4, 4, 0), tasks);
    o.protection.retain(|p| p.arn != "t1");
    o.protection.push(protected("t1", 900));
    let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &o, 101);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.status.batch.is_empty() && d.status.stopped.is_empty());
    assert_eq!(d.status.held().count(), 1);
    assert!(d.status.events.iter().any(|e| e.message
        == "Task t1 became protected from scale-in before it was stopped; not stopped"));
    // The next decision picks the next task.
    let d = run(
        &spec(json!({})),
        &d.status,
        &steady_with(protected("t1", 900)),
        102,
    );
    assert_eq!(stops(&d), ["t2"]);
}

#[test]
fn a_planned_task_taken_by_spot_is_skipped_and_counted_not_failed() {
    // Warned by Spot, t1 still runs out its two minutes beside the
    // replacement ECS launched for it at once.
    let mut o = obs(
        service(3, 4, 0),
        vec![
            serving("t2", 20),
            TaskView {
                stop_code: Some("TerminationNotice".into()),
                ..task("t1", "RUNNING", false, true, 10)
            },
            serving("t3", 30),
            serving("r1", 60),
        ],
    );
    o.protection.retain(|p| p.arn != "t1");
    let d = run(&spec(json!({})), &in_phase(Phase::Recycling), &o, 100);
    assert_eq!(stops(&d), ["t2"]);
    assert_eq!(d.status.skipped, ["t1"]);
    assert_eq!(d.status.interrupted, ["t1"]);
    assert!(
        d.status
            .events
            .iter()
            .any(|e| e.message == "Task t1 was taken by Fargate Spot (TerminationNotice); skipped")
    );
}

#[test]
fn a_task_still_stopping_for_spot_does_not_keep_the_service_from_being_stable() {
    // r9 (a replacement) was interrupted: its own replacement serves, it
    // still runs out its two minutes.
    let mut o = obs(service(4, 5, 0), steady3().tasks);
    o.tasks.push(serving("s", 50));
    o.protection.push(unprotected("s"));
    o.evidence.stopped.push(StoppedTask {
        arn: "r9".into(),
        last_status: "RUNNING".into(),
        stopped_reason: "Your Spot Task was interrupted.".into(),
        stop_code: "TerminationNotice".into(),
        created_at: Some(at(60)),
        stopped_at: None,
    });
    let d = run(&spec(json!({})), &surged(Phase::Recycling), &o, 100);
    assert_eq!(stops(&d), ["t1"], "{}", d.status.message);
    assert_eq!(d.status.interrupted, ["r9"]);
    // The same without the evidence: not stable, nothing stopped.
    o.evidence.stopped.clear();
    let d = run(&spec(json!({})), &surged(Phase::Recycling), &o, 100);
    assert!(d.actions.is_empty());
}

#[test]
fn the_summary_counts_interruptions_that_were_not_the_runs_own() {
    let done = RecycleStatus {
        stopped: vec!["t1".into(), "t2".into()],
        skipped: vec!["t3".into()],
        interrupted: vec!["t3".into(), "r4".into()],
        ..surged(Phase::Recycling)
    };
    let o = obs(
        service(4, 4, 0),
        vec![
            serving("a", 1),
            serving("b", 2),
            serving("c", 3),
            serving("s", 4),
        ],
    );
    let d = run(&spec(json!({})), &done, &o, 500);
    assert_eq!(
        d.status.outcome.unwrap().message,
        "recycled 2 of 3 planned tasks (1 already gone); 2 tasks taken by Fargate Spot during the run (not its own stops)"
    );
}

#[test]
fn a_task_held_under_wait_is_left_running_once_the_spec_says_skip() {
    let o = steady_with(protected("t1", 900));
    let d = run(
        &spec(json!({"protectedTasks": "skip"})),
        &only_t1_held(),
        &o,
        300,
    );
    assert_eq!(d.status.skipped, ["t1"]);
    assert_eq!(d.status.phase, Phase::Restoring, "{}", d.status.message);
    assert!(d.actions.is_empty());
}
