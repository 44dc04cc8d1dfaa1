//! Protected work, end to end: tasks protected from scale-in (before the
//! run, and mid-run on a task planned for a later batch) are never the
//! target of a StopTask — the simulator's timeline marks any stop of a
//! protected task — `wait` recycles them last once their protection ends,
//! and `skip` leaves them running and says so.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::operator::*;
use support::*;
use test_support::capacity::protected_stops;

const WITHIN: Duration = Duration::from_secs(90);

async fn unprotect(c: &Clients, arn: &str) {
    c.ecs
        .update_task_protection()
        .cluster("prod")
        .tasks(arn)
        .protection_enabled(false)
        .send()
        .await
        .expect("update task protection");
}

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
        let status = status_of(&op.store, "rotate").await;
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
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    // Protected before the run (for ECS's two hours; a task ends its own
    // protection once its work is done, as below).
    let early = planned[0].clone();
    protect(&c, &early, 120).await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "protection-wait");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "300ms", "stabilityTimeout": "20s"}),
    )
    .await;
    // Mid-run, a task planned for a later batch is protected too.
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
    protect(&c, &late, 120).await;
    // The run recycles the others, then waits for these two alone.
    let waiting = "waiting for 2 tasks protected from scale-in until ";
    watch_until(&op, &mut messages, |s| {
        s["message"].as_str().is_some_and(|m| m.contains(waiting))
    })
    .await;
    // Their work done, each task ends its own protection, one after the other.
    tokio::time::sleep(Duration::from_millis(500)).await;
    unprotect(&c, &late).await;
    let late_at = sim.now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    unprotect(&c, &early).await;
    let early_at = sim.now();
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
    // Each protected task went only once its protection had ended, last.
    let early_stop = stopped_at(&timeline, &early).unwrap();
    let late_stop = stopped_at(&timeline, &late).unwrap();
    assert!(late_stop >= late_at, "{late_stop} vs {late_at}");
    assert!(early_stop >= early_at, "{early_stop} vs {early_at}");
    assert_eq!(
        facts.stopped_by_stop_task[3..],
        [late.clone(), early.clone()],
        "{facts:?}"
    );
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
