//! Alarm gates end to end: the operator binary recycles a service on the
//! simulator while a CloudWatch alarm on moto's server (reached through
//! `AWS_ENDPOINT_URL_CLOUDWATCH`) goes into ALARM mid-run. Checked from the
//! simulator's timeline against the instants the alarm changed: no StopTask
//! while the run is held, and every invariant of the run.

use crate::support;

use std::path::Path;
use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::moto::Moto;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);
const ALARM: &str = "web-5xx-rate";

async fn cloudwatch(moto: &Moto) -> aws_sdk_cloudwatch::Client {
    support::alarms::alarm(moto, ALARM).await
}

async fn set(cw: &aws_sdk_cloudwatch::Client, state: StateValue, reason: &str) {
    support::alarms::set_alarm(cw, ALARM, state, reason).await;
}

/// A request on a steady service of 3 tasks, with `gate` as its alarms and
/// `notify` (if any) as its notifications, and the operator working on it.
async fn start(moto: &Moto, label: &str, gate: Value, notify: Option<Value>) -> RequestRun {
    let mut spec = json!({"cluster": "prod", "service": "web", "wait": "300ms",
                          "stabilityTimeout": "20s", "gates": {"alarms": gate}});
    if let Some(notify) = notify {
        spec["notify"] = notify;
    }
    let env = vec![("AWS_ENDPOINT_URL_CLOUDWATCH".to_string(), moto.url.clone())];
    RequestRun::start(label, 3, spec, env).await
}

