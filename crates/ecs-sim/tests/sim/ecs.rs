//! The simulator driven by the official aws-sdk-ecs client: services reach a
//! steady state, stopped tasks are replaced, desired counts move both ways,
//! rolling deployments honour their percentages, ListTasks pages, capacity
//! and task faults behave as ECS's do.

use std::time::Duration;

use aws_sdk_ecs::types::{DeploymentConfiguration, DesiredStatus};
use serde_json::json;
use test_support::*;

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_new_service_reaches_a_steady_state() {
    let (sim, c) = steady_service("prod", "web", 3, true).await;

    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!(
        (s.desired_count(), s.running_count(), s.pending_count()),
        (3, 3, 0)
    );
    assert_eq!(s.status(), Some("ACTIVE"));
    let tasks = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .set_tasks(Some(running_task_arns(&c.ecs, "prod", "web").await))
        .send()
        .await
        .unwrap();
    assert_eq!(tasks.tasks().len(), 3);
    for t in tasks.tasks() {
        assert_eq!(t.last_status(), Some("RUNNING"));
        assert_eq!(t.health_status().map(|h| h.as_str()), Some("HEALTHY"));
        assert_eq!(t.group(), Some("service:web"));
        assert!(t.started_by().unwrap().starts_with("ecs-svc/"));
    }
    // Every task walked PROVISIONING → PENDING → ACTIVATING → RUNNING → HEALTHY.
    let timeline = sim.timeline();
    for task in timeline["tasks"].as_array().unwrap() {
        let states: Vec<&str> = task["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["lastStatus"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            [
                "PROVISIONING",
                "PENDING",
                "ACTIVATING",
                "RUNNING",
                "RUNNING"
            ],
            "{task}"
        );
    }
}

#[tokio::test]
async fn a_stopped_task_is_replaced_and_the_timeline_names_the_call() {
    let (sim, c) = steady_service("prod", "web", 3, true).await;
    let before = running_task_arns(&c.ecs, "prod", "web").await;
    let victim = before[0].clone();

    let stopped = c
        .ecs
        .stop_task()
        .cluster("prod")
        .task(&victim)
        .reason("recycled by test")
        .send()
        .await
        .unwrap();
    let t = stopped.task().unwrap();
    // Right after StopTask the task is still RUNNING, only its desired status changed.
    assert_eq!(t.last_status(), Some("RUNNING"));
    assert_eq!(t.desired_status(), Some("STOPPED"));
    // Stopping it again is not an error.
    c.ecs
        .stop_task()
        .cluster("prod")
        .task(&victim)
        .send()
        .await
        .unwrap();

    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    let after = running_task_arns(&c.ecs, "prod", "web").await;
    assert_eq!(after.len(), 3);
    assert!(!after.contains(&victim));
    let stopped = c
        .ecs
        .list_tasks()
        .cluster("prod")
        .service_name("web")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.task_arns(), std::slice::from_ref(&victim));
    let described = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .tasks(&victim)
        .send()
        .await
        .unwrap();
    let t = &described.tasks()[0];
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.stopped_reason(), Some("recycled by test"));

    let timeline = sim.timeline();
    let history = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["taskArn"] == victim.as_str())
        .unwrap();
    assert_eq!(history["stoppedBy"], "StopTask");
    assert_eq!(history["stoppedReason"], "recycled by test");
    let call = &timeline["calls"][history["stopCall"].as_u64().unwrap() as usize];
    assert_eq!(call["op"], "StopTask");
    assert_eq!(call["params"]["reason"], "recycled by test");
    let statuses: Vec<&str> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["lastStatus"].as_str().unwrap())
        .collect();
    assert!(
        statuses.ends_with(&[
            "RUNNING",
            "DEACTIVATING",
            "STOPPING",
            "DEPROVISIONING",
            "STOPPED"
        ]),
        "{statuses:?}"
    );
    // Without spare capacity the service dips by the one stopped task, never more.
    assert_eq!(
        min_running_since(&timeline, "prod", "web", call["t"].as_f64().unwrap()),
        2
    );
}

