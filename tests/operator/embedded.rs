//! The operator end to end on the embedded store and the simulator: the
//! original Lambda's example, and the operator killed and restarted at many instants.

use crate::support;

use std::time::Duration;

use chrono::Utc;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::json;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_lambdas_example_three_tasks_with_spare_capacity() {
    let (sim, c) = steady_service("prod", "web", 3, true).await;
    let dir = temp_dir("lambda-example");
    let store_path = dir.join("store.json");
    let store = EmbeddedStore::open(&store_path).unwrap();
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let since = sim.now();
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "100ms", "stabilityTimeout": "20s"}),
            Utc::now(),
        )
        .await
        .unwrap();
    let log = dir.join("operator.log");
    let mut op = spawn_operator(
        &["--store".into(), store_path.display().to_string()],
        &aws_env(sim.url()),
        "r1",
        &log,
    );
    let status = finish_then_stop(&store, "rotate", &mut op, &log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");

    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned.clone();
    expected.sort();
    assert_eq!(stopped, expected, "each original task stopped exactly once");
    assert!(
        facts.replacements_stopped.is_empty(),
        "no replacement stopped"
    );
    assert_eq!(facts.max_desired, 4, "desired 4 during the run");
    assert_eq!(facts.final_desired, 3, "desired back to 3");
    assert!(facts.min_running >= 3, "running never below 3: {facts:?}");

    let messages: Vec<&str> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"Starting task recycle for prod/web"),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Recycling task 3/3: ")),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&"Task recycle completed successfully"),
        "{messages:#?}"
    );
    // The stop reason names the request.
    let timeline = sim.timeline();
    let reasons: Vec<&str> = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["stoppedBy"] == "StopTask")
        .map(|t| t["stoppedReason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("request rotate")),
        "{reasons:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("Starting task recycle for prod/web"),
        "logs carry the original Lambda's messages"
    );
}

