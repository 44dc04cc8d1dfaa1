//! Fargate Spot, end to end: mid-run, Spot takes a task planned for a
//! later batch and a replacement the run made. The run succeeds, the
//! planned task counts as gone (skipped, not failed), the summary counts
//! both interruptions, and every invariant holds on the operator's own
//! stops: each planned task stopped at most once, no replacement stopped,
//! and at each of its stops the tasks still meant to run never below the
//! original desired count.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::operator::*;
use support::*;
use test_support::capacity::service_on;

const WITHIN: Duration = Duration::from_secs(90);

/// Tasks meant to run and RUNNING at `t`, from the timeline's transitions.
fn meant_and_running_at(timeline: &Value, t: f64) -> usize {
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            let last = h["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .rfind(|x| x["t"].as_f64().unwrap() < t);
            last.is_some_and(|x| x["lastStatus"] == "RUNNING" && x["desiredStatus"] == "RUNNING")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_taking_a_planned_task_and_a_replacement_does_not_fail_the_run() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    service_on(&c, "FARGATE_SPOT", 5, true).await;
    // Two minutes of warning at 60 times: 2 s.
    sim.configure(json!({"ecsTimeScale": 60.0})).unwrap();
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "spot");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "1s", "stabilityTimeout": "20s"}),
    )
    .await;
    // Once the first batch is done, Spot takes a task planned for a later
    // batch, then the first batch's replacement.
    let deadline = tokio::time::Instant::now() + WITHIN;
    let status = loop {
        let s = status_of(&op.store, "rotate").await;
        // The first batch served: the run pauses `wait` before the next.
        if s["phase"] == "Recycling"
            && s["stopped"].as_array().is_some_and(|a| a.len() == 1)
            && !s["waitUntil"].is_null()
        {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let plan: Vec<String> = serde_json::from_value(status["plan"]["tasks"].clone()).unwrap();
    let taken = plan.last().unwrap().clone();
    sim.interrupt_spot(json!({"cluster": "prod", "task": taken}))
        .unwrap();
    let timeline = sim.timeline();
    let replacement = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["transitions"][0]["t"].as_f64().unwrap() > since)
        .filter(|h| h["stoppedBy"].is_null())
        .filter(|h| {
            h["transitions"]
                .as_array()
                .unwrap()
                .last()
                .is_some_and(|t| t["lastStatus"] == "RUNNING")
        })
        // The newest: the first batch's replacement, not the spare task.
        .max_by(|a, b| {
            a["transitions"][0]["t"]
                .as_f64()
                .partial_cmp(&b["transitions"][0]["t"].as_f64())
                .unwrap()
        })
        .map(|h| h["taskArn"].as_str().unwrap().to_string())
        .expect("a replacement running");
    sim.interrupt_spot(json!({"cluster": "prod", "task": replacement}))
        .unwrap();

    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("recycled 4 of 5 planned tasks (1 already gone); 2 tasks taken by Fargate Spot during the run (not its own stops)"),
        "{message}"
    );
    assert_eq!(status["skipped"], json!([taken]));
    assert!(
        status["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Task {taken} was taken by Fargate Spot ("))),
        "{status:#}"
    );

    // The invariants, on the operator's own stops.
    let timeline = sim.timeline();
    let facts = run_facts(&timeline, "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected: Vec<String> = planned.iter().filter(|t| **t != taken).cloned().collect();
    expected.sort();
    assert_eq!(
        stopped, expected,
        "each planned task but the taken one stopped once"
    );
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert_eq!(facts.final_desired, 5);
    for call in timeline["calls"].as_array().unwrap() {
        if call["op"] != "StopTask" || call["t"].as_f64().unwrap() < since {
            continue;
        }
        let t = call["t"].as_f64().unwrap();
        // Besides the task it stops, at least the original desired count.
        let others = meant_and_running_at(&timeline, t) - 1;
        assert!(others >= 5, "{others} running beside the stop at {t}");
    }
    let spot: Vec<&str> = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["stoppedBy"] == "spot-interruption")
        .map(|h| h["taskArn"].as_str().unwrap())
        .collect();
    assert_eq!(spot.len(), 2, "{spot:?}");
}