#[tokio::test]
async fn desired_count_moves_up_and_down() {
    let (_sim, c) = steady_service("prod", "web", 2, false).await;
    for desired in [5, 1, 0, 3] {
        c.ecs
            .update_service()
            .cluster("prod")
            .service("web")
            .desired_count(desired)
            .send()
            .await
            .unwrap();
        wait_steady(&c.ecs, "prod", "web", WITHIN).await;
        assert_eq!(
            running_task_arns(&c.ecs, "prod", "web").await.len(),
            desired as usize
        );
    }
    let events: Vec<String> = describe(&c.ecs, "prod", "web")
        .await
        .events()
        .iter()
        .filter_map(|e| e.message().map(str::to_string))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.contains("has stopped 4 running tasks")),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e.contains("has started 3 tasks")),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_forced_deployment_replaces_every_task_within_minimum_healthy_percent() {
    let (sim, c) = steady_service("prod", "web", 4, true).await;
    let old = running_task_arns(&c.ecs, "prod", "web").await;
    let t0 = sim.now();
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .force_new_deployment(true)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(50)
                .maximum_percent(100)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!(s.deployments().len(), 2);
    assert_eq!(s.deployments()[0].status(), Some("PRIMARY"));
    assert_eq!(s.deployments()[1].status(), Some("ACTIVE"));

    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    let new = running_task_arns(&c.ecs, "prod", "web").await;
    assert_eq!(new.len(), 4);
    assert!(
        new.iter().all(|t| !old.contains(t)),
        "every task was replaced"
    );
    let timeline = sim.timeline();
    let samples = samples(&timeline, "prod", "web");
    let during: Vec<_> = samples.iter().filter(|s| s.0 >= t0).collect();
    // maximumPercent 100: never more than 4 tasks placed; minimumHealthyPercent 50: at least 2 healthy.
    assert!(
        during.iter().all(|s| s.4 >= 2),
        "healthy fell below 50%: {during:?}"
    );
    assert!(
        during.iter().all(|s| s.2 + s.3 <= 4),
        "more than 100% placed: {during:?}"
    );
    assert!(
        during.iter().any(|s| s.2 < 4),
        "the deployment did use its room below 100%"
    );
}

#[tokio::test]
async fn list_tasks_pages_through_250_tasks() {
    let (_sim, c) = steady_service("big", "fleet", 250, false).await;
    let mut pages = 0;
    let mut all = Vec::new();
    let mut stream = c
        .ecs
        .list_tasks()
        .cluster("big")
        .service_name("fleet")
        .max_results(100)
        .into_paginator()
        .send();
    while let Some(page) = stream.next().await {
        pages += 1;
        all.extend(page.unwrap().task_arns().iter().cloned());
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 250);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250, "no task listed twice");

    let err = c
        .ecs
        .list_tasks()
        .cluster("big")
        .max_results(101)
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert!(err.to_string().contains("maxResults"), "{err}");

    // DescribeTasks takes at most 100.
    let err = c
        .ecs
        .describe_tasks()
        .cluster("big")
        .set_tasks(Some(all[..101].to_vec()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
}

#[tokio::test]
async fn describe_services_takes_ten_and_reports_missing_ones() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 1, false).await;
    let out = c
        .ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .services("ghost")
        .send()
        .await
        .unwrap();
    assert_eq!(out.services().len(), 1);
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
    assert!(
        out.failures()[0]
            .arn()
            .unwrap()
            .ends_with("service/prod/ghost")
    );
    let eleven: Vec<String> = (0..11).map(|i| format!("s{i}")).collect();
    let err = c
        .ecs
        .describe_services()
        .cluster("prod")
        .set_services(Some(eleven))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    let err = c
        .ecs
        .describe_services()
        .cluster("nowhere")
        .services("web")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_cluster_not_found_exception(), "{err:?}");
    let err = c
        .ecs
        .update_service()
        .cluster("prod")
        .service("ghost")
        .desired_count(2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_service_not_found_exception(), "{err:?}");
}

#[tokio::test]
async fn a_deleted_service_drains_and_becomes_inactive() {
    let (_sim, c) = steady_service("prod", "web", 2, false).await;
    let err = c
        .ecs
        .delete_service()
        .cluster("prod")
        .service("web")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_invalid_parameter_exception());
    c.ecs
        .delete_service()
        .cluster("prod")
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let s = describe(&c.ecs, "prod", "web").await;
        if s.status() == Some("INACTIVE") {
            assert_eq!(s.running_count(), 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {:?}",
            s.status()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let err = c
        .ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(1)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_service_not_active_exception(), "{err:?}");
}

