//! Schedules end to end. Two schedule loops race over one schedule on a
//! shared store, driven by a test clock whose steps outlast the leases (so
//! both contend at every slot): exactly one request per slot. Then two
//! operator processes over one schedule with the simulator: one request
//! for the slot, recycled once; and records written straight into the
//! store with bad input are marked invalid while the rest carries on.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use chrono::Utc;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use ecs_recycler::{Scheduler, request_name};
use serde_json::{Value, json};
use support::operator::{TestClock, aws_env, config, spawn_operator, t, temp_dir, wait_phase};

async fn schedule_status<S: Store>(store: &S, name: &str) -> Value {
    store
        .get(Kind::RecycleSchedule, name)
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap_or(Value::Null)
}

/// Two schedule loops named `ids` tick together over one schedule, a
/// minute per step from 04:00 to 08:00 UTC on the night New York's clock
/// goes back; every step outlasts the 15s leases.
async fn race(ids: (&str, &str), label: &str) {
    let dir = temp_dir(label);
    let store = Arc::new(EmbeddedStore::open(dir.join("store.json")).unwrap());
    let start = t("2026-11-01T04:00:00Z");
    let clock = Arc::new(TestClock(Mutex::new(start)));
    store
        .create(
            Kind::RecycleSchedule,
            "nightly",
            json!({"schedule": "*/10 * * * *", "timeZone": "America/New_York",
                   "concurrencyPolicy": "Allow",
                   "template": {"cluster": "prod", "service": "web"}}),
            start,
        )
        .await
        .unwrap();
    let a = Scheduler::new(
        store.clone(),
        config(ids.0).schedule_settings(),
        clock.clone(),
    );
    let b = Scheduler::new(
        store.clone(),
        config(ids.1).schedule_settings(),
        clock.clone(),
    );
    let mut now = start;
    while now <= t("2026-11-01T08:00:00Z") {
        *clock.0.lock() = now;
        let (x, y) = tokio::join!(a.tick(), b.tick());
        x.unwrap();
        y.unwrap();
        now += chrono::Duration::minutes(1);
    }
    let made: BTreeSet<String> = store
        .list_all(Kind::RecycleRequest)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    let mut expected = BTreeSet::new();
    let mut slot = start;
    while slot <= t("2026-11-01T08:00:00Z") {
        expected.insert(request_name("nightly", slot));
        slot += chrono::Duration::minutes(10);
    }
    assert_eq!(
        made, expected,
        "{ids:?}: one request per slot, none twice, none missed"
    );
    let status = schedule_status(store.as_ref(), "nightly").await;
    assert_eq!(status["lastRequest"], "nightly-202611010800");
    assert_eq!(status["nextScheduleTime"], "2026-11-01T08:10:00Z");
    let tracked: BTreeSet<String> = status["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tracked, expected,
        "{ids:?}: the status knows every request once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_racing_make_exactly_one_request_per_slot() {
    race(("a", "b"), "schedule-race").await;
    // Sharing one replica id, both hold the lease at once: only the
    // deterministic name, the conditional create and the versioned status
    // write keep the slot's request single.
    race(("twin", "twin"), "schedule-race-twins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_schedule_is_marked_failed_and_picked_up_again_once_fixed() {
    let dir = temp_dir("schedule-invalid");
    let store = Arc::new(EmbeddedStore::open(dir.join("store.json")).unwrap());
    let start = t("2026-05-01T00:00:00Z");
    let clock = Arc::new(TestClock(Mutex::new(start)));
    let good = json!({"schedule": "0 3 * * *", "template": {"cluster": "prod", "service": "web"}});
    store
        .create(
            Kind::RecycleSchedule,
            "bad",
            json!({"schedule": "0 25 * * *", "timeZone": "Mars/Base",
            "template": {"cluster": "prod", "service": "web", "batchSize": 500}}),
            start,
        )
        .await
        .unwrap();
    store
        .create(Kind::RecycleSchedule, "good", good.clone(), start)
        .await
        .unwrap();
    let s = Scheduler::new(
        store.clone(),
        config("a").schedule_settings(),
        clock.clone(),
    );
    *clock.0.lock() = t("2026-05-01T03:00:30Z");
    s.tick().await.unwrap();
    let bad = schedule_status(store.as_ref(), "bad").await;
    assert_eq!(bad["phase"], "Failed");
    let message = bad["message"].as_str().unwrap();
    for expected in [
        "invalid record: spec.schedule: \"0 25 * * *\" is not a cron expression",
        "spec.timeZone: \"Mars/Base\" is not an IANA time zone",
        "spec.template.batchSize: 500 is not allowed",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    assert_eq!(
        schedule_status(store.as_ref(), "good").await["lastRequest"],
        "good-202605010300",
        "the good schedule carries on"
    );
    // Marked once: another look writes nothing.
    let version = store
        .get(Kind::RecycleSchedule, "bad")
        .await
        .unwrap()
        .unwrap()
        .version;
    s.tick().await.unwrap();
    assert_eq!(
        store
            .get(Kind::RecycleSchedule, "bad")
            .await
            .unwrap()
            .unwrap()
            .version,
        version
    );
    store
        .update_spec(Kind::RecycleSchedule, "bad", version, good)
        .await
        .unwrap();
    *clock.0.lock() = t("2026-05-01T03:01:00Z");
    s.tick().await.unwrap();
    let fixed = schedule_status(store.as_ref(), "bad").await;
    assert_eq!(fixed["phase"], "Active", "{fixed:#}");
    assert_eq!(fixed["nextScheduleTime"], "2026-05-02T03:00:00Z");
}

/// Two schedules, one of whose status `break_status` makes unreadable: it
/// is marked Failed with the reason, once, and the other carries on.
async fn an_unreadable_status_fails_once<S: Store>(
    store: Arc<S>,
    break_status: impl std::future::Future<Output = ()>,
) {
    let start = t("2026-05-01T00:00:00Z");
    let clock = Arc::new(TestClock(Mutex::new(start)));
    let spec = json!({"schedule": "0 3 * * *", "template": {"cluster": "prod", "service": "web"}});
    for name in ["broken", "fine"] {
        store
            .create(Kind::RecycleSchedule, name, spec.clone(), start)
            .await
            .unwrap();
    }
    break_status.await;
    let s = Scheduler::new(
        store.clone(),
        config("a").schedule_settings(),
        clock.clone(),
    );
    *clock.0.lock() = t("2026-05-01T01:00:00Z");
    s.tick().await.unwrap();
    let broken = schedule_status(store.as_ref(), "broken").await;
    assert_eq!(broken["phase"], "Failed", "{broken:#}");
    let message = broken["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid record: status: cannot be read")
            && message.contains("{phase: Active"),
        "{message}"
    );
    assert_eq!(
        schedule_status(store.as_ref(), "fine").await["phase"],
        "Active",
        "the other schedule carries on"
    );
    // The failed status is the operator's own, readable: the next look
    // goes on from it, with the failure kept among the events.
    s.tick().await.unwrap();
    let after = schedule_status(store.as_ref(), "broken").await;
    assert_eq!(after["phase"], "Active", "{after:#}");
    assert_eq!(after["nextScheduleTime"], "2026-05-01T03:00:00Z");
    let reasons: Vec<&str> = after["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["Invalid", "Valid"], "{after:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_whose_status_cannot_be_read_is_marked_failed_with_the_reason_once() {
    // The embedded store, edited by hand.
    let path = temp_dir("schedule-unreadable").join("store.json");
    let store = Arc::new(EmbeddedStore::open(&path).unwrap());
    an_unreadable_status_fails_once(store, async {
        let mut file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        file["records"]["RecycleSchedule/broken"]["status"] = json!("{phase: Active");
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    })
    .await;

    // DynamoDB, written by another client.
    let moto = tokio::task::spawn_blocking(support::moto::Moto::start)
        .await
        .unwrap();
    let sdk = support::sdk_config(&moto.url, true).await;
    let store = Arc::new(ecs_recycler::store::dynamo::DynamoStore::new(
        &sdk,
        "schedules",
    ));
    store.create_table().await.unwrap();
    let raw = aws_sdk_dynamodb::Client::new(&sdk);
    an_unreadable_status_fails_once(store, async {
        raw.update_item()
            .table_name("schedules")
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("RecycleSchedule/broken".into()),
            )
            .update_expression("SET #status = :broken")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":broken",
                aws_sdk_dynamodb::types::AttributeValue::S("{phase: Active".into()),
            )
            .send()
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_operators_over_one_schedule_make_and_run_one_request_for_the_slot() {
    let (sim, _c) = support::steady_service("prod", "web", 2, false).await;
    let since = sim.now();
    let dir = temp_dir("schedule-operators");
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).unwrap();
    let log = dir.join("operators.log");
    let store_args = ["--store".to_string(), path.display().to_string()];
    let env = aws_env(sim.url());
    let _r1 = spawn_operator(&store_args, &env, "r1", &log);
    let _r2 = spawn_operator(&store_args, &env, "r2", &log);
    // Made three minutes ago: the last minute's slot is due at once (no
    // startingDeadline), so the operators race for it now.
    let created = Utc::now() - chrono::Duration::minutes(3);
    store
        .create(
            Kind::RecycleSchedule,
            "minutely",
            json!({"schedule": "* * * * *", "window": "30m",
                   "template": {"cluster": "prod", "service": "web", "wait": "0s", "stabilityTimeout": "1m"}}),
            created,
        )
        .await
        .unwrap();
    // Bad input written straight into the store: each marked invalid, nothing stops.
    store
        .create(
            Kind::RecycleSchedule,
            "broken",
            json!({"schedule": "every night",
            "template": {"cluster": "prod", "service": "web"}}),
            Utc::now(),
        )
        .await
        .unwrap();
    store
        .create(Kind::RecycleRequest, "bad-notify", json!({"cluster": "prod", "service": "web",
            "notify": {"webhook": {"url": "http://hooks.example.com/x"}, "email": {"to": ["nobody"]}}}), Utc::now())
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let first = loop {
        let status = schedule_status(&store, "minutely").await;
        if let Some(name) = status["lastRequest"].as_str() {
            break name.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request made: {status:#}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = wait_phase(
        &store,
        &first,
        &["Succeeded", "Failed"],
        Duration::from_secs(60),
        &log,
    )
    .await;
    assert_eq!(done["phase"], "Succeeded", "{done:#}");
    let request = store
        .get(Kind::RecycleRequest, &first)
        .await
        .unwrap()
        .unwrap();
    assert!(
        request.spec.unwrap()["notAfter"].is_string(),
        "the window is the request's notAfter"
    );

    // One request per slot, each a distinct minute, and each planned task
    // stopped once: the slot was recycled once, not once per replica.
    let made: Vec<String> = store
        .list_all(Kind::RecycleRequest)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .filter(|n| n.starts_with("minutely-"))
        .collect();
    assert!(!made.is_empty() && made.len() <= 2, "{made:?}");
    let facts = support::operator::run_facts(&sim.timeline(), "prod", "web", since);
    let stopped: BTreeSet<&String> = facts.stopped_by_stop_task.iter().collect();
    assert_eq!(
        stopped.len(),
        facts.stopped_by_stop_task.len(),
        "no task stopped twice"
    );
    assert_eq!(done["stopped"].as_array().unwrap().len(), 2, "{done:#}");
    assert!(
        (2..=2 * made.len()).contains(&facts.stopped_by_stop_task.len()),
        "{facts:?}"
    );

    let status = schedule_status(&store, "minutely").await;
    assert!(
        status["lastScheduleTime"].is_string() && status["nextScheduleTime"].is_string(),
        "{status:#}"
    );
    let broken = schedule_status(&store, "broken").await;
    assert_eq!(broken["phase"], "Failed", "{broken:#}");
    assert!(
        broken["message"]
            .as_str()
            .unwrap()
            .contains("spec.schedule: \"every night\" is not a cron expression")
    );
    let bad = wait_phase(
        &store,
        "bad-notify",
        &["Failed"],
        Duration::from_secs(20),
        &log,
    )
    .await;
    let message = bad["message"].as_str().unwrap();
    assert!(
        message.contains("spec.notify.webhook.url: \"hooks.example.com\" is not https")
            && message.contains("spec.notify.email.to[0]: \"nobody\" is not an email address"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_be_read_does_not_hold_its_schedule_back() {
    let path = temp_dir("schedule-corrupt-request").join("store.json");
    let store = Arc::new(EmbeddedStore::open(&path).unwrap());
    let start = t("2026-05-01T00:00:00Z");
    let clock = Arc::new(TestClock(Mutex::new(start)));
    store
        .create(
            Kind::RecycleSchedule,
            "nightly",
            json!({"schedule": "*/10 * * * *", "template": {"cluster": "prod", "service": "web"}}),
            start,
        )
        .await
        .unwrap();
    let s = Scheduler::new(
        store.clone(),
        config("a").schedule_settings(),
        clock.clone(),
    );
    *clock.0.lock() = t("2026-05-01T00:10:05Z");
    s.tick().await.unwrap();
    let first = request_name("nightly", t("2026-05-01T00:10:00Z"));
    assert!(
        store
            .get(Kind::RecycleRequest, &first)
            .await
            .unwrap()
            .is_some()
    );
    // Its version overwritten by another client: no replica can step it.
    let mut file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["records"][format!("RecycleRequest/{first}")]["version"] = json!("seven");
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let store = Arc::new(EmbeddedStore::open(&path).unwrap());
    assert!(store.get(Kind::RecycleRequest, &first).await.is_err());
    let s = Scheduler::new(
        store.clone(),
        config("a").schedule_settings(),
        clock.clone(),
    );
    *clock.0.lock() = t("2026-05-01T00:20:05Z");
    s.tick().await.unwrap();
    let status = schedule_status(store.as_ref(), "nightly").await;
    assert_eq!(
        status["lastRequest"],
        request_name("nightly", t("2026-05-01T00:20:00Z")),
        "the next slot is run (Forbid no longer waits on the unreadable one): {status:#}"
    );
    assert_eq!(status["requests"][0]["name"], first.as_str());
    assert_eq!(status["requests"][0]["phase"], "Failed", "{status:#}");
}
