//! A good neighbour: the operator's calls fit inside its share of ECS's
//! throttling buckets (per category, account and Region), checked against
//! the simulator's realistic buckets and from its timeline — a burst of
//! task reads meets no throttling, and three replicas together stay inside
//! the share of UpdateService's bucket.

use crate::support;

use std::time::Duration;

use ecs_recycler::store::Store;
use ecs_recycler::{ApiShare, ClientPool, Metrics, Quota, classify};
use serde_json::{Value, json};
use support::operator::*;
use support::*;
use tokio::task::JoinSet;

/// ListTasks and DescribeTasks share ECS's "cluster resource read" bucket
/// (100, then 20 a second). The simulator refills it 10 times faster, and
/// the operator is told so (`--api-quota`), to keep the test short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_300_task_reads_from_the_operator_meets_no_throttling() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 2, false).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(30)).await;
    let arns = running_task_arns(&c.ecs, "prod", "web").await;
    // First the burst straight from the SDK, no retries, at ECS's own
    // refill (20 a second: however slowly a loaded machine sends the 300,
    // most find the bucket empty): the bucket is real.
    sim.configure(json!({"throttle": {"realistic": {"timeScale": 1}}}))
        .unwrap();
    let raw = aws_sdk_ecs::Client::new(&sdk_config(sim.url(), false).await);
    let mut work = JoinSet::new();
    for i in 0..300 {
        let (raw, arns) = (raw.clone(), arns.clone());
        work.spawn(async move {
            if i % 2 == 0 {
                raw.list_tasks()
                    .cluster("prod")
                    .service_name("web")
                    .send()
                    .await
                    .is_ok()
            } else {
                raw.describe_tasks()
                    .cluster("prod")
                    .set_tasks(Some(arns))
                    .send()
                    .await
                    .is_ok()
            }
        });
    }
    let mut refused = 0;
    while let Some(ok) = work.join_next().await {
        refused += usize::from(!ok.unwrap());
    }
    assert!(
        refused >= 100,
        "the bare SDK's burst is throttled: {refused} of 300"
    );
    let thrown = sim.timeline()["throttled"]["cluster-resource-read"]
        .as_u64()
        .unwrap();
    assert_eq!(thrown as usize, refused);

    // A fresh bucket refilled 10 times faster, then the operator's burst.
    sim.configure(json!({"throttle": {"realistic": {"timeScale": 10}}}))
        .unwrap();
    let share = ApiShare {
        quotas: [(
            "cluster-resource-read".to_string(),
            Quota {
                burst: 100,
                refill_per_second: 200.0,
            },
        )]
        .into(),
        ..ApiShare::default()
    };
    let metrics = Metrics::new();
    let pool = ClientPool::new(sdk_config(sim.url(), false).await, share, metrics.clone());
    let clients = pool.for_role(None, None).await;
    let since = sim.now();
    let mut work = JoinSet::new();
    for i in 0..300 {
        let (clients, arns) = (clients.clone(), arns.clone());
        work.spawn(async move {
            if i % 2 == 0 {
                clients
                    .call("ecs:ListTasks", || async {
                        clients
                            .ecs
                            .list_tasks()
                            .cluster("prod")
                            .service_name("web")
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| classify("ecs:ListTasks", e))
                    })
                    .await
            } else {
                clients
                    .call("ecs:DescribeTasks", || async {
                        clients
                            .ecs
                            .describe_tasks()
                            .cluster("prod")
                            .set_tasks(Some(arns.clone()))
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| classify("ecs:DescribeTasks", e))
                    })
                    .await
            }
        });
    }
    while let Some(done) = work.join_next().await {
        done.unwrap().expect("every call answered");
    }
    let timeline = sim.timeline();
    let mine: Vec<&Value> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() >= since)
        .collect();
    assert_eq!(mine.len(), 300, "one attempt a call: none was throttled");
    assert!(mine.iter().all(|c| c["error"].is_null()), "{mine:?}");
    assert_eq!(
        timeline["throttled"]["cluster-resource-read"]
            .as_u64()
            .unwrap() as usize,
        refused,
        "no throttled answer since the SDK's burst"
    );
    let text = metrics.render();
    assert!(
        text.contains(
            r#"ecs_recycler_api_token_wait_seconds_total{category="cluster-resource-read"}"#
        ),
        "the wait is counted by category: {text}"
    );
}

