//! RecyclePolicy end to end, against the simulator: a policy over a cluster
//! of six services recycles exactly the old ones its tags select, one
//! service at a time as its budget says, and never a young task; two
//! operator processes with one killed (-9) mid-run make one request per
//! service, never two; the real loop, with its clock injected, starts
//! nothing before the window opens or on a blackout date (in the policy's
//! time zone), and carries out a decision a crash left written but not done.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use aws_sdk_ecs::types::Tag;
use chrono::Utc;
use ecs_recycler::Metrics;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use ecs_recycler::{ApiShare, ClientPool, PolicyLoop, sdk};
use serde_json::{Value, json};
use support::operator::{FINISHED, TestClock, aws_env, config, spawn_operator, t, temp_dir};
use support::*;

const WITHIN: Duration = Duration::from_secs(90);

/// The six services of `prod`, their team tag, and how many days their
/// tasks are made older than they are (0: young).
const FLEET: [(&str, &str, u32); 6] = [
    ("web", "payments", 8),
    ("api", "payments", 9),
    ("billing", "payments", 0),
    ("search", "search", 10),
    ("cache", "search", 0),
    ("batch", "payments", 0),
];

async fn fleet(sim: &ecs_sim::Simulator, c: &Clients) {
    for (name, team, _) in FLEET {
        create_service(&c.ecs, "prod", name, 2, false).await;
        let arn = describe(&c.ecs, "prod", name)
            .await
            .service_arn()
            .unwrap()
            .to_string();
        c.ecs
            .tag_resource()
            .resource_arn(arn)
            .tags(Tag::builder().key("team").value(team).build())
            .send()
            .await
            .expect("tag the service");
    }
    for (name, _, _) in FLEET {
        wait_steady(&c.ecs, "prod", name, Duration::from_secs(20)).await;
    }
    for (name, _, days) in FLEET {
        if days > 0 {
            sim.age(json!({"cluster": "prod", "service": name, "by": format!("{days}d")}))
                .unwrap();
        }
    }
}

fn policy_spec(max_at_once: u32) -> Value {
    json!({
        "services": {"cluster": "prod", "tags": {"team": "payments"}},
        "maxTaskAge": "7d",
        "budget": {"maxConcurrentServices": max_at_once},
        "template": {"wait": "100ms", "stabilityTimeout": "20s"},
    })
}

async fn requests_by_service(store: &EmbeddedStore) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in store.list_all(Kind::RecycleRequest).await.unwrap() {
        let spec = r.spec.unwrap();
        let service = spec["service"].as_str().unwrap().to_string();
        let phase = r
            .status
            .as_ref()
            .map_or(Value::Null, |s| s["phase"].clone());
        out.entry(service)
            .or_default()
            .push(json!({"name": r.name, "phase": phase, "spec": spec}));
    }
    out
}

