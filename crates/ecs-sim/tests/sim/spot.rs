//! Fargate Spot through the official SDK and the control API: the warning
//! as ECS words it, the replacement launched at once, the task STOPPED two
//! (scaled) minutes later with stop code SpotInterruption, the timeline
//! telling it from an operator's StopTask, and interruptions refused for
//! tasks not on FARGATE_SPOT.

use std::time::Duration;

use serde_json::json;
use test_support::*;

use super::elb::{task_history, wait_for};

pub(crate) use test_support::capacity::service_on;

/// Service `web` of `desired` tasks on FARGATE_SPOT in cluster `prod`, steady.
async fn spot_service(desired: i32) -> (Simulator, Clients) {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    service_on(&c, "FARGATE_SPOT", desired, false).await;
    (sim, c)
}

#[tokio::test]
async fn a_spot_interruption_warns_stops_after_two_minutes_and_is_replaced() {
    let (sim, c) = spot_service(2).await;
    // Two minutes at ECS time scale 60: 2 s.
    sim.configure(json!({"ecsTimeScale": 60.0})).unwrap();
    let at = sim.now();
    let answer = sim
        .interrupt_spot(json!({"cluster": "prod", "service": "web", "count": 1}))
        .unwrap();
    let victim = answer["interrupted"][0].as_str().unwrap().to_string();
    // The warning: still RUNNING, told to stop, in ECS's words.
    let task = describe_task(&c.ecs, "prod", &victim).await;
    assert_eq!(task.capacity_provider_name(), Some("FARGATE_SPOT"));
    assert_eq!(task.last_status(), Some("RUNNING"));
    assert_eq!(task.desired_status(), Some("STOPPED"));
    assert_eq!(
        task.stopped_reason(),
        Some("Your Spot Task was interrupted.")
    );
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("TerminationNotice")
    );
    // The scheduler replaces it while it still runs.
    wait_for("a replacement running beside it", || {
        let timeline = sim.timeline();
        samples(&timeline, "prod", "web")
            .iter()
            .any(|s| s.0 > at && s.2 == 3)
    })
    .await;
    wait_for("the interrupted task stopped", || {
        task_history(&sim.timeline(), &victim)["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["lastStatus"] == "STOPPED")
    })
    .await;
    let timeline = sim.timeline();
    let history = task_history(&timeline, &victim);
    assert_eq!(history["stoppedBy"], "spot-interruption");
    let running_until = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .map(|t| t["t"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let stopping = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["lastStatus"] == "STOPPING")
        .map(|t| t["t"].as_f64().unwrap())
        .unwrap();
    assert!(
        stopping - at >= 2.0 - 1e-6,
        "ran its two minutes: {stopping} vs {at}"
    );
    assert!(running_until <= stopping);
    let task = describe_task(&c.ecs, "prod", &victim).await;
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("SpotInterruption")
    );
    assert_eq!(
        task.stopped_reason(),
        Some("Your Spot Task was interrupted.")
    );
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    // An operator's stop reads differently in the timeline.
    let other = running_task_arns(&c.ecs, "prod", "web").await[0].clone();
    stop_task(&c.ecs, "prod", &other).await;
    assert_eq!(
        task_history(&sim.timeline(), &other)["stoppedBy"],
        "StopTask"
    );
    assert!(
        sim.timeline()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["op"] == "_sim:SpotInterruption"
                && c["params"]["tasks"][0] == victim.as_str())
    );
}

#[tokio::test]
async fn only_tasks_on_fargate_spot_can_be_interrupted() {
    let (sim, c) = steady_service("prod", "web", 1, false).await;
    let arn = running_task_arns(&c.ecs, "prod", "web").await[0].clone();
    let err = sim
        .interrupt_spot(json!({"cluster": "prod", "task": arn}))
        .unwrap_err();
    assert!(err.contains("not FARGATE_SPOT"), "{err}");
    let (status, body) = raw_request(
        sim.url(),
        "POST",
        "/_sim/spot-interruptions",
        &[],
        br#"{"cluster":"prod","service":"web","count":1}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("only tasks on FARGATE_SPOT can be interrupted"),
        "{body}"
    );
    // Nothing was stopped.
    assert!(
        sim.timeline()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.get("stoppedBy").is_none())
    );
}
