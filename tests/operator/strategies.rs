//! Strategies end to end: the operator binary recycles a service on the
//! simulator as a canary whose bake an alarm cuts short (CloudWatch on
//! moto), in linear steps spaced by `every`, and all at once with and
//! without the surge — each checked from the simulator's timeline.

use crate::support;

use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::moto::Moto;
use support::operator::*;

const WITHIN: Duration = Duration::from_secs(90);
const ALARM: &str = "web-canary-5xx";

/// The StopTask calls the simulator answered since `since`, by its clock.
fn stop_times(timeline: &Value, since: f64) -> Vec<f64> {
    let mut times: Vec<f64> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "StopTask" && c.get("error").is_none())
        .map(|c| c["t"].as_f64().unwrap())
        .filter(|t| *t >= since)
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

async fn status_of(run: &RequestRun) -> Value {
    let record = run.store.get(Kind::RecycleRequest, "rotate").await.unwrap();
    record.and_then(|r| r.status).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_during_the_canary_bake_ends_the_run_before_a_second_batch() {
    let moto = Moto::start();
    let cw = support::alarms::alarm(&moto, ALARM).await;
    let spec = json!({"cluster": "prod", "service": "web", "batchSize": 2, "wait": "0s",
        "stabilityTimeout": "20s",
        "strategy": {"canary": {"first": 1, "bake": "30s"}},
        "gates": {"alarms": {"names": [ALARM], "onAlarm": "abort"}}});
    let env = vec![("AWS_ENDPOINT_URL_CLOUDWATCH".to_string(), moto.url.clone())];
    let mut run = RequestRun::start("canary-alarm", 5, spec, env).await;
    // The canary serves and bakes.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let s = status_of(&run).await;
        if s["message"]
            .as_str()
            .is_some_and(|m| m.contains("canary 1/1 baking"))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no bake: {s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let why = "Threshold Crossed: 1 datapoint [9.0] was greater than 5.0";
    support::alarms::set_alarm(&cw, ALARM, StateValue::Alarm, why).await;
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains(ALARM), "the alarm is named: {message}");
    let facts = run.invariants_hold(5, 5);
    assert_eq!(
        facts.stopped_by_stop_task.len(),
        1,
        "only the canary was stopped: {facts:?}"
    );
    assert!(
        status["unreplaced"].as_array().is_none_or(Vec::is_empty),
        "the canary's replacement served: {status:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_steps_are_spaced_by_every() {
    let spec = json!({"cluster": "prod", "service": "web", "stabilityTimeout": "20s",
        "strategy": {"linear": {"step": "25%", "every": "3s"}}});
    let mut run = RequestRun::start("linear", 4, spec, Vec::new()).await;
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let stops = stop_times(&run.sim.timeline(), run.since);
    assert_eq!(stops.len(), 4, "four steps of one task: {stops:?}");
    for pair in stops.windows(2) {
        assert!(
            pair[1] - pair[0] >= 2.9,
            "each step starts at least 3s after the last: {stops:?}"
        );
    }
    // With the surge of one task, running never falls below desired.
    run.invariants_hold(4, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_at_once_stops_every_task_in_one_batch_with_and_without_the_surge() {
    for (label, surge) in [("all-surge", true), ("all-in-place", false)] {
        let spec = json!({"cluster": "prod", "service": "web", "stabilityTimeout": "20s",
            "maintainCapacity": surge, "strategy": "allAtOnce"});
        let mut run = RequestRun::start(label, 4, spec, Vec::new()).await;
        let status =
            finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
        assert_eq!(status["phase"], "Succeeded", "{label}: {status:#}");
        let stops = stop_times(&run.sim.timeline(), run.since);
        assert_eq!(stops.len(), 4, "{label}: {stops:?}");
        assert!(
            stops[3] - stops[0] < 1.0,
            "{label}: one batch, every stop together: {stops:?}"
        );
        // The surge is the whole batch: running never below desired with
        // it; without it, never below desired − the batch (here 0).
        let facts = run.invariants_hold(if surge { 4 } else { 0 }, 4);
        assert_eq!(
            facts.max_desired,
            if surge { 8 } else { 4 },
            "{label}: {facts:?}"
        );
    }
}
