//! The window (`notAfter`): closed, it ends the run through Restoring,
//! finishing a batch in flight, and is an outcome of its own.

use super::*;

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
    let done_batch = batch_t1_done();
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
