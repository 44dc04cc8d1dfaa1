//! How a run ends early and stays ended: a service gone, a refusal from
//! AWS, a finished request left alone.

use super::*;

#[test]
fn a_service_gone_during_the_run_fails_with_the_reason() {
    let gone = Observation {
        service: Err("ServiceNotActiveException: Service was not ACTIVE.".into()),
        tasks: vec![],
        scaling: None,
        evidence: Default::default(),
        targets_refused: None,
        drain: None,
        protection: Vec::new(),
        capacity: Default::default(),
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
