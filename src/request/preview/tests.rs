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