/// Desired-count changes in the timeline since `since`: (from, to).
fn desired_changes(timeline: &serde_json::Value, since: f64) -> Vec<(u64, u64)> {
    let s = samples(timeline, "prod", "web");
    s.windows(2)
        .filter(|w| w[1].0 >= since && w[0].1 != w[1].1)
        .map(|w| (w[0].1, w[1].1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_twenty_instants_and_restarted_it_ends_as_an_uninterrupted_run() {
    let (sim, c) = steady_service("prod", "web", 5, true).await;
    let dir = temp_dir("crash");
    let store_path = dir.join("store.json");
    let store = EmbeddedStore::open(&store_path).unwrap();
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let since = sim.now();
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "200ms", "stabilityTimeout": "30s"}),
            Utc::now(),
        )
        .await
        .unwrap();
    let log = dir.join("operator.log");
    let args = ["--store".to_string(), store_path.display().to_string()];
    let env = aws_env(sim.url());
    let mut kills = Vec::new();
    // A slow UpdateService widens the surge and restore steps, so that a kill
    // can be aimed at each phase, Restoring included.
    sim.configure(json!({"throttle": {"latency": {"UpdateService": "300ms"}}}))
        .unwrap();
    // First, one kill aimed at each phase as soon as it shows in the store.
    for target in ["Pending", "Surging", "Recycling"] {
        let mut op = spawn_operator(&args, &env, "r1", &log);
        let aimed = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = store
                .get(Kind::RecycleRequest, "rotate")
                .await
                .unwrap()
                .unwrap()
                .status;
            let phase = status
                .as_ref()
                .map_or("Pending", |s| s["phase"].as_str().unwrap_or(""));
            if phase == target {
                // Pending has no status written yet: give the first step a moment to start.
                if target == "Pending" {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < aimed,
                "never saw {target}; at {phase}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        op.sigkill();
        kills.push(serde_json::Value::String(format!("aimed:{target}")));
    }
    let mut restoring_killed = false;
    let mut rng = fastrand::Rng::with_seed(7);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        let record = store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap();
        let status = record.status.unwrap_or_default();
        if ["Succeeded", "Failed", "Cancelled"]
            .iter()
            .any(|p| status["phase"] == *p)
        {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no end after {} kills: {status:#}",
            kills.len()
        );
        let mut op = spawn_operator(&args, &env, "r1", &log);
        if kills.len() < 24 {
            // Short lives, so kills land all through the recycle.
            tokio::time::sleep(Duration::from_millis(60 + rng.u64(0..240))).await;
        } else if !restoring_killed {
            // Then one aimed at the restore, while UpdateService is slow.
            loop {
                let status = store
                    .get(Kind::RecycleRequest, "rotate")
                    .await
                    .unwrap()
                    .unwrap()
                    .status
                    .unwrap_or_default();
                if status["phase"] == "Restoring" {
                    restoring_killed = true;
                    break;
                }
                if ["Succeeded", "Failed", "Cancelled"]
                    .iter()
                    .any(|p| status["phase"] == *p)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(2_000)).await;
        }
        let phase = store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap()
            .status
            .unwrap_or_default()["phase"]
            .clone();
        op.sigkill();
        kills.push(phase);
    };
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    assert!(kills.len() >= 20, "only {} kills", kills.len());
    assert!(restoring_killed, "a kill landed in Restoring: {kills:?}");
    for aimed in ["aimed:Pending", "aimed:Surging", "aimed:Recycling"] {
        assert!(
            kills.contains(&serde_json::Value::String(aimed.into())),
            "{kills:?}"
        );
    }

    let timeline = sim.timeline();
    let facts = run_facts(&timeline, "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned;
    expected.sort();
    assert_eq!(stopped, expected, "each planned task stopped, once");
    assert!(
        facts.replacements_stopped.is_empty(),
        "no replacement stopped: {facts:?}"
    );
    assert!(
        facts.min_running >= 5,
        "capacity kept through every crash: {facts:?}"
    );
    assert_eq!(
        desired_changes(&timeline, since),
        [(5, 6), (6, 5)],
        "surge applied once, undone once"
    );
    eprintln!("kills by phase: {kills:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_step_releases_the_lease_and_another_replica_goes_on() {
    let (sim, _c) = steady_service("prod", "web", 2, false).await;
    let dir = temp_dir("sigterm");
    let store_path = dir.join("store.json");
    let store = EmbeddedStore::open(&store_path).unwrap();
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "1s"}),
            Utc::now(),
        )
        .await
        .unwrap();
    let log = dir.join("operator.log");
    let args = ["--store".to_string(), store_path.display().to_string()];
    let env = aws_env(sim.url());
    let mut first = spawn_operator(&args, &env, "first", &log);
    wait_phase(&store, "rotate", &["Recycling"], WITHIN, &log).await;
    assert!(first.sigterm().success(), "exit 0 on SIGTERM");
    let record = store
        .get(Kind::RecycleRequest, "rotate")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.lease, None, "the lease was released on the way out");
    // A replica with another name goes on at once, without waiting for expiry.
    let _second = spawn_operator(&args, &env, "second", &log);
    let status = wait_phase(&store, "rotate", &FINISHED, WITHIN, &log).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
}