/// Waits until every request of the store has finished and there are `count`.
async fn all_finished(store: &EmbeddedStore, count: usize, log: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let by = requests_by_service(store).await;
        let all: Vec<&Value> = by.values().flatten().collect();
        let done = all
            .iter()
            .filter(|r| FINISHED.iter().any(|p| r["phase"] == *p))
            .count();
        if all.len() == count && done == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {count} finished requests within {WITHIN:?}: {by:#?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tasks stopped by StopTask: (when the call was made, service, task ARN).
fn stops(timeline: &Value) -> Vec<(f64, String, String)> {
    let calls = timeline["calls"].as_array().unwrap();
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["stoppedBy"] == "StopTask")
        .map(|t| {
            let call = t["stopCall"].as_u64().unwrap() as usize;
            (
                calls[call]["t"].as_f64().unwrap(),
                t["service"].as_str().unwrap_or_default().to_string(),
                t["taskArn"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The operator's clients against the simulator at `url`, at the default share.
async fn client_pool(url: &str) -> Arc<ClientPool> {
    let sdk_config = sdk::with_timeouts(&sdk_config(url, false).await, Default::default());
    Arc::new(ClientPool::new(
        sdk_config,
        ApiShare::default(),
        Metrics::new(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_recycles_exactly_the_old_services_it_selects_one_at_a_time() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    fleet(&sim, &c).await;
    let originals: BTreeMap<&str, Vec<String>> = {
        let mut m = BTreeMap::new();
        for (name, _, _) in FLEET {
            m.insert(name, running_task_arns(&c.ecs, "prod", name).await);
        }
        m
    };
    let dir = temp_dir("policy-e2e");
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).unwrap();
    // The dry run looks at the fleet and says what the policy would do, writing nothing.
    let manifest = dir.join("policy.yaml");
    let doc = json!({"apiVersion": "ecs-recycler/v1", "kind": "RecyclePolicy",
        "metadata": {"name": "prod-max-age"}, "spec": policy_spec(1)});
    std::fs::write(&manifest, serde_json::to_string(&doc).unwrap()).unwrap();
    let dry = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["apply", "--dry-run", "-f"])
        .arg(&manifest)
        .arg("--store")
        .arg(&path)
        .envs(aws_env(sim.url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    for expected in [
        "recyclepolicy/prod-max-age created (dry run)",
        "4 services match; 2 with tasks older than 7days",
        "prod/api: oldest task 9d0h, would be recycled now (request prod-max-age-api-",
        "prod/web: oldest task 8d0h, due: waits for a free slot in the budget",
        "prod/billing: oldest task 0m, nothing to do until",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!text.contains("search"), "another team's service: {text}");
    assert!(
        store
            .list_all(Kind::RecyclePolicy)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .create(
            Kind::RecyclePolicy,
            "prod-max-age",
            policy_spec(1),
            Utc::now(),
        )
        .await
        .unwrap();
    let log = dir.join("operator.log");
    let mut env = aws_env(sim.url());
    env.push(("ECS_RECYCLER_POLICY_INTERVAL".into(), "1s".into()));
    let mut op = spawn_operator(
        &["--store".into(), path.display().to_string()],
        &env,
        "r1",
        &log,
    );
    all_finished(&store, 2, &log).await;
    // A few more looks: nothing else is due.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by = requests_by_service(&store).await;
    assert_eq!(
        by.keys().collect::<Vec<_>>(),
        ["api", "web"],
        "the two old services of the team, not search (other team), not the young ones: {by:#?}"
    );
    for (service, reqs) in &by {
        assert_eq!(reqs.len(), 1, "{service}: one request: {reqs:#?}");
        assert_eq!(reqs[0]["phase"], "Succeeded", "{reqs:#?}");
        assert_eq!(reqs[0]["spec"]["createdBy"], "RecyclePolicy/prod-max-age");
        assert_eq!(reqs[0]["spec"]["selector"]["olderThan"], "7days");
    }
    assert_eq!(op.sigterm().code(), Some(0));

    let stopped = stops(&sim.timeline());
    let services: BTreeSet<&str> = stopped.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["api", "web"]), "{stopped:?}");
    for (service, arns) in [("api", &originals["api"]), ("web", &originals["web"])] {
        let mine: BTreeSet<&str> = stopped
            .iter()
            .filter(|s| s.1 == service)
            .map(|s| s.2.as_str())
            .collect();
        let old: BTreeSet<&str> = arns.iter().map(String::as_str).collect();
        assert_eq!(
            mine, old,
            "{service}: each old task stopped once, no replacement stopped"
        );
    }
    // Budget 1, oldest first: api (9 days) is done before web (8 days) starts.
    let last_api = stopped
        .iter()
        .filter(|s| s.1 == "api")
        .map(|s| s.0)
        .fold(0.0, f64::max);
    let first_web = stopped
        .iter()
        .filter(|s| s.1 == "web")
        .map(|s| s.0)
        .fold(f64::MAX, f64::min);
    assert!(
        last_api < first_web,
        "one service at a time, oldest first: {stopped:?}"
    );

    let describe = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["describe", "policy", "prod-max-age", "--store"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(describe.status.success(), "{text}");
    for expected in [
        "Services (4 matched):",
        "billing: oldest task",
        "nothing to do until",
        "Finished requests:",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args([
            "get",
            "requests",
            "--policy",
            "prod-max-age",
            "-o",
            "name",
            "--store",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_a_kill_make_one_request_per_service() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    fleet(&sim, &c).await;
    // Four old services of the team now.
    for name in ["billing", "batch"] {
        sim.age(json!({"cluster": "prod", "service": name, "by": "12d"}))
            .unwrap();
    }
    let dir = temp_dir("policy-replicas");
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).unwrap();
    store
        .create(
            Kind::RecyclePolicy,
            "prod-max-age",
            policy_spec(2),
            Utc::now(),
        )
        .await
        .unwrap();
    let mut env = aws_env(sim.url());
    env.push(("ECS_RECYCLER_POLICY_INTERVAL".into(), "1s".into()));
    let store_args = ["--store".into(), path.display().to_string()];
    let log = dir.join("operators.log");
    let mut a = spawn_operator(&store_args, &env, "a", &log);
    let mut b = spawn_operator(&store_args, &env, "b", &log);
    // Kill whoever holds the policy once its first requests exist.
    let deadline = tokio::time::Instant::now() + WITHIN;
    let holder = loop {
        let policy = store
            .get(Kind::RecyclePolicy, "prod-max-age")
            .await
            .unwrap()
            .unwrap();
        let made = !store
            .list_all(Kind::RecycleRequest)
            .await
            .unwrap()
            .is_empty();
        if let (true, Some(lease)) = (made, policy.lease) {
            break lease.holder;
        }
        assert!(tokio::time::Instant::now() < deadline, "no request made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if holder == "a" {
        a.sigkill()
    } else {
        b.sigkill()
    }
    let mut c2 = spawn_operator(&store_args, &env, "c", &log);
    all_finished(&store, 4, &log).await;
    let by = requests_by_service(&store).await;
    assert_eq!(
        by.keys().collect::<Vec<_>>(),
        ["api", "batch", "billing", "web"],
        "{by:#?}"
    );
    for (service, reqs) in &by {
        assert_eq!(
            reqs.len(),
            1,
            "{service} got one request, not two: {reqs:#?}"
        );
        assert_eq!(reqs[0]["phase"], "Succeeded", "{reqs:#?}");
    }
    // Never more than two of the policy's requests at once: the stops of
    // a third service only begin after one of the first two is done.
    let stopped = stops(&sim.timeline());
    let span = |svc: &str| {
        let ts: Vec<f64> = stopped.iter().filter(|s| s.1 == svc).map(|s| s.0).collect();
        (
            ts.iter().cloned().fold(f64::MAX, f64::min),
            ts.iter().cloned().fold(0.0, f64::max),
        )
    };
    let spans: Vec<(f64, f64)> = ["api", "batch", "billing", "web"].map(span).to_vec();
    for (start, _) in &spans {
        let overlapping = spans
            .iter()
            .filter(|(s, e)| s <= start && start <= e)
            .count();
        assert!(
            overlapping <= 2,
            "more than two services recycled at once: {spans:?}"
        );
    }
    let _ = c2.sigterm();
    if holder == "a" {
        let _ = b.sigterm();
    } else {
        let _ = a.sigterm();
    }
}

async fn made(store: &EmbeddedStore) -> Vec<String> {
    let mut names: Vec<String> = store
        .list_all(Kind::RecycleRequest)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_waits_for_the_window_skips_blackout_dates_and_finishes_what_a_crash_left() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    fleet(&sim, &c).await;
    let dir = temp_dir("policy-window");
    let store = Arc::new(EmbeddedStore::open(dir.join("store.json")).unwrap());
    // Weeks ahead of the simulator's clock every task is older than 7 days.
    let start = t("2027-01-04T00:00:00Z");
    let clock = Arc::new(TestClock(Mutex::new(start)));
    let mut spec = policy_spec(1);
    spec["window"] =
        json!({"schedule": "0 2 * * *", "duration": "3h", "timeZone": "Europe/Berlin"});
    spec["blackout"] = json!(["2027-01-05"]);
    store
        .create(Kind::RecyclePolicy, "nightly", spec, start)
        .await
        .unwrap();
    let pool = client_pool(sim.url()).await;
    let policies = PolicyLoop::new(
        store.clone(),
        pool.clone(),
        config("a").policy_settings(),
        clock.clone(),
    );
    let at = |s: &str| *clock.0.lock() = t(s);

    // 00:59:59 UTC on Monday the 4th is 01:59:59 in Berlin: not yet.
    at("2027-01-04T00:59:59Z");
    policies.tick().await.unwrap();
    assert!(made(&store).await.is_empty());
    let status = store
        .get(Kind::RecyclePolicy, "nightly")
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("next opens 2027-01-04 02:00 CET"),
        "{status:#}"
    );
    // 01:00 UTC: 02:00 in Berlin, the window opens; the oldest service of
    // the team first (search is older, but another team's).
    at("2027-01-04T01:00:00Z");
    policies.tick().await.unwrap();
    assert_eq!(made(&store).await, ["nightly-api-202701040100"]);
    let first = store
        .get(Kind::RecycleRequest, "nightly-api-202701040100")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.spec.unwrap()["notAfter"], "2027-01-04T04:00:00+00:00");
    // The 5th in Berlin is a blackout date: its window passes without a start,
    // even once the first request is out of the way.
    store
        .delete(Kind::RecycleRequest, "nightly-api-202701040100")
        .await
        .unwrap();
    at("2027-01-05T01:30:00Z");
    policies.tick().await.unwrap();
    assert!(made(&store).await.is_empty(), "nothing on a blackout date");

    // A crash between writing the decision and creating the request: the
    // status says pending; a new loop (another replica) creates exactly it.
    let record = store
        .get(Kind::RecyclePolicy, "nightly")
        .await
        .unwrap()
        .unwrap();
    let mut status = record.status.clone().unwrap();
    let pending_spec = json!({"cluster": "prod", "service": "api", "wait": "100ms",
        "selector": {"olderThan": "7days"}, "createdBy": "RecyclePolicy/nightly"});
    status["pending"] = json!([{"name": "nightly-api-202701050130", "cluster": "prod",
        "service": "api", "madeAt": "2027-01-05T01:30:00Z", "spec": pending_spec}]);
    // As the crashed replica did: hold the lease, write the decision, die.
    let crash = t("2027-01-05T01:30:00Z");
    store
        .release_lease(Kind::RecyclePolicy, "nightly", "a")
        .await
        .unwrap();
    assert!(
        store
            .acquire_lease(
                Kind::RecyclePolicy,
                "nightly",
                "crashed",
                crash,
                crash + chrono::Duration::seconds(15)
            )
            .await
            .unwrap()
    );
    store
        .write_status(
            Kind::RecyclePolicy,
            "nightly",
            ecs_recycler::store::StatusWrite {
                expected_version: record.version,
                status,
                active: true,
                holder: "crashed".into(),
                now: crash,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let other = PolicyLoop::new(
        store.clone(),
        pool,
        config("b").policy_settings(),
        clock.clone(),
    );
    at("2027-01-05T02:00:00Z");
    other.tick().await.unwrap();
    other.tick().await.unwrap();
    assert_eq!(
        made(&store).await,
        ["nightly-api-202701050130"],
        "the pending decision, once"
    );
    let status = store
        .get(Kind::RecyclePolicy, "nightly")
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert!(status.get("pending").is_none(), "{status:#}");
    assert_eq!(
        status["requests"][0]["name"], "nightly-api-202701050130",
        "{status:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_that_cannot_be_looked_at_is_named_in_the_status_and_tried_again_later() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 1, false).await;
    sim.configure(json!({"throttle": {"deny": ["ListServices"]}}))
        .unwrap();
    let dir = temp_dir("policy-denied");
    let store = Arc::new(EmbeddedStore::open(dir.join("store.json")).unwrap());
    let start = t("2027-01-04T00:00:00Z");
    let clock = Arc::new(TestClock(Mutex::new(start)));
    store
        .create(Kind::RecyclePolicy, "fleet", policy_spec(1), start)
        .await
        .unwrap();
    let pool = client_pool(sim.url()).await;
    let policies = PolicyLoop::new(
        store.clone(),
        pool.clone(),
        config("a").policy_settings(),
        clock.clone(),
    );
    let list_calls = || {
        sim.timeline()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["op"] == "ListServices")
            .count()
    };
    policies.tick().await.unwrap();
    let status = store
        .get(Kind::RecyclePolicy, "fleet")
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("could not look at the fleet:") && message.contains("ecs:ListServices"),
        "the cause, with the IAM action: {message}"
    );
    let after_first = list_calls();
    // Ticks in the same instant do not call again; a later one does.
    policies.tick().await.unwrap();
    policies.tick().await.unwrap();
    assert_eq!(
        list_calls(),
        after_first,
        "held back, not retried every tick"
    );
    *clock.0.lock() = start + chrono::Duration::minutes(5);
    sim.configure(json!({"throttle": {"deny": []}})).unwrap();
    policies.tick().await.unwrap();
    assert!(list_calls() > after_first);
    let metrics = pool.metrics().render();
    assert!(
        metrics.contains("ecs_recycler_policy_looks_total{outcome=\"failed\"} 1")
            && metrics.contains("ecs_recycler_policy_looks_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    let status = store
        .get(Kind::RecyclePolicy, "fleet")
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status["matched"], 0, "web has no team tag: {status:#}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("0 services match"),
        "{status:#}"
    );
}