#[tokio::test]
async fn tasks_beyond_cluster_capacity_stay_pending_with_the_ecs_event() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    c.ecs
        .create_cluster()
        .cluster_name("small")
        .send()
        .await
        .unwrap();
    sim.configure_cluster("small", json!({"capacity": 2}))
        .unwrap();
    create_service(&c.ecs, "small", "web", 3, false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = describe(&c.ecs, "small", "web").await;
    assert_eq!((s.running_count(), s.pending_count()), (2, 1));
    assert!(
        s.events()
            .iter()
            .any(|e| e.message().unwrap().contains("was unable to place a task")),
        "{:?}",
        s.events()
    );
    sim.configure_cluster("small", json!({"capacity": null}))
        .unwrap();
    wait_steady(&c.ecs, "small", "web", WITHIN).await;
}

#[tokio::test]
async fn tasks_that_fail_to_start_stop_with_the_essential_container_reason() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"faults": {"failStart": 1.0}}))
        .unwrap();
    create_service(&c.ecs, "prod", "web", 2, false).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopped = c
        .ecs
        .list_tasks()
        .cluster("prod")
        .service_name("web")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert!(
        !stopped.task_arns().is_empty(),
        "failed tasks are listed as stopped"
    );
    let t = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .tasks(&stopped.task_arns()[0])
        .send()
        .await
        .unwrap();
    let t = &t.tasks()[0];
    assert_eq!(
        t.stopped_reason(),
        Some("Essential container in task exited")
    );
    assert_eq!(
        t.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!(s.running_count(), 0);
    assert!(s.deployments()[0].failed_tasks() >= 2);
    // A service's own profile overrides the global one and lets it recover.
    sim.configure_service("prod", "web", json!({"faults": {}}))
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
}

#[tokio::test]
async fn tasks_that_never_become_healthy_are_replaced_again_and_again() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"faults": {"neverHealthy": 1.0}}))
        .unwrap();
    create_service(&c.ecs, "prod", "web", 1, true).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let timeline = sim.timeline();
    let by_health: Vec<&serde_json::Value> = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["stoppedBy"] == "health-check")
        .collect();
    assert!(by_health.len() >= 2, "{timeline}");
    assert_eq!(
        by_health[0]["stoppedReason"],
        "Task failed container health checks"
    );
    let samples = samples(&timeline, "prod", "web");
    assert!(samples.iter().all(|s| s.4 == 0), "never healthy");
}

#[tokio::test]
async fn slow_starts_take_longer() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    sim.configure(json!({"faults": {"slowStart": 1.0, "slowStartFactor": 4.0}}))
        .unwrap();
    let t0 = sim.now();
    create_service(&c.ecs, "prod", "web", 1, false).await;
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    // 0.3 s start × 4, less 20 % jitter, is at least 0.96 s.
    assert!(sim.now() - t0 >= 0.95, "took {}", sim.now() - t0);
}

/// The service's events, newest first, as DescribeServices answers them.
async fn event_messages(c: &Clients, cluster: &str, service: &str) -> Vec<String> {
    describe(&c.ecs, cluster, service)
        .await
        .events()
        .iter()
        .map(|e| e.message().unwrap_or_default().to_string())
        .collect()
}

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn service_events_are_newest_first_in_ecs_own_words() {
    let (_sim, c) = steady_service("prod", "web", 2, false).await;
    let s = describe(&c.ecs, "prod", "web").await;
    let events = s.events();
    assert_eq!(
        events[0].message(),
        Some("(service web) has reached a steady state.")
    );
    let times: Vec<_> = events.iter().map(|e| e.created_at().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "each event has its own id");
    let mut tasks = running_task_arns(&c.ecs, "prod", "web").await;
    tasks.sort();
    let started = events
        .iter()
        .filter_map(|e| e.message())
        .find(|m| m.contains("has started"))
        .expect("a started event");
    let named: Vec<String> = tasks
        .iter()
        .map(|t| format!("(task {})", task_id(t)))
        .collect();
    assert!(
        started.starts_with("(service web) has started 2 tasks: "),
        "{started}"
    );
    assert!(
        named.iter().all(|n| started.contains(n.as_str())),
        "{started} names {named:?}"
    );

    // Scaled in, the scheduler says which tasks it stopped.
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    let messages = event_messages(&c, "prod", "web").await;
    let stopped = messages
        .iter()
        .find(|m| m.contains("has stopped"))
        .expect("a stopped event");
    assert!(
        stopped.starts_with("(service web) has stopped 1 running tasks: (task "),
        "{stopped}"
    );
}

