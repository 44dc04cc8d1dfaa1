//! The operator woken by ECS's own events (`--events-queue`): the
//! simulator sends its events to an SQS queue on moto's server, as an
//! EventBridge rule would, and the operator binary reads them. A recycle
//! driven by a perfect feed, a lossy one, one that repeats and reorders,
//! and one that falls silent; a foreign cluster's events and a malformed
//! message read, deleted and counted; two replicas on one queue; and a
//! queue that cannot be reached, from the start and mid-run. Every run holds every invariant, checked from the
//! simulator's timeline; the feed's health shows on `/readyz`.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::moto::Moto;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(90);
const TASKS: i32 = 4;
/// A poll of 100 ms and a 3 s lease; an attempt of 2.5 s, so SQS's long
/// poll (half an attempt, in whole seconds: 1 s) fits.
const TIMING: &[&str] = &[
    "--poll-interval",
    "100ms",
    "--lease-duration",
    "3s",
    "--aws-connect-timeout",
    "500ms",
    "--aws-attempt-timeout",
    "2500ms",
    "--aws-operation-timeout",
    "10s",
];

/// moto's SQS with the queue `ecs-events`, a simulator sending its events
/// there as `feed` says, service `prod/web` steady, and a store.
struct Bed {
    moto: Option<Moto>,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    sim: Simulator,
    c: Clients,
    store: EmbeddedStore,
    store_args: Vec<String>,
    dir: PathBuf,
}

async fn bed(label: &str, feed: Value) -> Bed {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&moto.url, false).await);
    let queue = sqs
        .create_queue()
        .queue_name("ecs-events")
        .send()
        .await
        .expect("create the queue on moto")
        .queue_url()
        .unwrap()
        .to_string();
    let (sim, c) = steady_service("prod", "web", TASKS, true).await;
    let mut events = json!({"sqsQueueUrl": queue});
    events
        .as_object_mut()
        .unwrap()
        .extend(feed.as_object().unwrap().clone());
    sim.configure(json!({ "events": events })).unwrap();
    let dir = temp_dir(label);
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).expect("store");
    Bed {
        moto: Some(moto),
        sqs,
        queue,
        sim,
        c,
        store,
        store_args: vec!["--store".into(), path.display().to_string()],
        dir,
    }
}

impl Bed {
    /// The operator's environment: the simulator, moto's SQS and the queue.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = aws_env(self.sim.url());
        let moto = self.moto.as_ref().expect("moto runs").url.clone();
        env.push(("AWS_ENDPOINT_URL_SQS".into(), moto));
        env.push(("ECS_RECYCLER_EVENTS_QUEUE".into(), self.queue.clone()));
        env
    }

    fn operator(&self, replica: &str, env: &[(String, String)]) -> (OperatorProcess, PathBuf) {
        let log = self.dir.join(format!("{replica}.log"));
        let op = spawn_operator_with(&self.store_args, TIMING, env, replica, &log);
        (op, log)
    }

    async fn request(&self, name: &str, service: &str) {
        let spec = json!({"cluster": "prod", "service": service, "wait": "300ms",
                          "stabilityTimeout": "30s"});
        self.store
            .create(Kind::RecycleRequest, name, spec, Utc::now())
            .await
            .expect("create request");
    }
}

/// Every planned task of `service` stopped once, no replacement stopped,
/// running never below the original desired count, desired count back.
fn invariants_hold(sim: &Simulator, service: &str, planned: &[String], since: f64) {
    let facts = run_facts(&sim.timeline(), "prod", service, since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned.to_vec();
    expected.sort();
    assert_eq!(
        stopped, expected,
        "each planned task stopped once: {facts:?}"
    );
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert!(
        facts.min_running >= TASKS as u64,
        "running never below {TASKS}: {facts:?}"
    );
    assert_eq!(facts.max_desired, TASKS as u64 + 1, "{facts:?}");
    assert_eq!(facts.final_desired, TASKS as u64, "{facts:?}");
}

/// One request on `prod/web` under the operator, the feed as `feed` says
/// (and `mid_run` done once the first batch is stopped); answers the bed,
/// the final status, and the operator's metrics and readiness as they were
/// when the request finished (and, if `mid_run`, before it ended).
async fn recycle(label: &str, feed: Value, mid_run: Option<MidRun>) -> Run {
    let mut bed = bed(label, feed).await;
    let planned = running_task_arns(&bed.c.ecs, "prod", "web").await;
    let since = bed.sim.now();
    let env = bed.env();
    bed.request("rotate", "web").await;
    let (mut op, log) = bed.operator("r1", &env);
    let mut unready = None;
    if let Some(mid_run) = mid_run {
        let first_stop = |s: &Value| s["stopped"].as_array().is_some_and(|a| !a.is_empty());
        let what = "the first batch stopped";
        wait_status(&bed.store, "rotate", WITHIN, &log, what, first_stop).await;
        match mid_run {
            MidRun::Silent => {
                let silent = json!({"events": {"sqsQueueUrl": bed.queue, "silent": true}});
                bed.sim.configure(silent).unwrap();
            }
            MidRun::QueueGone => drop(bed.moto.take()),
        }
        unready = Some(readiness_says(&log, mid_run.says()).await);
    }
    let status = wait_phase(&bed.store, "rotate", &FINISHED, WITHIN, &log).await;
    let metrics = MetricsPage::of(&log).await;
    let ready = readiness(&log).await;
    assert!(op.sigterm().success(), "the operator exits 0 on SIGTERM");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    invariants_hold(&bed.sim, "web", &planned, since);
    Run {
        bed,
        status,
        metrics,
        ready,
        unready,
        log,
    }
}

struct Run {
    bed: Bed,
    status: Value,
    metrics: MetricsPage,
    ready: (u16, String),
    unready: Option<String>,
    log: PathBuf,
}

impl Run {
    /// The batches whose wait counted from when the events showed them serving.
    fn waits_from_events(&self) -> usize {
        self.status["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("when ECS's events showed it serving"))
            })
            .count()
    }
}

