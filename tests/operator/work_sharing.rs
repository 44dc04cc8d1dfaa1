//! Work shared across replicas: each holds a fair part of the active
//! records (not whoever lists first taking everything), a replica that
//! joins is handed its part, and one that leaves hands its part back — each
//! well within a lease duration — and every recycle still ends as an
//! uninterrupted one would. Checked from the store's leases and the
//! simulator's timeline, with the operator binary as users run it.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::json;
use support::operator::*;
use support::*;

const SERVICES: usize = 12;
const TASKS: i32 = 3;

/// Leases held right now, by replica.
async fn holders(store: &EmbeddedStore) -> BTreeMap<String, usize> {
    let now = Utc::now();
    let mut out = BTreeMap::new();
    for r in store.list_active(Kind::RecycleRequest).await.unwrap() {
        if let Some(l) = r.lease.filter(|l| l.expires_at > now) {
            *out.entry(l.holder).or_default() += 1;
        }
    }
    out
}

/// Waits until the leases are held as `want` says, within `within`;
/// answers how long that took.
async fn until_held(
    store: &EmbeddedStore,
    want: impl Fn(&BTreeMap<String, usize>) -> bool,
    within: Duration,
    what: &str,
) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let held = holders(store).await;
        if want(&held) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: leases held {held:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_joins_gets_its_part_and_one_that_leaves_hands_it_back() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    steady_services(&c.ecs, SERVICES, TASKS, |_| "prod".into()).await;
    let dir = temp_dir("work-sharing");
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).expect("store");
    let store_args = ["--store".to_string(), path.display().to_string()];
    let mut env = aws_env(sim.url());
    // Work sharing, not the API budget (tests/operator/share.rs has that):
    // an account with raised quotas, so no step waits long for a token and
    // the hand-overs' timing is the sharing's own.
    env.push(raised_quotas());
    let logs: Vec<_> = (0..2).map(|i| dir.join(format!("r{i}.log"))).collect();
    let _first = spawn_operator(&store_args, &env, "r0", &logs[0]);
    let since = sim.now();
    // Long enough runs (three tasks, a 4 s wait after each) to rebalance mid-run.
    for i in 0..SERVICES {
        let spec = json!({"cluster": "prod", "service": format!("s{i:02}"),
                          "wait": "4s", "maintainCapacity": true});
        store
            .create(Kind::RecycleRequest, &format!("r{i:02}"), spec, Utc::now())
            .await
            .unwrap();
    }
    let lease = Duration::from_secs(1);
    until_held(
        &store,
        |h| h.get("r0") == Some(&SERVICES),
        Duration::from_secs(10),
        "a lone replica takes every record",
    )
    .await;

    // A second replica joins: it is handed its half, less the one record
    // of slack the first keeps, within a lease duration.
    let mut second = spawn_operator(&store_args, &env, "r1", &logs[1]);
    let half = SERVICES / 2;
    let took = until_held(
        &store,
        |h| h.get("r0") == Some(&(half + 1)) && h.get("r1") == Some(&(half - 1)),
        Duration::from_secs(10),
        "two replicas hold about half each",
    )
    .await;
    // Its start-up (the binary, the SDK) is in `took`: allow it a few seconds.
    assert!(
        took < lease + Duration::from_secs(4),
        "balanced only after {took:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&logs[0])
            .unwrap()
            .matches("lease given back: another replica's part")
            .count(),
        half - 1,
        "the first replica gave back exactly the newcomer's part"
    );

    // It leaves (SIGTERM: steps in flight end, leases and heartbeat given
    // up): the first takes its records back within a lease duration.
    let left_at = tokio::time::Instant::now();
    assert!(second.sigterm().success());
    let stop_took = left_at.elapsed();
    let took = until_held(
        &store,
        |h| h.get("r1").is_none() && h.get("r0").copied().unwrap_or(0) >= 1,
        Duration::from_secs(5),
        "the first replica takes the records back",
    )
    .await;
    assert!(
        took <= lease,
        "taken back after {took:?} (the stop took {stop_took:?})"
    );

    // Every recycle ends as an uninterrupted one: each planned task stopped
    // once, never a replacement, and the capacity kept.
    for i in 0..SERVICES {
        let status = wait_phase(
            &store,
            &format!("r{i:02}"),
            &FINISHED,
            Duration::from_secs(120),
            &logs[0],
        )
        .await;
        assert_eq!(status["phase"], "Succeeded", "{status:#}");
    }
    let timeline = sim.timeline();
    for i in 0..SERVICES {
        let service = format!("s{i:02}");
        let facts = run_facts(&timeline, "prod", &service, since);
        let mut stopped = facts.stopped_by_stop_task.clone();
        stopped.dedup();
        assert_eq!(stopped.len(), TASKS as usize, "{service}: {facts:?}");
        assert!(
            facts.replacements_stopped.is_empty(),
            "{service}: {facts:?}"
        );
        assert!(facts.min_running >= TASKS as u64, "{service}: {facts:?}");
        assert_eq!(facts.final_desired, TASKS as u64, "{service}: {facts:?}");
    }
}

