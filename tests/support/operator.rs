//! Running the operator binary against an in-process simulator and a store,
//! as a user runs it: flags and the standard AWS environment variables.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ecs_recycler::store::{Kind, Store};
use serde_json::Value;

/// Where a test keeps its store and the operators' logs.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecs-recycler-{label}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The environment that points the official SDK at the simulator.
pub fn aws_env(sim_url: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL_ECS", sim_url),
        ("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", sim_url),
        ("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", sim_url),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Fast polling and a short lease: what most tests run the operator with.
pub const FAST: &[&str] = &[
    "--poll-interval",
    "50ms",
    "--lease-duration",
    "1s",
    // An attempt and the lease's margin must fit in the lease.
    "--aws-connect-timeout",
    "500ms",
    "--aws-attempt-timeout",
    "800ms",
    "--aws-operation-timeout",
    "10s",
];

/// Starts `ecs-recycler operator` with fast polling; its log goes to `log`.
pub fn spawn_operator(
    store_args: &[String],
    env: &[(String, String)],
    replica: &str,
    log: &Path,
) -> OperatorProcess {
    spawn_operator_with(store_args, FAST, env, replica, log)
}

/// Starts `ecs-recycler operator` with `timing` flags (see [`FAST`]) and
/// the store's; its log goes to `log`.
pub fn spawn_operator_with(
    store_args: &[String],
    timing: &[&str],
    env: &[(String, String)],
    replica: &str,
    log: &Path,
) -> OperatorProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .arg("operator")
        .args(store_args)
        .args(timing)
        .args([
            "--replica-id",
            replica,
            // Parallel tests must not clash on the endpoints' port.
            "--http-listen",
            "127.0.0.1:0",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(
            "RUST_LOG",
            std::env::var("TEST_OPERATOR_LOG").unwrap_or("info".into()),
        )
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .map(OperatorProcess)
        .expect("start ecs-recycler operator")
}

/// A running operator process; killed when dropped, so no test leaves one behind.
pub struct OperatorProcess(Child);

impl OperatorProcess {
    /// SIGTERM, then the exit status.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        self.0.wait().expect("wait")
    }

    pub fn sigkill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The phases a request ends in.
pub const FINISHED: [&str; 4] = ["Succeeded", "Failed", "Cancelled", "WindowClosed"];

/// Waits for the request to finish, then stops the operator with SIGTERM
/// (which must exit 0); answers the request's status.
pub async fn finish_then_stop<S: Store>(
    store: &S,
    name: &str,
    operator: &mut OperatorProcess,
    log: &Path,
    within: Duration,
) -> Value {
    let status = wait_phase(store, name, &FINISHED, within, log).await;
    assert!(operator.sigterm().success(), "operator exits 0 on SIGTERM");
    status
}

/// The request's status, once its phase is one of `phases`.
pub async fn wait_phase<S: Store>(
    store: &S,
    name: &str,
    phases: &[&str],
    within: Duration,
    log: &Path,
) -> Value {
    let what = format!("{name} reached {phases:?}");
    let reached = |s: &Value| phases.iter().any(|p| s["phase"] == *p);
    wait_status(store, name, within, log, &what, reached).await
}

/// The request's status once `ready` says so; else the test fails within
/// `within`, saying `what` did not happen, with the operator's log.
pub async fn wait_status<S: Store>(
    store: &S,
    name: &str,
    within: Duration,
    log: &Path,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let record = store
            .get(Kind::RecycleRequest, name)
            .await
            .expect("store")
            .expect("record exists");
        let status = record.status.clone().unwrap_or(Value::Null);
        if ready(&status) {
            return status;
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "not so within {within:?}: {what}; status: {status:#}\noperator log (newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the simulator's timeline says about one recycle of one service.
#[derive(Debug)]
pub struct RunFacts {
    /// Tasks stopped by StopTask, in order.
    pub stopped_by_stop_task: Vec<String>,
    /// Tasks that started after `since` and were stopped by StopTask.
    pub replacements_stopped: Vec<String>,
    pub min_running: u64,
    pub max_desired: u64,
    pub final_desired: u64,
}

pub fn run_facts(timeline: &Value, cluster: &str, service: &str, since: f64) -> RunFacts {
    let tasks = timeline["tasks"].as_array().expect("tasks");
    let mine = tasks.iter().filter(|t| {
        t["cluster"] == cluster && t["service"] == service && t["stoppedBy"] == "StopTask"
    });
    // In the order the StopTask calls were made.
    let mut stopped: Vec<(u64, String)> = mine
        .clone()
        .map(|t| {
            (
                t["stopCall"].as_u64().unwrap_or(u64::MAX),
                t["taskArn"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    stopped.sort();
    let stopped_by_stop_task: Vec<String> = stopped.into_iter().map(|(_, arn)| arn).collect();
    let replacements_stopped = mine
        .filter(|t| t["transitions"][0]["t"].as_f64().unwrap() > since)
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .collect();
    let samples = super::samples(timeline, cluster, service);
    let window: Vec<_> = samples.iter().filter(|s| s.0 >= since).collect();
    RunFacts {
        stopped_by_stop_task,
        replacements_stopped,
        min_running: super::min_running_since(timeline, cluster, service, since),
        max_desired: window.iter().map(|s| s.1).max().unwrap_or(0),
        final_desired: samples.last().map(|s| s.1).unwrap_or(0),
    }
}

/// The status of request `name`, as the store holds it now (null before
/// the operator wrote one).
pub async fn status_of<S: Store>(store: &S, name: &str) -> Value {
    store
        .get(Kind::RecycleRequest, name)
        .await
        .expect("store")
        .expect("record exists")
        .status
        .unwrap_or(Value::Null)
}

/// The calls that change something (UpdateService, StopTask,
/// RegisterScalableTarget) the simulator accepted since `since`, in order.
pub fn changes_since(timeline: &Value, since: f64) -> Vec<String> {
    timeline["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= since && c.get("error").is_none())
        .filter_map(|c| c["op"].as_str())
        .filter(|op| ["UpdateService", "StopTask", "RegisterScalableTarget"].contains(op))
        .map(str::to_string)
        .collect()
}

/// One request on a steady `prod/web` on its own simulator, an embedded
/// store in a temp dir, and the operator binary working on it.
pub struct RequestRun {
    pub sim: test_support::Simulator,
    pub store: ecs_recycler::store::embedded::EmbeddedStore,
    pub log: PathBuf,
    pub operator: OperatorProcess,
    /// How to start the operator again (a replica after a crash).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The service's tasks before the run.
    pub planned: Vec<String>,
    /// The simulator's clock when the request was made.
    pub since: f64,
}

impl RequestRun {
    /// Each planned task stopped at most once, no replacement stopped, the
    /// desired count back at `desired`, running never below `floor`.
    pub fn invariants_hold(&self, floor: u64, desired: u64) -> RunFacts {
        let facts = run_facts(&self.sim.timeline(), "prod", "web", self.since);
        let mut stopped = facts.stopped_by_stop_task.clone();
        stopped.sort();
        stopped.dedup();
        assert_eq!(stopped.len(), facts.stopped_by_stop_task.len(), "{facts:?}");
        assert!(
            stopped.iter().all(|t| self.planned.contains(t)),
            "{facts:?}"
        );
        assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
        assert!(
            facts.min_running >= floor,
            "running never below {floor}: {facts:?}"
        );
        assert_eq!(facts.final_desired, desired, "capacity restored: {facts:?}");
        facts
    }

    /// Request `rotate` with `spec` on `prod/web` of `tasks` tasks, and the
    /// operator started with `more_env` beside the simulator's variables.
    pub async fn start(
        label: &str,
        tasks: i32,
        spec: Value,
        more_env: Vec<(String, String)>,
    ) -> Self {
        let (sim, c) = test_support::steady_service("prod", "web", tasks, true).await;
        let planned = test_support::running_task_arns(&c.ecs, "prod", "web").await;
        let dir = temp_dir(label);
        let path = dir.join("store.json");
        let store = ecs_recycler::store::embedded::EmbeddedStore::open(&path).expect("store");
        let since = sim.now();
        store
            .create(Kind::RecycleRequest, "rotate", spec, chrono::Utc::now())
            .await
            .expect("create request");
        let log = dir.join("operator.log");
        let mut env = aws_env(sim.url());
        env.extend(more_env);
        let args = vec!["--store".to_string(), path.display().to_string()];
        let operator = spawn_operator(&args, &env, "r1", &log);
        Self {
            sim,
            store,
            log,
            operator,
            args,
            env,
            planned,
            since,
        }
    }
}

/// An operator on an embedded store in a temp dir, against `sim_url`.
pub struct LocalOperator {
    pub store: ecs_recycler::store::embedded::EmbeddedStore,
    pub log: PathBuf,
    _process: OperatorProcess,
}

impl LocalOperator {
    pub fn start(sim_url: &str, label: &str) -> Self {
        let dir = temp_dir(label);
        let path = dir.join("store.json");
        let store = ecs_recycler::store::embedded::EmbeddedStore::open(&path).expect("store");
        let log = dir.join("operator.log");
        let process = spawn_operator(
            &["--store".into(), path.display().to_string()],
            &aws_env(sim_url),
            "r1",
            &log,
        );
        Self {
            store,
            log,
            _process: process,
        }
    }

    pub async fn request(&self, name: &str, spec: Value) {
        self.store
            .create(Kind::RecycleRequest, name, spec, chrono::Utc::now())
            .await
            .expect("create request");
    }

    /// The address of the operator's endpoints, as it logs it once bound.
    pub async fn http_addr(&self, within: Duration) -> String {
        logged_http_addr(&self.log, within).await
    }

    /// Waits for the request to finish; answers its status.
    pub async fn finished(&self, name: &str, within: Duration) -> Value {
        wait_phase(&self.store, name, &FINISHED, within, &self.log).await
    }
}

/// An operator's metrics page, read from the address its log names.
pub struct MetricsPage {
    pub body: String,
}

impl MetricsPage {
    pub async fn of(log: &Path) -> Self {
        let addr = logged_http_addr(log, Duration::from_secs(5)).await;
        let (_, body) = ecs_recycler::operator::http_get(&format!("http://{addr}/metrics"))
            .await
            .expect("the operator's metrics");
        Self { body }
    }

    /// The sum of the samples whose line starts with `prefix`.
    pub fn sum(&self, prefix: &str) -> f64 {
        self.body
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    }
}

/// The address of an operator's endpoints, as it logs it (to `log`) once bound.
pub async fn logged_http_addr(log: &Path, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let bound = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("serving /healthz"))
            })
            .and_then(|l| l["fields"]["addr"].as_str().map(str::to_string));
        if let Some(addr) = bound {
            return addr;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator logged no endpoint address:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A clock the test moves by hand, for the schedule and policy loops.
pub struct TestClock(pub parking_lot::Mutex<chrono::DateTime<chrono::Utc>>);

impl ecs_recycler::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock()
    }
}

/// The operator's configuration the in-process loops run with in tests:
/// real leases (15 s) and polls, whatever a test's clock does.
pub fn config(replica: &str) -> ecs_recycler::operator::OperatorConfig {
    ecs_recycler::operator::OperatorConfig {
        replica_id: replica.into(),
        concurrency: 4,
        poll_interval: Duration::from_secs(2),
        idle_poll_interval: Duration::from_secs(30),
        policy_interval: Duration::from_secs(300),
        lease_duration: Duration::from_secs(15),
        retention: Duration::from_secs(3600),
        api_share: Default::default(),
        aws_timeouts: Default::default(),
    }
}

/// An instant written in RFC 3339.
pub fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}
