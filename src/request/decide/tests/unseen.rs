//! A service the operator cannot see whole: the status says so after a
//! few failed looks (at once for a denied read), is written again only
//! when another call is the trouble, and is cleared by the next whole look.

use super::*;

fn trouble(call: &str, denied: bool, looks: u32) -> Trouble {
    Trouble {
        call: call.into(),
        sentence: format!("cannot see the targets of prod/web: {call} got no answer"),
        denied,
        looks,
    }
}

#[test]
fn a_failed_look_is_said_after_a_few_and_once_per_call() {
    let pending = RecycleStatus::default();
    let elb = "elasticloadbalancing:DescribeTargetHealth";
    assert_eq!(
        unseen(&pending, &trouble(elb, false, 1), at(10)),
        None,
        "a blip is not news"
    );
    let said = unseen(&pending, &trouble(elb, false, 2), at(11)).expect("said at the second look");
    assert_eq!(said.phase, Phase::Pending);
    assert_eq!(
        said.message,
        "cannot see the targets of prod/web: elasticloadbalancing:DescribeTargetHealth got no answer; nothing was touched; the run starts by itself once it can see"
    );
    assert!(
        said.plan.is_none() && said.started_at.is_none(),
        "nothing else changes"
    );
    assert_eq!(said.events.len(), 1);
    assert_eq!(said.events[0].reason, Reason::Unseen);
    assert_eq!(
        unseen(&said, &trouble(elb, false, 9), at(30)),
        None,
        "no write storm"
    );
    let other = unseen(&said, &trouble("ecs:DescribeServices", false, 10), at(31)).unwrap();
    assert_eq!(
        other.unseen.as_ref().unwrap().since,
        at(11),
        "the trouble's start is kept"
    );
}

#[test]
fn a_denied_read_is_said_at_once_and_mid_run_changes_nothing_else() {
    let status = batch_t1(Phase::Recycling);
    let said = unseen(&status, &trouble("ecs:DescribeTasks", true, 1), at(200)).unwrap();
    assert!(said.message.ends_with(
        "nothing more is changed until it can see; the run goes on by itself once it can"
    ));
    let mut expected = status.clone();
    expected.message = said.message.clone();
    expected.unseen = said.unseen.clone();
    expected.events = said.events.clone();
    assert_eq!(said, expected);
    assert_eq!(
        unseen(
            &RecycleStatus {
                phase: Phase::Succeeded,
                ..status
            },
            &trouble("x", true, 5),
            at(1)
        ),
        None
    );
}

#[test]
fn the_next_whole_look_clears_it_and_the_run_goes_on() {
    let mut status = in_phase(Phase::Recycling);
    status.surge = Some(DesiredChange { from: 3, to: 3 });
    let status = unseen(&status, &trouble("ecs:DescribeServices", true, 1), at(50)).unwrap();
    let d = run(&spec(json!({})), &status, &steady3(), 170);
    assert!(d.status.unseen.is_none());
    assert!(matches!(&d.actions[..], [Action::StopTask { arn, .. }] if arn == "t1"));
    let seen = d
        .status
        .events
        .iter()
        .find(|e| e.reason == Reason::Seen)
        .unwrap();
    assert_eq!(
        seen.message,
        "sees prod/web whole again after 2m (ecs:DescribeServices answered); going on"
    );
}