/// The replicas' heartbeats in the embedded store's file.
fn heartbeats(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["replicas"].as_object().map(|m| m.len()))
        .unwrap_or(0)
}

/// An account with raised quotas for every category the operator uses.
fn raised_quotas() -> (String, String) {
    let quotas = [
        "cluster-resource-read",
        "cluster-resource-modify",
        "service-read",
        "service-modify",
        "task-definition-read",
        "autoscaling",
    ]
    .map(|c| format!("{c}=1000/1000"))
    .join(",");
    ("ECS_RECYCLER_API_QUOTA".into(), quotas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_each_do_a_third_of_the_work() {
    const N: usize = 30;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    steady_services(&c.ecs, N, 1, |i| format!("c{}", i % 3)).await;
    let dir = temp_dir("work-thirds");
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).expect("store");
    let store_args = ["--store".to_string(), path.display().to_string()];
    let mut env = aws_env(sim.url());
    env.push(raised_quotas());
    let logs: Vec<_> = (0..3).map(|i| dir.join(format!("r{i}.log"))).collect();
    let _replicas: Vec<_> = (0..3)
        .map(|i| spawn_operator(&store_args, &env, &format!("r{i}"), &logs[i]))
        .collect();
    let started = tokio::time::Instant::now();
    while heartbeats(&path) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the three replicas never all beat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..N {
        let spec = json!({"cluster": format!("c{}", i % 3), "service": format!("s{i:02}"),
                          "wait": "1s", "maintainCapacity": true});
        store
            .create(Kind::RecycleRequest, &format!("r{i:02}"), spec, Utc::now())
            .await
            .unwrap();
    }
    for i in 0..N {
        let status = wait_phase(
            &store,
            &format!("r{i:02}"),
            &FINISHED,
            Duration::from_secs(120),
            &logs[0],
        )
        .await;
        assert_eq!(status["phase"], "Succeeded", "{status:#}");
    }
    // Who stopped each task. Without the sharing, whoever listed first
    // after the records appeared took nearly all of them; with it each
    // replica takes a part. How even the parts are is
    // the benchmark's figure (±20% on a thousand): on 30 records, with the
    // hand-overs moving work to whoever has least left and the machine
    // busy with other builds, a part may be 5 or 18 (seen in CI), so this
    // test holds what the sharing promises, not its evenness: every
    // replica works, and none takes two thirds.
    let mut stops = Vec::new();
    for log in &logs {
        let stopped = MetricsPage::of(log)
            .await
            .sum(r#"ecs_recycler_aws_calls_total{operation="ecs:StopTask",outcome="ok"}"#);
        stops.push(stopped as usize);
    }
    eprintln!("StopTask calls per replica: {stops:?}");
    assert_eq!(
        stops.iter().sum::<usize>(),
        N,
        "each task stopped once: {stops:?}"
    );
    for s in &stops {
        assert!(
            (N / 10..2 * N / 3).contains(s),
            "each replica takes a part, none two thirds of {N}: {stops:?}"
        );
    }
}
