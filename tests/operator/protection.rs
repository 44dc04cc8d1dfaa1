//! Protected work, end to end: tasks protected from scale-in (before the
//! run, and mid-run on a task planned for a later batch) are never the
//! target of a StopTask — the simulator's timeline marks any stop of a
//! protected task — `wait` recycles them last once their protection ends,
//! and `skip` leaves them running and says so.

use crate::support;

use std::time::Duration;

use ecs_recycler::store::Store;
use serde_json::{Value, json};
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(90);
/// ECS's minutes run 60 times faster: a minute of protection is a second.
const ECS_TIME_SCALE: f64 = 60.0;

async fn protect(c: &Clients, arn: &str, minutes: i32) {
    c.ecs
        .update_task_protection()
        .cluster("prod")
        .tasks(arn)
        .protection_enabled(true)
        .expires_in_minutes(minutes)
        .send()
        .await
        .expect("update task protection");
}

/// Every task whose stop the timeline marks as the stop of a protected task.
fn protected_stops(timeline: &Value) -> Vec<String> {
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["protected"] == true)
        })
        .map(|h| h["taskArn"].as_str().unwrap().to_string())
        .collect()
}

/// When StopTask was called on `arn`, on the timeline's clock.
fn stopped_at(timeline: &Value, arn: &str) -> Option<f64> {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["op"] == "StopTask" && c["params"]["task"] == arn && c.get("error").is_none())
        .and_then(|c| c["t"].as_f64())
}

/// The request's status, read from the store, as often as it takes for
/// `until` to hold; every message seen on the way is kept in `messages`.
async fn watch_until(
    op: &LocalOperator,
    messages: &mut Vec<String>,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let record = op
            .store
            .get(ecs_recycler::store::Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap();
        let status = record.status.unwrap_or(Value::Null);
        if let Some(m) = status["message"].as_str()
            && messages.last().is_none_or(|l| l != m)
        {
            messages.push(m.to_string());
        }
        if until(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached; status: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_tasks_are_never_stopped_and_wait_recycles_them_last_once_unprotected() {
    let (sim, c) = steady_service("prod", "web", 5, true).await;
    sim.configure(json!({"ecsTimeScale": ECS_TIME_SCALE}))
        .unwrap();
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    // Protected before the run, for 5 minutes (5 s here).
    let early = planned[0].clone();
    protect(&c, &early, 5).await;
    let early_at = sim.now();
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "protection-wait");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "300ms", "stabilityTimeout": "20s"}),
    )
    .await;
    // Mid-run, a task planned for a later batch is protected for 3 s.
    let mut messages = Vec::new();
    let status = watch_until(&op, &mut messages, |s| {
        s["phase"] == "Recycling" && s["stopped"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let plan: Vec<String> = serde_json::from_value(status["plan"]["tasks"].clone()).unwrap();
    let late = plan
        .iter()
        .rev()
        .find(|t| **t != early && !status["stopped"].as_array().unwrap().contains(&json!(t)))
        .unwrap()
        .clone();
    protect(&c, &late, 3).await;
    let late_at = sim.now();
    let status = watch_until(&op, &mut messages, |s| {
        FINISHED.iter().any(|p| s["phase"] == *p)
    })
    .await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");

    let timeline = sim.timeline();
    assert!(
        protected_stops(&timeline).is_empty(),
        "a protected task was stopped: {:?}",
        protected_stops(&timeline)
    );
    let facts = run_facts(&timeline, "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned.clone();
    expected.sort();
    assert_eq!(stopped, expected, "every planned task stopped exactly once");
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert!(facts.min_running >= 5, "{facts:?}");
    // Each protected task went only once its protection had ended, and the
    // one protected before the run went last.
    let early_stop = stopped_at(&timeline, &early).unwrap();
    let late_stop = stopped_at(&timeline, &late).unwrap();
    assert!(early_stop >= early_at + 5.0, "{early_stop} vs {early_at}");
    assert!(late_stop >= late_at + 3.0, "{late_stop} vs {late_at}");
    assert_eq!(facts.stopped_by_stop_task.last(), Some(&early), "{facts:?}");
    // The status named them while it waited.
    let events: Vec<&str> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "Protected")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.contains(early.rsplit('/').next().unwrap()))
            && events
                .iter()
                .any(|e| e.contains(late.rsplit('/').next().unwrap())),
        "{events:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("protected from scale-in until")
                && m.contains("to end their protection")),
        "{messages:#?}"
    );
    // And it read their protection right before each batch.
    let reads = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "GetTaskProtection" && c["t"].as_f64().unwrap() >= since)
        .count();
    assert!(reads >= 5, "{reads} GetTaskProtection calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_skip_a_protected_task_is_left_running_and_reported() {
    let (sim, c) = steady_service("prod", "web", 3, true).await;
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let kept = planned[1].clone();
    // ECS's default: two hours.
    c.ecs
        .update_task_protection()
        .cluster("prod")
        .tasks(&kept)
        .protection_enabled(true)
        .send()
        .await
        .unwrap();
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "protection-skip");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "100ms", "protectedTasks": "skip"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("recycled 2 of 3 planned tasks (0 already gone); 1 task skipped: protected from scale-in until "),
        "{message}"
    );
    assert_eq!(status["skipped"], json!([kept]));
    let timeline = sim.timeline();
    let facts = run_facts(&timeline, "prod", "web", since);
    assert!(!facts.stopped_by_stop_task.contains(&kept), "{facts:?}");
    assert_eq!(facts.stopped_by_stop_task.len(), 2);
    assert!(protected_stops(&timeline).is_empty());
    assert!(
        running_task_arns(&c.ecs, "prod", "web")
            .await
            .contains(&kept)
    );
    assert_eq!(facts.final_desired, 3);
}
