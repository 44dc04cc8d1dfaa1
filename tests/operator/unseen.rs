//! A service the operator cannot see whole, end to end: with the Elastic
//! Load Balancing endpoint unreachable (a proxy that holds every request),
//! and with a read denied mid-run, the request's own status names the call
//! and what to check within a few looks, nothing is changed meanwhile, and
//! the run finishes by itself once it can see again.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::operator::*;
use support::proxy::Proxy;
use support::*;
use test_support::load_balancer::{Behind, TargetGroupSettings, service_behind, target_group};

const WITHIN: Duration = Duration::from_secs(90);

/// The status once its message satisfies `wanted`.
async fn said(store: &impl Store, wanted: impl Fn(&str) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let s = status_of(store, "rotate").await;
        if s["message"].as_str().is_some_and(&wanted) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "never said: {s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_load_balancing_endpoint_unreachable_the_status_says_so_and_the_run_goes_on_once_it_is_back()
 {
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": 20.0})).unwrap();
    let c = clients(&sim).await;
    let tg = target_group(&c.elb, "web", TargetGroupSettings::default()).await;
    service_behind(&c.ecs, &Behind::new("prod", "web", 3, &tg)).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(30)).await;
    // Elastic Load Balancing through a proxy that, for now, holds every
    // request: from the operator it is unreachable.
    let upstream: SocketAddr = sim.url().trim_start_matches("http://").parse().unwrap();
    let elb = Proxy::start(upstream).await;
    elb.stall(Duration::ZERO, Duration::from_secs(600));
    let dir = temp_dir("unseen-elb");
    let store_path = dir.join("store.json");
    let store = ecs_recycler::store::embedded::EmbeddedStore::open(&store_path).unwrap();
    let since = sim.now();
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "100ms", "stabilityTimeout": "20s"}),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let mut env = aws_env(sim.url());
    env.push((
        "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2".into(),
        elb.url(),
    ));
    let log = dir.join("operator.log");
    let mut op = spawn_operator(
        &["--store".into(), store_path.display().to_string()],
        &env,
        "r1",
        &log,
    );
    let wanted = format!(
        "cannot see the targets of prod/web: elasticloadbalancing:DescribeTargetHealth got no answer from {} in ",
        elb.url()
    );
    let status = said(&store, |m| m.starts_with(&wanted)).await;
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("check that the endpoint is reachable from the operator (VPC endpoint, proxy, security group) and that the role may call it; nothing was touched; the run starts by itself once it can see"),
        "{message}"
    );
    assert_eq!(status["phase"], "Pending");
    assert!(status["plan"].is_null(), "nothing planned: {status:#}");
    assert!(
        changes_since(&sim.timeline(), since).is_empty(),
        "nothing changed"
    );
    // Once the endpoint answers again, the run goes on by itself (the
    // requests already held stay held; the operator's new ones go through).
    elb.stall(Duration::ZERO, Duration::ZERO);
    let status = finish_then_stop(&store, "rotate", &mut op, &log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let reasons: Vec<&str> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "Unseen").count(),
        1,
        "said once, not at every look: {reasons:?}"
    );
    assert!(reasons.contains(&"Seen"), "{reasons:?}");
    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(facts.stopped_by_stop_task.len(), 3);
    assert!(facts.min_running >= 3, "{facts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_denied_mid_run_is_named_in_the_status_nothing_changes_and_the_run_finishes_once_allowed()
 {
    let run = RequestRun::start(
        "unseen-denied",
        4,
        json!({"cluster": "prod", "service": "web", "wait": "300ms", "stabilityTimeout": "20s"}),
        Vec::new(),
    )
    .await;
    // Mid-run, between batches, the role loses DescribeTasks.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let s = status_of(&run.store, "rotate").await;
        if s["phase"] == "Recycling" && !s["waitUntil"].is_null() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.sim
        .configure(json!({"throttle": {"deny": ["DescribeTasks"]}}))
        .unwrap();
    let denied_at = run.sim.now();
    let status = said(&run.store, |m| {
        m.starts_with(
            "cannot see the tasks of prod/web: ecs:DescribeTasks was denied (AccessDeniedException",
        )
    })
    .await;
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("check that the operator's role (or the request's roleArn) allows ecs:DescribeTasks; nothing more is changed until it can see; the run goes on by itself once it can"),
        "{message}"
    );
    assert_eq!(status["phase"], "Recycling");
    // A while later, still nothing changed, and the status was not written again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        changes_since(&run.sim.timeline(), denied_at).is_empty(),
        "nothing changed while it could not see"
    );
    let again = status_of(&run.store, "rotate").await;
    assert_eq!(again["events"], status["events"], "no write storm");
    run.sim
        .configure(json!({"throttle": {"deny": []}}))
        .unwrap();
    let status = wait_phase(&run.store, "rotate", &FINISHED, WITHIN, &run.log).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let facts = run_facts(&run.sim.timeline(), "prod", "web", run.since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut planned = run.planned.clone();
    planned.sort();
    assert_eq!(stopped, planned, "each planned task stopped once");
    assert!(facts.min_running >= 4, "{facts:?}");
    assert_eq!(facts.final_desired, 4);
}
