//! Scenario: replicas that share the work and the API share. Three
//! operator processes on one store file (the embedded store; the issue's
//! DynamoDB table behind moto is not what this measures: the split comes
//! from the heartbeats and leases, which both stores keep alike, and the
//! contract suite checks they do) against one simulator with ECS's
//! realistic buckets, then one replica on the same work for the time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::product::{EmbeddedStore, Kind, Store};
use crate::{BenchError, Figure};

const KIND: Kind = Kind::RecycleRequest;
const JITTER: f64 = 0.2;

/// The operator's flags: its real defaults for time (as the failover
/// scenario: three processes on one store file answer leases in seconds,
/// too slowly for a lease scaled down to 750 ms), and the simulator's
/// buckets (every refill `SCALE` times faster).
fn flags() -> Vec<String> {
    let quotas: Vec<String> = scaled_quotas()
        .into_iter()
        .map(|(name, q)| format!("{name}={}/{}", q.burst, q.refill_per_second))
        .collect();
    vec!["--api-quota".into(), quotas.join(",")]
}

/// One run of `replicas` operators over one request on each service: (time
/// for all to finish, reconciles per replica, the simulator's timeline from
/// the start of the run, when it started on the simulator's clock).
async fn run(
    binary: &Path,
    url: &str,
    names: &[(String, String)],
    replicas: usize,
    label: &str,
) -> Result<(f64, Vec<f64>, Value, f64), BenchError> {
    let dir =
        std::env::temp_dir().join(format!("ecs-recycler-bench-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| failed("make a temp dir", e))?;
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).map_err(|e| failed("open the store", e))?;
    for (i, (cluster, service)) in names.iter().enumerate() {
        store
            .create(
                KIND,
                &format!("r{i:04}"),
                json!({"cluster": cluster, "service": service, "wait": wait_spec()}),
                chrono::Utc::now(),
            )
            .await
            .map_err(|e| failed("create a request", e))?;
    }
    let t0 = get_json(&format!("{url}/_sim/timeline")).await?["now"]
        .as_f64()
        .unwrap_or(0.0);
    let flags = flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let logs: Vec<_> = (0..replicas)
        .map(|i| dir.join(format!("{label}-{i}.log")))
        .collect();
    let mut children = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        children.push(spawn_operator(
            binary,
            url,
            &path,
            &format!("{label}-{i}"),
            &flags,
            log,
        )?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1800);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = store
            .list_all(KIND)
            .await
            .map_err(|e| failed("read the store", e))?;
        let done = all.iter().filter(|r| !r.active).count();
        if done >= names.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!(
                "{done}/{} requests finished with {replicas} replicas",
                names.len()
            )));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut steps = Vec::new();
    for log in &logs {
        let addr = logged_addr(log)?;
        let (_, body) = crate::product::http_get(&format!("http://{addr}/metrics"))
            .await
            .map_err(BenchError)?;
        let reconciles: f64 = body
            .lines()
            .filter(|l| l.starts_with("ecs_recycler_reconciles_total{"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum();
        steps.push(reconciles);
    }
    drop(children);
    let timeline = get_json(&format!("{url}/_sim/timeline")).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((elapsed, steps, timeline, t0))
}

/// The address of an operator's endpoints, from its JSON log.
fn logged_addr(log: &Path) -> Result<String, BenchError> {
    let text = std::fs::read_to_string(log).map_err(|e| failed("read an operator log", e))?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serving /healthz"))
        })
        .and_then(|l| l["fields"]["addr"].as_str().map(str::to_string))
        .ok_or_else(|| BenchError(format!("{} names no endpoint", log.display())))
}

/// Each category's calls since `since`, by the simulator's clock, sorted.
fn calls_by_category(timeline: &Value, since: f64) -> BTreeMap<&'static str, Vec<f64>> {
    let mut out: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for c in timeline["calls"].as_array().into_iter().flatten() {
        let t = c["t"].as_f64().unwrap_or(0.0);
        let op = c["op"].as_str().unwrap_or("");
        if t < since || op.starts_with("_sim") {
            continue;
        }
        let service = if is_ecs_call(op) {
            api_limits::Service::Ecs
        } else {
            api_limits::Service::ApplicationAutoScaling
        };
        if let Some(category) = api_limits::category_of(service, op) {
            out.entry(category.name).or_default().push(t);
        }
    }
    out
}

/// The most calls in any window of one second.
fn busiest_second(times: &[f64]) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (i, t) in times.iter().enumerate() {
        while times[first] < t - 1.0 {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

pub async fn replicas(services: usize, binary: &Path) -> Result<Vec<Figure>, BenchError> {
    const S: &str = "replicas";
    let (_sim, url) = spawn_sim(binary, timings(JITTER))?;
    let ecs = ecs_client(&url).await;
    let names = make_services(&ecs, services).await?;
    throttle_realistically(&url).await?;
    let (three, steps, timeline, t0) = run(binary, &url, &names, 3, "three").await?;
    let mut figures = vec![
        Figure::new(S, "requests", services as f64, ""),
        Figure::new(S, "time for all to finish, 3 replicas", three, "s"),
    ];
    let total: f64 = steps.iter().sum();
    for (i, n) in steps.iter().enumerate() {
        figures.push(
            Figure::new(
                S,
                format!("replica {i}: share of the steps"),
                n / total.max(1.0),
                "",
            )
            .at_least(1.0 / 3.0 * 0.8)
            .at_most(1.0 / 3.0 * 1.2),
        );
    }
    let throttled = timeline["calls"].as_array().map_or(0, |c| {
        c.iter()
            .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= t0)
            .filter(|c| c["error"] == "ThrottlingException")
            .count()
    });
    figures.push(Figure::new(S, "ThrottlingException answers", throttled as f64, "").at_most(0.0));
    for (category, times) in calls_by_category(&timeline, t0) {
        let (burst, rate) = share_of(category);
        let span = times.last().unwrap_or(&t0) - times.first().unwrap_or(&t0);
        figures.push(
            Figure::new(
                S,
                format!("{category}: most calls in one second (share: burst + a second's refill)"),
                busiest_second(&times) as f64,
                "",
            )
            .at_most(burst + rate),
        );
        figures.push(
            Figure::new(
                S,
                format!("{category}: calls a second over the run (share's refill {rate})"),
                times.len() as f64 / span.max(1.0),
                "",
            )
            .at_most(rate),
        );
    }
    drop(timeline);
    // The same work for one replica, on services now steady again.
    make_services_steady(&ecs, &names).await?;
    let (one, _, _, _) = run(binary, &url, &names, 1, "one").await?;
    figures.push(Figure::new(
        S,
        "time for all to finish, 1 replica",
        one,
        "s",
    ));
    figures.push(Figure::new(
        S,
        "3 replicas' time ÷ 1 replica's",
        three / one,
        "",
    ));
    Ok(figures)
}