#[derive(Clone, Copy)]
enum MidRun {
    /// The feed stops sending.
    Silent,
    /// moto's server (the queue) goes away.
    QueueGone,
}

impl MidRun {
    fn says(self) -> &'static str {
        match self {
            Self::Silent => "has been silent for",
            Self::QueueGone => "cannot be read",
        }
    }
}

/// `/readyz` now: (status, body).
async fn readiness(log: &Path) -> (u16, String) {
    let addr = logged_http_addr(log, Duration::from_secs(5)).await;
    ecs_recycler::operator::http_get(&format!("http://{addr}/readyz"))
        .await
        .expect("the operator answers /readyz")
}

/// Waits until `/readyz` answers 503 saying `says`; answers what it said.
async fn readiness_says(log: &Path, says: &str) -> String {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (status, body) = readiness(log).await;
        if status == 503 && body.contains(says) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never said {says:?}; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_perfect_feed_wakes_each_batch_and_its_wait_counts_from_the_event() {
    let run = recycle("events-perfect", json!({}), None).await;
    let m = &run.metrics;
    assert!(
        m.sum("ecs_recycler_events_received_total{detail_type=\"task_state_change\"}") > 0.0,
        "{}",
        m.body
    );
    assert!(
        m.sum("ecs_recycler_event_wakes_total") >= TASKS as f64,
        "every batch woken by its events: {}",
        m.body
    );
    assert_eq!(m.sum("ecs_recycler_events_feed_healthy"), 1.0, "{}", m.body);
    assert!(m.sum("ecs_recycler_event_lag_seconds_count") > 0.0);
    // The first batch may be seen done by a look before its events come.
    assert!(
        run.waits_from_events() >= TASKS as usize - 1,
        "{:#}",
        run.status["events"]
    );
    assert_eq!(run.ready.0, 200, "{:?}", run.ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_feed_costs_time_never_an_invariant() {
    let run = recycle("events-lossy", json!({"drop": 0.4}), None).await;
    let dropped = run.bed.sim.events()["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{}", run.bed.sim.events());
    assert!(run.metrics.sum("ecs_recycler_events_received_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_and_events_out_of_order_are_known_and_left_aside() {
    let feed = json!({"duplicate": 0.5, "reorder": true, "reorderWindow": "300ms"});
    let run = recycle("events-repeated", feed, None).await;
    let m = &run.metrics;
    let duplicates = m.sum("ecs_recycler_events_ignored_total{reason=\"duplicate\"}");
    let stale = m.sum("ecs_recycler_events_ignored_total{reason=\"stale\"}");
    assert!(duplicates > 0.0, "{}", m.body);
    assert!(stale > 0.0, "reordered versions come late: {}", m.body);
    assert!(m.sum("ecs_recycler_event_wakes_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_silent_mid_run_is_said_on_readyz_and_the_run_finishes_by_polling() {
    let run = recycle("events-silent", json!({}), Some(MidRun::Silent)).await;
    let said = run.unready.as_deref().unwrap();
    assert!(
        said.contains("since the operator changed cluster prod")
            && said.contains("looked at by polling meanwhile"),
        "{said}"
    );
    assert_eq!(run.ready.0, 503, "still silent: {:?}", run.ready);
    assert_eq!(
        run.metrics.sum("ecs_recycler_events_feed_healthy"),
        0.0,
        "{}",
        run.metrics.body
    );
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(
        log.contains("ECS's events are not flowing; looking at services by polling"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_gone_mid_run_is_said_on_readyz_and_the_run_finishes_by_polling() {
    let run = recycle("events-gone", json!({}), Some(MidRun::QueueGone)).await;
    let said = run.unready.as_deref().unwrap();
    assert!(
        said.contains("ECS's events queue") && said.contains("cannot be read"),
        "{said}"
    );
    assert_eq!(run.metrics.sum("ecs_recycler_events_feed_healthy"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_unreachable_from_the_start_is_said_and_the_run_goes_by_polling() {
    let (sim, c) = steady_service("prod", "web", TASKS, true).await;
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let dir = temp_dir("events-unreachable");
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).unwrap();
    let since = sim.now();
    let mut env = aws_env(sim.url());
    // Nothing listens on port 1.
    env.push(("AWS_ENDPOINT_URL_SQS".into(), "http://127.0.0.1:1".into()));
    env.push((
        "ECS_RECYCLER_EVENTS_QUEUE".into(),
        "http://127.0.0.1:1/123456789012/ecs-events".into(),
    ));
    let log = dir.join("r1.log");
    let mut op = spawn_operator_with(
        &["--store".into(), path.display().to_string()],
        TIMING,
        &env,
        "r1",
        &log,
    );
    let said = readiness_says(&log, "cannot be read").await;
    assert!(said.contains("127.0.0.1:1"), "names the endpoint: {said}");
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "300ms"}),
            Utc::now(),
        )
        .await
        .unwrap();
    let status = finish_then_stop(&store, "rotate", &mut op, &log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    invariants_hold(&sim, "web", &planned, since);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_clusters_events_and_a_malformed_message_are_deleted_and_counted() {
    let bed = bed("events-foreign", json!({})).await;
    // Something that is not an ECS event, in the queue.
    bed.sqs
        .send_message()
        .queue_url(&bed.queue)
        .message_body("not an event")
        .send()
        .await
        .unwrap();
    // A cluster the operator has no request in, busy meanwhile.
    create_service(&bed.c.ecs, "other", "api", 2, true).await;
    let planned = running_task_arns(&bed.c.ecs, "prod", "web").await;
    let since = bed.sim.now();
    bed.request("rotate", "web").await;
    let (mut op, log) = bed.operator("r1", &bed.env());
    let status = wait_phase(&bed.store, "rotate", &FINISHED, WITHIN, &log).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    invariants_hold(&bed.sim, "web", &planned, since);
    // Everything the feed sent has been read and deleted, theirs too.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let summary = bed.sim.events();
        let attrs = bed
            .sqs
            .get_queue_attributes()
            .queue_url(&bed.queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let count = |name| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if summary["held"] == 0 && left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} messages left: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = MetricsPage::of(&log).await;
    assert!(
        m.sum("ecs_recycler_events_ignored_total{reason=\"foreign\"}") > 0.0,
        "{}",
        m.body
    );
    assert_eq!(
        m.sum("ecs_recycler_events_ignored_total{reason=\"malformed\"}"),
        1.0,
        "{}",
        m.body
    );
    assert!(op.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_queue_and_each_recycle_holds_its_invariants() {
    let bed = bed("events-replicas", json!({})).await;
    create_service(&bed.c.ecs, "prod", "api", TASKS, true).await;
    wait_steady(&bed.c.ecs, "prod", "api", Duration::from_secs(20)).await;
    let web = running_task_arns(&bed.c.ecs, "prod", "web").await;
    let api = running_task_arns(&bed.c.ecs, "prod", "api").await;
    let env = bed.env();
    let (mut r1, log1) = bed.operator("r1", &env);
    let (mut r2, log2) = bed.operator("r2", &env);
    // Both count each other (a heartbeat is a third of a lease) before
    // there is work, so each takes its part from the start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since = bed.sim.now();
    bed.request("rotate", "web").await;
    bed.request("rotate-api", "api").await;
    for name in ["rotate", "rotate-api"] {
        let status = wait_phase(&bed.store, name, &FINISHED, WITHIN, &log1).await;
        assert_eq!(status["phase"], "Succeeded", "{name}: {status:#}");
    }
    invariants_hold(&bed.sim, "web", &web, since);
    invariants_hold(&bed.sim, "api", &api, since);
    let mut wakes = 0.0;
    for log in [&log1, &log2] {
        let m = MetricsPage::of(log).await;
        assert!(
            m.sum("ecs_recycler_events_received_total") > 0.0,
            "each replica reads the queue: {}",
            m.body
        );
        wakes += m.sum("ecs_recycler_event_wakes_total");
    }
    assert!(wakes > 0.0, "events woke the holders' looks");
    // Each replica stepped some of the work.
    let stepped = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap()
            .contains("Starting task recycle")
    };
    assert!(stepped(&log1) && stepped(&log2), "the work was shared");
    assert!(r1.sigterm().success() && r2.sigterm().success());
}
