//! The scenarios of the benchmark on one service, each answering its figures.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use ecs_sim::{SimOptions, Simulator};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::harness::*;
use crate::product::{ApiShare, ClientPool, EmbeddedStore, Kind, Metrics, Store, classify};
use crate::{BenchError, Figure};

const KIND: Kind = Kind::RecycleRequest;
/// The simulator's default: each task's start and health times vary by ±20 %.
const JITTER: f64 = 0.2;

async fn sim() -> Result<Simulator, BenchError> {
    Simulator::start(SimOptions {
        timings: timings(JITTER),
        realistic_throttling: Some(realistic_throttling()),
        ..SimOptions::default()
    })
    .await
    .map_err(|e| failed("start the simulator", e))
}

/// A simulator with the 20-task service made and steady, and an ECS
/// client on it.
pub(crate) async fn sim_with_service() -> Result<(Simulator, aws_sdk_ecs::Client), BenchError> {
    let sim = sim().await?;
    let ecs = ecs_client(sim.url()).await;
    create_service(&ecs, "bench", "web", TASKS, true).await?;
    wait_steady(
        &ecs,
        "bench",
        &["web".into()],
        TASKS as usize,
        Duration::from_secs(60),
    )
    .await?;
    Ok((sim, ecs))
}

fn terminal(status: &Value) -> bool {
    matches!(
        status["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Cancelled")
    )
}

pub(crate) async fn wait_finished(
    store: &impl Store,
    name: &str,
    within: Duration,
) -> Result<Value, BenchError> {
    wait_status(store, name, within, "finish", terminal).await
}

