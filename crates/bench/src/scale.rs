//! Scenario 3: one replica, a thousand services with requests on each (one
//! or several queued), under ECS's realistic buckets and the default share.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::memory_store::MemoryStore;
use crate::product::{Kind, Store, StoredRecord};
use crate::scenarios::healthy_to_stop;
use crate::{BenchError, Figure};

const S: &str = "scale";
const KIND: Kind = Kind::RecycleRequest;
/// The simulator's default: each task's start and health times vary by ±20 %.
const JITTER: f64 = 0.2;

/// The value of the sample that starts with `name` in a metrics text.
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Each sample of the metric `family` (its lines `family{label="…"} value`):
/// its first label's value and its own.
fn labelled<'a>(text: &'a str, family: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines()
        .filter(move |l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .map(|l| {
            let label = l.split('"').nth(1).unwrap_or("?");
            let value = l.split_whitespace().last().and_then(|v| v.parse().ok());
            (label, value.unwrap_or(0.0))
        })
}

/// The simulator with the services made, before the run: the simulator
/// a child process (`ecs-recycler sim`) so that this process's memory and
/// CPU are the operator's (and the harness's).
struct Bed {
    _sim: ChildProcess,
    /// The client that made the services, kept for the run as it always
    /// was: dropped before it, the run's RSS read 2 to 3 MiB lower (two runs),
    /// which would break the comparison with earlier figures.
    _ecs: aws_sdk_ecs::Client,
    url: String,
    names: Vec<(String, String)>,
    /// The run's start on the simulator's clock, and the throttling it had
    /// answered by then (by category).
    t0_sim: f64,
    throttled_before: Value,
    /// This process's peak while the services were made.
    setup_peak: f64,
}

async fn set_up(binary: &Path, services: usize) -> Result<Bed, BenchError> {
    let (sim, url) = spawn_sim(binary, timings(JITTER))?;
    let ecs = ecs_client(&url).await;
    let names = make_services(&ecs, services).await?;
    throttle_realistically(&url).await?;
    let before = get_json(&format!("{url}/_sim/timeline")).await?;
    let t0_sim = before["now"].as_f64().unwrap_or(0.0);
    let throttled_before = before["throttled"].clone();
    drop(before);
    Ok(Bed {
        _sim: sim,
        _ecs: ecs,
        url,
        names,
        t0_sim,
        throttled_before,
        setup_peak: peak_rss_mib().unwrap_or(0.0),
    })
}

/// This process's memory and CPU over the run.
struct Memory {
    /// RSS before the requests were put in the store, and when the
    /// operator started (the requests in the store).
    before_store: f64,
    start_rss: f64,
    /// Whether the peak could be reset once the requests were in.
    reset: bool,
    /// The peak (VmHWM) at the end, and the highest sample of the RSS
    /// less the store's contents.
    peak: f64,
    operator_peak: f64,
    cpu: f64,
}

/// Waits until every request has finished, watched through the
/// operator's own metrics (reading every record each time would put the
/// harness's copies in the peak measured), sampling every 100 ms the RSS
/// less the store's contents: the status text it holds at that instant
/// and the requests it held at the start (`requests_in_store`), which on
/// DynamoDB live in the table. Answers the seconds it took and that peak.
async fn watch(
    op: &LocalOperator,
    requests: usize,
    requests_in_store: f64,
) -> Result<(f64, f64), BenchError> {
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut operator_peak: f64 = 0.0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(rss) = rss_mib() {
            let statuses = op.store.status_bytes() as f64 / (1024.0 * 1024.0);
            operator_peak = operator_peak.max(rss - statuses - requests_in_store);
        }
        let text = op.metrics.render();
        let finished = metric_value(
            &text,
            r#"ecs_recycler_reconciles_total{outcome="finished"}"#,
        );
        // "finished" counts steps that ended a record, which can be more
        // than the records (a step whose write was lost is taken again):
        // done once the last listing found none still at work too.
        let at_work: f64 = labelled(&text, "ecs_recycler_active_requests")
            .map(|(_, n)| n)
            .sum();
        if finished as usize >= requests && at_work == 0.0 {
            return Ok((started.elapsed().as_secs_f64(), operator_peak));
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!(
                "{finished}/{requests} requests finished"
            )));
        }
    }
}

