//! The policy loop over a fleet: 1,000 services on 10 clusters, two tasks
//! each, matched by one RecyclePolicy. What one look at the fleet costs in
//! ECS calls (by operation) and time, what the ticks between looks cost
//! (none: they read only the store), and so the calls a minute at the
//! default `--policy-interval` of 5 minutes. Selecting by tags costs the
//! DescribeServices calls on top; both are measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecs_sim::{SimOptions, Simulator};
use serde_json::{Value, json};

use crate::harness::*;
use crate::memory_store::MemoryStore;
use crate::product::{ApiShare, ClientPool, Kind, Metrics, PolicyLoop, Store, SystemClock};
use crate::{BenchError, Figure};

const S: &str = "policy-fleet";
const CLUSTERS: usize = 10;
const PER_CLUSTER: usize = 100;
/// The operator's default `--policy-interval`, in minutes.
const INTERVAL_MINUTES: f64 = 5.0;

/// ECS calls in the timeline after call index `from`, by operation.
fn calls_since(timeline: &Value, from: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in timeline["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(from)
    {
        *out.entry(c["op"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    out
}

fn call_count(timeline: &Value) -> usize {
    timeline["calls"].as_array().map_or(0, Vec::len)
}

/// The fleet: `PER_CLUSTER` two-task services on each of `CLUSTERS`
/// clusters, each tagged `team=payments`, steady.
async fn make_fleet(ecs: &aws_sdk_ecs::Client) -> Result<(), BenchError> {
    let mut names: Vec<Vec<String>> = Vec::new();
    for c in 0..CLUSTERS {
        let cluster = format!("c{c}");
        let mut these = Vec::new();
        for s in 0..PER_CLUSTER {
            let service = format!("svc{s:03}");
            create_service(ecs, &cluster, &service, 2, s == 0).await?;
            let arn = format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{service}");
            ecs.tag_resource()
                .resource_arn(arn)
                .tags(
                    aws_sdk_ecs::types::Tag::builder()
                        .key("team")
                        .value("payments")
                        .build(),
                )
                .send()
                .await
                .map_err(|e| failed("TagResource", e))?;
            these.push(service);
        }
        names.push(these);
    }
    for (c, these) in names.iter().enumerate() {
        wait_steady(ecs, &format!("c{c}"), these, 2, Duration::from_secs(300)).await?;
    }
    Ok(())
}

/// One policy selecting the fleet by `services`, on a store of its own:
/// one look, then five ticks before the next; the figures named `label`.
async fn look(sim: &Simulator, label: &str, services: Value) -> Result<Vec<Figure>, BenchError> {
    let store = Arc::new(MemoryStore::default());
    let spec = json!({"services": services, "maxTaskAge": "7d", "template": {}});
    store
        .create(Kind::RecyclePolicy, "fleet", spec, chrono::Utc::now())
        .await
        .map_err(|e| failed("create the policy", e))?;
    let sdk = sdk_config(sim.url(), aws_config::retry::RetryConfig::disabled()).await;
    let pool = Arc::new(ClientPool::new(sdk, ApiShare::default(), Metrics::new()));
    let config = operator_config("bench");
    let policies = PolicyLoop::new(
        store.clone(),
        pool,
        config.policy_settings(),
        Arc::new(SystemClock),
    );
    let before = call_count(&sim.timeline());
    let started = Instant::now();
    policies
        .tick()
        .await
        .map_err(|e| failed("the policy loop's tick", e))?;
    let took = started.elapsed().as_secs_f64();
    let timeline = sim.timeline();
    let look = calls_since(&timeline, before);
    let total: usize = look.values().sum();
    let status = store
        .get(Kind::RecyclePolicy, "fleet")
        .await
        .map_err(|e| failed("read the policy", e))?
        .and_then(|r| r.status)
        .unwrap_or(Value::Null);
    if status["matched"] != json!(CLUSTERS * PER_CLUSTER) {
        return Err(BenchError(format!(
            "the look matched {} services, not {}: {status}",
            status["matched"],
            CLUSTERS * PER_CLUSTER
        )));
    }
    // Ticks before the next look cost no ECS call.
    let between = call_count(&timeline);
    for _ in 0..5 {
        policies
            .tick()
            .await
            .map_err(|e| failed("the policy loop's tick", e))?;
    }
    let idle: usize = calls_since(&sim.timeline(), between).values().sum();
    let mut figures = vec![Figure::new(
        S,
        format!("{label}: ECS calls per look at 1,000 services"),
        total as f64,
        "calls",
    )];
    for (op, n) in &look {
        figures.push(Figure::new(
            S,
            format!("{label}: {op} per look"),
            *n as f64,
            "calls",
        ));
    }
    figures.push(Figure::new(
        S,
        format!("{label}: one look takes"),
        took,
        "s",
    ));
    figures.push(
        Figure::new(
            S,
            format!("{label}: ECS calls in 5 ticks between looks"),
            idle as f64,
            "calls",
        )
        .at_most(0.0),
    );
    figures.push(Figure::new(
        S,
        format!("{label}: ECS calls a minute at --policy-interval 5m"),
        total as f64 / INTERVAL_MINUTES,
        "calls/min",
    ));
    Ok(figures)
}

pub async fn policy_fleet() -> Result<Vec<Figure>, BenchError> {
    let sim = Simulator::start(SimOptions {
        timings: timings(0.2),
        ..SimOptions::default()
    })
    .await
    .map_err(|e| failed("start the simulator", e))?;
    let ecs = ecs_client(sim.url()).await;
    make_fleet(&ecs).await?;
    let clusters: Vec<String> = (0..CLUSTERS).map(|c| format!("c{c}")).collect();
    let mut figures = Vec::new();
    for (label, services) in [
        ("by cluster", json!({"cluster": clusters})),
        (
            "by cluster and tags",
            json!({"cluster": clusters, "tags": {"team": "payments"}}),
        ),
    ] {
        figures.extend(look(&sim, label, services).await?);
    }
    sim.shutdown().await;
    Ok(figures)
}
