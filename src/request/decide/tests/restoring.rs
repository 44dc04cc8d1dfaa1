//! Restoring: the surge taken back only from the count it set, the
//! scaling settings brought back, and the outcome's final words.

use super::*;

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

/// The fault campaign's seed 3017: the shell reads the count right before
/// UpdateService and leaves it if it moved since the look. A restore on
/// record but not sent, the count now the autoscaler's: left, and said so.
#[test]
fn a_restore_not_sent_because_the_count_moved_leaves_it_and_says_whose_it_is() {
    let mut status = restoring(Phase::Succeeded);
    status.restore = Some(DesiredChange { from: 4, to: 3 });
    let d = run(
        &spec(json!({})),
        &status,
        &obs(service(7, 7, 0), vec![]),
        500,
    );
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert!(
        d.status
            .message
            .ends_with("Desired count left at 7, set by someone else during the run."),
        "{}",
        d.status.message
    );
    assert_eq!(d.status.restore, Some(DesiredChange { from: 7, to: 7 }));
}
