//! Bounded and fenced: every AWS call has a deadline, and a replica acts
//! only inside its lease.
//!
//! - Every verb against a store endpoint that never answers, or answers too
//!   late, exits 2 within the operation timeout with a sentence naming the
//!   service, the operation, the endpoint and the time waited.
//! - The operator with one silent cluster finishes the other cluster's work,
//!   turns unready naming ECS, and logs each call that got no answer once.
//! - A replica whose store answers stall (a delaying proxy on DynamoDB, a
//!   stalled store in the process for the embedded one), aimed at the
//!   surge, a stop and the restore, sends nothing once its lease lapsed: the
//!   simulator's timeline, which knows each call's signer, shows no mutating
//!   call from it after the other replica took over, no task stopped twice
//!   and nothing changed after the request finished.

use crate::support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use chrono::Utc;
use ecs_recycler::operator::{Operator, OperatorConfig};
use ecs_recycler::sdk::{self, Timeouts};
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::moto::Moto;
use support::operator::*;
use support::proxy::{Proxy, Silent};
use support::stalled_store::StalledStore;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);

/// The deadlines the verbs are run with here.
const TIMEOUT_FLAGS: [&str; 6] = [
    "--aws-connect-timeout",
    "500ms",
    "--aws-attempt-timeout",
    "1s",
    "--aws-operation-timeout",
    "2s",
];

fn verb(args: &[&str], dynamodb: &str, dir: &std::path::Path) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(args)
        .args(TIMEOUT_FLAGS)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("ECS_RECYCLER_TABLE")
        .env_remove("ECS_RECYCLER_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run ecs-recycler");
    (output, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_against_a_silent_store_exits_2_naming_the_endpoint_and_the_time_waited() {
    let silent = Silent::start().await;
    let dir = temp_dir("silent-verbs");
    std::fs::write(
        dir.join("request.yaml"),
        "apiVersion: ecs-recycler/v1\nkind: RecycleRequest\nmetadata:\n  name: web\nspec:\n  cluster: prod\n  service: web\n",
    )
    .unwrap();
    let verbs: Vec<Vec<&str>> = vec![
        vec!["get", "--table", "t"],
        vec!["get", "schedules", "--table", "t"],
        vec!["get", "web", "-w", "--table", "t"],
        vec!["describe", "web", "--table", "t"],
        vec!["pause", "web", "--table", "t"],
        vec!["resume", "web", "--table", "t"],
        vec!["cancel", "web", "--table", "t"],
        vec!["delete", "web", "--table", "t"],
        vec!["apply", "-f", "request.yaml", "--table", "t"],
        vec!["init", "--table", "t"],
    ];
    // Each verb waits out its deadline alone: run them side by side.
    let url = silent.url();
    let runs: Vec<_> = verbs
        .into_iter()
        .map(|args| {
            let (url, dir) = (url.clone(), dir.clone());
            std::thread::spawn(move || {
                let (out, took) = verb(&args, &url, &dir);
                (args.join(" "), out, took)
            })
        })
        .collect();
    for run in runs {
        let (args, out, took) = run.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args}: {stderr}");
        assert!(
            took < Duration::from_secs(3) + Duration::from_millis(500),
            "{args}: exits within the operation timeout and a second (took {took:?}): {stderr}"
        );
        for part in [
            "DynamoDB",
            url.as_str(),
            "did not answer within 2s",
            "check that",
            "--aws-operation-timeout",
        ] {
            assert!(stderr.contains(part), "{args}: names {part:?}: {stderr}");
        }
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args}: one sentence: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_answers_after_the_deadline_is_a_timeout_and_on_time_it_is_read() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let dir = temp_dir("late-store");
    let (init, _) = verb(&["init", "--table", "t"], &moto.url, &dir);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let upstream: std::net::SocketAddr = moto.url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    proxy.stall(Duration::from_secs(4), Duration::from_secs(600));
    let (late, took) = verb(&["get", "--table", "t"], &proxy.url(), &dir);
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert_eq!(late.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        stderr.contains("on table t")
            && stderr.contains(&proxy.url())
            && stderr.contains("did not answer within 2s"),
        "{stderr}"
    );
    proxy.stall(Duration::ZERO, Duration::ZERO);
    let (on_time, _) = verb(&["get", "--table", "t"], &proxy.url(), &dir);
    assert!(
        on_time.status.success(),
        "the same proxy without the delay works: {}",
        String::from_utf8_lossy(&on_time.stderr)
    );
}