/// The requests put in a fresh in-memory store, the operator run over
/// them to the end, and what it took of this process: the operator's
/// metrics and the store as it ended.
async fn run(
    bed: &Bed,
    queue: usize,
) -> Result<(f64, Memory, String, Arc<MemoryStore>), BenchError> {
    // The requests are in the (in-memory) store before the operator starts:
    // what they take is the store's, told apart from the operator's.
    // What the setup freed (1,000 services created through the SDK) goes
    // back to the system first, or the operator would be measured on top of
    // the harness's leftovers.
    release_freed_memory();
    let store = Arc::new(MemoryStore::new());
    let before_store = rss_mib().unwrap_or(0.0);
    // In creation order: the first of each service goes first, the others wait.
    for q in 0..queue {
        create_requests(store.as_ref(), &bed.names, |i| format!("r{q:02}-{i:04}")).await?;
    }
    // The peak from here on is the operator's run.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start_rss = rss_mib().unwrap_or(0.0);
    let cpu_before = cpu_seconds().unwrap_or(0.0);
    let op = LocalOperator::start_on(store, &bed.url, operator_config("bench")).await;
    let requests = bed.names.len() * queue;
    let (elapsed, operator_peak) = watch(&op, requests, start_rss - before_store).await?;
    let memory = Memory {
        before_store,
        start_rss,
        reset,
        peak: peak_rss_mib().unwrap_or(0.0),
        operator_peak,
        cpu: cpu_seconds().unwrap_or(0.0) - cpu_before,
    };
    let metrics = op.metrics.render();
    let store = op.store.clone();
    op.stop().await;
    Ok((elapsed, memory, metrics, store))
}

/// Of the records at the end: how many succeeded, and the mean bytes of a
/// status as JSON (what every tick reads back per active request). Why
/// the others did not succeed goes to stderr, each distinct message once.
fn outcome(all: &[StoredRecord]) -> (usize, f64) {
    let succeeded = all
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s["phase"] == "Succeeded"))
        .count();
    let mut why: Vec<String> = all
        .iter()
        .filter_map(|r| r.status.as_ref())
        .filter(|s| s["phase"] != "Succeeded")
        .map(|s| format!("{}: {}", s["phase"], s["message"]))
        .collect();
    why.sort();
    why.dedup();
    for w in why.iter().take(5) {
        eprintln!("scale: a request that did not succeed: {w}");
    }
    let status_bytes = all
        .iter()
        .filter_map(|r| r.status.as_ref())
        .map(|s| s.to_string().len())
        .sum::<usize>() as f64
        / all.len().max(1) as f64;
    (succeeded, status_bytes)
}

/// What the simulator's timeline says of the run against its bounds.
struct Pace {
    /// The slowest service's own ideal (the services go in parallel), and
    /// the floor UpdateService's share sets.
    ideal: f64,
    floor: f64,
    /// UpdateService's first and last call, and its share unused between.
    first_update: f64,
    last_update: f64,
    idle_share: f64,
    p99_healthy_to_stop: f64,
    ecs_calls: usize,
    aas_calls: usize,
    throttled: usize,
}

