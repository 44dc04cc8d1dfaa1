//! EC2 capacity, end to end: a surge on a capacity provider whose Auto
//! Scaling group must launch an instance for it (the wait named in the
//! status and budgeted apart from stabilityTimeout, the surge task placed
//! on the new instance), and a full launch type EC2 cluster, where nothing
//! adds room: the surge fails within a few looks in ECS's words with the
//! desired count restored, and recycling in place (maintainCapacity:
//! false) succeeds, running never below desired − batchSize.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::operator::*;
use support::*;

use test_support::capacity::{cluster_on_group, create_web, ec2_service};

const WITHIN: Duration = Duration::from_secs(90);

/// Cluster `prod` whose default strategy is provider `cp-web` over group
/// `asg-web`: one instance of 1024 CPU and 2048 MiB up, up to 4, each
/// launched in 300 s (3 s here); service `web` of 2 tasks of 512 CPU and
/// 1024 MiB fills it.
async fn full_group(sim: &Simulator, c: &Clients) {
    cluster_on_group(sim, c, 1, 4, "300s").await;
    create_web(c, 2).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_that_waits_for_an_instance_says_so_and_succeeds_on_the_launched_instance() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    full_group(&sim, &c).await;
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "capacity-group");
    // stabilityTimeout is shorter than the launch: the wait for capacity
    // is budgeted on its own.
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "100ms", "stabilityTimeout": "2s"}),
    )
    .await;
    let mut said = Vec::new();
    let deadline = tokio::time::Instant::now() + WITHIN;
    let status = loop {
        let s = status_of(&op.store, "rotate").await;
        if let Some(m) = s["message"].as_str() {
            said.push(m.to_string());
        }
        if FINISHED.iter().any(|p| s["phase"] == *p) {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = sim.now() - since;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    // The status named the wait while it lasted: its message (if a read
    // of the store fell within it) and, for good, its event.
    let named =
        "waiting for capacity provider cp-web to launch an instance: 1 task PROVISIONING for ";
    assert!(
        status["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "Capacity" && e["message"].as_str().unwrap().starts_with(named)),
        "{status:#}"
    );
    println!(
        "messages naming the wait: {}",
        said.iter().filter(|m| m.starts_with(named)).count()
    );
    assert!(
        status["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "Capacity"
                && e["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("capacity provider cp-web placed the waiting tasks after ")),
        "{status:#}"
    );
    let timeline = sim.timeline();
    let instances = timeline["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{instances:?}");
    let launched = &instances[1];
    let registered = launched["registeredAt"].as_f64().unwrap();
    assert!(launched["launchedAt"].as_f64().unwrap() >= since);
    // The surge task: the first task made after the run began.
    let surge = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["transitions"][0]["t"].as_f64().unwrap() >= since)
        .min_by(|a, b| {
            a["transitions"][0]["t"]
                .as_f64()
                .partial_cmp(&b["transitions"][0]["t"].as_f64())
                .unwrap()
        })
        .unwrap();
    assert_eq!(
        surge["containerInstanceArn"],
        launched["containerInstanceArn"]
    );
    assert_eq!(surge["capacityProviderName"], "cp-web");
    let placed = surge["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["lastStatus"] == "PENDING")
        .and_then(|t| t["t"].as_f64())
        .unwrap();
    assert!(placed >= registered, "placed once the instance registered");
    // About the launch, then the recycle: never less than the launch.
    assert!(took >= 3.0, "took {took}s, less than the 3 s launch");
    println!("the run took {took:.1}s: a 3 s launch, then 2 tasks recycled");
    let facts = run_facts(&timeline, "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned;
    expected.sort();
    assert_eq!(stopped, expected);
    assert!(facts.min_running >= 2, "{facts:?}");
    assert_eq!(facts.final_desired, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_launch_type_ec2_cluster_the_surge_fails_fast_and_recycling_in_place_succeeds() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    // One instance of 1024 CPU and 1024 MiB, two tasks of 512 MiB: full.
    ec2_service(&c, 1024, 1024, 2).await;
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "capacity-ec2");
    // A stability timeout far beyond the test: only the fast path ends it.
    op.request(
        "surge",
        json!({"cluster": "prod", "service": "web", "wait": "100ms", "stabilityTimeout": "30m"}),
    )
    .await;
    let status = op.finished("surge", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("no room for the spare task of prod/web: launch type EC2 and no capacity provider, so nothing adds an instance; 1 instance with 1024 CPU and 0 MiB left, and a task needs 256 CPU and 512 MiB; ECS: (service web) was unable to place a task because no container instance met all of its requirements.")
            && message.ends_with("Desired count restored: 3 → 2."),
        "{message}"
    );
    let timeline = sim.timeline();
    let facts = run_facts(&timeline, "prod", "web", since);
    assert!(facts.stopped_by_stop_task.is_empty(), "{facts:?}");
    assert_eq!(facts.final_desired, 2);
    assert_eq!(
        changes_since(&timeline, since),
        ["UpdateService", "UpdateService"],
        "the surge, then its restore"
    );

    // In place: no spare task, one at a time.
    let since = sim.now();
    op.request(
        "in-place",
        json!({"cluster": "prod", "service": "web", "wait": "100ms", "maintainCapacity": false, "stabilityTimeout": "30s"}),
    )
    .await;
    let status = op.finished("in-place", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned;
    expected.sort();
    assert_eq!(stopped, expected);
    assert!(
        facts.min_running >= 1,
        "never below desired − batchSize: {facts:?}"
    );
    assert_eq!(facts.max_desired, 2, "{facts:?}");
    assert!(facts.replacements_stopped.is_empty());
}
