//! The rehearsal and its words: the floor, the estimate, and the drains a
//! load-balanced service makes the run wait for.

use std::time::Duration;

use super::*;
use crate::request::observation::{DeploymentView, ServiceView, TaskView};
use crate::request::status::{Event, Reason};

fn spec(maintain: bool, batch: u32) -> RecycleSpec {
    let mut v = serde_json::json!({"cluster": "prod", "service": "web", "wait": "30s"});
    v["maintainCapacity"] = maintain.into();
    v["batchSize"] = batch.into();
    crate::request::spec::parse_spec(&v, "spec").unwrap()
}

fn service(n: u32) -> Observation {
    let t0 = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .unwrap()
        .to_utc();
    Observation {
        service: Ok(ServiceView {
            desired: n,
            running: n,
            pending: 0,
            deployments: vec![DeploymentView {
                id: "d".into(),
                primary: true,
                rollout: "COMPLETED".into(),
            }],
            ..Default::default()
        }),
        tasks: (0..n)
            .map(|i| TaskView {
                arn: format!("arn:aws:ecs:us-east-1:1:task/prod/t{i}"),
                last_status: "RUNNING".into(),
                desired_running: true,
                health: "HEALTHY".into(),
                health_checked: true,
                started_at: Some(t0 + chrono::Duration::seconds(20 + i as i64)),
                created_at: Some(t0 + chrono::Duration::seconds(i as i64)),
                ..Default::default()
            })
            .collect(),
        scaling: None,
        evidence: Default::default(),
        targets_refused: None,
        drain: None,
        protection: Vec::new(),
        capacity: Default::default(),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T06:00:00Z")
        .unwrap()
        .to_utc()
}

#[test]
fn with_spare_capacity_the_floor_is_the_original_desired_count() {
    let est = estimate(&[], &service(3).tasks);
    assert_eq!(est.replacement, Duration::from_secs(50), "{}", est.basis);
    let p = rehearse("r", &spec(true, 1), &service(3), est, now());
    assert_eq!(p.outcome, Phase::Succeeded, "{}", p.message);
    assert_eq!(p.tasks.len(), 3);
    assert_eq!(p.lowest_running, 3);
    let calls: Vec<&str> = p.steps.iter().map(|s| s.call.as_str()).collect();
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert!(calls[0].starts_with("ecs:UpdateService desiredCount 3 → 4"));
    assert!(calls[1..4].iter().all(|c| c.starts_with("ecs:StopTask")));
    assert!(calls[4].starts_with("ecs:UpdateService desiredCount 4 → 3"));
    // surge + 3 replacements at 50s, 3 waits of 30s.
    assert_eq!(p.duration, Duration::from_secs(4 * 50 + 3 * 30));
    let text = render(&p, &spec(true, 1), now());
    assert!(
        text.contains("Restoring takes the surge back only while desired is still 4 (the count it set); a count the autoscaler or a person sets during the run is left as it is"),
        "{text}"
    );
    let without = rehearse("r", &spec(false, 1), &service(3), estimate(&[], &[]), now());
    assert!(!render(&without, &spec(false, 1), now()).contains("takes the surge back"));
}

#[test]
fn without_spare_capacity_a_batch_below_desired_is_shown() {
    let est = estimate(&[], &service(4).tasks);
    let p = rehearse("r", &spec(false, 2), &service(4), est, now());
    assert_eq!(p.outcome, Phase::Succeeded);
    assert_eq!(p.lowest_running, 2);
    assert_eq!(p.steps.len(), 4);
}

#[test]
fn earlier_runs_give_the_estimate() {
    let t = now();
    let ev = |s: i64, reason: &str| Event {
        at: t + chrono::Duration::seconds(s),
        reason: Reason::from(reason.to_string()),
        message: String::new(),
        task: None,
    };
    let earlier = RecycleStatus {
        events: vec![
            ev(0, "Recycling"),
            ev(12, "Recycled"),
            ev(42, "Recycling"),
            ev(56, "Recycled"),
        ],
        ..Default::default()
    };
    let est = estimate(&[earlier], &service(2).tasks);
    assert_eq!(est.replacement, Duration::from_secs(14));
    assert!(
        est.basis
            .contains("2 replacement(s) observed in 1 earlier run"),
        "{}",
        est.basis
    );
}

fn behind_a_target_group(n: u32, maximum_percent: u32, delay: u64) -> Observation {
    let mut o = service(n);
    if let Ok(svc) = o.service.as_mut() {
        svc.load_balancers = vec![crate::request::observation::LoadBalancerView {
            target_group_arn:
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-80/73e2d6bc".into(),
            container_name: "web".into(),
            container_port: 80,
        }];
        svc.maximum_percent = maximum_percent;
    }
    o.drain = Some(Duration::from_secs(delay));
    o
}

#[test]
fn drains_that_maximum_percent_makes_the_replacements_wait_for_are_in_the_estimate_and_warned() {
    // 20 tasks, maximumPercent 100: each batch waits 300s of drain.
    let o = behind_a_target_group(20, 100, 300);
    let est = estimate(&[], &o.tasks);
    let p = rehearse("r", &spec(true, 1), &o, est.clone(), now());
    assert_eq!(p.outcome, Phase::Succeeded, "{}", p.message);
    let d = p.drains.as_ref().unwrap();
    assert_eq!((d.blocked_batches, d.batches), (20, 20));
    assert!(
        p.duration >= Duration::from_secs(20 * 300),
        "{:?}",
        p.duration
    );
    let text = render(&p, &spec(true, 1), now());
    assert!(
        text.contains(
            "each stop drains for up to 5m (tg/web-80 deregistration delay): 20 tasks take about"
        ),
        "{text}"
    );
    assert!(text.contains("raise maximumPercent to 105%"), "{text}");
    assert!(
        text.contains("elasticloadbalancing:DescribeTargetHealth"),
        "{text}"
    );
    // With room beside the drains, they overlap: no drain in the estimate.
    let roomy = behind_a_target_group(20, 200, 300);
    let p = rehearse("r", &spec(true, 1), &roomy, est, now());
    assert_eq!(p.drains.as_ref().unwrap().blocked_batches, 0);
    assert!(
        p.duration < Duration::from_secs(20 * 300),
        "{:?}",
        p.duration
    );
    let text = render(&p, &spec(true, 1), now());
    assert!(text.contains("Drains overlap the next batches"), "{text}");
    assert!(!text.contains("Warning"), "{text}");
}

/// `service(n)` on launch type EC2 with `left` (CPU, MiB) on its one
/// instance, each task reserving 512 CPU and 1024 MiB.
fn on_ec2(n: u32, left: (u32, u32)) -> Observation {
    let mut o = service(n);
    if let Ok(svc) = o.service.as_mut() {
        svc.launch_type = Some("EC2".into());
    }
    for t in &mut o.tasks {
        t.cpu = Some(512);
        t.memory = Some(1024);
    }
    o.capacity.room = Some(vec![crate::request::observation::InstanceRoom {
        arn: "ci-1".into(),
        cpu_left: left.0,
        memory_left: left.1,
        running_tasks: n,
        provider: None,
    }]);
    o
}

#[test]
fn a_cluster_without_room_for_the_surge_is_warned_and_recycling_in_place_recommended() {
    let o = on_ec2(3, (512, 512));
    let p = rehearse("r", &spec(true, 1), &o, estimate(&[], &o.tasks), now());
    let text = render(&p, &spec(true, 1), now());
    assert!(
        text.contains("  Capacity: launch type EC2, no capacity provider: nothing adds an instance when a task does not fit\n"),
        "{text}"
    );
    assert!(
        text.contains("  Room: 1 ACTIVE container instance(s) with 512 CPU units and 512 MiB left in all; a task needs 512 CPU and 1024 MiB: room for 0 more task(s)\n"),
        "{text}"
    );
    assert!(
        text.contains("Warning: no room for the surge of 1 task(s), and nothing adds an instance: the run would fail at its first look. Recycle in place with maintainCapacity: false (running falls to 2 of 3 while each replacement starts), or add capacity to the cluster"),
        "{text}"
    );
    // With room, or without a surge, no warning.
    let roomy = on_ec2(3, (1024, 2048));
    let p = rehearse(
        "r",
        &spec(true, 1),
        &roomy,
        estimate(&[], &roomy.tasks),
        now(),
    );
    assert!(!render(&p, &spec(true, 1), now()).contains("Warning: no room"));
    let p = rehearse("r", &spec(false, 1), &o, estimate(&[], &o.tasks), now());
    assert!(!render(&p, &spec(false, 1), now()).contains("Warning: no room"));
}

#[test]
fn protected_tasks_and_spot_are_named_and_the_rehearsal_waits_for_protection() {
    let mut o = service(3);
    let until = now() + chrono::Duration::minutes(10);
    o.protection = o
        .tasks
        .iter()
        .map(|t| crate::request::observation::TaskProtection {
            arn: t.arn.clone(),
            protected: t.arn.ends_with("t0"),
            until: t.arn.ends_with("t0").then_some(until),
        })
        .collect();
    o.tasks[1].capacity_provider = Some("FARGATE_SPOT".into());
    let est = estimate(&[], &o.tasks);
    let p = rehearse("r", &spec(true, 1), &o, est.clone(), now());
    assert_eq!(p.outcome, Phase::Succeeded, "{}", p.message);
    let text = render(&p, &spec(true, 1), now());
    assert!(
        text.contains("  Protected from scale-in: 1 task(s) (t0 until 06:10 UTC); never stopped while protected: they go last, once their protection ends, up to protectionWait 30m; then they are left running\n"),
        "{text}"
    );
    assert!(
        text.contains("  Fargate Spot: 1 of 3 task(s) (33%) run on FARGATE_SPOT;"),
        "{text}"
    );
    // t0 goes last, once its protection ends at 10m.
    let stops: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| s.call.starts_with("ecs:StopTask"))
        .collect();
    assert!(
        stops[2].call.contains("t0") && stops[2].at >= Duration::from_secs(600),
        "{stops:?}"
    );
    // With skip it is left running.
    let mut skip = spec(true, 1);
    skip.protected_tasks = crate::request::spec::ProtectedTasks::Skip;
    let p = rehearse("r", &skip, &o, est, now());
    assert!(
        p.message
            .contains("1 task skipped: protected from scale-in until 06:10 UTC"),
        "{}",
        p.message
    );
}
