//! What every scenario needs: a simulator (in this process, or a child
//! process when this process's memory is what is measured), SDK clients
//! pointed at it, services made steady, an operator in this process or as
//! child processes, and readings of the simulator's timeline and of /proc.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use ecs_sim::{RealisticThrottle, Timings};
use serde_json::Value;

use crate::BenchError;
use crate::memory_store::MemoryStore;
use crate::product::{
    ApiShare, EventsConfig, Kind, Metrics, Operator, OperatorConfig, Quota, Store, Timeouts,
    http_get, with_timeouts,
};
pub use crate::product::{client_config as sdk_config, create_service, steady, wait_steady};

/// Realistic ECS timings, scaled down: a task starts in 40 s and passes its
/// health check 20 s later, a stop takes 30 s (deregistration), the
/// scheduler looks every second; the operator waits 30 s between batches
/// and polls every 2 s with a 15 s lease — all divided by `SCALE`.
pub const SCALE: f64 = 20.0;

pub fn scaled(secs: f64) -> Duration {
    Duration::from_secs_f64(secs / SCALE)
}

pub fn timings(jitter: f64) -> Timings {
    Timings {
        task_start: 40.0 / SCALE,
        task_healthy: 20.0 / SCALE,
        task_stop: 30.0 / SCALE,
        scheduler: 1.0 / SCALE,
        jitter,
    }
}

/// AWS's buckets as the simulator keeps them on scaled time: the published
/// sizes, refilled `SCALE` times faster (`--api-quota` for each category).
pub fn scaled_quotas() -> std::collections::BTreeMap<String, Quota> {
    api_limits::CATEGORIES
        .iter()
        .map(|c| {
            let quota = Quota {
                burst: c.burst,
                refill_per_second: c.refill_per_second * SCALE,
            };
            (c.name.to_string(), quota)
        })
        .collect()
}

/// The operator's part of a category's bucket at the default share, on the
/// benchmark's time: (burst, refill a second).
pub fn share_of(category: &str) -> (f64, f64) {
    let share = ApiShare::default().share;
    let c = api_limits::named(category).expect("a category of api-limits");
    (
        f64::from(c.burst) * share,
        c.refill_per_second * SCALE * share,
    )
}

/// The simulator's throttling: ECS's published buckets on the benchmark's time.
pub fn realistic_throttling() -> RealisticThrottle {
    RealisticThrottle { time_scale: SCALE }
}

/// The operator's defaults, scaled like the simulator's timings (the
/// buckets' refill too: time runs `SCALE` times faster), at the default
/// share of them.
pub fn operator_config(replica: &str) -> OperatorConfig {
    OperatorConfig {
        replica_id: replica.into(),
        concurrency: 16,
        poll_interval: scaled(2.0),
        idle_poll_interval: scaled(30.0),
        policy_interval: scaled(300.0),
        lease_duration: scaled(15.0),
        retention: Duration::from_secs(3600),
        api_share: ApiShare {
            quotas: scaled_quotas(),
            ..ApiShare::default()
        },
        // The attempt scaled with the lease it must fit in; the whole call
        // not, since the backoff on throttling is not scaled.
        aws_timeouts: Timeouts {
            connect: scaled(3.0),
            attempt: scaled(10.0),
            operation: Duration::from_secs(30),
        },
    }
}

pub fn wait_spec() -> String {
    format!("{}ms", scaled(30.0).as_millis())
}

pub async fn ecs_client(url: &str) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&sdk_config(url, RetryConfig::standard().with_max_attempts(10)).await)
}

pub fn failed(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError(format!("{what}: {e}"))
}

/// An operator running in this process on an in-memory store.
pub struct LocalOperator {
    pub store: Arc<MemoryStore>,
    pub metrics: Arc<Metrics>,
    operator: Operator,
}

impl LocalOperator {
    pub async fn start(url: &str, config: OperatorConfig) -> Self {
        Self::start_on(Arc::new(MemoryStore::new()), url, config).await
    }

    /// On a store already filled.
    pub async fn start_on(store: Arc<MemoryStore>, url: &str, config: OperatorConfig) -> Self {
        let sdk = with_timeouts(
            &sdk_config(url, RetryConfig::standard()).await,
            config.aws_timeouts,
        );
        Self::start_with(store, sdk, config, None).await
    }

