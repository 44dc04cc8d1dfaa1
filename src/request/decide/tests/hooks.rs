//! Hooks: asked at each point, the run held until they pass.

use super::*;

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
