//! ECS services behind a target group: targets registered once their task
//! runs, healthy after the health checks, drained before their task stops
//! (DEACTIVATING for the deregistration delay), replacements held back by
//! maximumPercent while a task drains, tasks whose targets fail their
//! health checks replaced (unless within the grace period), and
//! CreateService's checks of its load balancers.

use aws_sdk_ecs::types::LoadBalancer as EcsLoadBalancer;
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
use serde_json::json;
use test_support::*;

use super::elb::*;

#[tokio::test]
async fn a_services_tasks_register_when_running_and_turn_healthy() {
    let f = steady_behind_lb(2, 200, 100).await;
    let described = describe(&f.c.ecs, "prod", "web").await;
    let lb = &described.load_balancers()[0];
    assert_eq!(lb.target_group_arn(), Some(f.tg.as_str()));
    assert_eq!(
        (lb.container_name(), lb.container_port()),
        (Some("app"), Some(80))
    );
    assert_eq!(described.health_check_grace_period_seconds(), Some(0));

    let arns = running_task_arns(&f.c.ecs, "prod", "web").await;
    let mut ips = Vec::new();
    for arn in &arns {
        ips.push(task_ip(&f, arn).await);
    }
    assert_ne!(ips[0], ips[1], "each task has its own address");
    let mut health = target_health(&f).await;
    health.sort();
    ips.sort();
    let expected: Vec<_> = ips
        .iter()
        .map(|ip| (ip.clone(), 80, "healthy".to_string(), None))
        .collect();
    assert_eq!(health, expected);

    // Registered at RUNNING, initial, healthy two intervals (500 ms) later;
    // the service counted the task healthy only then.
    let timeline = f.sim.timeline();
    for arn in &arns {
        let running = reached(task_history(&timeline, arn), "RUNNING").unwrap();
        let states = target_states(&timeline, arn);
        let names: Vec<&str> = states.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(names, ["initial", "initial", "healthy"], "{states:?}");
        assert!(
            (states[0].0 - running).abs() < 1e-9,
            "registered at RUNNING"
        );
        let healthy_after = states[2].0 - running;
        assert!((healthy_after - 0.5).abs() < 1e-6, "{healthy_after}");
    }
    let last_healthy_target = arns
        .iter()
        .map(|a| target_states(&timeline, a)[2].0)
        .fold(0.0, f64::max);
    let first_two_healthy = samples(&timeline, "prod", "web")
        .iter()
        .find(|s| s.4 == 2)
        .map(|s| s.0)
        .unwrap();
    assert!(
        first_two_healthy >= last_healthy_target,
        "{first_two_healthy} < {last_healthy_target}"
    );
}

#[tokio::test]
async fn a_stopped_task_drains_for_the_deregistration_delay_then_stops() {
    let f = steady_behind_lb(2, 200, 100).await;
    let victim = running_task_arns(&f.c.ecs, "prod", "web").await[0].clone();
    let ip = task_ip(&f, &victim).await;
    let stopped =
        f.c.ecs
            .stop_task()
            .cluster("prod")
            .task(&victim)
            .send()
            .await
            .unwrap();
    let t = stopped.task().unwrap();
    assert_eq!(
        (t.last_status(), t.desired_status()),
        (Some("DEACTIVATING"), Some("STOPPED"))
    );
    let health = target_health(&f).await;
    let mine = health.iter().find(|h| h.0 == ip).expect("still listed");
    assert_eq!(
        (mine.2.as_str(), mine.3.as_deref()),
        ("draining", Some("Target.DeregistrationInProgress"))
    );

    let drain = f64::from(DELAY) / SCALE;
    wait_for("the task stops", || {
        reached(task_history(&f.sim.timeline(), &victim), "STOPPED").is_some()
    })
    .await;
    let timeline = f.sim.timeline();
    let history = task_history(&timeline, &victim);
    let deactivating = reached(history, "DEACTIVATING").unwrap();
    let stopping = reached(history, "STOPPING").unwrap();
    assert!(
        ((stopping - deactivating) - drain).abs() < 1e-6,
        "waited {}",
        stopping - deactivating
    );
    let states = target_states(&timeline, &victim);
    let draining = states.iter().find(|s| s.1 == "draining").unwrap().0;
    let unused = states.iter().find(|s| s.1 == "unused").unwrap().0;
    assert!((draining - deactivating).abs() < 1e-9);
    assert!(
        ((unused - draining) - drain).abs() < 1e-6,
        "drained {}",
        unused - draining
    );
    let events = describe(&f.c.ecs, "prod", "web").await;
    let messages: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert!(
        messages.contains(&"(service web) has begun draining connections on 1 tasks."),
        "{messages:?}"
    );
    assert!(
        !target_health(&f).await.iter().any(|h| h.0 == ip),
        "gone once drained"
    );
}