    /// Reading ECS's events from `events`' queue on moto's server at `sqs`
    /// (every other service at the simulator, `url`).
    pub async fn start_with_events(
        url: &str,
        sqs: &str,
        config: OperatorConfig,
        events: EventsConfig,
    ) -> Self {
        let sdk = with_timeouts(&sdk_config_with_sqs(url, sqs).await, config.aws_timeouts);
        Self::start_with(Arc::new(MemoryStore::new()), sdk, config, Some(events)).await
    }

    async fn start_with(
        store: Arc<MemoryStore>,
        sdk: aws_config::SdkConfig,
        config: OperatorConfig,
        events: Option<EventsConfig>,
    ) -> Self {
        let mut builder = Operator::builder(store.clone(), sdk, config);
        if let Some(events) = events {
            builder = builder.events(events);
        }
        let operator = builder.start().await.expect("no endpoints to bind");
        Self {
            store,
            metrics: operator.metrics().clone(),
            operator,
        }
    }

    pub async fn stop(self) {
        self.operator.stop().await;
    }
}

/// Where each service is reached, as the per-service endpoint variables
/// would say: SQS at moto's server, everything else at the simulator.
#[derive(Debug)]
struct Endpoints {
    aws: String,
    sqs: String,
}

impl aws_types::service_config::LoadServiceConfig for Endpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        (key.profile() == "endpoint_url").then(|| match key.service_id() {
            "SQS" => self.sqs.clone(),
            _ => self.aws.clone(),
        })
    }
}

/// The SDK configuration of [`sdk_config`], with SQS at `sqs` (as
/// `AWS_ENDPOINT_URL_SQS` would put it) and every other service at `url`.
pub async fn sdk_config_with_sqs(url: &str, sqs: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .retry_config(RetryConfig::standard())
        .load()
        .await
        .to_builder()
        .service_config(Endpoints {
            aws: url.to_string(),
            sqs: sqs.to_string(),
        })
        .build()
}