/// The status of request `name` once `ready` says so, within `within`
/// (else an error saying it did not `what`).
pub(crate) async fn wait_status(
    store: &impl Store,
    name: &str,
    within: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value, BenchError> {
    let deadline = Instant::now() + within;
    loop {
        let status = store
            .get(KIND, name)
            .await
            .map_err(|e| failed("read the store", e))?
            .and_then(|r| r.status)
            .unwrap_or(Value::Null);
        if ready(&status) {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!(
                "{name} did not {what} within {within:?}: {status}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the SDK's retry modes do against the simulator's throttling, and
/// what the operator's layer (client-side buckets, backon) does.
pub async fn retry_modes() -> Result<Vec<Figure>, BenchError> {
    const S: &str = "retry-modes";
    let sim = sim().await?;
    let ecs = ecs_client(sim.url()).await;
    create_service(&ecs, "bench", "web", 1, true).await?;
    let faults = [
        (
            "50% of calls throttled, 100 calls 20 at once",
            json!({"fraction": 0.5}),
            100usize,
            20usize,
        ),
        (
            "DescribeServices bucket 50 + 20/s, 300 calls 30 at once",
            json!({"buckets": {"DescribeServices": {"capacity": 50, "refillPerSecond": 20}}}),
            300,
            30,
        ),
    ];
    let mut figures = Vec::new();
    for (fault, throttle, calls, at_once) in faults {
        for mode in ["sdk-standard", "sdk-adaptive", "operator"] {
            sim.configure(json!({"throttle": throttle}))
                .map_err(BenchError)?;
            let before = describe_calls(&sim.timeline());
            let started = Instant::now();
            let failures = match mode {
                "operator" => {
                    let sdk = sdk_config(sim.url(), RetryConfig::standard()).await;
                    let pool = ClientPool::new(sdk, ApiShare::default(), Metrics::new());
                    let clients = pool.for_role(None, None).await;
                    fan_out(calls, at_once, move || {
                        let clients = clients.clone();
                        async move {
                            clients
                                .call("ecs:DescribeServices", || async {
                                    clients
                                        .ecs
                                        .describe_services()
                                        .cluster("bench")
                                        .services("web")
                                        .send()
                                        .await
                                        .map_err(|e| classify("ecs:DescribeServices", e))
                                })
                                .await
                                .is_ok()
                        }
                    })
                    .await
                }
                sdk => {
                    let retry = if sdk == "sdk-standard" {
                        RetryConfig::standard()
                    } else {
                        RetryConfig::adaptive()
                    };
                    let client = aws_sdk_ecs::Client::new(&sdk_config(sim.url(), retry).await);
                    fan_out(calls, at_once, move || {
                        let client = client.clone();
                        async move {
                            client
                                .describe_services()
                                .cluster("bench")
                                .services("web")
                                .send()
                                .await
                                .is_ok()
                        }
                    })
                    .await
                }
            };
            let seconds = started.elapsed().as_secs_f64();
            let attempts = describe_calls(&sim.timeline()) - before;
            figures.push(Figure::new(
                S,
                format!("{fault}: {mode}: calls failed"),
                100.0 * failures as f64 / calls as f64,
                "%",
            ));
            figures.push(Figure::new(
                S,
                format!("{fault}: {mode}: attempts per call"),
                attempts as f64 / calls as f64,
                "",
            ));
            figures.push(Figure::new(
                S,
                format!("{fault}: {mode}: time"),
                seconds,
                "s",
            ));
        }
    }
    sim.configure(json!({"throttle": {}})).map_err(BenchError)?;
    Ok(figures)
}

fn describe_calls(timeline: &Value) -> usize {
    timeline["calls"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["op"] == "DescribeServices").count())
        .unwrap_or(0)
}

/// Runs `calls` calls of `one`, `at_once` at a time; answers how many failed.
async fn fan_out<F, Fut>(calls: usize, at_once: usize, one: F) -> usize
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let one = Arc::new(one);
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(calls));
    let mut workers = JoinSet::new();
    for _ in 0..at_once {
        let one = one.clone();
        let left = left.clone();
        workers.spawn(async move {
            let mut failed = 0;
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                if !one().await {
                    failed += 1;
                }
            }
            failed
        });
    }
    let mut failed = 0;
    while let Some(Ok(n)) = workers.join_next().await {
        failed += n;
    }
    failed
}

pub(crate) const TASKS: i32 = 20;

pub(crate) const OVERHEAD: &str = "overhead ratio";
pub(crate) const CALLS_PER_TASK: &str = "ECS API calls per recycled task";

/// Scenarios 1 and 2: one 20-task service recycled at the operator's
/// default settings; duration against the ideal, and ECS calls per task.
/// Task timings are random (±20%), so one run's figures swing by a few
/// percent: `runs` recycles run at once, each on its own simulator and
/// operator, and the figures are their means, the targets read against
/// the means, with the worst run's overhead and calls beside them.
pub async fn recycle(
    keep: Option<&std::path::Path>,
    runs: usize,
) -> Result<Vec<Figure>, BenchError> {
    const S: &str = "recycle";
    let mut work = JoinSet::new();
    for run in 0..runs.max(1) {
        let keep = keep.filter(|_| run == 0).map(std::path::Path::to_path_buf);
        work.spawn(async move { recycle_once(keep.as_deref()).await });
    }
    let mut each: Vec<Vec<Figure>> = Vec::new();
    while let Some(done) = work.join_next().await {
        each.push(done.map_err(|e| failed("a recycle run", e))??);
    }
    let n = each.len() as f64;
    let mut out: Vec<Figure> = each[0]
        .iter()
        .map(|f| {
            let mean = each
                .iter()
                .filter_map(|run| run.iter().find(|g| g.name == f.name))
                .map(|g| g.value)
                .sum::<f64>()
                / n;
            let figure = Figure::new(S, f.name.clone(), mean, f.unit);
            match f.name.as_str() {
                OVERHEAD => figure.at_most(1.05),
                CALLS_PER_TASK => figure.at_most(8.0),
                _ => figure,
            }
        })
        .collect();
    out.insert(
        0,
        Figure::new(S, "runs at once (figures are their means)", n, ""),
    );
    for name in [OVERHEAD, CALLS_PER_TASK] {
        let worst = each
            .iter()
            .filter_map(|run| run.iter().find(|g| g.name == name))
            .map(|g| g.value)
            .fold(f64::MIN, f64::max);
        out.push(Figure::new(S, format!("{name}, worst run"), worst, ""));
    }
    Ok(out)
}

/// One recycle of the 20-task service; figures without targets.
async fn recycle_once(keep: Option<&std::path::Path>) -> Result<Vec<Figure>, BenchError> {
    const S: &str = "recycle";
    let (sim, _) = sim_with_service().await?;
    let op = LocalOperator::start(sim.url(), operator_config("bench")).await;
    let t0 = sim.now();
    create_rotate(op.store.as_ref()).await?;
    let status = wait_finished(op.store.as_ref(), "rotate", Duration::from_secs(600)).await?;
    let t1 = sim.now();
    op.stop().await;
    if status["phase"] != "Succeeded" {
        return Err(BenchError(format!("the recycle did not succeed: {status}")));
    }
    let timeline = sim.timeline();
    if let Some(path) = keep {
        std::fs::write(path, timeline.to_string())
            .map_err(|e| failed(&format!("write {}", path.display()), e))?;
    }
    Ok(measure(S, &timeline, (t0, t1), &status))
}

/// The figures of one recycle of the 20-task service from `t0` to `t1`
/// (simulator time), its final `status` and the simulator's timeline.
pub(crate) fn measure(
    scenario: &'static str,
    timeline: &Value,
    (t0, t1): (f64, f64),
    status: &Value,
) -> Vec<Figure> {
    let lives: Vec<TaskLife> = task_lives(timeline)
        .into_iter()
        .filter(|t| t.service == "web")
        .collect();
    let new: Vec<&TaskLife> = lives.iter().filter(|t| t.created >= t0).collect();
    let starts: f64 = new
        .iter()
        .filter_map(|t| t.healthy.map(|h| h - t.created))
        .sum();
    let waits = f64::from(TASKS) * scaled(30.0).as_secs_f64();
    let ideal = starts + waits;
    let duration = t1 - t0;
    let (ecs_calls, aas_calls) = calls_since(timeline, t0);
    let recycled = status["stopped"].as_array().map_or(0, |a| a.len());
    let (low_running, low_healthy) = lowest_counts(timeline, "bench", "web", t0);
    let mut latencies = healthy_to_stop(&lives, t0);
    vec![
        Figure::new(scenario, "tasks recycled", recycled as f64, ""),
        Figure::new(scenario, "duration", duration, "s"),
        Figure::new(
            scenario,
            "ideal (new tasks' start-to-healthy + waits)",
            ideal,
            "s",
        ),
        Figure::new(scenario, OVERHEAD, duration / ideal, ""),
        Figure::new(scenario, "ECS API calls", ecs_calls as f64, ""),
        Figure::new(
            scenario,
            CALLS_PER_TASK,
            ecs_calls as f64 / recycled.max(1) as f64,
            "",
        ),
        Figure::new(
            scenario,
            "Application Auto Scaling calls",
            aas_calls as f64,
            "",
        ),
        Figure::new(scenario, "lowest running count", low_running as f64, ""),
        Figure::new(scenario, "lowest healthy count", low_healthy as f64, ""),
        Figure::new(
            scenario,
            "highest running count",
            highest_running(timeline, "bench", "web", t0) as f64,
            "",
        ),
        Figure::new(
            scenario,
            "p50 healthy → next stop",
            percentile(&mut latencies, 50.0).unwrap_or(0.0),
            "s",
        ),
        Figure::new(
            scenario,
            "p99 healthy → next stop",
            percentile(&mut latencies, 99.0).unwrap_or(0.0),
            "s",
        ),
    ]
}

/// For each stop made by the operator: seconds since the newest task of
/// that service became healthy before it.
pub(super) fn healthy_to_stop(lives: &[TaskLife], since: f64) -> Vec<f64> {
    let mut by_service: HashMap<(&str, &str), Vec<&TaskLife>> = HashMap::new();
    for t in lives {
        by_service
            .entry((t.cluster.as_str(), t.service.as_str()))
            .or_default()
            .push(t);
    }
    let mut out = Vec::new();
    for tasks in by_service.values() {
        for stop in tasks.iter().filter_map(|t| t.stopped_by_call) {
            let healthy = tasks
                .iter()
                .filter(|t| t.created >= since)
                .filter_map(|t| t.healthy)
                .filter(|h| *h <= stop)
                .fold(None, |m: Option<f64>, h| Some(m.map_or(h, |m| m.max(h))));
            if let Some(h) = healthy {
                out.push(stop - h);
            }
        }
    }
    out
}

/// Scenario 5: the same service by `update-service --force-new-deployment`.
pub async fn force_deployment() -> Result<Vec<Figure>, BenchError> {
    const S: &str = "force-deployment";
    let (sim, ecs) = sim_with_service().await?;
    let t0 = sim.now();
    force_new_deployment(&ecs).await?;
    // Done when every task is new and healthy and the deployment completed.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let timeline = sim.timeline();
        let lives = task_lives(&timeline);
        let done = lives
            .iter()
            .filter(|t| t.created >= t0 && t.healthy.is_some())
            .count()
            >= TASKS as usize;
        let steady = steady(&ecs, "bench", &["web".into()], TASKS as usize).await?;
        if done && steady {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError("the deployment did not finish".into()));
        }
    }
    let t1 = sim.now();
    let timeline = sim.timeline();
    let (low_running, low_healthy) = lowest_counts(&timeline, "bench", "web", t0);
    Ok(vec![
        Figure::new(S, "duration", t1 - t0, "s"),
        Figure::new(S, "lowest running count", low_running as f64, ""),
        Figure::new(S, "lowest healthy count", low_healthy as f64, ""),
        Figure::new(
            S,
            "highest running count",
            highest_running(&timeline, "bench", "web", t0) as f64,
            "",
        ),
    ])
}

