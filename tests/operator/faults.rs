//! The operator under faults: replacements that never become healthy, fail
//! to start or cannot be placed (each failure naming its cause in ECS's
//! words), the service deleted mid-run, throttling, an autoscaler that
//! fights, and a malformed record beside good ones.

use crate::support;

use std::time::Duration;

use aws_sdk_applicationautoscaling::types::ServiceNamespace;
use ecs_recycler::store::Store;
use serde_json::json;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacements_never_healthy_fail_after_the_timeout_with_capacity_restored() {
    let (sim, _c) = steady_service("prod", "web", 3, true).await;
    let since = sim.now();
    sim.configure(json!({"faults": {"neverHealthy": 1.0}}))
        .unwrap();
    let op = LocalOperator::start(sim.url(), "unhealthy");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s", "stabilityTimeout": "2s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("not become stable within 2s") || message.contains("within 2s"),
        "{message}"
    );
    assert!(
        message.contains("Desired count restored: 4 → 3"),
        "{message}"
    );
    // The cause, in ECS's words: the spare tasks it stopped, with a count,
    // and its latest event about them.
    assert_stopped_with(message, "spare", "Task failed container health checks");
    assert!(
        message.contains("latest service event: (service web) (task ")
            && message.contains(") failed container health checks."),
        "{message}"
    );
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(facts.final_desired, 3, "nothing left at +1: {facts:?}");
    assert!(
        facts.stopped_by_stop_task.is_empty(),
        "no task stopped while the surge never served"
    );
}

/// The message says "N <noun> task(s) stopped: <reason>" with N at least 1.
fn assert_stopped_with(message: &str, noun: &str, reason: &str) {
    let tails = [
        format!(" {noun} task stopped: {reason}"),
        format!(" {noun} tasks stopped: {reason}"),
    ];
    let counted = tails.iter().any(|tail| {
        message.match_indices(tail.as_str()).any(|(at, _)| {
            message[..at]
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 1)
        })
    });
    assert!(
        counted,
        "no \"N {noun} tasks stopped: {reason}\" in: {message}"
    );
}