#[tokio::test]
async fn with_maximum_percent_100_a_replacement_waits_for_the_drain() {
    let f = steady_behind_lb(2, 100, 50).await;
    let victim = running_task_arns(&f.c.ecs, "prod", "web").await[0].clone();
    stop_task(&f.c.ecs, "prod", &victim).await;
    wait_steady(&f.c.ecs, "prod", "web", WITHIN).await;
    let timeline = f.sim.timeline();
    let history = task_history(&timeline, &victim);
    let deactivating = reached(history, "DEACTIVATING").unwrap();
    let stopped = reached(history, "STOPPED").unwrap();
    let replacement = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| reached(t, "PROVISIONING").unwrap() > deactivating)
        .map(|t| reached(t, "PROVISIONING").unwrap())
        .next()
        .expect("a replacement");
    assert!(
        replacement >= stopped,
        "launched at {replacement}, before the drained task stopped at {stopped}"
    );
    assert!(replacement - deactivating >= f64::from(DELAY) / SCALE);
}

#[tokio::test]
async fn tasks_whose_targets_never_pass_are_stopped_and_replaced() {
    let f = service_behind_lb(1, 200, 100, 0, Some(json!({"targetNeverHealthy": 1.0}))).await;
    let reason = format!("Task failed ELB health checks in (target-group {})", f.tg);
    wait_for("a task stopped for its ELB health checks", || {
        f.sim.timeline()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["stoppedReason"] == reason.as_str() && t["stoppedBy"] == "health-check")
    })
    .await;
    let timeline = f.sim.timeline();
    let first = &timeline["tasks"][0];
    let arn = first["taskArn"].as_str().unwrap();
    let states = target_states(&timeline, arn);
    assert!(states.iter().any(|s| s.1 == "unhealthy"), "{states:?}");
    wait_for("a replacement", || {
        f.sim.timeline()["tasks"].as_array().unwrap().len() >= 2
    })
    .await;
    let events = describe(&f.c.ecs, "prod", "web").await;
    assert!(
        events
            .events()
            .iter()
            .filter_map(|e| e.message())
            .any(|m| m.contains("is unhealthy in (target-group") && m.contains("(port 80)")),
        "{:?}",
        events.events()
    );
}