/// A child process, killed when dropped.
pub struct ChildProcess(pub Child);

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ecs-recycler sim` (`binary`) as a child process with these timings: its
/// URL. It throttles nothing until [`throttle_realistically`]: setting up a
/// thousand services through ECS's buckets would take the SDK's retries
/// past their quota.
pub fn spawn_sim(binary: &Path, t: Timings) -> Result<(ChildProcess, String), BenchError> {
    use std::io::BufRead;
    let secs = |s: f64| format!("{}ms", (s * 1000.0).round() as u64);
    let mut child = Command::new(binary)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(["--task-start", &secs(t.task_start)])
        .args(["--task-healthy", &secs(t.task_healthy)])
        .args(["--task-stop", &secs(t.task_stop)])
        .args(["--scheduler-interval", &secs(t.scheduler)])
        .args(["--jitter", &t.jitter.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed("start the simulator", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError("the simulator has no stdout".into()))?;
    let guard = ChildProcess(child);
    let mut url = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut url)
        .map_err(|e| failed("read the simulator's URL", e))?;
    let url = url.trim().to_string();
    if url.is_empty() {
        return Err(BenchError(format!(
            "the simulator printed no URL (was {} built with the simulator feature?)",
            binary.display()
        )));
    }
    Ok((guard, url))
}

/// Where a child operator keeps its records.
pub enum RecordsAt {
    /// The embedded store in this file (`--store`).
    File(std::path::PathBuf),
    /// A DynamoDB table (`--table`) behind this endpoint (moto's), reached
    /// the standard way: `AWS_ENDPOINT_URL_DYNAMODB`.
    Table { name: String, endpoint: String },
}

impl RecordsAt {
    fn apply(&self, command: &mut Command) {
        match self {
            Self::File(path) => command.arg("--store").arg(path),
            Self::Table { name, endpoint } => command
                .args(["--table", name])
                .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
        };
    }
}

/// `ecs-recycler operator` (`binary`) as a child process on the records at `store`.
pub fn spawn_operator(
    binary: &Path,
    url: &str,
    store: &RecordsAt,
    replica: &str,
    extra: &[&str],
    log: &Path,
) -> Result<ChildProcess, BenchError> {
    let log = std::fs::File::create(log).map_err(|e| failed("create the operator log", e))?;
    let err = log
        .try_clone()
        .map_err(|e| failed("create the operator log", e))?;
    let mut command = Command::new(binary);
    command.arg("operator");
    store.apply(&mut command);
    command
        .args(["--replica-id", replica, "--http-listen", "127.0.0.1:0"])
        .args(extra)
        .env("AWS_ENDPOINT_URL_ECS", url)
        .env("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map(ChildProcess)
        .map_err(|e| failed("start the operator", e))
}

/// GET `url` and parse the JSON answer.
pub async fn get_json(url: &str) -> Result<Value, BenchError> {
    let (status, body) = http_get(url).await.map_err(BenchError)?;
    if status != 200 {
        return Err(BenchError(format!("{url} answered {status}")));
    }
    serde_json::from_str(&body).map_err(|e| failed(url, e))
}

/// The operations of Application Auto Scaling and the simulator's own, which
/// are not ECS calls.
pub fn is_ecs_call(op: &str) -> bool {
    !(op.starts_with("_sim")
        || op.contains("Scalable")
        || op.contains("ScalingPolic")
        || op.contains("ScalingActivit")
        || op.contains("ScheduledAction"))
}

/// Calls made since `since`: (ECS, Application Auto Scaling).
pub fn calls_since(timeline: &Value, since: f64) -> (usize, usize) {
    let calls = timeline["calls"].as_array().cloned().unwrap_or_default();
    let mine: Vec<&Value> = calls
        .iter()
        .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= since)
        .filter(|c| !c["op"].as_str().unwrap_or("").starts_with("_sim"))
        .collect();
    let ecs = mine
        .iter()
        .filter(|c| is_ecs_call(c["op"].as_str().unwrap_or("")))
        .count();
    (ecs, mine.len() - ecs)
}

/// ECS calls made since `since`, by operation, most first.
pub fn ecs_calls_by_operation(timeline: &Value, since: f64) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for c in timeline["calls"].as_array().into_iter().flatten() {
        let op = c["op"].as_str().unwrap_or("");
        if c["t"].as_f64().unwrap_or(0.0) >= since && !op.starts_with("_sim") && is_ecs_call(op) {
            *counts.entry(op.to_string()).or_default() += 1;
        }
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().collect();
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}

/// One task's life in the timeline.
pub struct TaskLife {
    pub cluster: String,
    pub service: String,
    pub created: f64,
    pub healthy: Option<f64>,
    /// When the StopTask call that stopped it was made.
    pub stopped_by_call: Option<f64>,
}

pub fn task_lives(timeline: &Value) -> Vec<TaskLife> {
    let calls = timeline["calls"].as_array().cloned().unwrap_or_default();
    timeline["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let transitions = t["transitions"].as_array().cloned().unwrap_or_default();
            TaskLife {
                cluster: t["cluster"].as_str().unwrap_or("").into(),
                service: t["service"].as_str().unwrap_or("").into(),
                created: transitions
                    .first()
                    .and_then(|x| x["t"].as_f64())
                    .unwrap_or(0.0),
                healthy: transitions
                    .iter()
                    .find(|x| x["healthStatus"] == "HEALTHY")
                    .and_then(|x| x["t"].as_f64()),
                stopped_by_call: t["stopCall"]
                    .as_u64()
                    .and_then(|i| calls.get(i as usize))
                    .and_then(|c| c["t"].as_f64()),
            }
        })
        .collect()
}

/// Lowest (running, healthy) count of the service from `since` on.
pub fn lowest_counts(timeline: &Value, cluster: &str, service: &str, since: f64) -> (u64, u64) {
    let samples = timeline["services"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|x| x["cluster"] == cluster && x["service"] == service)
        })
        .and_then(|s| s["samples"].as_array().cloned())
        .unwrap_or_default();
    let before = samples
        .iter()
        .rev()
        .find(|x| x["t"].as_f64().unwrap_or(0.0) <= since);
    let window = samples
        .iter()
        .filter(|x| x["t"].as_f64().unwrap_or(0.0) > since)
        .chain(before);
    let mut low = (u64::MAX, u64::MAX);
    for x in window {
        low.0 = low.0.min(x["running"].as_u64().unwrap_or(0));
        low.1 = low.1.min(x["healthy"].as_u64().unwrap_or(0));
    }
    low
}

/// Highest running count of the service from `since` on: the churn.
pub fn highest_running(timeline: &Value, cluster: &str, service: &str, since: f64) -> u64 {
    timeline["services"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|x| x["cluster"] == cluster && x["service"] == service)
        })
        .and_then(|s| s["samples"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|x| x["t"].as_f64().unwrap_or(0.0) >= since)
        .filter_map(|x| x["running"].as_u64())
        .max()
        .unwrap_or(0)
}

/// `VmHWM` of this process, in MiB: the peak resident memory.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `VmRSS` of this process, in MiB: the resident memory now.
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// User + system CPU seconds of this process so far.
pub fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of("self")
}

/// User + system CPU seconds so far of process `pid` (a number, or `self`).
pub fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel counts in USER_HZ, 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// The p-th percentile (0..=100) of `values`.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// `services` one-task services over 10 clusters, steady: their (cluster,
/// service) names.
pub async fn make_services(
    ecs: &aws_sdk_ecs::Client,
    services: usize,
) -> Result<Vec<(String, String)>, BenchError> {
    let clusters = 10;
    let names: Vec<(String, String)> = (0..services)
        .map(|i| (format!("c{}", i % clusters), format!("svc{i:04}")))
        .collect();
    for c in 0..clusters.min(services) {
        ecs.create_cluster()
            .cluster_name(format!("c{c}"))
            .send()
            .await
            .map_err(|e| failed("CreateCluster", e))?;
    }
    for chunk in names.chunks(50) {
        let mut work = tokio::task::JoinSet::new();
        for (cluster, service) in chunk {
            let (ecs, cluster, service) = (ecs.clone(), cluster.clone(), service.clone());
            work.spawn(async move { create_service(&ecs, &cluster, &service, 1, false).await });
        }
        while let Some(done) = work.join_next().await {
            done.map_err(|e| failed("create a service", e))??;
        }
    }
    make_services_steady(ecs, &names).await?;
    Ok(names)
}

/// A request on each of `names` (its default settings but the scaled
/// wait), in their order, named by `name` from the service's index.
pub async fn create_requests(
    store: &impl Store,
    names: &[(String, String)],
    name: impl Fn(usize) -> String,
) -> Result<(), BenchError> {
    for (i, (cluster, service)) in names.iter().enumerate() {
        store
            .create(
                Kind::RecycleRequest,
                &name(i),
                serde_json::json!({"cluster": cluster, "service": service, "wait": wait_spec()}),
                chrono::Utc::now(),
            )
            .await
            .map_err(|e| failed("create a request", e))?;
    }
    Ok(())
}

/// `update-service --force-new-deployment` of the service `web` of
/// cluster `bench`: what the recycler is measured against.
pub async fn force_new_deployment(ecs: &aws_sdk_ecs::Client) -> Result<(), BenchError> {
    ecs.update_service()
        .cluster("bench")
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .map_err(|e| failed("UpdateService", e))?;
    Ok(())
}

/// The request `rotate` of the service `web` of cluster `bench`: the one
/// service of the scenarios that recycle one.
pub async fn create_rotate(store: &impl Store) -> Result<(), BenchError> {
    create_requests(store, &[("bench".into(), "web".into())], |_| {
        "rotate".into()
    })
    .await
}

/// Waits until every one of `names` runs its one task, steady.
pub async fn make_services_steady(
    ecs: &aws_sdk_ecs::Client,
    names: &[(String, String)],
) -> Result<(), BenchError> {
    let mut by_cluster: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (c, s) in names {
        by_cluster.entry(c).or_default().push(s.clone());
    }
    for (cluster, list) in &by_cluster {
        wait_steady(ecs, cluster, list, 1, Duration::from_secs(300)).await?;
    }
    Ok(())
}

/// Turns on the simulator's realistic buckets (ECS's, on the benchmark's
/// time) through its control API.
pub async fn throttle_realistically(url: &str) -> Result<(), BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({"throttle": {"realistic": {"timeScale": SCALE}}}).to_string();
    let host = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| failed("reach the simulator", e))?;
    let request = format!(
        "POST /_sim/config HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed("configure the simulator", e))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| failed("configure the simulator", e))?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(BenchError(format!(
            "the simulator refused its throttling: {answer}"
        )))
    }
}
