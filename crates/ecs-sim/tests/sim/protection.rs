//! Task scale-in protection through the official SDK: AWS's limits and
//! failures, expiry, service scale-in and deployments that leave protected
//! tasks running (with ECS's event), and StopTask, which AWS documents
//! nothing of for protection: it stops a protected task, and the timeline
//! marks that stop so a test can catch an operator that does it.

use std::time::Duration;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use serde_json::json;
use test_support::*;

use super::elb::{task_history, wait_for};

async fn protect(
    c: &Clients,
    tasks: &[String],
    minutes: Option<i32>,
) -> aws_sdk_ecs::operation::update_task_protection::UpdateTaskProtectionOutput {
    c.ecs
        .update_task_protection()
        .cluster("prod")
        .set_tasks(Some(tasks.to_vec()))
        .protection_enabled(true)
        .set_expires_in_minutes(minutes)
        .send()
        .await
        .expect("update task protection")
}

async fn protected_now(c: &Clients, arn: &str) -> bool {
    c.ecs
        .get_task_protection()
        .cluster("prod")
        .tasks(arn)
        .send()
        .await
        .unwrap()
        .protected_tasks()[0]
        .protection_enabled()
}

use test_support::capacity::protected_stops;

#[tokio::test]
async fn protection_has_awss_limits_failures_and_expiry() {
    let (sim, c) = steady_service("prod", "web", 2, false).await;
    let arns = running_task_arns(&c.ecs, "prod", "web").await;
    // Up to 10 tasks a call; 1 to 2880 minutes.
    let eleven = vec![arns[0].clone(); 11];
    for (tasks, minutes) in [
        (eleven, None),
        (vec![arns[0].clone()], Some(0)),
        (vec![arns[0].clone()], Some(2881)),
    ] {
        let err = c
            .ecs
            .update_task_protection()
            .cluster("prod")
            .set_tasks(Some(tasks))
            .protection_enabled(true)
            .set_expires_in_minutes(minutes)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidParameterException"), "{err:?}");
    }
    // The default is 120 minutes; an unknown task is a MISSING failure.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = protect(
        &c,
        &[arns[0].clone(), "0123456789abcdef0123456789abcdef".into()],
        None,
    )
    .await;
    assert_eq!(out.protected_tasks().len(), 1);
    let p = &out.protected_tasks()[0];
    assert!(p.protection_enabled());
    let expires = p.expiration_date().unwrap().as_secs_f64();
    assert!(
        (expires - before - 7200.0).abs() < 5.0,
        "{expires} vs {before}"
    );
    assert_eq!(out.failures().len(), 1);
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
    assert!(
        out.failures()[0]
            .arn()
            .unwrap()
            .ends_with("/0123456789abcdef0123456789abcdef")
    );
    assert!(protected_now(&c, &arns[0]).await);
    assert!(!protected_now(&c, &arns[1]).await);
    // Turned off, it is off.
    c.ecs
        .update_task_protection()
        .cluster("prod")
        .tasks(&arns[0])
        .protection_enabled(false)
        .send()
        .await
        .unwrap();
    assert!(!protected_now(&c, &arns[0]).await);
    // A minute at ECS time scale 60 is a second: then it expires on its own.
    sim.configure(json!({"ecsTimeScale": 60.0})).unwrap();
    protect(&c, &[arns[1].clone()], Some(1)).await;
    assert!(protected_now(&c, &arns[1]).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!protected_now(&c, &arns[1]).await, "expired");
    // A task that is stopping is not a task protection can apply to.
    stop_task(&c.ecs, "prod", &arns[1]).await;
    let out = c
        .ecs
        .update_task_protection()
        .cluster("prod")
        .tasks(&arns[1])
        .protection_enabled(true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.failures()[0].reason(), Some("TASK_NOT_VALID"));
    assert!(out.protected_tasks().is_empty());
}

#[tokio::test]
async fn scale_in_and_deployments_leave_protected_tasks_running() {
    let (sim, c) = steady_service("prod", "web", 3, false).await;
    let arns = running_task_arns(&c.ecs, "prod", "web").await;
    let kept = vec![arns[0].clone(), arns[1].clone()];
    protect(&c, &kept, None).await;
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let words = "was unable to reach steady state because task set (ecs-svc/";
    let reason = "was unable to scale in. Reason: The number of protected tasks are more than the desired count of tasks.";
    wait_for("the unprotected task stopped", || {
        let t = sim.timeline();
        task_history(&t, &arns[2])["stoppedBy"] == "scale-in"
    })
    .await;
    wait_for_service_event(
        &c.ecs,
        "prod",
        "web",
        |e| e.starts_with("(service web) ") && e.contains(words) && e.contains(reason),
        Duration::from_secs(10),
    )
    .await;
    // The protected ones stay, above the desired count, while protected.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let running = running_task_arns(&c.ecs, "prod", "web").await;
    assert_eq!(running.len(), 2);
    assert!(kept.iter().all(|k| running.contains(k)));
    // A deployment leaves them too, until protection ends.
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(2)
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running = running_task_arns(&c.ecs, "prod", "web").await;
    assert!(
        kept.iter().all(|k| running.contains(k)),
        "protected tasks outlive the deployment"
    );
    c.ecs
        .update_task_protection()
        .cluster("prod")
        .set_tasks(Some(kept.clone()))
        .protection_enabled(false)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    let timeline = sim.timeline();
    for k in &kept {
        assert_eq!(task_history(&timeline, k)["stoppedBy"], "deployment");
    }
    assert!(
        protected_stops(&timeline).is_empty(),
        "ECS stopped no protected task"
    );
}

#[tokio::test]
async fn stop_task_stops_a_protected_task_and_the_timeline_says_it_was_protected() {
    let (sim, c) = steady_service("prod", "web", 2, false).await;
    let arns = running_task_arns(&c.ecs, "prod", "web").await;
    protect(&c, &[arns[0].clone()], None).await;
    stop_task(&c.ecs, "prod", &arns[0]).await;
    stop_task(&c.ecs, "prod", &arns[1]).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    let timeline = sim.timeline();
    assert_eq!(protected_stops(&timeline), vec![arns[0].clone()]);
    let history = task_history(&timeline, &arns[0]);
    assert_eq!(history["stoppedBy"], "StopTask");
    let marked = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["protected"] == true)
        .unwrap();
    assert_eq!(marked["desiredStatus"], "STOPPED");
    let task = describe_task(&c.ecs, "prod", &arns[0]).await;
    assert_eq!(task.last_status(), Some("STOPPED"));
}