/// The most calls of `op` in any window of `window` seconds.
/// Requests `r00`, `r01`, … with the spec `spec_of` gives each.
async fn create_requests<S: Store>(store: &S, n: usize, spec_of: impl Fn(usize) -> Value) {
    for i in 0..n {
        store
            .create(
                ecs_recycler::store::Kind::RecycleRequest,
                &format!("r{i:02}"),
                spec_of(i),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
}

/// Every one of the `n` requests ends Succeeded within `within` each.
async fn all_succeed<S: Store>(store: &S, n: usize, within: Duration, log: &std::path::Path) {
    for i in 0..n {
        let status = wait_phase(store, &format!("r{i:02}"), &FINISHED, within, log).await;
        assert_eq!(status["phase"], "Succeeded", "{status:#}");
    }
}

fn busiest_window(calls: &[f64], window: f64) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (i, t) in calls.iter().enumerate() {
        while calls[first] < t - window {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

/// Three replicas on one store: each counts the others from their leases
/// and spends a third of the share, so UpdateService ("service modify":
/// 50, then 5 a second; refilled 8 times faster here) from all of them
/// together fits the share of it (a fifth, here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_together_stay_inside_the_share_of_update_service() {
    const SERVICES: usize = 30;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    steady_services(&c.ecs, SERVICES, 1, |i| format!("c{}", i % 3)).await;
    sim.configure(json!({"throttle": {"realistic": {"timeScale": 8}}}))
        .unwrap();
    let (burst, rate) = (50.0 * 0.2, 5.0 * 8.0 * 0.2);
    let dir = temp_dir("share");
    let path = dir.join("store.json");
    let store = ecs_recycler::store::embedded::EmbeddedStore::open(&path).expect("store");
    let store_args = ["--store".to_string(), path.display().to_string()];
    let mut env = aws_env(sim.url());
    env.push((
        "ECS_RECYCLER_API_QUOTA".into(),
        "service-modify=50/40".into(),
    ));
    // A fifth of the bucket, so its burst is small beside its rate and a
    // replica spending the whole share alone would show.
    env.push((
        "ECS_RECYCLER_API_CATEGORY_SHARE".into(),
        "service-modify=0.2".into(),
    ));
    let logs: Vec<_> = (0..3).map(|i| dir.join(format!("r{i}.log"))).collect();
    let _replicas: Vec<_> = (0..3)
        .map(|i| spawn_operator(&store_args, &env, &format!("r{i}"), &logs[i]))
        .collect();
    let since = sim.now();
    create_requests(&store, SERVICES, |i| {
        json!({"cluster": format!("c{}", i % 3), "service": format!("s{i:02}"),
               "wait": "0s", "maintainCapacity": true})
    })
    .await;
    all_succeed(&store, SERVICES, Duration::from_secs(120), &logs[0]).await;
    let timeline = sim.timeline();
    let updates: Vec<f64> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "UpdateService" && c["t"].as_f64().unwrap() >= since)
        .map(|c| c["t"].as_f64().unwrap())
        .collect();
    assert_eq!(
        updates.len(),
        2 * SERVICES,
        "a surge and a restore each, none throttled"
    );
    assert!(
        timeline["throttled"].get("service-modify").is_none(),
        "{:#}",
        timeline["throttled"]
    );
    // Any window of W seconds holds at most the share's burst and W × its rate.
    for window in [0.5, 1.0, 2.0] {
        let most = busiest_window(&updates, window);
        let allowed = burst + rate * window;
        assert!(
            most as f64 <= allowed,
            "{most} UpdateService calls in {window} s; the share allows {allowed}"
        );
    }
    // Each replica counted the others.
    let mut counted = Vec::new();
    let mut stepped = Vec::new();
    for log in &logs {
        let metrics = MetricsPage::of(log).await;
        counted.push(
            std::fs::read_to_string(log)
                .unwrap()
                .contains("split between 3 replicas"),
        );
        stepped.push(metrics.sum(r#"ecs_recycler_aws_calls_total{operation="ecs:UpdateService""#));
    }
    assert!(
        counted.iter().any(|c| *c),
        "a replica saw three: {counted:?}"
    );
    assert!(
        stepped.iter().filter(|n| **n > 0.0).count() >= 2,
        "the work was shared, so the split was tested: {stepped:?}"
    );
}

/// A tiny UpdateService budget (`--api-quota service-modify=2/4`: at the
/// default share one token, then two a second), twenty services recycled
/// at once and a 1 s lease: most surges and restores find their turn for
/// a token after their lease's end. They are deferred — nothing sent, no
/// token taken, looked at again when the turn would have come — rather
/// than waited for past the lease and refused by the fence, which spent a
/// token for nothing; and every request finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_service_turns_past_the_lease_are_deferred_not_refused_and_all_finish() {
    const SERVICES: usize = 20;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    steady_services(&c.ecs, SERVICES, 1, |_| "prod".into()).await;
    let dir = temp_dir("deferred");
    let path = dir.join("store.json");
    let store = ecs_recycler::store::embedded::EmbeddedStore::open(&path).expect("store");
    let mut env = aws_env(sim.url());
    env.push(("ECS_RECYCLER_API_QUOTA".into(), "service-modify=2/4".into()));
    let log = dir.join("operator.log");
    let _op = spawn_operator(
        &["--store".to_string(), path.display().to_string()],
        &env,
        "r1",
        &log,
    );
    let since = sim.now();
    create_requests(
        &store,
        SERVICES,
        |i| json!({"cluster": "prod", "service": format!("s{i:02}"), "wait": "0s"}),
    )
    .await;
    // 40 UpdateService calls at two a second: about 20 s.
    all_succeed(&store, SERVICES, Duration::from_secs(180), &log).await;
    let metrics = MetricsPage::of(&log).await;
    let value = |prefix: &str| metrics.sum(prefix);
    let body = &metrics.body;
    // Before, a call waited for its turn however far past the lease, and
    // the fence refused it then: dozens of refusals here, no deferral. A
    // lease that runs out before its step acts (a store write slower than
    // half a lease on a loaded machine) is refused still, and rare.
    let deferred = value(r#"ecs_recycler_reconciles_total{outcome="deferred"}"#);
    let refused =
        value(r#"ecs_recycler_aws_calls_total{operation="ecs:UpdateService",outcome="not_sent"}"#);
    assert!(
        deferred > 0.0,
        "the budget was small enough to defer steps:\n{body}"
    );
    // No turn was promised past a lease (0.9 s usable at most): the waits
    // counted are the turns' own, not the time a busy machine slept.
    let waited = value(r#"ecs_recycler_api_token_wait_seconds_total{category="service-modify"}"#);
    let takes = (2 * SERVICES) as f64 + deferred + refused;
    assert!(
        waited <= 0.9 * takes,
        "{waited} s waited for service-modify turns over at most {takes} tokens:\n{body}"
    );
    assert!(
        refused < deferred,
        "turns past the lease are deferred, not waited for and refused: {refused} refused, {deferred} deferred:\n{body}"
    );
    let updates = sim.timeline()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "UpdateService" && c["t"].as_f64().unwrap() >= since)
        .count();
    assert_eq!(
        updates,
        2 * SERVICES,
        "a surge and a restore each: a deferred step decides the same again"
    );
}
