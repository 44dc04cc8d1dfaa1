//! Load balancer targets: a task serves only once its target is healthy,
//! a drain that blocks the replacements is allowed for, and targets that
//! cannot be read stop the run.

use super::*;

const TG: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-80/73e2d6bc24d8a067";

fn balanced(mut svc: ServiceView, maximum_percent: u32) -> ServiceView {
    svc.load_balancers = vec![crate::request::observation::LoadBalancerView {
        target_group_arn: TG.into(),
        container_name: "web".into(),
        container_port: 80,
    }];
    svc.maximum_percent = maximum_percent;
    svc
}

fn with_target(mut t: TaskView, state: &str) -> TaskView {
    t.targets = vec![crate::request::observation::TargetSeen {
        group: "tg/web-80".into(),
        state: state.into(),
        reason: (state == "initial").then(|| "Elb.InitialHealthChecking".into()),
    }];
    t
}

#[test]
fn a_replacement_serves_only_once_its_target_is_healthy_and_the_wait_says_so() {
    // r1 is RUNNING (no container health check) but the load balancer has
    // not passed it yet: the batch is not done, and the status names the target.
    let mut r1 = task("r1", "RUNNING", true, false, 110);
    r1.health_checked = false;
    let tasks = |r1_state: &str| {
        vec![
            with_target(task("t1", "DEACTIVATING", false, true, 10), "draining"),
            with_target(serving("t2", 20), "healthy"),
            with_target(serving("t3", 30), "healthy"),
            with_target(serving("s", 50), "healthy"),
            with_target(r1.clone(), r1_state),
        ]
    };
    let svc = balanced(service(4, 4, 0), 200);
    let d = run(
        &spec(json!({})),
        &batch_t1(Phase::Recycling),
        &obs(svc.clone(), tasks("initial")),
        120,
    );
    assert_eq!(d.status.batch, ["t1"], "still in flight");
    assert!(
        d.status
            .message
            .contains("waiting for 1 target: initial in tg/web-80"),
        "{}",
        d.status.message
    );
    // Healthy in the target group: done, though t1 still drains.
    let d = run(
        &spec(json!({})),
        &batch_t1(Phase::Recycling),
        &obs(svc, tasks("healthy")),
        121,
    );
    assert_eq!(d.status.wait_until, Some(at(151)), "{}", d.status.message);
}

#[test]
fn spare_capacity_counts_only_once_its_targets_are_healthy() {
    let status = surged(Phase::Surging);
    let tasks = |state: &str| {
        vec![
            with_target(serving("t1", 10), "healthy"),
            with_target(serving("t2", 20), "healthy"),
            with_target(serving("t3", 30), "healthy"),
            with_target(serving("s", 50), state),
        ]
    };
    let svc = balanced(service(4, 4, 0), 200);
    let d = run(
        &spec(json!({})),
        &status,
        &obs(svc.clone(), tasks("initial")),
        60,
    );
    assert_eq!(d.status.phase, Phase::Surging);
    assert!(
        d.status
            .message
            .contains("waiting for 1 target: initial in tg/web-80"),
        "{}",
        d.status.message
    );
    let d = run(&spec(json!({})), &status, &obs(svc, tasks("healthy")), 61);
    assert_eq!(d.status.phase, Phase::Recycling);
}

#[test]
fn a_drain_that_blocks_the_replacements_is_allowed_for_and_named() {
    // maximumPercent 100 at desired 4: no room for r1 until t1 has drained
    // (300s), so a 2m stability timeout is not yet up at 250s.
    let tasks = vec![
        with_target(task("t1", "DEACTIVATING", false, true, 10), "draining"),
        with_target(serving("t2", 20), "healthy"),
        with_target(serving("t3", 30), "healthy"),
        with_target(serving("s", 50), "healthy"),
    ];
    let mut o = obs(balanced(service(4, 3, 0), 100), tasks);
    o.drain = Some(Duration::from_secs(300));
    let sp = spec(json!({"stabilityTimeout": "2m"}));
    let d = run(&sp, &batch_t1(Phase::Recycling), &o, 350);
    assert_eq!(d.status.phase, Phase::Recycling, "{}", d.status.message);
    assert!(
        d.status
            .message
            .contains("1 stopped task draining, and maximumPercent 100% leaves no room"),
        "{}",
        d.status.message
    );
    // Past the timeout plus the drain, it fails saying both.
    let d = run(&sp, &batch_t1(Phase::Recycling), &o, 521);
    assert_eq!(d.status.phase, Phase::Restoring);
    let message = d.status.outcome.unwrap().message;
    assert!(
        message
            .contains("within 7m (the stability timeout, plus 5m for the stopped tasks to drain)"),
        "{message}"
    );
    // With room to launch beside the drain, the drain is not allowed for.
    let mut roomy = o.clone();
    roomy.service = Ok(balanced(service(4, 3, 0), 200));
    let d = run(&sp, &batch_t1(Phase::Recycling), &roomy, 250);
    assert_eq!(d.status.phase, Phase::Restoring);
}

#[test]
fn unreadable_targets_stop_the_run_before_it_touches_anything_or_through_restore() {
    let why = "elasticloadbalancing:DescribeTargetHealth was refused: AccessDenied: not authorized";
    let mut o = steady3();
    o.service = Ok(balanced(service(3, 3, 0), 200));
    o.targets_refused = Some(why.into());
    let d = run(&spec(json!({})), &RecycleStatus::default(), &o, 100);
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(d.actions.is_empty());
    assert!(
        d.status
            .message
            .contains("cannot read the load balancer targets of prod/web")
            && d.status.message.contains("AccessDenied"),
        "{}",
        d.status.message
    );
    let d = run(&spec(json!({})), &batch_t1(Phase::Recycling), &o, 120);
    assert_eq!(d.status.phase, Phase::Restoring);
}