#[tokio::test]
async fn create_service_checks_its_load_balancers_as_ecs_does() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    let elb = c.elb.clone();
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    register_task_definition(&c.ecs, "web", false).await;
    let lonely = elb
        .create_target_group()
        .name("lonely")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-1")
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let tg = target_group(&elb).await;
    let attempt = |arn: &str, container: &str, port: i32| {
        c.ecs
            .create_service()
            .cluster("prod")
            .service_name("web")
            .task_definition("web")
            .desired_count(1)
            .load_balancers(
                EcsLoadBalancer::builder()
                    .target_group_arn(arn)
                    .container_name(container)
                    .container_port(port)
                    .build(),
            )
            .send()
    };
    let message = |e: aws_sdk_ecs::error::SdkError<_>| {
        let e: aws_sdk_ecs::operation::create_service::CreateServiceError = e.into_service_error();
        assert!(e.is_invalid_parameter_exception(), "{e:?}");
        e.meta().message().unwrap().to_string()
    };
    let missing = attempt(&tg.replace("/web/", "/ghost/"), "app", 80)
        .await
        .unwrap_err();
    assert!(
        message(missing)
            .starts_with("Unable to assume role and validate the specified targetGroupArn")
    );
    let unused = attempt(&lonely, "app", 80).await.unwrap_err();
    assert_eq!(
        message(unused),
        format!(
            "The target group with targetGroupArn {lonely} does not have an associated load balancer."
        )
    );
    let port = attempt(&tg, "app", 8080).await.unwrap_err();
    assert_eq!(
        message(port),
        "The container app did not have a container port 8080 defined."
    );
    let container = attempt(&tg, "sidecar", 80).await.unwrap_err();
    assert_eq!(
        message(container),
        "The container sidecar does not exist in the task definition."
    );
    // Nothing was created by the refused calls.
    let listed = c.ecs.list_services().cluster("prod").send().await.unwrap();
    assert!(listed.service_arns().is_empty());
}

#[tokio::test]
async fn a_late_target_within_the_grace_period_is_not_replaced() {
    // Passes from 20 s (1 s scaled): unhealthy after two failed checks,
    // healthy after two good ones; the grace period (60 s, 3 s scaled)
    // covers it.
    let late = json!({"targetLateHealthy": 1.0, "targetLateBy": "20s"});
    let f = service_behind_lb(1, 200, 100, 60, Some(late)).await;
    wait_steady(&f.c.ecs, "prod", "web", WITHIN).await;
    let timeline = f.sim.timeline();
    let tasks = timeline["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "nothing replaced: {tasks:?}");
    let arn = tasks[0]["taskArn"].as_str().unwrap();
    let states: Vec<String> = target_states(&timeline, arn)
        .into_iter()
        .map(|s| s.1)
        .collect();
    assert_eq!(states, ["initial", "initial", "unhealthy", "healthy"]);
    assert_eq!(target_health(&f).await[0].2, "healthy");
}

#[tokio::test]
async fn a_rolling_deployment_stops_the_next_old_task_once_a_new_target_is_healthy() {
    let f = steady_behind_lb(2, 100, 50).await;
    let old = running_task_arns(&f.c.ecs, "prod", "web").await;
    f.c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    wait_for("both old tasks stop", || {
        let timeline = f.sim.timeline();
        old.iter()
            .all(|arn| reached(task_history(&timeline, arn), "STOPPED").is_some())
    })
    .await;
    wait_steady(&f.c.ecs, "prod", "web", WITHIN).await;
    let timeline = f.sim.timeline();
    let mut stops: Vec<f64> = old
        .iter()
        .map(|arn| reached(task_history(&timeline, arn), "DEACTIVATING").unwrap())
        .collect();
    stops.sort_by(f64::total_cmp);
    // The first new task's target turned healthy between the two stops:
    // minimumHealthyPercent 50 keeps one healthy target at all times.
    let first_new_healthy = timeline["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !old.iter().any(|o| t["taskArn"] == o.as_str()))
        .filter_map(|t| {
            t["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["state"] == "healthy")
                .map(|x| x["t"].as_f64().unwrap())
        })
        .fold(f64::INFINITY, f64::min);
    assert!(
        stops[0] < first_new_healthy && first_new_healthy <= stops[1],
        "old tasks stopped at {stops:?}, the first new target healthy at {first_new_healthy}"
    );
    let lowest = samples(&timeline, "prod", "web")
        .iter()
        .filter(|s| s.0 >= stops[0])
        .map(|s| s.4)
        .min()
        .unwrap();
    assert_eq!(lowest, 1, "one healthy task all along");
}
