//! Services behind a load balancer, end to end: the operator binary
//! recycles a service whose tasks ECS registers in a target group on the
//! simulator, with steady traffic through it. Checked from the
//! simulator's traffic samples and timeline: no request dropped, healthy
//! targets never below the original desired count (so each stop waited
//! for the previous replacement's target, even without a container health
//! check), drains overlapping the next batches where maximumPercent leaves
//! room, and a drain that maximumPercent makes the replacements wait for
//! allowed on top of the stability timeout.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::operator::*;
use support::*;
use test_support::load_balancer::{
    Behind, TargetGroupSettings, healthy_targets, service_behind, target_group,
};

const WITHIN: Duration = Duration::from_secs(120);
/// Every test's health checks and drains run this much faster than AWS's:
/// a 5 s interval is 250 ms.
const SCALE: f64 = 20.0;

struct Bed {
    sim: Simulator,
    c: Clients,
    tg: String,
}

/// `prod/web` of `desired` tasks behind target group `web`, every target
/// healthy, with the simulator's target clock sped up.
async fn service(desired: i32, maximum_percent: i32, health_check: bool, delay: i32) -> Bed {
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": SCALE})).unwrap();
    let c = clients(&sim).await;
    let settings = TargetGroupSettings {
        deregistration_delay: delay,
        ..TargetGroupSettings::default()
    };
    let tg = target_group(&c.elb, "web", settings).await;
    let behind = Behind {
        maximum_percent,
        health_check,
        ..Behind::new("prod", "web", desired, &tg)
    };
    service_behind(&c.ecs, &behind).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(30)).await;
    let bed = Bed { sim, c, tg };
    bed.wait_healthy_targets(desired as usize).await;
    bed
}

impl Bed {
    async fn healthy_targets(&self) -> usize {
        healthy_targets(&self.c.elb, &self.tg).await
    }

    async fn wait_healthy_targets(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.healthy_targets().await < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} targets never became healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn traffic(&self) -> Value {
        self.sim.traffic_summary("prod", "web")
    }
}

/// The instants of the StopTask calls the simulator accepted since `since`.
fn stops(timeline: &Value, since: f64) -> Vec<f64> {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "StopTask" && c.get("error").is_none())
        .map(|c| c["t"].as_f64().unwrap())
        .filter(|t| *t >= since)
        .collect()
}

/// When each task stopped by StopTask was DEACTIVATING: (from, to), `to`
/// infinite while it still drains.
fn drains(timeline: &Value) -> Vec<(f64, f64)> {
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["stoppedBy"] == "StopTask")
        .filter_map(|t| {
            let steps = t["transitions"].as_array()?;
            let from = steps.iter().find(|s| s["lastStatus"] == "DEACTIVATING")?["t"].as_f64()?;
            // Still draining when the timeline was read: until now.
            let to = steps
                .iter()
                .find(|s| {
                    s["lastStatus"] != "DEACTIVATING" && s["t"].as_f64().is_some_and(|t| t > from)
                })
                .and_then(|s| s["t"].as_f64())
                .unwrap_or(f64::INFINITY);
            Some((from, to))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycle_behind_a_target_group_drops_no_request_and_keeps_healthy_targets() {
    // No container health check: ECS calls a replacement ready once it is
    // RUNNING, before the load balancer sends it a request. The operator
    // must wait for the target, or healthy targets dip below 10.
    let bed = service(10, 200, false, 20).await;
    bed.sim
        .set_traffic(json!({"cluster": "prod", "service": "web", "rps": 50}))
        .unwrap();
    let planned = running_task_arns(&bed.c.ecs, "prod", "web").await;
    let since = bed.sim.now();
    let op = LocalOperator::start(bed.sim.url(), "lb-traffic");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "100ms", "stabilityTimeout": "20s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let traffic = bed.traffic();
    assert!(traffic["served"].as_u64().unwrap() > 0, "{traffic}");
    assert_eq!(traffic["dropped"], 0, "no request dropped: {traffic}");
    assert!(
        traffic["minHealthyTargets"].as_u64().unwrap() >= 10,
        "healthy targets never below the original desired count: {traffic}"
    );
    let timeline = bed.sim.timeline();
    let facts = run_facts(&timeline, "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned.clone();
    expected.sort();
    assert_eq!(stopped, expected, "every planned task stopped once");
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert_eq!(facts.final_desired, 10);
    // The samples agree with the summary, second by second.
    let samples = timeline["traffic"]["prod/web"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .all(|s| s["dropped"] == 0 && s["healthyTargets"].as_u64().unwrap() >= 10),
        "{samples:?}"
    );
    let calls = timeline["calls"].as_array().unwrap();
    assert!(
        calls.iter().any(|c| c["op"] == "DescribeTargetHealth"),
        "the operator read the targets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_overlap_the_next_batches_where_maximum_percent_leaves_room() {
    // A 300 s deregistration delay (15 s here) against replacements that
    // serve in about a second: the next stop does not wait for the drain.
    let bed = service(4, 200, true, 300).await;
    let since = bed.sim.now();
    let op = LocalOperator::start(bed.sim.url(), "lb-overlap");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s", "stabilityTimeout": "20s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let timeline = bed.sim.timeline();
    let stops = stops(&timeline, since);
    assert_eq!(stops.len(), 4);
    let drains = drains(&timeline);
    let overlapped = stops
        .iter()
        .filter(|t| drains.iter().any(|(from, to)| from < *t && *t < to))
        .count();
    assert!(
        overlapped >= 2,
        "stops made while an earlier stopped task still drained: {overlapped} of {stops:?}; drains {drains:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_maximum_percent_makes_the_replacements_wait_for_is_allowed_for() {
    // maximumPercent 100: ECS launches each replacement only once its
    // stopped task has drained (100 s, 5 s here), longer than the
    // stability timeout of 3 s; the run must allow for it, not fail.
    let bed = service(2, 100, true, 100).await;
    bed.sim
        .set_traffic(json!({"cluster": "prod", "service": "web", "rps": 20}))
        .unwrap();
    let op = LocalOperator::start(bed.sim.url(), "lb-blocked");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s", "stabilityTimeout": "3s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let traffic = bed.traffic();
    assert_eq!(traffic["dropped"], 0, "{traffic}");
    assert!(
        traffic["minHealthyTargets"].as_u64().unwrap() >= 2,
        "{traffic}"
    );
    let timeline = bed.sim.timeline();
    let drains = drains(&timeline);
    assert_eq!(drains.len(), 2, "{drains:?}");
    assert!(
        drains.iter().all(|(from, to)| to - from >= 4.0),
        "each stopped task drained for the (scaled) delay: {drains:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacements_whose_targets_never_pass_fail_the_run_naming_the_target_group() {
    let bed = service(3, 200, true, 20).await;
    bed.sim
        .configure_service(
            "prod",
            "web",
            json!({"faults": {"targetNeverHealthy": 1.0}}),
        )
        .unwrap();
    let op = LocalOperator::start(bed.sim.url(), "lb-never");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s", "stabilityTimeout": "4s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("did not become stable")
            && message.contains("Task failed ELB health checks in (target-group arn:")
            && message.contains(":targetgroup/web/"),
        "the failure gives ECS's reason, naming the target group: {message}"
    );
    // Nothing of the service was stopped: the spare tasks never served.
    let timeline = bed.sim.timeline();
    assert!(stops(&timeline, 0.0).is_empty(), "no StopTask");
    let facts = run_facts(&timeline, "prod", "web", 0.0);
    assert_eq!(facts.final_desired, 3, "the surge was taken back");
}
