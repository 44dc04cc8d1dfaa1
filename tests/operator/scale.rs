//! The operator at scale and under watch: throttling on half of all calls,
//! the metrics and health endpoints, and flags out of range refused.

use crate::support;

use std::time::Duration;

use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_of_all_calls_throttled_every_request_still_succeeds() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 3, true).await;
    create_service(&c.ecs, "prod", "api", 2, false).await;
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    wait_steady(&c.ecs, "prod", "api", WITHIN).await;
    let since = sim.now();
    // Every API, ECS and Application Auto Scaling alike.
    sim.configure(json!({"throttle": {"fraction": 0.5}}))
        .unwrap();
    let op = LocalOperator::start(sim.url(), "half-throttled");
    for (name, service) in [("web", "web"), ("api", "api")] {
        op.request(
            name,
            json!({"cluster": "prod", "service": service, "wait": "0s"}),
        )
        .await;
    }
    // A coin per call: runs of eight throttles in a row come up about once
    // in 256 calls, and each is waited out by backoff (up to 5 s a try,
    // jittered): the run takes from 20 s to a few minutes by luck.
    for name in ["web", "api"] {
        let status = op.finished(name, Duration::from_secs(300)).await;
        assert_eq!(status["phase"], "Succeeded", "{name}: {status:#}");
    }
    let timeline = sim.timeline();
    let calls = timeline["calls"].as_array().unwrap();
    let mine: Vec<&Value> = calls
        .iter()
        .filter(|c| c["t"].as_f64().unwrap() >= since)
        .collect();
    let throttled = mine
        .iter()
        .filter(|c| c["error"] == "ThrottlingException")
        .count();
    assert!(
        throttled * 3 >= mine.len(),
        "about half throttled: {throttled} of {}",
        mine.len()
    );
    for (service, tasks) in [("web", 3), ("api", 2)] {
        let facts = run_facts(&timeline, "prod", service, since);
        assert_eq!(facts.stopped_by_stop_task.len(), tasks, "{facts:?}");
        assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
        assert!(facts.min_running >= tasks as u64, "{facts:?}");
        assert_eq!(facts.final_desired, tasks as u64, "{facts:?}");
    }
}

