//! Looks at the simulator: a settled service described from memory and a
//! replacement still found; a step waiting for its replacement asks for the
//! service only once its tasks could be done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use ecs_sim::Simulator;
use serde_json::Value;

use super::*;
use crate::aws::limit::ApiShare;
use crate::metrics::Metrics;
use crate::request::look::{JUDGE, Wanted};
use crate::sandbox::fixture;

const WITHIN: Duration = Duration::from_secs(60);

fn calls_of(timeline: &Value, op: &str, since: f64) -> usize {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == op && c["t"].as_f64().unwrap() >= since)
        .count()
}

/// A simulator with prod/web: three tasks with a health check, steady.
async fn steady_web() -> (Simulator, aws_sdk_ecs::Client) {
    let (sim, c) = test_support::steady_service("prod", "web", 3, true).await;
    (sim, c.ecs)
}

async fn steady(ecs: &aws_sdk_ecs::Client) {
    test_support::wait_steady(ecs, "prod", "web", WITHIN).await;
}

async fn running(ecs: &aws_sdk_ecs::Client) -> Vec<String> {
    test_support::running_task_arns(ecs, "prod", "web").await
}

async fn stop(ecs: &aws_sdk_ecs::Client, arn: &str) {
    test_support::stop_task(ecs, "prod", arn).await;
}

/// The tasks an observation holds, by ARN.
fn arns(obs: &Observation) -> BTreeSet<String> {
    obs.tasks.iter().map(|t| t.arn.clone()).collect()
}

/// A client pool on the simulator, with buckets that never make a look
/// wait: these tests time looks against task transitions of tens of
/// milliseconds, and a replica's buckets start empty.
async fn pool_on(sim: &Simulator) -> Arc<ClientPool> {
    let roomy = crate::aws::limit::Quota {
        burst: 1000,
        refill_per_second: 1000.0,
    };
    let share = ApiShare {
        quotas: api_limits::CATEGORIES
            .iter()
            .map(|c| (c.name.to_string(), roomy))
            .collect(),
        ..ApiShare::default()
    };
    Arc::new(ClientPool::new(
        fixture::client_config(sim.url(), RetryConfig::standard()).await,
        share,
        Metrics::new(),
    ))
}

/// What a record on prod/web wants looked at: its tasks, not its scaling.
async fn want_web(
    pool: &ClientPool,
    extra: Vec<String>,
    awaiting: Option<chrono::DateTime<chrono::Utc>>,
) -> Want {
    Want {
        clients: pool.for_role(None, None).await,
        cluster: "prod".into(),
        service: "web".into(),
        look: Wanted {
            batch: extra,
            scaling: false,
            tasks: true,
            awaiting,
            watched: Vec::new(),
            step: None,
            preview: false,
            judge: JUDGE,
        },
    }
}