fn pace(timeline: &Value, t0_sim: f64, requests: usize, queue: usize) -> Pace {
    let lives = task_lives(timeline);
    // Each request's wait, one after another on its service.
    let waits = scaled(30.0).as_secs_f64() * queue as f64;
    let mut ideal_per_service: HashMap<(&str, &str), f64> = HashMap::new();
    for t in lives.iter().filter(|t| t.created >= t0_sim) {
        if let Some(h) = t.healthy {
            *ideal_per_service
                .entry((t.cluster.as_str(), t.service.as_str()))
                .or_insert(waits) += h - t.created;
        }
    }
    let ideal = ideal_per_service.values().copied().fold(0.0, f64::max);
    let (ecs_calls, aas_calls) = calls_since(timeline, t0_sim);
    let mut latencies = healthy_to_stop(&lives, t0_sim);
    let throttled = timeline["calls"].as_array().map_or(0, |c| {
        c.iter()
            .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= t0_sim)
            .filter(|c| c["error"] == "ThrottlingException")
            .count()
    });
    // What UpdateService's bucket alone allows: two calls a request (the
    // surge and the restore) at the share of its refill, on the
    // benchmark's time.
    let (_, modify_rate) = share_of("service-modify");
    let floor = 2.0 * requests as f64 / modify_rate;
    // Where the floor is lost: the seconds in which UpdateService's share
    // went partly unused, from the first call to the last.
    let updates: Vec<f64> = timeline["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["op"] == "UpdateService")
        .filter_map(|c| c["t"].as_f64())
        .filter(|t| *t >= t0_sim)
        .collect();
    let (first_update, last_update, idle_share) = update_service_use(&updates, modify_rate);
    Pace {
        ideal,
        floor,
        first_update,
        last_update,
        idle_share,
        p99_healthy_to_stop: percentile(&mut latencies, 99.0).unwrap_or(0.0),
        ecs_calls,
        aas_calls,
        throttled,
    }
}

/// Scenario 3: one replica, `queue` requests on each of many one-task
/// services over 10 clusters.
pub async fn scale(
    services: usize,
    queue: usize,
    binary: &Path,
    keep_timeline: Option<&Path>,
) -> Result<Vec<Figure>, BenchError> {
    let requests = services * queue;
    let bed = set_up(binary, services).await?;
    let (elapsed, memory, metrics, store) = run(&bed, queue).await?;
    let all = store
        .list_all(KIND)
        .await
        .map_err(|e| failed("read the store", e))?;
    let (succeeded, status_bytes) = outcome(&all);
    drop(all);
    let timeline = get_json(&format!("{}/_sim/timeline", bed.url)).await?;
    if let Some(path) = keep_timeline {
        std::fs::write(path, timeline.to_string()).map_err(|e| failed("write the timeline", e))?;
    }
    let pace = pace(&timeline, bed.t0_sim, requests, queue);
    let mut figures = vec![
        Figure::new(S, "requests succeeded", succeeded as f64, "").at_least(requests as f64),
        Figure::new(S, "services / clusters", services as f64, ""),
        Figure::new(S, "requests queued per service", queue as f64, ""),
        Figure::new(S, "time for all to finish", elapsed, "s"),
    ];
    figures.extend(time_figures(elapsed, &pace, bed.t0_sim));
    figures.extend(memory_figures(&memory, bed.setup_peak));
    figures.push(Figure::new(
        S,
        "status JSON per request at the end",
        status_bytes,
        "bytes",
    ));
    figures.extend(call_figures(&pace, requests, &metrics));
    figures.extend(breakdown_figures(&timeline, &bed, requests, &metrics));
    Ok(figures)
}

/// The run's time against its ideal and its floor, and where the floor
/// was lost.
fn time_figures(elapsed: f64, pace: &Pace, t0_sim: f64) -> Vec<Figure> {
    let bound = pace.ideal.max(pace.floor);
    vec![
        Figure::new(
            S,
            "floor set by UpdateService's share (2 calls a request)",
            pace.floor,
            "s",
        ),
        Figure::new(S, "time ÷ max(ideal, floor)", elapsed / bound, "").at_most(1.2),
        Figure::new(
            S,
            "first UpdateService call, from the run's start",
            pace.first_update - t0_sim,
            "s",
        ),
        Figure::new(
            S,
            "last UpdateService call, from the run's start",
            pace.last_update - t0_sim,
            "s",
        ),
        Figure::new(
            S,
            "UpdateService share unused between them (in seconds of its rate)",
            pace.idle_share,
            "s",
        ),
        Figure::new(
            S,
            "ideal (slowest service's start-to-healthy + wait)",
            pace.ideal,
            "s",
        ),
        Figure::new(
            S,
            "time ÷ ideal",
            elapsed / pace.ideal.max(f64::EPSILON),
            "",
        ),
        Figure::new(S, "p99 healthy → next stop", pace.p99_healthy_to_stop, "s"),
    ]
}