/// The status once `ready` holds of it.
async fn status_when(
    store: &EmbeddedStore,
    log: &Path,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let record = store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .unwrap();
        let status = record.status.clone().unwrap_or(Value::Null);
        if ready(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen; status: {status:#}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stopped(status: &Value) -> usize {
    status["stopped"].as_array().map_or(0, Vec::len)
}

/// StopTask calls the simulator answered between `from` and `to` (its clock).
fn stops_between(timeline: &Value, from: f64, to: f64) -> Vec<f64> {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "StopTask" && c.get("error").is_none())
        .map(|c| c["t"].as_f64().unwrap())
        .filter(|t| *t > from && *t < to)
        .collect()
}

/// Every planned task stopped once, no replacement stopped, running never
/// below the original desired count, desired count back where it was.
fn invariants_hold(run: &RequestRun, all_stopped: bool) {
    let facts = run_facts(&run.sim.timeline(), "prod", "web", run.since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    stopped.dedup();
    assert_eq!(
        stopped.len(),
        facts.stopped_by_stop_task.len(),
        "each task stopped at most once: {facts:?}"
    );
    assert!(
        stopped.iter().all(|t| run.planned.contains(t)),
        "only planned tasks stopped: {facts:?}"
    );
    if all_stopped {
        let mut planned = run.planned.clone();
        planned.sort();
        assert_eq!(stopped, planned, "every planned task stopped");
    }
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert!(facts.min_running >= 3, "running never below 3: {facts:?}");
    assert_eq!(facts.final_desired, 3, "capacity restored: {facts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_mid_run_holds_every_stop_across_a_crash_until_it_is_ok_again() {
    let moto = Moto::start();
    let cw = cloudwatch(&moto).await;
    let hooks = support::hooks::Receiver::start().await;
    let notify = json!({"webhook": {"url": hooks.url("notify")}});
    let mut run = start(&moto, "gate-pause", json!({"names": [ALARM]}), Some(notify)).await;
    status_when(&run.store, &run.log, "the first batch", |s| stopped(s) >= 1).await;
    set(
        &cw,
        StateValue::Alarm,
        "Threshold Crossed: 1 datapoint [9.0] was greater than the threshold (5.0)",
    )
    .await;
    let held = status_when(&run.store, &run.log, "the hold", |s| {
        !s["alarmHold"].is_null()
    })
    .await;
    let held_at = run.sim.now();
    let message = held["message"].as_str().unwrap();
    assert!(
        message.contains(
            "held by alarm \"web-5xx-rate\" in ALARM: Threshold Crossed: 1 datapoint [9.0]"
        ),
        "the status names the alarm and its reason: {message}"
    );
    let done_when_held = stopped(&held);
    assert!(done_when_held < 3, "held before the last batch: {held:#}");
    // Several looks go by while the alarm fires.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = status_when(&run.store, &run.log, "the hold", |_| true).await;
    assert!(!still["alarmHold"].is_null(), "still held: {still:#}");
    assert_eq!(
        stopped(&still),
        done_when_held,
        "no batch while held: {still:#}"
    );
    // Killed while held: another replica takes over and holds too.
    run.operator.sigkill();
    run.operator = spawn_operator(&run.args, &run.env, "r2", &run.log);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = status_when(&run.store, &run.log, "the hold", |_| true).await;
    assert_eq!(
        after["alarmHold"]["since"], held["alarmHold"]["since"],
        "the same hold: {after:#}"
    );
    assert_eq!(
        stopped(&after),
        done_when_held,
        "no batch after the restart: {after:#}"
    );
    // r1 is gone: the run ending below is r2's.
    let cleared_at = run.sim.now();
    set(&cw, StateValue::Ok, "Threshold Crossed: 0 datapoints").await;
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");

    let timeline = run.sim.timeline();
    assert_eq!(
        stops_between(&timeline, held_at, cleared_at),
        Vec::<f64>::new(),
        "no StopTask while the alarm held the run"
    );
    let first_after = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "StopTask")
        .map(|c| c["t"].as_f64().unwrap())
        .find(|t| *t > cleared_at)
        .expect("the run went on after the alarm cleared");
    assert!(
        first_after - cleared_at < 2.0,
        "resumed within a look or two of the alarm going OK: {:.2}s",
        first_after - cleared_at
    );
    invariants_hold(&run, true);
    let reasons: Vec<&str> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"AlarmHeld") && reasons.contains(&"AlarmCleared"),
        "{reasons:?}"
    );
    assert!(status["alarmHold"].is_null());
    // The webhook heard of the hold, naming the alarm, and of its end.
    let deadline = tokio::time::Instant::now() + WITHIN;
    let events = loop {
        let posts = hooks.posts("notify");
        let events: Vec<String> = posts
            .iter()
            .map(|p| p["event"].as_str().unwrap_or_default().to_string())
            .collect();
        if events.iter().any(|e| e == "succeeded") || tokio::time::Instant::now() > deadline {
            let paused = posts.iter().find(|p| p["event"] == "paused");
            assert!(
                paused.is_some_and(|p| p["message"]
                    .as_str()
                    .unwrap()
                    .contains("held by alarm \"web-5xx-rate\"")),
                "{posts:#?}"
            );
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Delivery is at least once: a notice in flight when the operator was
    // killed may come twice.
    let mut events = events;
    events.dedup();
    assert_eq!(events, ["started", "paused", "resumed", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_with_abort_ends_the_run_failed_with_capacity_restored() {
    let moto = Moto::start();
    let cw = cloudwatch(&moto).await;
    let mut run = start(
        &moto,
        "gate-abort",
        json!({"prefix": "web-", "onAlarm": "abort"}),
        None,
    )
    .await;
    status_when(&run.store, &run.log, "the first batch", |s| stopped(s) >= 1).await;
    set(
        &cw,
        StateValue::Alarm,
        "Threshold Crossed: 1 datapoint [12.0]",
    )
    .await;
    let alarmed_at = run.sim.now();
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains(
            "aborted by alarm \"web-5xx-rate\" in ALARM: Threshold Crossed: 1 datapoint [12.0]"
        ),
        "{message}"
    );
    let timeline = run.sim.timeline();
    // A stop decided from the look before the alarm fired may land just after it.
    let late = stops_between(&timeline, alarmed_at, f64::MAX);
    assert!(late.len() <= 1, "no batch after the abort: {late:?}");
    assert!(
        stopped(&status) < 3,
        "the run did not get through: {status:#}"
    );
    invariants_hold(&run, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_alarm_that_does_not_exist_fails_the_run_before_anything_changes() {
    let moto = Moto::start();
    let _cw = cloudwatch(&moto).await;
    let mut run = start(
        &moto,
        "gate-missing",
        json!({"names": [ALARM, "web-p99-latncy"]}),
        None,
    )
    .await;
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("\"web-p99-latncy\" do not exist"),
        "{message}"
    );
    let facts = run_facts(&run.sim.timeline(), "prod", "web", run.since);
    assert!(
        facts.stopped_by_stop_task.is_empty() && facts.max_desired <= 3 && facts.final_desired == 3,
        "nothing changed: {facts:?}"
    );
}

/// `ecs-recycler apply` with `args`, on the store at `store`: (exit code, stdout, stderr).
fn apply(env: &[(String, String)], store: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .arg("apply")
        .args(args)
        .arg("--store")
        .arg(store)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("ECS_RECYCLER_TABLE")
        .output()
        .expect("run ecs-recycler apply");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_missing_gate_alarm_and_the_dry_run_shows_each_alarm() {
    let moto = Moto::start();
    let cw = cloudwatch(&moto).await;
    set(
        &cw,
        StateValue::Alarm,
        "Threshold Crossed: 1 datapoint [9.0]",
    )
    .await;
    let (sim, _c) = steady_service("prod", "web", 2, true).await;
    let dir = temp_dir("gate-apply");
    let store = dir.join("store.json");
    let mut env = aws_env(sim.url());
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH".into(), moto.url.clone()));
    let write = |file: &str, names: &str| {
        let path = dir.join(file);
        std::fs::write(
            &path,
            format!(
                "apiVersion: ecs-recycler/v1\nkind: RecycleRequest\nmetadata:\n  name: rotate\nspec:\n  cluster: prod\n  service: web\n  gates:\n    alarms:\n      names: [{names}]\n"
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let missing = write("missing.yaml", "web-5xx-rate, web-p99-latncy");
    let (code, _, stderr) = apply(&env, &store, &["-f", &missing]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("cannot be applied: spec.gates.alarms.names: gate alarm(s) \"web-p99-latncy\" do not exist"),
        "{stderr}"
    );
    let written = EmbeddedStore::open(&store).unwrap();
    assert!(
        written
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .is_none(),
        "nothing written"
    );

    let good = write("good.yaml", "web-5xx-rate");
    let (code, stdout, stderr) = apply(&env, &store, &["-f", &good, "--dry-run"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for expected in [
        "Gate: alarms \"web-5xx-rate\"; read with cloudwatch:DescribeAlarms before the run starts, before each batch and while a batch waits",
        "onAlarm: pause",
        "\"web-5xx-rate\": ALARM: Threshold Crossed: 1 datapoint [9.0]",
        "Now: the run would hold now: held by alarm \"web-5xx-rate\" in ALARM",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    let (code, stdout, stderr) = apply(&env, &store, &["-f", &good]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let written = EmbeddedStore::open(&store).unwrap();
    assert!(
        written
            .get(Kind::RecycleRequest, "rotate")
            .await
            .unwrap()
            .is_some()
    );
}