/// The endpoint's answer to GET `path`: (status, body).
async fn get(addr: &str, path: &str) -> (u16, String) {
    ecs_recycler::operator::http_get(&format!("http://{addr}{path}"))
        .await
        .expect("the endpoints answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_cluster_delays_only_its_own_records_and_is_named_by_readiness() {
    let (sim, c) = steady_service("prod", "web", 2, false).await;
    for service in ["a", "b", "c"] {
        create_service(&c.ecs, "quiet", service, 1, false).await;
        wait_steady(&c.ecs, "quiet", service, WITHIN).await;
    }
    let op = LocalOperator::start(sim.url(), "silent-cluster");
    let addr = op.http_addr(WITHIN).await;
    let ready_by = Instant::now() + WITHIN;
    while get(&addr, "/readyz").await.0 != 200 {
        assert!(Instant::now() < ready_by, "the operator never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.configure(json!({"throttle": {"clusterLatency": {"quiet": "1h"}}}))
        .unwrap();
    let silenced = Instant::now();
    let since = sim.now();
    for service in ["a", "b", "c"] {
        op.request(
            &format!("quiet-{service}"),
            json!({"cluster": "quiet", "service": service, "wait": "0s"}),
        )
        .await;
    }
    op.request(
        "web",
        json!({"cluster": "prod", "service": "web", "wait": "0s"}),
    )
    .await;
    // Readiness names ECS within a lease duration (1s) of the first
    // attempt's deadline (800ms), counted from the first call to the quiet
    // cluster on the simulator's clock (a busy machine may pick the
    // requests up later; that is not what is promised here).
    let (status, body) = loop {
        let (status, body) = get(&addr, "/readyz").await;
        if status == 503 || silenced.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let unready_at = sim.now();
    assert_eq!(status, 503, "{body}");
    let first_quiet_call = sim.timeline()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() >= since && c["params"]["cluster"] == "quiet")
        .map(|c| c["t"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(
        unready_at - first_quiet_call < 0.8 + 1.0 + 1.0,
        "unready within a lease duration of the first deadline: {:.3}s after the first call",
        unready_at - first_quiet_call
    );
    assert!(
        body.contains("AWS is not answering: ECS") && body.contains("got no answer"),
        "{body}"
    );
    let web = op.finished("web", WITHIN).await;
    assert_eq!(
        web["phase"], "Succeeded",
        "the loud cluster's request goes on: {web:#}"
    );
    for service in ["a", "b", "c"] {
        let name = format!("quiet-{service}");
        let r = op
            .store
            .get(Kind::RecycleRequest, &name)
            .await
            .unwrap()
            .unwrap();
        let phase = r.status.map(|s| s["phase"].clone()).unwrap_or(Value::Null);
        assert!(
            phase.is_null() || phase == "Pending",
            "{name} is still waiting: {phase}"
        );
    }
    // Each call that got no answer is logged once, when it gives up (after
    // its attempts), not once per record per tick.
    let logged_by = Instant::now() + WITHIN;
    let log = loop {
        let log = std::fs::read_to_string(&op.log).unwrap();
        if log.matches("an AWS call got no answer").count() >= 2 || Instant::now() > logged_by {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unanswered = log.matches("an AWS call got no answer").count();
    let quiet_calls = sim.timeline()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() >= since)
        .filter(|c| {
            c["params"]["cluster"] == "quiet"
                || c["params"]["ResourceIds"][0]
                    .as_str()
                    .is_some_and(|r| r.starts_with("service/quiet/"))
        })
        .count();
    assert!(unanswered >= 1, "the silence is logged:\n{log}");
    assert!(
        unanswered <= quiet_calls,
        "at most one line per call ({unanswered} lines, {quiet_calls} calls)"
    );
    assert!(
        !log.contains("could not observe"),
        "no line per record for a silence already logged:\n{log}"
    );
    // The cluster answers again: its requests finish and the replica is ready.
    sim.configure(json!({"throttle": {}})).unwrap();
    for service in ["a", "b", "c"] {
        let status = op.finished(&format!("quiet-{service}"), WITHIN).await;
        assert_eq!(status["phase"], "Succeeded", "{status:#}");
    }
    let ready_by = Instant::now() + WITHIN;
    loop {
        let (status, body) = get(&addr, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "ready again once ECS answers: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- fencing ----

/// Where the stalled replica's store answers are aimed.
#[derive(Clone, Copy, Debug)]
enum Aim {
    /// The write that decides the surge.
    Surge,
    /// The write that decides a stop.
    Stop,
    /// The write that decides the restore.
    Restore,
}

impl Aim {
    const ALL: [Aim; 3] = [Aim::Surge, Aim::Stop, Aim::Restore];

    /// The status JSON of the aimed write.
    fn matches(self, status: &Value) -> bool {
        match self {
            Aim::Surge => status["phase"] == "Surging",
            Aim::Stop => {
                status["phase"] == "Recycling"
                    && status["batch"].as_array().is_some_and(|b| !b.is_empty())
            }
            Aim::Restore => status["phase"] == "Restoring",
        }
    }

    /// The bytes of the aimed write on the wire to DynamoDB, where the
    /// status is a string inside the request's JSON.
    fn needles(self) -> &'static [&'static str] {
        match self {
            Aim::Surge => &[r#"\"phase\":\"Surging\""#],
            Aim::Stop => &[r#"\"phase\":\"Recycling\""#, r#"\"batch\":[\"arn"#],
            Aim::Restore => &[r#"\"phase\":\"Restoring\""#],
        }
    }
}

const MUTATING: [&str; 3] = ["UpdateService", "StopTask", "RegisterScalableTarget"];

/// What the timeline says about the two replicas' mutating calls since `since`.
fn check_fenced(
    timeline: &Value,
    since: f64,
    stalled: &str,
    other: &str,
    finished_at: f64,
    aim: Aim,
) {
    let calls: Vec<&Value> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() >= since)
        .filter(|c| MUTATING.iter().any(|m| c["op"] == *m))
        .collect();
    let first_of_other = calls
        .iter()
        .find(|c| c["caller"] == other)
        .map(|c| c["t"].as_f64().unwrap());
    let first_of_other = first_of_other
        .unwrap_or_else(|| panic!("{aim:?}: the other replica took over and acted: {calls:#?}"));
    let late: Vec<_> = calls
        .iter()
        .filter(|c| c["caller"] == stalled && c["t"].as_f64().unwrap() >= first_of_other)
        .collect();
    assert!(
        late.is_empty(),
        "{aim:?}: nothing from the stalled replica once the other acted: {late:#?}"
    );
    let mut stops: Vec<&str> = calls
        .iter()
        .filter(|c| c["op"] == "StopTask")
        .map(|c| c["params"]["task"].as_str().unwrap())
        .collect();
    let all = stops.len();
    stops.sort();
    stops.dedup();
    assert_eq!(
        stops.len(),
        all,
        "{aim:?}: no task stopped twice: {calls:#?}"
    );
    assert_eq!(all, 3, "{aim:?}: each of the three tasks stopped once");
    let after: Vec<_> = calls
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() > finished_at)
        .collect();
    assert!(
        after.is_empty(),
        "{aim:?}: nothing changed after the request finished: {after:#?}"
    );
}

/// Waits until `replica` holds the request's lease.
async fn wait_holder<S: Store>(store: &S, name: &str, replica: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let holder = store
            .get(Kind::RecycleRequest, name)
            .await
            .ok()
            .flatten()
            .and_then(|r| r.lease)
            .map(|l| l.holder);
        if holder.as_deref() == Some(replica) {
            return;
        }
        assert!(Instant::now() < deadline, "{replica} never took {name}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// After the request finished, long enough for any late answer to arrive and be acted on.
const AFTERMATH: Duration = Duration::from_secs(4);

/// Once any late answer could have been acted on: the fence held, and so
/// did capacity.
async fn aftermath(sim: &ecs_sim::Simulator, since: f64, finished_at: f64, aim: Aim) {
    tokio::time::sleep(AFTERMATH).await;
    let timeline = sim.timeline();
    check_fenced(&timeline, since, "stalled", "other", finished_at, aim);
    let facts = run_facts(&timeline, "prod", "web", since);
    assert!(facts.min_running >= 3, "{aim:?}: {facts:?}");
    assert_eq!(facts.final_desired, 3, "{aim:?}: {facts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_dynamodb_a_replica_whose_store_answers_come_late_never_acts_outside_its_lease() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let upstream: std::net::SocketAddr = moto.url.trim_start_matches("http://").parse().unwrap();
    let dir = temp_dir("fenced-dynamo");
    let (init, _) = verb(&["init", "--table", "t"], &moto.url, &dir);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let store =
        ecs_recycler::store::dynamo::DynamoStore::new(&sdk_config(&moto.url, true).await, "t");
    for aim in Aim::ALL {
        let (sim, _c) = steady_service("prod", "web", 3, false).await;
        let since = sim.now();
        let proxy = Proxy::start(upstream).await;
        let name = format!("{aim:?}").to_lowercase();
        store
            .create(
                Kind::RecycleRequest,
                &name,
                json!({"cluster": "prod", "service": "web", "wait": "0s"}),
                Utc::now(),
            )
            .await
            .unwrap();
        let args = vec!["--table".to_string(), "t".to_string()];
        let env = |key: &str, dynamodb: &str| {
            let mut env = aws_env(sim.url());
            env.retain(|(k, _)| k != "AWS_ACCESS_KEY_ID");
            env.push(("AWS_ACCESS_KEY_ID".into(), key.into()));
            env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), dynamodb.into()));
            env
        };
        let log_a = dir.join(format!("{name}-a.log"));
        let log_b = dir.join(format!("{name}-b.log"));
        // The aimed write lands; its answer, and everything after it, are
        // three lease durations late, as when the network to the store
        // stalls: the lease lapses, the other replica takes over.
        proxy.stall_after(
            aim.needles(),
            Duration::from_secs(3),
            Duration::from_secs(3),
        );
        let mut a = spawn_operator(&args, &env("stalled", &proxy.url()), "stalled", &log_a);
        wait_holder(&store, &name, "stalled").await;
        let mut b = spawn_operator(&args, &env("other", &moto.url), "other", &log_b);
        let status = wait_phase(&store, &name, &FINISHED, WITHIN, &log_a).await;
        let finished_at = sim.now();
        assert_eq!(status["phase"], "Succeeded", "{aim:?}: {status:#}");
        assert!(
            proxy.triggered().is_some(),
            "{aim:?}: the aimed write went through the proxy"
        );
        aftermath(&sim, since, finished_at, aim).await;
        a.sigkill();
        b.sigkill();
    }
}

/// An operator in this process: its store, its signing key for the simulator.
async fn in_process<S: Store>(store: Arc<S>, sim_url: &str, replica: &str) -> Operator {
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        attempt: Duration::from_millis(800),
        operation: Duration::from_secs(10),
    };
    let config = OperatorConfig {
        replica_id: replica.into(),
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
        idle_poll_interval: Duration::from_secs(1),
        policy_interval: Duration::from_secs(300),
        lease_duration: Duration::from_secs(1),
        retention: Duration::from_secs(60),
        api_share: Default::default(),
        aws_timeouts: timeouts,
    };
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(sim_url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            replica, "secret", None, None, "test",
        ))
        .load()
        .await;
    Operator::builder(store, sdk::with_timeouts(&sdk, timeouts), config)
        .start()
        .await
        .expect("no endpoints to bind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_store_a_replica_whose_answer_comes_three_leases_late_does_not_act_on_it() {
    for aim in Aim::ALL {
        let (sim, _c) = steady_service("prod", "web", 3, false).await;
        let since = sim.now();
        let dir = temp_dir("fenced-embedded");
        let path = dir.join("store.json");
        let store = Arc::new(EmbeddedStore::open(&path).unwrap());
        let name = format!("{aim:?}").to_lowercase();
        store
            .create(
                Kind::RecycleRequest,
                &name,
                json!({"cluster": "prod", "service": "web", "wait": "0s"}),
                Utc::now(),
            )
            .await
            .unwrap();
        let stalled = Arc::new(StalledStore::new(Arc::new(
            EmbeddedStore::open(&path).unwrap(),
        )));
        // The aimed write lands at once; its answer, and every call after
        // it, come three lease durations late.
        stalled.stall_after(move |status| aim.matches(status), Duration::from_secs(3));
        let a = in_process(stalled.clone(), sim.url(), "stalled").await;
        wait_holder(store.as_ref(), &name, "stalled").await;
        let b = in_process(store.clone(), sim.url(), "other").await;
        let log = dir.join("none.log");
        let status = wait_phase(store.as_ref(), &name, &FINISHED, WITHIN, &log).await;
        let finished_at = sim.now();
        assert_eq!(status["phase"], "Succeeded", "{aim:?}: {status:#}");
        assert!(
            stalled.triggered().is_some(),
            "{aim:?}: the aimed write was made by the stalled replica"
        );
        aftermath(&sim, since, finished_at, aim).await;
        let _ = tokio::time::timeout(Duration::from_secs(15), a.stop()).await;
        let _ = tokio::time::timeout(Duration::from_secs(15), b.stop()).await;
    }
}