/// Scenario 4: the lease holder killed; another replica takes the request
/// over. Operator defaults (15 s lease, 2 s poll), so the target reads as is.
/// The replicas are child processes (`ecs-recycler operator`, of `binary`)
/// on one store file, so that one can be killed.
pub async fn failover(binary: &Path) -> Result<Vec<Figure>, BenchError> {
    const S: &str = "failover";
    let lease = 15.0;
    let (sim, _) = sim_with_service().await?;
    let dir = std::env::temp_dir().join(format!("ecs-recycler-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| failed("make a temp dir", e))?;
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).map_err(|e| failed("open the store", e))?;
    create_rotate(&store).await?;
    let mut first = spawn_operator(
        binary,
        sim.url(),
        &RecordsAt::File(path.clone()),
        "first",
        &[],
        &dir.join("first.log"),
    )?;
    // Wait until the first replica holds the request mid-recycle.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = store
            .get(KIND, "rotate")
            .await
            .map_err(|e| failed("read the store", e))?;
        let held = r.as_ref().and_then(|r| r.lease.clone());
        let phase = r
            .and_then(|r| r.status)
            .and_then(|s| s["phase"].as_str().map(str::to_string));
        if held.is_some_and(|l| l.holder == "first") && phase.as_deref() == Some("Recycling") {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError(
                "the first replica never started recycling".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _second = spawn_operator(
        binary,
        sim.url(),
        &RecordsAt::File(path.clone()),
        "second",
        &[],
        &dir.join("second.log"),
    )?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = first.0.kill();
    let _ = first.0.wait();
    let killed = Instant::now();
    let killed_at = chrono::Utc::now();
    let left = store
        .get(KIND, "rotate")
        .await
        .map_err(|e| failed("read the store", e))?
        .and_then(|r| r.lease)
        .map_or(0.0, |l| {
            (l.expires_at - killed_at).num_milliseconds() as f64 / 1000.0
        });
    let taken = loop {
        let r = store
            .get(KIND, "rotate")
            .await
            .map_err(|e| failed("read the store", e))?;
        if r.and_then(|r| r.lease)
            .is_some_and(|l| l.holder == "second")
        {
            break killed.elapsed().as_secs_f64();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            return Err(BenchError("the second replica never took over".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![
        Figure::new(S, "lease left when the holder was killed", left, "s"),
        Figure::new(S, "kill → another replica resumes", taken, "s").at_most(lease + 2.0),
    ])
}
