//! Gates: an alarm holds the run before each stop, in every phase, and a
//! gate that cannot work fails the run before it touches anything.

use super::*;

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
        serving_since: None,
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