/// One look, as the tick makes it.
async fn look(pool: &Arc<ClientPool>, want: Want) -> Look {
    observe_all(pool, vec![want])
        .await
        .pop()
        .expect("one answer")
        .expect("a look")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_service_is_described_from_memory_and_a_replacement_is_still_found() {
    let (sim, ecs) = steady_web().await;
    let pool = pool_on(&sim).await;
    let web = want_web(&pool, Vec::new(), None).await;
    let want = || web.clone();
    let truth = || async {
        running(&ecs)
            .await
            .into_iter()
            .collect::<BTreeSet<String>>()
    };
    let since = sim.now();
    let first = observe(&pool, want()).await.unwrap();
    assert_eq!(
        calls_of(&sim.timeline(), "ListTasks", since),
        1,
        "nothing remembered yet"
    );
    let since = sim.now();
    let second = observe(&pool, want()).await.unwrap();
    let timeline = sim.timeline();
    assert_eq!(
        calls_of(&timeline, "ListTasks", since),
        0,
        "settled: not listed"
    );
    assert_eq!(calls_of(&timeline, "DescribeTasks", since), 1);
    assert_eq!(arns(&second), arns(&first));
    assert_eq!(arns(&second), truth().await);

    // A task stopped behind the operator's back: whenever the looks fall,
    // each holds exactly what ListTasks would, and the replacement is found.
    let victim = first.tasks[0].arn.clone();
    stop(&ecs, &victim).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let mut compared = 0;
    loop {
        let before = truth().await;
        let obs = observe(&pool, want()).await.unwrap();
        let after = truth().await;
        assert!(
            !arns(&obs).contains(&victim),
            "the stopped task is not meant to run"
        );
        if before == after {
            assert_eq!(arns(&obs), after, "the look disagrees with ListTasks");
            compared += 1;
        }
        let replaced = arns(&obs).len() == 3 && obs.tasks.iter().all(|t| t.is_serving());
        if replaced {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replacement was never seen serving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(compared > 0, "no look could be checked against ListTasks");
    steady(&ecs).await;
    let since = sim.now();
    let settled = observe(&pool, want()).await.unwrap();
    let listed = calls_of(&sim.timeline(), "ListTasks", since);
    assert_eq!(listed, 0, "settled again: not listed");
    assert_eq!(arns(&settled), truth().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waiting_for_its_replacement_asks_for_the_service_only_once_the_tasks_could_be_done()
{
    let (sim, ecs) = steady_web().await;
    let pool = pool_on(&sim).await;
    let victim = running(&ecs).await[0].clone();
    let step = chrono::Utc::now();
    stop(&ecs, &victim).await;
    let want = want_web(&pool, vec![victim.clone()], Some(step)).await;
    // Right after the stop the victim still runs: not done, whatever the counts.
    let since = sim.now();
    let Look::NotYet(tasks) = look(&pool, want.clone()).await else {
        panic!("expected the tasks to show the step unfinished");
    };
    assert!(
        tasks
            .iter()
            .any(|t| t.arn == victim && t.last_status == "RUNNING")
    );
    assert_eq!(calls_of(&sim.timeline(), "DescribeServices", since), 0);
    // Once the replacement serves and the victim is gone, the look is whole.
    steady(&ecs).await;
    let since = sim.now();
    let Look::Whole(obs) = look(&pool, want).await else {
        panic!("expected a whole look once the tasks could be done");
    };
    assert_eq!(calls_of(&sim.timeline(), "DescribeServices", since), 1);
    let serving = obs.tasks.iter().filter(|t| t.is_serving()).count();
    assert_eq!(serving, 3, "{obs:?}");
}

/// A pool whose cluster resource read bucket makes every call wait: one
/// token a second, none at the start.
async fn slow_reads_pool(sim: &Simulator) -> Arc<ClientPool> {
    let mut share = ApiShare::default();
    share.quotas.insert(
        "cluster-resource-read".into(),
        crate::aws::limit::Quota {
            burst: 2,
            refill_per_second: 2.0,
        },
    );
    Arc::new(ClientPool::new(
        fixture::client_config(sim.url(), RetryConfig::standard()).await,
        share,
        Metrics::new(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looks_of_one_cluster_waiting_for_their_turn_share_one_describe_tasks_call() {
    let sim = test_support::start_sim().await;
    let ecs = test_support::clients(&sim).await.ecs;
    test_support::steady_services(&ecs, 3, 2, |_| "prod".into()).await;
    let pool = slow_reads_pool(&sim).await;
    let clients = pool.for_role(None, None).await;
    let want = |service: &str| Want {
        clients: clients.clone(),
        cluster: "prod".into(),
        service: service.into(),
        look: Wanted {
            batch: Vec::new(),
            scaling: false,
            tasks: true,
            awaiting: None,
            watched: Vec::new(),
            step: None,
            preview: false,
            judge: JUDGE,
        },
    };
    let mut truth = Vec::new();
    for service in ["s00", "s01", "s02"] {
        let arns = test_support::running_task_arns(&ecs, "prod", service).await;
        truth.push(arns.into_iter().collect::<BTreeSet<String>>());
    }
    let since = sim.now();
    // Three looks, as three ticks would make them, each on its own.
    let looks: Vec<_> = ["s00", "s01", "s02"]
        .into_iter()
        .map(|s| {
            let (pool, want) = (pool.clone(), want(s));
            tokio::spawn(async move { observe(&pool, want).await })
        })
        .collect();
    for ((look, truth), service) in looks.into_iter().zip(truth).zip(["s00", "s01", "s02"]) {
        let obs = look.await.unwrap().unwrap();
        assert_eq!(arns(&obs), truth, "{service}: exactly its own tasks");
    }
    let timeline = sim.timeline();
    assert_eq!(calls_of(&timeline, "ListTasks", since), 3, "one a service");
    let described: Vec<usize> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "DescribeTasks" && c["t"].as_f64().unwrap() >= since)
        .map(|c| c["params"]["tasks"].as_array().map_or(0, Vec::len))
        .collect();
    // The first look's DescribeTasks waits for its token behind the three
    // ListTasks; the other two looks' tasks join it meanwhile.
    assert_eq!(
        described,
        vec![6],
        "one call for the three services' six tasks"
    );
}
