//! What the tasks alone show unfinished: no service count can finish a
//! step they hold open.

use super::*;

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
