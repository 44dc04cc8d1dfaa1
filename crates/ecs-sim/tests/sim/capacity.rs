//! EC2 capacity through the official SDK: container instances registered as
//! the agent does, tasks that reserve CPU and memory on them, launch type
//! EC2 on a full cluster (no task, ECS's event), a capacity provider whose
//! Auto Scaling group launches an instance for a surge (the task
//! PROVISIONING, then placed on it once launched), warm-up holding the next
//! scale-out back, and ECS giving up on a task that waits too long.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::*;

use super::elb::{reached, task_history, wait_for};

pub(crate) use test_support::capacity::{
    cluster_on_group, create_web, ec2_service, register_instance,
};

async fn set_desired(c: &Clients, n: i32) {
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(n)
        .send()
        .await
        .unwrap();
}

fn instances(timeline: &Value) -> Vec<Value> {
    timeline["instances"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_surge_on_a_capacity_provider_waits_provisioning_for_a_launched_instance() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    cluster_on_group(&sim, &c, 1, 4, "90s").await;
    // Two tasks fill the group's one instance.
    create_web(&c, 2).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!(
        s.capacity_provider_strategy()[0].capacity_provider(),
        "cp-web"
    );
    assert_eq!(s.launch_type(), None, "a strategy, not a launch type");

    let surge_at = sim.now();
    set_desired(&c, 3).await;
    // The surge task waits in PROVISIONING, on the provider, unplaced.
    let mut surge = String::new();
    wait_for("the surge task", || {
        let t = sim.timeline();
        surge = t["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["transitions"][0]["t"].as_f64().unwrap() >= surge_at)
            .map(|h| h["taskArn"].as_str().unwrap().to_string())
            .unwrap_or_default();
        !surge.is_empty()
    })
    .await;
    let task = describe_task(&c.ecs, "prod", &surge).await;
    assert_eq!(task.last_status(), Some("PROVISIONING"));
    assert_eq!(task.capacity_provider_name(), Some("cp-web"));
    assert_eq!(task.launch_type().map(|l| l.as_str()), Some("EC2"));
    assert_eq!(task.container_instance_arn(), None);

    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    let timeline = sim.timeline();
    let launched = instances(&timeline);
    assert_eq!(launched.len(), 2, "{launched:?}");
    let new = &launched[1];
    let launched_at = new["launchedAt"].as_f64().unwrap();
    let registered_at = new["registeredAt"].as_f64().unwrap();
    assert!(launched_at >= surge_at, "launched for the surge");
    // 90 s of launch at ECS time scale 100.
    assert!((registered_at - launched_at - 0.9).abs() < 1e-6, "{new}");
    let history = task_history(&timeline, &surge);
    assert_eq!(history["containerInstanceArn"], new["containerInstanceArn"]);
    assert_eq!(history["capacityProviderName"], "cp-web");
    let pending = reached(history, "PENDING").expect("placed");
    assert!(
        pending >= registered_at,
        "placed once the instance registered"
    );
    assert!(
        timeline["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["op"] == "_sim:ManagedScaling" && c["params"]["after"] == 2)
    );

    // Both instances hold what their tasks reserve.
    let arns = c
        .ecs
        .list_container_instances()
        .cluster("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(arns.container_instance_arns().len(), 2);
    let described = c
        .ecs
        .describe_container_instances()
        .cluster("prod")
        .set_container_instances(Some(arns.container_instance_arns().to_vec()))
        .send()
        .await
        .unwrap();
    let mut running = 0;
    for ci in described.container_instances() {
        assert_eq!(ci.capacity_provider_name(), Some("cp-web"));
        assert_eq!(ci.status(), Some("ACTIVE"));
        let remaining = |name: &str| {
            ci.remaining_resources()
                .iter()
                .find(|r| r.name() == Some(name))
                .map(|r| r.integer_value())
                .unwrap()
        };
        let tasks = ci.running_tasks_count();
        assert_eq!(remaining("CPU"), 1024 - 512 * tasks, "{ci:?}");
        assert_eq!(remaining("MEMORY"), 2048 - 1024 * tasks, "{ci:?}");
        running += tasks;
    }
    assert_eq!(running, 3);
}

#[tokio::test]
async fn no_scale_out_while_a_launched_instance_warms_up() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    cluster_on_group(&sim, &c, 1, 4, "90s").await;
    create_web(&c, 2).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    set_desired(&c, 3).await;
    wait_for("a second instance", || {
        instances(&sim.timeline()).len() == 2
    })
    .await;
    // Two more tasks: one fits the room the second instance brings, the
    // other needs a third instance, which waits for the second's warm-up.
    set_desired(&c, 5).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(30)).await;
    let launched = instances(&sim.timeline());
    assert_eq!(launched.len(), 3, "{launched:?}");
    let second_warm = launched[1]["warmAt"].as_f64().unwrap();
    assert!((second_warm - launched[1]["launchedAt"].as_f64().unwrap() - 3.0).abs() < 1e-6);
    assert!(
        launched[2]["launchedAt"].as_f64().unwrap() >= second_warm,
        "the third launched only after the second warmed up: {launched:?}"
    );
}

#[tokio::test]
async fn a_task_that_waits_past_the_provisioning_timeout_is_stopped() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    cluster_on_group(&sim, &c, 1, 1, "90s").await;
    // 30 minutes at 600 times: 3 s.
    sim.configure(json!({"ecsTimeScale": 600.0})).unwrap();
    create_web(&c, 3).await;
    let given_up = |timeline: &Value| {
        timeline["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["stoppedBy"] == "provisioning-timeout")
            .cloned()
    };
    wait_for("a task given up", || given_up(&sim.timeline()).is_some()).await;
    let history = given_up(&sim.timeline()).unwrap();
    let states: Vec<&str> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["lastStatus"].as_str().unwrap())
        .collect();
    assert!(!states.contains(&"PENDING"), "never placed: {states:?}");
    let waited = history["transitions"].as_array().unwrap().last().unwrap()["t"]
        .as_f64()
        .unwrap()
        - history["transitions"][0]["t"].as_f64().unwrap();
    assert!(waited >= 3.0, "waited {waited}");
    let arn = history["taskArn"].as_str().unwrap();
    let task = describe_task(&c.ecs, "prod", arn).await;
    assert_eq!(
        task.stop_code().map(|c| c.as_str()),
        Some("TaskFailedToStart")
    );
    assert!(
        task.stopped_reason()
            .unwrap()
            .contains("provisioning timeout")
    );
    // The group is at its max: nothing was launched for it.
    assert_eq!(instances(&sim.timeline()).len(), 1);
}

#[tokio::test]
async fn launch_type_ec2_on_a_full_cluster_makes_no_task_and_says_why_in_ecs_words() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    // Container-level memory, summed: 512 MiB a task.
    let first = ec2_service(&c, 1024, 1024, 2).await;
    set_desired(&c, 3).await;
    let id = first.rsplit('/').next().unwrap().to_string();
    let words = format!(
        "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance {id}) has insufficient memory available. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
    );
    wait_for_service_event(
        &c.ecs,
        "prod",
        "web",
        |e| e == words,
        Duration::from_secs(10),
    )
    .await;
    // No task was made: still two, in the API and in the timeline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(running_task_arns(&c.ecs, "prod", "web").await.len(), 2);
    assert_eq!(sim.timeline()["tasks"].as_array().unwrap().len(), 2);
    let events =
        wait_for_service_event(&c.ecs, "prod", "web", |e| e == words, Duration::ZERO).await;
    assert_eq!(
        events.iter().filter(|e| **e == words).count(),
        1,
        "said once while the cause lasts"
    );
    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!((s.running_count(), s.pending_count()), (2, 0));
    // Deregistering an instance with tasks on it needs force.
    let err = c
        .ecs
        .deregister_container_instance()
        .cluster("prod")
        .container_instance(&first)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    // Room on a second instance: the third task is placed there.
    let second = register_instance(&c.ecs, "prod", 1024, 1024).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    let tasks = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .set_tasks(Some(running_task_arns(&c.ecs, "prod", "web").await))
        .send()
        .await
        .unwrap();
    let on_second = tasks
        .tasks()
        .iter()
        .filter(|t| t.container_instance_arn() == Some(second.as_str()))
        .count();
    assert_eq!(on_second, 1);
    assert!(tasks.tasks().iter().all(|t| t.memory() == Some("512")));
    let cluster = c
        .ecs
        .describe_clusters()
        .clusters("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cluster.clusters()[0].registered_container_instances_count(),
        2
    );
}