/// Changes the spec as a person would (the CLI's pause/resume/cancel):
/// read, change, write conditionally, and try again on a conflict.
async fn edit_spec(store: &EmbeddedStore, name: &str, field: &str, value: serde_json::Value) {
    loop {
        let r = store
            .get(Kind::RecycleRequest, name)
            .await
            .unwrap()
            .unwrap();
        let mut spec = r.spec.unwrap();
        spec[field] = value.clone();
        match store
            .update_spec(Kind::RecycleRequest, name, r.version, spec)
            .await
        {
            Ok(_) => return,
            Err(ecs_recycler::store::StoreError::Conflict { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_between_batches_resume_goes_on_and_cancel_restores() {
    let (sim, _c) = steady_service("prod", "web", 4, false).await;
    let since = sim.now();
    let op = LocalOperator::start(sim.url(), "pause");
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "300ms"}),
    )
    .await;
    wait_phase(&op.store, "rotate", &["Recycling"], WITHIN, &op.log).await;
    edit_spec(&op.store, "rotate", "paused", json!(true)).await;
    let held = loop {
        let s = op
            .store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap()
            .status
            .unwrap();
        if s["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("paused after")
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stopped = held["stopped"].as_array().map_or(0, Vec::len);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let still = op
        .store
        .get(Kind::RecycleRequest, "rotate")
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        still["stopped"].as_array().map_or(0, Vec::len),
        stopped,
        "no batch while paused"
    );
    assert!(stopped < 4, "paused before the end");

    edit_spec(&op.store, "rotate", "paused", json!(false)).await;
    loop {
        let s = op
            .store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap()
            .status
            .unwrap();
        if s["stopped"].as_array().map_or(0, Vec::len) > stopped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edit_spec(&op.store, "rotate", "cancel", json!(true)).await;
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Cancelled", "{status:#}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("cancelled after"),
        "{status:#}"
    );
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(
        facts.final_desired, 4,
        "capacity restored on cancel: {facts:?}"
    );
    assert!(facts.min_running >= 4, "{facts:?}");
    assert!(
        facts.stopped_by_stop_task.len() < 4,
        "cancelled before the end: {facts:?}"
    );
}

/// A store file the release before this one (commit 2cf8a5e) wrote while
/// recycling prod/web: killed mid-batch, one task recycled and one stopping,
/// the surge in place, a notice waiting in the outbox.
const WRITTEN_BY_2CF8A5E: &str = include_str!("../fixtures/store-written-by-2cf8a5e.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_previous_release_left_mid_run_is_read_and_finished() {
    let (sim, c) = steady_service("prod", "web", 3, false).await;
    let hooks = support::hooks::Receiver::start().await;
    // The same run on this simulator: its three tasks take the places of the
    // recorded ones, the surge the old replica made is in place, and the
    // notices go to this test's receiver. Nothing else of the file changes.
    let mut text = WRITTEN_BY_2CF8A5E.replace("http://127.0.0.1:9/hook", &hooks.url("hook"));
    // As if the old replica died a moment ago: every time in the file moves
    // by the same amount (the step's stability timeout counts from them).
    text = moved_to_now(&text);
    let old: serde_json::Value = serde_json::from_str(WRITTEN_BY_2CF8A5E).unwrap();
    let planned: Vec<String> =
        old["records"]["RecycleRequest/rotate-web"]["status"]["plan"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
    let running = running_task_arns(&c.ecs, "prod", "web").await;
    // Through placeholders: this simulator may hand out the same ARNs in
    // another order.
    for (i, old) in planned.iter().enumerate() {
        text = text.replace(old.as_str(), &format!("@task{i}@"));
    }
    for (i, new) in running.iter().enumerate() {
        text = text.replace(&format!("@task{i}@"), new);
    }
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(4)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    let since = sim.now();
    let dir = temp_dir("previous-release");
    let path = dir.join("store.json");
    std::fs::write(&path, text).unwrap();
    let store = EmbeddedStore::open(&path).unwrap();
    let log = dir.join("operator.log");
    let mut operator = spawn_operator(
        &["--store".into(), path.display().to_string()],
        &aws_env(sim.url()),
        "new-release",
        &log,
    );
    let status = finish_then_stop(&store, "rotate-web", &mut operator, &log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    // The old events are kept, in order, and the run's own follow them.
    let events = status["events"].as_array().unwrap();
    let old_events = old["records"]["RecycleRequest/rotate-web"]["status"]["events"]
        .as_array()
        .unwrap();
    assert_eq!(events[0]["message"], old_events[0]["message"]);
    assert!(events.len() > old_events.len());
    // Exactly once across the two releases: the recycled task is not stopped
    // again, the one stopping is stopped (its stop was never made on this
    // simulator), then the last; the surge is undone once.
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(
        facts.stopped_by_stop_task,
        vec![running[1].clone(), running[2].clone()],
        "{facts:?}"
    );
    assert_eq!(facts.final_desired, 3, "{facts:?}");
    assert!(facts.min_running >= 3, "{facts:?}");
    // The notice the old release queued is delivered by the new one.
    let posts = hooks.posts("hook");
    assert!(
        posts.iter().any(|p| p["event"] == "started"),
        "the old outbox is delivered: {posts:?}"
    );
    assert!(posts.iter().any(|p| p["event"] == "succeeded"), "{posts:?}");
}

/// `text` with every RFC 3339 time in it moved so that the latest is now.
fn moved_to_now(text: &str) -> String {
    let times: Vec<(usize, usize, chrono::DateTime<Utc>)> = text
        .match_indices('"')
        .filter_map(|(i, _)| {
            let rest = &text[i + 1..];
            let end = rest.find('"')?;
            let t = chrono::DateTime::parse_from_rfc3339(&rest[..end]).ok()?;
            Some((i + 1, i + 1 + end, t.with_timezone(&Utc)))
        })
        .collect();
    let latest = times.iter().map(|t| t.2).max().expect("times in the file");
    let shift = Utc::now() - latest;
    let mut out = String::new();
    let mut at = 0;
    for (start, end, t) in times {
        out.push_str(&text[at..start]);
        out.push_str(&(t + shift).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}