#[tokio::test]
async fn failed_health_checks_are_service_events_and_failed_tasks_until_a_task_serves() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"faults": {"neverHealthy": 1.0}}))
        .unwrap();
    create_service(&c.ecs, "prod", "web", 1, true).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let messages = event_messages(&c, "prod", "web").await;
    let health = messages
        .iter()
        .find(|m| m.contains("failed container health checks"))
        .expect("a health-check event");
    assert!(
        health.starts_with("(service web) (task ")
            && health.ends_with(") failed container health checks."),
        "{health}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("(service web) has stopped 1 running tasks: (task ")),
        "{messages:#?}"
    );
    let s = describe(&c.ecs, "prod", "web").await;
    let failed = s.deployments()[0].failed_tasks();
    assert!(failed >= 2, "health-check failures count: {failed}");

    // Once a task serves, the count is reset and no longer kept, as in ECS.
    sim.configure_service("prod", "web", json!({"faults": {}}))
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    assert_eq!(
        describe(&c.ecs, "prod", "web").await.deployments()[0].failed_tasks(),
        0
    );
    sim.configure_service("prod", "web", json!({"faults": {"failStart": 1.0}}))
        .unwrap();
    let victim = running_task_arns(&c.ecs, "prod", "web").await[0].clone();
    stop_task(&c.ecs, "prod", &victim).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!(s.deployments()[0].failed_tasks(), 0, "no longer counted");
    assert_eq!(s.running_count(), 0, "the replacements do fail");
}

#[tokio::test]
async fn the_circuit_breaker_fails_a_deployment_whose_tasks_fail_to_start() {
    use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentRolloutState};
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 2, false).await;
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    sim.configure(json!({"faults": {"failStart": 1.0}}))
        .unwrap();
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .force_new_deployment(true)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(false)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    let s = loop {
        let s = describe(&c.ecs, "prod", "web").await;
        if s.deployments()[0].rollout_state() == Some(&DeploymentRolloutState::Failed) {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            s.deployments()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let primary = &s.deployments()[0];
    assert_eq!(
        primary.rollout_state_reason(),
        Some("ECS deployment circuit breaker: tasks failed to start.")
    );
    assert!(primary.failed_tasks() >= 3, "threshold 3: {primary:?}");
    let breaker = s
        .deployment_configuration()
        .and_then(|d| d.deployment_circuit_breaker())
        .unwrap();
    assert!(breaker.enable() && !breaker.rollback());
    let messages = event_messages(&c, "prod", "web").await;
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("(service web) (deployment ")
                && m.ends_with("deployment failed: tasks failed to start.")),
        "{messages:#?}"
    );
    // A failed deployment launches no more tasks; the old ones keep serving.
    // A task launched before the breaker tripped may still fail: wait for those.
    let failed = loop {
        let s = describe(&c.ecs, "prod", "web").await;
        if s.pending_count() == 0 {
            break s.deployments()[0].failed_tasks();
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = describe(&c.ecs, "prod", "web").await;
    assert_eq!(s.deployments()[0].failed_tasks(), failed);
    assert_eq!(s.running_count(), 2);
}

#[tokio::test]
async fn stopped_tasks_stay_visible_for_the_retention_then_are_forgotten() {
    let (sim, c) = steady_service("prod", "web", 1, false).await;
    let config = sim
        .configure(json!({"stoppedTaskRetention": "700ms"}))
        .unwrap();
    assert_eq!(config["stoppedTaskRetention"], "700ms");
    let victim = running_task_arns(&c.ecs, "prod", "web").await[0].clone();
    c.ecs
        .stop_task()
        .cluster("prod")
        .task(&victim)
        .reason("recycled by test")
        .send()
        .await
        .unwrap();
    let stopped = || async {
        c.ecs
            .list_tasks()
            .cluster("prod")
            .service_name("web")
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await
            .unwrap()
            .task_arns()
            .to_vec()
    };
    // STOPPED after 0.2s; still there with its reason for a while after.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(stopped().await, std::slice::from_ref(&victim));
    let described = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .tasks(&victim)
        .send()
        .await
        .unwrap();
    let t = &described.tasks()[0];
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.stopped_reason(), Some("recycled by test"));
    assert_eq!(t.stop_code().map(|c| c.as_str()), Some("UserInitiated"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(stopped().await.is_empty(), "forgotten after the retention");
    let described = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .tasks(&victim)
        .send()
        .await
        .unwrap();
    assert!(described.tasks().is_empty());
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
}