/// The process's peak, whole and less the store's contents, what the
/// store held at the start, and the CPU.
fn memory_figures(m: &Memory, setup_peak: f64) -> Vec<Figure> {
    vec![
        Figure::new(
            S,
            "peak RSS (VmHWM) of the whole process: operator, harness and in-memory store",
            m.peak,
            "MiB",
        )
        .at_most(64.0),
        Figure::new(
            S,
            "peak RSS less the store's contents (sampled every 100 ms: the operator and the harness)",
            m.operator_peak,
            "MiB",
        )
        .at_most(64.0),
        Figure::new(
            S,
            "RSS when the operator started (requests in store)",
            m.start_rss,
            "MiB",
        ),
        Figure::new(
            S,
            "of which the requests in the in-memory store",
            m.start_rss - m.before_store,
            "MiB",
        ),
        Figure::new(
            S,
            if m.reset {
                "peak RSS of the setup (reset before the run)"
            } else {
                "peak RSS of the setup (could not be reset: the peak may be the setup's)"
            },
            setup_peak,
            "MiB",
        ),
        Figure::new(S, "CPU time", m.cpu, "s"),
    ]
}

/// The AWS calls of the run, the throttling answered and the client-side waits.
fn call_figures(pace: &Pace, requests: usize, metrics: &str) -> Vec<Figure> {
    let waited = metric_value(metrics, "ecs_recycler_aws_throttle_wait_seconds_total");
    vec![
        Figure::new(S, "ECS API calls", pace.ecs_calls as f64, ""),
        Figure::new(
            S,
            "ECS API calls per request",
            pace.ecs_calls as f64 / requests as f64,
            "",
        ),
        Figure::new(
            S,
            "Application Auto Scaling calls",
            pace.aas_calls as f64,
            "",
        ),
        Figure::new(S, "ThrottlingException answers", pace.throttled as f64, "").at_most(0.0),
        Figure::new(S, "seconds waited on the client-side limit", waited, "s"),
    ]
}

/// The same, broken down: ECS calls by operation, throttling by category,
/// steps by outcome, token waits by category.
fn breakdown_figures(timeline: &Value, bed: &Bed, requests: usize, metrics: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (op, n) in ecs_calls_by_operation(timeline, bed.t0_sim) {
        figures.push(Figure::new(
            S,
            format!("ECS API calls per request: {op}"),
            n as f64 / requests as f64,
            "",
        ));
    }
    for (category, n) in timeline["throttled"].as_object().into_iter().flatten() {
        let n = n.as_f64().unwrap_or(0.0) - bed.throttled_before[category].as_f64().unwrap_or(0.0);
        figures.push(Figure::new(
            S,
            format!("ThrottlingException answers: {category}"),
            n,
            "",
        ));
    }
    for (outcome, n) in labelled(metrics, "ecs_recycler_reconciles_total") {
        figures.push(Figure::new(S, format!("steps ended {outcome}"), n, ""));
    }
    for (category, secs) in labelled(metrics, "ecs_recycler_api_token_wait_seconds_total") {
        figures.push(Figure::new(
            S,
            format!("seconds waited for tokens: {category}"),
            secs,
            "s",
        ));
    }
    figures
}

/// The first and last of `calls` (their times) and how many seconds of
/// `rate` went unused between them, counted a second at a time.
fn update_service_use(calls: &[f64], rate: f64) -> (f64, f64, f64) {
    let (Some(first), Some(last)) = (
        calls.iter().copied().reduce(f64::min),
        calls.iter().copied().reduce(f64::max),
    ) else {
        return (0.0, 0.0, 0.0);
    };
    let seconds = (last - first).ceil().max(1.0) as usize;
    let mut per_second = vec![0usize; seconds];
    for t in calls {
        let i = ((t - first) as usize).min(seconds - 1);
        per_second[i] += 1;
    }
    let unused: f64 = per_second.iter().map(|n| (rate - *n as f64).max(0.0)).sum();
    (first, last, unused / rate)
}

/// Hands memory freed but kept by glibc's allocator back to the system.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}
