//! The traffic model through `/_sim/traffic` and the timeline: a steady
//! rate served without loss while nothing stops, requests dropped while a
//! lone task is replaced, dropped by containers that stop while their
//! target still gets requests when the target group does not drain, and
//! none lost when it does.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute;
use serde_json::{Value, json};
use test_support::*;

use super::elb::{Fixture, SCALE, WITHIN, reached, steady_behind_lb, task_history, wait_for};

/// The service's traffic samples from the timeline, over HTTP.
async fn traffic_samples(f: &Fixture) -> Vec<Value> {
    let (status, body) = raw_request(f.sim.url(), "GET", "/_sim/timeline", &[], b"").await;
    assert_eq!(status, 200);
    let timeline: Value = serde_json::from_str(&body).unwrap();
    timeline["traffic"]["prod/web"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn summary(f: &Fixture) -> Value {
    let (status, body) = raw_request(
        f.sim.url(),
        "GET",
        "/_sim/traffic?cluster=prod&service=web",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn set_rps(f: &Fixture, rps: f64) {
    let body = json!({"cluster": "prod", "service": "web", "rps": rps}).to_string();
    let (status, answer) =
        raw_request(f.sim.url(), "POST", "/_sim/traffic", &[], body.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
}

/// The summary is the samples added up; its fewest healthy targets, looked
/// at between the samples too, is at most theirs.
fn assert_summary_agrees(summary: &Value, samples: &[Value]) {
    let sum = |k: &str| samples.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(summary["served"], sum("served"));
    assert_eq!(summary["dropped"], sum("dropped"));
    assert_eq!(summary["samples"], samples.len());
    let min = samples
        .iter()
        .map(|s| s["healthyTargets"].as_u64().unwrap())
        .min()
        .unwrap();
    assert!(
        summary["minHealthyTargets"].as_u64().unwrap() <= min,
        "{summary}"
    );
}

async fn set_delay(f: &Fixture, seconds: i32) {
    f.elb
        .modify_target_group_attributes()
        .target_group_arn(&f.tg)
        .attributes(
            TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value(seconds.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Stops one task, waits until it is STOPPED and a second of traffic more
/// has been sampled, then stops the traffic.
async fn stop_one_under_traffic(f: &Fixture) -> String {
    let victim = running_task_arns(&f.c.ecs, "prod", "web").await[0].clone();
    stop_task(&f.c.ecs, "prod", &victim).await;
    wait_for("the task stops", || {
        reached(task_history(&f.sim.timeline(), &victim), "STOPPED").is_some()
    })
    .await;
    wait_steady(&f.c.ecs, "prod", "web", WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    set_rps(f, 0.0).await;
    victim
}

#[tokio::test]
async fn steady_traffic_with_no_stops_drops_nothing() {
    let f = steady_behind_lb(2, 200, 100).await;
    set_rps(&f, 50.0).await;
    tokio::time::sleep(Duration::from_millis(3300)).await;
    set_rps(&f, 0.0).await;
    let samples = traffic_samples(&f).await;
    assert!(samples.len() >= 3, "{samples:?}");
    for pair in samples[..3].windows(2) {
        let gap = pair[1]["t"].as_f64().unwrap() - pair[0]["t"].as_f64().unwrap();
        assert!((gap - 1.0).abs() < 1e-9, "a sample a second: {gap}");
    }
    for s in &samples[..3] {
        assert_eq!(
            (s["served"].as_u64(), s["dropped"].as_u64()),
            (Some(50), Some(0)),
            "{s}"
        );
        assert_eq!(
            (s["healthyTargets"].as_u64(), s["drainingTargets"].as_u64()),
            (Some(2), Some(0))
        );
    }
    let summary = summary(&f).await;
    assert_eq!(summary["dropped"], 0);
    assert_eq!(summary["minHealthyTargets"], 2);
    assert_summary_agrees(&summary, &samples);
    // Stopped: no more samples.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(traffic_samples(&f).await.len(), samples.len());
}

#[tokio::test]
async fn a_lone_task_stopped_drops_requests_until_its_replacement_is_healthy() {
    let f = steady_behind_lb(1, 200, 100).await;
    set_rps(&f, 50.0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stop_one_under_traffic(&f).await;
    let samples = traffic_samples(&f).await;
    let summary = summary(&f).await;
    assert_summary_agrees(&summary, &samples);
    assert!(summary["dropped"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["minHealthyTargets"], 0);
    // The stopped task's target was seen draining.
    assert!(
        samples.iter().any(|s| s["drainingTargets"] == 1),
        "{samples:?}"
    );
    assert_eq!(samples[0]["dropped"], 0, "nothing lost before the stop");
}

#[tokio::test]
async fn with_a_drain_stopping_one_of_two_tasks_loses_no_request() {
    let f = steady_behind_lb(2, 200, 100).await;
    set_rps(&f, 1000.0).await;
    stop_one_under_traffic(&f).await;
    let summary = summary(&f).await;
    assert_eq!(summary["dropped"], 0, "{summary}");
    assert!(summary["served"].as_u64().unwrap() > 1000);
    assert_eq!(summary["minHealthyTargets"], 1);
}

#[tokio::test]
async fn without_a_drain_requests_still_sent_to_a_stopped_task_are_dropped() {
    let f = steady_behind_lb(2, 200, 100).await;
    set_delay(&f, 0).await;
    set_rps(&f, 1000.0).await;
    stop_one_under_traffic(&f).await;
    let summary = summary(&f).await;
    // ELB's nodes send it requests for 1 s / SCALE after deregistration
    // began; its containers stopped at once: about half of 50 requests lost.
    let dropped = summary["dropped"].as_u64().unwrap();
    assert!((10..=40).contains(&dropped), "{summary} at scale {SCALE}");
    assert_eq!(
        summary["minHealthyTargets"], 1,
        "a healthy target all along"
    );
}

#[tokio::test]
async fn traffic_needs_a_service_with_load_balancers() {
    let (sim, _c) = steady_service("prod", "plain", 1, false).await;
    let body = json!({"cluster": "prod", "service": "plain", "rps": 5}).to_string();
    let (status, answer) =
        raw_request(sim.url(), "POST", "/_sim/traffic", &[], body.as_bytes()).await;
    assert_eq!(status, 400);
    assert!(answer.contains("has no load balancers"), "{answer}");
    let body = json!({"cluster": "prod", "service": "ghost", "rps": 5}).to_string();
    let (status, _) = raw_request(sim.url(), "POST", "/_sim/traffic", &[], body.as_bytes()).await;
    assert_eq!(status, 400);
}
