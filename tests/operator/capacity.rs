//! EC2 capacity, end to end: a surge on a capacity provider whose Auto
//! Scaling group must launch an instance for it (the wait named in the
//! status and budgeted apart from stabilityTimeout, the surge task placed
//! on the new instance), and a full launch type EC2 cluster, where nothing
//! adds room: the surge fails within a few looks in ECS's words with the
//! desired count restored, and recycling in place (maintainCapacity:
//! false) succeeds, running never below desired − batchSize.

use crate::support;

use std::time::Duration;

use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, CapacityProviderStrategyItem, ContainerDefinition, LaunchType,
    ManagedScaling, ManagedScalingStatus, Resource,
};
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(90);
/// ECS's fixed durations run 100 times faster: a 300 s launch takes 3 s.
const ECS_TIME_SCALE: f64 = 100.0;

/// Cluster `prod` whose default strategy is provider `cp-web` over group
/// `asg-web`: one instance of 1024 CPU and 2048 MiB up, up to 4, each
/// launched in 300 s (3 s here); service `web` of 2 tasks of 512 CPU and
/// 1024 MiB fills it.
async fn full_group(sim: &Simulator, c: &Clients) {
    sim.configure(json!({"ecsTimeScale": ECS_TIME_SCALE}))
        .unwrap();
    let group = sim
        .set_auto_scaling_group(json!({"name": "asg-web", "min": 0, "max": 4, "desired": 1,
            "cpu": 1024, "memory": 2048, "launch": "300s", "warmup": "300s"}))
        .unwrap();
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    c.ecs
        .create_capacity_provider()
        .name("cp-web")
        .auto_scaling_group_provider(
            AutoScalingGroupProvider::builder()
                .auto_scaling_group_arn(group["autoScalingGroupArn"].as_str().unwrap())
                .managed_scaling(
                    ManagedScaling::builder()
                        .status(ManagedScalingStatus::Enabled)
                        .target_capacity(100)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .put_cluster_capacity_providers()
        .cluster("prod")
        .capacity_providers("cp-web")
        .default_capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("cp-web")
                .weight(1)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .register_task_definition()
        .family("web")
        .cpu("512")
        .memory("1024")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("nginx:1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition("web")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
}

/// Cluster `prod` with one container instance of 1024 CPU and 1024 MiB and
/// a launch type EC2 service `web` of 2 tasks of 512 MiB each: full.
async fn full_ec2_cluster(c: &Clients) {
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    let resource = |name: &str, v: i32| {
        Resource::builder()
            .name(name)
            .r#type("INTEGER")
            .integer_value(v)
            .build()
    };
    c.ecs
        .register_container_instance()
        .cluster("prod")
        .total_resources(resource("CPU", 1024))
        .total_resources(resource("MEMORY", 1024))
        .send()
        .await
        .unwrap();
    c.ecs
        .register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("nginx:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition("web")
        .launch_type(LaunchType::Ec2)
        .desired_count(2)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
}

fn history<'a>(timeline: &'a Value, arn: &str) -> &'a Value {
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["taskArn"] == arn)
        .unwrap()
}

/// The calls that change something, since `since`.
fn changes_since(timeline: &Value, since: f64) -> Vec<String> {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() >= since)
        .filter(|c| c.get("error").is_none())
        .map(|c| c["op"].as_str().unwrap().to_string())
        .filter(|op| ["UpdateService", "StopTask", "RegisterScalableTarget"].contains(&op.as_str()))
        .collect()
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
        let s = op
            .store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap()
            .status
            .unwrap_or(Value::Null);
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
    assert!(
        said.iter().any(|m| m.starts_with(
            "waiting for capacity provider cp-web to launch an instance: 1 task PROVISIONING for "
        )),
        "the status named the wait: {said:#?}"
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
    let _ = history(&timeline, surge["taskArn"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_launch_type_ec2_cluster_the_surge_fails_fast_and_recycling_in_place_succeeds() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    full_ec2_cluster(&c).await;
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