/// The samples of a metric, by its labels.
fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (status, body) = ecs_recycler::operator::http_get(&format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints_follow_a_recycle() {
    let (sim, _c) = steady_service("prod", "web", 3, true).await;
    let op = LocalOperator::start(sim.url(), "metrics");
    let addr = op.http_addr(WITHIN).await;
    let before = scrape(&addr).await;
    assert_eq!(
        metric(&before, "ecs_recycler_tasks_recycled_total", &[]),
        0.0
    );
    op.request(
        "rotate",
        json!({"cluster": "prod", "service": "web", "wait": "300ms"}),
    )
    .await;
    wait_phase(&op.store, "rotate", &["Recycling"], WITHIN, &op.log).await;
    // Mid-run: the request shows among the active ones (the gauge follows each listing).
    let mut seen_active = false;
    for _ in 0..40 {
        let mid = scrape(&addr).await;
        let active: f64 = ["Surging", "Recycling", "Restoring"]
            .iter()
            .map(|p| metric(&mid, "ecs_recycler_active_requests", &[("phase", p)]))
            .sum();
        if active == 1.0 {
            seen_active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_active, "the active request was counted by phase");
    let status = op.finished("rotate", WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = scrape(&addr).await;
    assert_eq!(
        metric(&after, "ecs_recycler_tasks_recycled_total", &[]),
        3.0
    );
    assert_eq!(
        metric(
            &after,
            "ecs_recycler_aws_calls_total",
            &[("operation", "ecs:StopTask"), ("outcome", "ok")]
        ),
        3.0
    );
    assert!(
        metric(
            &after,
            "ecs_recycler_aws_calls_total",
            &[("operation", "ecs:DescribeServices"), ("outcome", "ok")]
        ) >= 4.0
    );
    assert_eq!(
        metric(
            &after,
            "ecs_recycler_reconciles_total",
            &[("outcome", "finished")]
        ),
        1.0
    );
    assert!(
        metric(
            &after,
            "ecs_recycler_reconciles_total",
            &[("outcome", "requeued")]
        ) >= 3.0
    );
    assert!(
        metric(&after, "ecs_recycler_step_duration_seconds", &[]) >= 5.0,
        "steps timed"
    );
    assert_eq!(
        metric(
            &after,
            "ecs_recycler_active_requests",
            &[("phase", "Recycling")]
        ),
        0.0
    );
    assert_eq!(
        metric(&after, "ecs_recycler_lease_takeovers_total", &[]),
        0.0
    );
    // Health: alive and ready; the healthcheck subcommand says so by its exit code.
    let healthz = format!("http://{addr}/healthz");
    let readyz = format!("http://{addr}/readyz");
    for url in [&healthz, &readyz] {
        let (status, body) = ecs_recycler::operator::http_get(url).await.unwrap();
        assert_eq!(status, 200, "{url}: {body}");
    }
    let check = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
            .args(["healthcheck", "--url", url])
            .output()
            .unwrap()
    };
    assert!(check(&healthz).status.success());
    let down = check("http://127.0.0.1:1/healthz");
    assert_eq!(down.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

/// A queue of requests on one service: only the request at work holds a
/// lease (those behind it give theirs back, so a long queue costs no lease
/// renewals, and the end of the one ahead wakes them), they run one after
/// another, and the loop lists the store once a poll interval, not at every
/// tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_on_one_service_holds_one_lease_and_the_store_is_listed_once_a_poll_interval() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 2, true).await;
    wait_steady(&c.ecs, "prod", "web", WITHIN).await;
    let op = LocalOperator::start(sim.url(), "queue");
    let names = ["q1", "q2", "q3", "q4"];
    for name in names {
        op.request(
            name,
            json!({"cluster": "prod", "service": "web", "wait": "300ms"}),
        )
        .await;
        // Creation order is the queue's order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // While q1 runs, q2..q4 say whom they wait for and hold no lease.
    let started = tokio::time::Instant::now();
    loop {
        let mut queued = 0;
        let mut head_leased = false;
        for r in op.store.list_active(Kind::RecycleRequest).await.unwrap() {
            let status = r.status.clone().unwrap_or_default();
            if r.name == "q1" {
                head_leased = r.lease.as_ref().is_some_and(|l| l.holder == "r1");
            } else if status["message"]
                .as_str()
                .unwrap_or("")
                .contains("request q1")
                && r.lease.is_none()
            {
                queued += 1;
            }
        }
        if queued == 3 && head_leased {
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "q2..q4 waiting for q1 without a lease ({queued} of 3), q1 leased ({head_leased})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = op.http_addr(WITHIN).await;
    let listings =
        |s: &prometheus_parse::Scrape| metric(s, "ecs_recycler_store_listings_total", &[]);
    let (before, at) = (listings(&scrape(&addr).await), tokio::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = scrape(&addr).await;
    let (listed, elapsed) = (listings(&after) - before, at.elapsed());
    // --poll-interval 50ms: one listing each, and one for the scrapes' slack.
    let most = (elapsed.as_secs_f64() / 0.05).ceil() + 2.0;
    assert!(
        listed <= most,
        "{listed} listings in {elapsed:?}: at most one a poll interval ({most})"
    );
    assert!(listed >= 10.0, "{listed} listings in {elapsed:?}");
    let mut statuses = Vec::new();
    for name in names {
        let status = op.finished(name, WITHIN).await;
        assert_eq!(status["phase"], "Succeeded", "{name}: {status:#}");
        statuses.push(status);
    }
    // One after another: each starts once the one ahead has finished.
    for pair in statuses.windows(2) {
        let (ahead, next) = (&pair[0], &pair[1]);
        let ended = t(ahead["finishedAt"].as_str().unwrap());
        let began = t(next["startedAt"].as_str().unwrap());
        assert!(began >= ended, "{ahead:#} then {next:#}");
    }
    let end = scrape(&addr).await;
    assert!(
        metric(
            &end,
            "ecs_recycler_reconciles_total",
            &[("outcome", "queued")]
        ) >= 3.0,
        "the queued steps are counted apart"
    );
}

#[test]
fn flags_out_of_range_are_refused_naming_the_flag_and_the_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["operator", "--store", "/nonexistent/never-made.json"])
        .args([
            "--concurrency",
            "0",
            "--api-share",
            "0",
            "--api-category-share",
            "service-modfy=0.2",
            "--api-quota",
            "service-read=0/20",
        ])
        .args(["--poll-interval", "2s", "--idle-poll-interval", "1s"])
        .args(["--lease-duration", "10s", "--aws-attempt-timeout", "10s"])
        .args(["--aws-operation-timeout", "5s"])
        .args(["--http-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "--concurrency must be at least 1",
        "--api-share (0) must be more than 0 and at most 1",
        "no throttling category is named service-modfy (did you mean service-modify?)",
        "--api-quota service-read=0/20: the burst must be at least 1",
        "--idle-poll-interval (1s) must not be shorter than --poll-interval (2s)",
        "--aws-attempt-timeout (10s) must not be longer than --aws-operation-timeout (5s)",
        "--lease-duration (10s) must be at least --aws-attempt-timeout (10s) plus the lease's safety margin",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
}
