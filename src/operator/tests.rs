//! The reconcile loop tick by tick, against the simulator: what one tick
//! asks AWS for many records at once. (The loop as a user runs it is tested
//! through the binary, in `tests/`.)

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use serde_json::{Value, json};

use super::OperatorConfig;
use super::health::Health;
use super::reconciler::Reconciler;
use crate::aws::ClientPool;
use crate::aws::limit::ApiShare;
use crate::aws::sdk::Timeouts;
use crate::metrics::Metrics;
use crate::notify::config::NotifyConfig;
use crate::notify::deliver::Notifier;
use crate::sandbox::fixture;
use crate::store::embedded::EmbeddedStore;
use crate::store::{Kind, Store};

fn calls_of(timeline: &Value, op: &str, since: f64) -> usize {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == op && c["t"].as_f64().unwrap() >= since)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_over_25_services_of_one_cluster_shares_its_calls() {
    let sim = test_support::start_sim().await;
    let sdk = fixture::client_config(sim.url(), RetryConfig::standard()).await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    fixture::create_service(&ecs, "prod", "svc00", 1, true)
        .await
        .unwrap();
    let names: Vec<String> = (0..25).map(|i| format!("svc{i:02}")).collect();
    for name in &names[1..] {
        fixture::create_service(&ecs, "prod", name, 1, false)
            .await
            .unwrap();
    }
    fixture::wait_steady(&ecs, "prod", &names, 1, Duration::from_secs(60))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ecs-recycler-tick-{}", std::process::id()));
    let store = Arc::new(EmbeddedStore::open(dir.join("store.json")).unwrap());
    // Paused requests: each tick observes every service and changes nothing.
    for name in &names {
        store
            .create(
                Kind::RecycleRequest,
                &format!("r-{name}"),
                json!({"cluster": "prod", "service": name, "paused": true}),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
    let config = OperatorConfig {
        replica_id: "r1".into(),
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
        idle_poll_interval: Duration::from_secs(30),
        policy_interval: Duration::from_secs(300),
        lease_duration: Duration::from_secs(5),
        retention: Duration::from_secs(60),
        api_share: ApiShare::default(),
        aws_timeouts: Timeouts::default(),
    };
    let pool = Arc::new(ClientPool::new(
        sdk.clone(),
        config.api_share.clone(),
        Metrics::new(),
    ));
    let health = Health::new(config.poll_interval, config.lease_duration);
    let notifier = Notifier::new(NotifyConfig::default(), &sdk);
    let hooks = crate::hooks::call::Caller::new(&sdk);
    let reconciler = Reconciler::new(store.clone(), pool, config, health, notifier, hooks, None);
    let since = sim.now();
    reconciler.clone().tick().await.unwrap();
    reconciler.settle().await;
    let timeline = sim.timeline();
    assert_eq!(
        calls_of(&timeline, "DescribeServices", since),
        3,
        "10 + 10 + 5 services"
    );
    assert_eq!(
        calls_of(&timeline, "ListTasks", since),
        25,
        "each service's tasks"
    );
    assert_eq!(
        calls_of(&timeline, "DescribeTasks", since),
        1,
        "25 tasks in one call"
    );
    assert_eq!(
        calls_of(&timeline, "DescribeScalableTargets", since),
        1,
        "25 services in one call"
    );
    // Every record got its own service's observation.
    for name in &names {
        let r = store
            .get(Kind::RecycleRequest, &format!("r-{name}"))
            .await
            .unwrap()
            .unwrap();
        let status = r.status.unwrap();
        assert_eq!(status["phase"], "Pending", "{status:#}");
        assert!(
            status["message"].as_str().unwrap().contains("paused"),
            "{status:#}"
        );
    }
    // Paused: nothing can change but the record, so the next tick asks AWS nothing.
    let since = sim.now();
    reconciler.clone().tick().await.unwrap();
    reconciler.settle().await;
    let timeline = sim.timeline();
    assert_eq!(calls_of(&timeline, "DescribeServices", since), 0);
    // Resuming one wakes it at once, however slow the idle pace.
    let r = store
        .get(Kind::RecycleRequest, "r-svc07")
        .await
        .unwrap()
        .unwrap();
    let mut spec = r.spec.unwrap();
    spec["paused"] = json!(false);
    spec["dryRun"] = json!(true);
    store
        .update_spec(Kind::RecycleRequest, "r-svc07", r.version, spec)
        .await
        .unwrap();
    let since = sim.now();
    reconciler.clone().tick().await.unwrap();
    reconciler.settle().await;
    assert_eq!(calls_of(&sim.timeline(), "DescribeServices", since), 1);
    let status = store
        .get(Kind::RecycleRequest, "r-svc07")
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
}