/// Waits until the request's events include one with `reason`.
async fn wait_event(op: &LocalOperator, name: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let record = op
            .store
            .get(ecs_recycler::store::Kind::RecycleRequest, name)
            .await
            .unwrap()
            .unwrap();
        let status = record.status.unwrap_or_default();
        let seen = status["events"]
            .as_array()
            .is_some_and(|es| es.iter().any(|e| e["reason"] == reason));
        if seen {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `describe` of the request, as the CLI prints it.
async fn describe_text(op: &LocalOperator, name: &str) -> String {
    let record = op
        .store
        .get(ecs_recycler::store::Kind::RecycleRequest, name)
        .await
        .unwrap()
        .unwrap();
    ecs_recycler::cli::describe_request(&record, chrono::Utc::now())
}

/// The plan's lines of `describe`, each task's state in order.
fn plan_states(describe: &str) -> Vec<String> {
    describe
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (n, rest) = l.split_once(". ")?;
            n.parse::<u32>().ok()?;
            Some(rest.split_once("  ")?.1.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacements_that_fail_to_start_fail_the_step_naming_why_and_are_not_called_recycled() {
    let (sim, _c) = steady_service("prod", "web", 3, false).await;
    let op = LocalOperator::start(sim.url(), "failstart");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "1s", "stabilityTimeout": "3s"}),
    )
    .await;
    // The first task is recycled; from the second on, every replacement exits.
    wait_event(&op, "rotate", "Recycled").await;
    sim.configure(json!({"faults": {"failStart": 1.0}}))
        .unwrap();
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("replacements for arn:aws:ecs:us-east-1:123456789012:task/prod/"),
        "{message}"
    );
    assert_stopped_with(message, "replacement", "Essential container in task exited");
    assert!(
        message.contains("2/3 tasks stopped, 1 recycled"),
        "{message}"
    );
    assert!(
        message.contains("Desired count restored: 4 → 3"),
        "{message}"
    );
    let events = status["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["reason"] == "Transition"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("Essential container in task exited")),
        "the events name it too: {events:#?}"
    );
    let describe = describe_text(&op, "rotate").await;
    assert_eq!(
        plan_states(&describe),
        [
            "recycled",
            "stopped, replacement not serving",
            "not recycled"
        ],
        "{describe}"
    );
    assert!(
        describe.contains("(1 recycled; 1 stopped, replacement not serving)"),
        "{describe}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_the_cluster_cannot_place_fails_the_step_with_ecs_placement_event() {
    let (sim, _c) = steady_service("prod", "web", 3, false).await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "unplaced");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "1s", "stabilityTimeout": "3s"}),
    )
    .await;
    // With the spare running, four tasks are placed: room for three is one short.
    wait_event(&op, "rotate", "Recycled").await;
    sim.configure_cluster("prod", json!({"capacity": 3}))
        .unwrap();
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("latest service event: (service web) was unable to place a task because no container instance met all of its requirements."),
        "{message}"
    );
    assert!(
        message.contains("2/3 tasks stopped, 1 recycled"),
        "{message}"
    );
    let describe = describe_text(&op, "rotate").await;
    assert_eq!(
        plan_states(&describe),
        [
            "recycled",
            "stopped, replacement not serving",
            "not recycled"
        ],
        "{describe}"
    );
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(facts.final_desired, 3, "{facts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_deleted_mid_run_fails_the_request_with_the_reason() {
    let (sim, c) = steady_service("prod", "web", 3, false).await;
    let op = LocalOperator::start(sim.url(), "deleted");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "2s"}),
    )
    .await;
    wait_phase(&op.store, "rotate", &["Recycling"], WITHIN, &op.log).await;
    c.ecs
        .delete_service()
        .cluster("prod")
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap();
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("prod/web is DRAINING") || message.contains("is INACTIVE"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_exist_fails_with_aws_reason() {
    let (sim, _c) = steady_service("prod", "web", 1, false).await;
    let op = LocalOperator::start(sim.url(), "missing");
    op.request("ghost", json!({"cluster": "prod", "service": "ghost"}))
        .await;
    op.request("nocluster", json!({"cluster": "nowhere", "service": "web"}))
        .await;
    let ghost = op.finished("ghost", WITHIN).await;
    assert_eq!(ghost["phase"], "Failed");
    assert!(
        ghost["message"]
            .as_str()
            .unwrap()
            .contains("service ghost not found in cluster prod"),
        "{ghost:#}"
    );
    let nocluster = op.finished("nocluster", WITHIN).await;
    assert!(
        nocluster["message"]
            .as_str()
            .unwrap()
            .contains("ClusterNotFoundException"),
        "{nocluster:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_of_ecs_calls_throttled_still_succeeds() {
    let (sim, _c) = steady_service("prod", "web", 3, true).await;
    let since = sim.now();
    sim.configure(json!({"throttle": {"fraction": 0.3}}))
        .unwrap();
    let op = LocalOperator::start(sim.url(), "throttled");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let timeline = sim.timeline();
    let throttled = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["error"] == "ThrottlingException")
        .count();
    assert!(throttled > 5, "throttling happened ({throttled})");
    let facts = run_facts(&timeline, "prod", "web", since);
    assert_eq!(facts.stopped_by_stop_task.len(), 3);
    assert!(facts.replacements_stopped.is_empty());
    assert!(facts.min_running >= 3, "{facts:?}");
    assert_eq!(facts.final_desired, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_cannot_scale_in_during_the_run_and_its_scale_out_is_kept() {
    let (sim, c) = steady_service("prod", "web", 3, true).await;
    register_target(&c, Some(1), Some(6), None).await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "autoscaler");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "300ms"}),
    )
    .await;
    wait_phase(&op.store, "rotate", &["Recycling"], WITHIN, &op.log).await;
    // The policy tries to scale in, again and again.
    sim.set_policy(
        json!({"cluster": "prod", "service": "web", "every": "100ms", "targets": [1, 2]}),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    sim.set_policy(json!({"cluster": "prod", "service": "web"}))
        .unwrap();
    // Then it scales out by one: its 5 is its own decision, kept whole.
    let out = sim.policy_scale("prod", "web", 5).unwrap();
    assert_eq!(out["after"], 5, "{out}");
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("Desired count left at 5, set by someone else during the run"),
        "{message}"
    );

    let timeline = sim.timeline();
    let blocked = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["op"] == "_sim:ScalingPolicy" && c["params"]["blocked"] == "DynamicScalingInSuspended"
        })
        .count();
    assert!(blocked >= 3, "scale-in was suspended during the run");
    let facts = run_facts(&timeline, "prod", "web", since);
    assert!(facts.min_running >= 3, "no capacity lost: {facts:?}");
    assert_eq!(
        facts.final_desired, 5,
        "the autoscaler's count is left as it set it: {facts:?}"
    );
    let target = c
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let t = &target.scalable_targets()[0];
    assert_eq!(
        t.suspended_state().unwrap().dynamic_scaling_in_suspended(),
        Some(false),
        "suspension lifted"
    );
    assert_eq!(t.max_capacity(), 6, "max as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_fails_alone_and_the_others_succeed() {
    let (sim, c) = steady_service("prod", "web", 2, false).await;
    create_service(&c.ecs, "prod", "api", 2, false).await;
    wait_steady(&c.ecs, "prod", "api", WITHIN).await;
    let op = LocalOperator::start(sim.url(), "malformed");
    op.request(
        "broken",
        json!({"cluster": "prod", "service": "web", "batchSize": 0, "wiat": "30s"}),
    )
    .await;
    op.request(
        "good-web",
        json!({"cluster": "prod", "service": "web", "wait": "0s"}),
    )
    .await;
    op.request(
        "good-api",
        json!({"cluster": "prod", "service": "api", "wait": "0s"}),
    )
    .await;
    let broken = op.finished("broken", WITHIN).await;
    assert_eq!(broken["phase"], "Failed");
    let message = broken["message"].as_str().unwrap();
    assert!(
        message.contains("spec.batchSize") && message.contains("spec.wiat"),
        "{message}"
    );
    for name in ["good-web", "good-api"] {
        assert_eq!(
            op.finished(name, WITHIN).await["phase"],
            "Succeeded",
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_service_go_one_at_a_time_in_creation_order() {
    let (sim, _c) = steady_service("prod", "web", 2, false).await;
    let op = LocalOperator::start(sim.url(), "ordered");
    op.request(
        "first",
        json!({"cluster": "prod", "service": "web", "wait": "300ms"}),
    )
    .await;
    op.request(
        "second",
        json!({"cluster": "prod", "service": "web", "wait": "0s"}),
    )
    .await;
    wait_phase(&op.store, "first", &["Recycling"], WITHIN, &op.log).await;
    let second = op
        .store
        .get(ecs_recycler::store::Kind::RecycleRequest, "second")
        .await
        .unwrap()
        .unwrap();
    let status = second.status.unwrap_or_default();
    assert_eq!(status["phase"], "Pending", "{status:#}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("request first"),
        "{status:#}"
    );
    let first = op.finished("first", WITHIN).await;
    let second = op.finished("second", WITHIN).await;
    assert_eq!(
        (first["phase"].as_str(), second["phase"].as_str()),
        (Some("Succeeded"), Some("Succeeded"))
    );
    assert!(
        first["finishedAt"].as_str() <= second["startedAt"].as_str(),
        "{first:#} {second:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_capacity_at_desired_is_raised_for_the_surge_and_restored_exactly() {
    let (sim, c) = steady_service("prod", "web", 3, false).await;
    register_target(
        &c,
        Some(3),
        Some(3),
        Some(
            aws_sdk_applicationautoscaling::types::SuspendedState::builder()
                .scheduled_scaling_suspended(true)
                .build(),
        ),
    )
    .await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "maxraise");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let timeline = sim.timeline();
    let stopped_looks = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "ListTasks" && c["params"]["desiredStatus"] == "STOPPED")
        .count();
    assert_eq!(stopped_looks, 0, "a run going well never looks for causes");
    let facts = run_facts(&timeline, "prod", "web", since);
    assert_eq!(
        (facts.max_desired, facts.final_desired),
        (4, 3),
        "{facts:?}"
    );
    assert!(facts.min_running >= 3, "{facts:?}");
    let target = c
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let t = &target.scalable_targets()[0];
    assert_eq!((t.min_capacity(), t.max_capacity()), (3, 3));
    let s = t.suspended_state().unwrap();
    assert_eq!(
        (
            s.dynamic_scaling_in_suspended(),
            s.dynamic_scaling_out_suspended(),
            s.scheduled_scaling_suspended()
        ),
        (Some(false), Some(false), Some(true)),
        "the original SuspendedState, exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_action_fails_the_request_naming_it_and_capacity_is_restored() {
    let (sim, _c) = steady_service("prod", "web", 2, false).await;
    let since = sim.now();
    sim.configure(json!({"throttle": {"deny": ["StopTask"]}}))
        .unwrap();
    let op = LocalOperator::start(sim.url(), "denied");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "0s"}),
    )
    .await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("ecs:StopTask was refused: AccessDeniedException"),
        "{message}"
    );
    assert!(
        message.contains("Desired count restored: 3 → 2"),
        "{message}"
    );
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(facts.final_desired, 2, "nothing left at +1: {facts:?}");
}
