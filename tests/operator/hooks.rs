//! Lifecycle hooks end to end: the operator binary recycles a service on
//! the simulator while a hook receiver started by the test answers each
//! call as scripted (failed, inProgress, never, held while the operator is
//! killed). Checked from the simulator's timeline: which StopTask calls
//! were made, the capacity, the desired count at the end.

use crate::support;

use std::time::Duration;

use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::lifecycle::{Call, HookReceiver, Reply};
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);
const SECRET: &str = "s3cret-hook-key-never-stored";

/// A request on a steady service of `tasks` tasks (one a batch) with one
/// hook, the operator working on it with the hook's secret in its environment.
async fn start(label: &str, tasks: i32, hook: Value) -> RequestRun {
    start_with(label, tasks, hook, json!({}), Vec::new()).await
}

/// The same, with `extra` fields in the spec and `more_env` for the operator.
async fn start_with(
    label: &str,
    tasks: i32,
    hook: Value,
    extra: Value,
    more_env: Vec<(String, String)>,
) -> RequestRun {
    let spec = json!({"cluster": "prod", "service": "web", "wait": "0s",
                      "stabilityTimeout": "20s", "hooks": [hook]});
    let mut spec = spec;
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let mut env = vec![("SMOKE_HOOK_SECRET".to_string(), SECRET.to_string())];
    env.extend(more_env);
    RequestRun::start(label, tasks, spec, env).await
}

fn hook(url: &str, at: &[&str], extra: Value) -> Value {
    let mut h = json!({"url": url, "at": at, "secret": {"env": "SMOKE_HOOK_SECRET"},
                       "timeout": "500ms", "deadline": "30s"});
    for (k, v) in extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    h
}

fn succeeded() -> Reply {
    Reply::Verdict(json!({"status": "succeeded", "message": "smoke passed"}))
}

fn stop_calls(timeline: &Value) -> usize {
    timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "StopTask" && c.get("error").is_none())
        .count()
}

async fn record_text(store: &EmbeddedStore) -> String {
    let record = store
        .get(Kind::RecycleRequest, "rotate")
        .await
        .unwrap()
        .unwrap();
    format!("{:?} {}", record.spec, record.status.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_answers_failed_at_the_third_batch_ends_the_run_with_its_message() {
    let receiver = HookReceiver::start(SECRET, |_, call| {
        if call.body["batch"] == 3 {
            Reply::Verdict(json!({"status": "failed", "message": "smoke test: 5xx rate 12%"}))
        } else {
            succeeded()
        }
    })
    .await;
    let notices = support::hooks::Receiver::start().await;
    let notify = json!({"notify": {"webhook": {"url": notices.url("notify")}}});
    let mut run = start_with(
        "hook-failed",
        4,
        hook(&receiver.url, &["beforeBatch", "afterBatch"], json!({})),
        notify,
        Vec::new(),
    )
    .await;
    let status = wait_phase(&run.store, "rotate", &FINISHED, WITHIN, &run.log).await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("aborted by hook 127.0.0.1 at beforeBatch of batch 3 answered failed: smoke test: 5xx rate 12%"),
        "{message}"
    );
    assert_eq!(
        stop_calls(&run.sim.timeline()),
        2,
        "no StopTask after the hook failed"
    );
    run.invariants_hold(4, 4);
    let calls = receiver.calls();
    assert!(
        calls.iter().all(|c| c.signed),
        "every call signed: {calls:#?}"
    );
    let points: Vec<String> = calls
        .iter()
        .map(|c| format!("{}/{}", c.body["point"].as_str().unwrap(), c.body["batch"]))
        .collect();
    assert_eq!(
        points,
        [
            "beforeBatch/1",
            "afterBatch/1",
            "beforeBatch/2",
            "afterBatch/2",
            "beforeBatch/3"
        ]
    );
    let first = &calls[0].body;
    assert_eq!(first["request"], "rotate");
    assert_eq!(first["cluster"], "prod");
    assert_eq!(first["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(first["idempotencyKey"], calls[0].key.as_str());
    assert_eq!(
        calls[1].body["replacements"].as_array().unwrap().len(),
        1,
        "{:#}",
        calls[1].body
    );
    assert!(
        !record_text(&run.store).await.contains(SECRET),
        "the secret is never stored"
    );
    // The failed notice names the hook and its message.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let posts = notices.posts("notify");
        if let Some(failed) = posts.iter().find(|p| p["event"] == "failed") {
            let text = failed.to_string();
            assert!(
                text.contains("hook 127.0.0.1 at beforeBatch of batch 3 answered failed: smoke test: 5xx rate 12%"),
                "{failed:#}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed notice: {posts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        run.operator.sigterm().success(),
        "operator exits 0 on SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_in_progress_twice_holds_the_batch_then_it_goes_on() {
    let receiver = HookReceiver::start(SECRET, |before, call| {
        let asked = before.iter().filter(|c| c.key == call.key).count();
        if call.body["batch"] == 2 && asked < 2 {
            Reply::Verdict(
                json!({"status": "inProgress", "message": "smoke running", "retryAfter": "1s"}),
            )
        } else {
            succeeded()
        }
    })
    .await;
    let mut run = start(
        "hook-in-progress",
        3,
        hook(&receiver.url, &["beforeBatch"], json!({})),
    )
    .await;
    let batch_two = |calls: &[Call]| calls.iter().filter(|c| c.body["batch"] == 2).count();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while batch_two(&receiver.calls()) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no call for batch 2"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stops_at_first = stop_calls(&run.sim.timeline());
    assert_eq!(stops_at_first, 1, "batch 1 stopped, batch 2 not");
    while batch_two(&receiver.calls()) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second call for batch 2"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stop_calls(&run.sim.timeline()),
        1,
        "no StopTask while the hook is in progress"
    );
    // Counted in /metrics by answer.
    let addr = logged_http_addr(&run.log, WITHIN).await;
    let (code, body) = ecs_recycler::operator::http_get(&format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"ecs_recycler_hook_calls_total{outcome="in_progress"} 2"#),
        "{body}"
    );
    let held = record_text(&run.store).await;
    assert!(
        held.contains("waiting for hook 127.0.0.1 at beforeBatch of batch 2"),
        "{held}"
    );
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let calls: Vec<Call> = receiver
        .calls()
        .into_iter()
        .filter(|c| c.body["batch"] == 2)
        .collect();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls.iter().all(|c| c.key == calls[0].key),
        "one key for the point"
    );
    let waited = calls[2].at - calls[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retryAfter respected twice: {waited:?}"
    );
    assert_eq!(stop_calls(&run.sim.timeline()), 3);
    run.invariants_hold(3, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_never_answers_meets_its_deadline_and_on_timeout_decides() {
    for (on_timeout, phase) in [("fail", "Failed"), ("continue", "Succeeded")] {
        let receiver = HookReceiver::start(SECRET, |_, _| Reply::Never).await;
        let extra = json!({"timeout": "300ms", "deadline": "2s", "onTimeout": on_timeout});
        let mut run = start(
            &format!("hook-never-{on_timeout}"),
            2,
            hook(&receiver.url, &["beforeBatch"], extra),
        )
        .await;
        let status =
            finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
        assert_eq!(status["phase"], phase, "{status:#}");
        let calls = receiver.calls();
        assert!(
            calls.len() >= 2,
            "retried within the deadline (backoff 1s, then 2s): {} calls",
            calls.len()
        );
        if on_timeout == "fail" {
            let message = status["message"].as_str().unwrap();
            assert!(
                message.contains("hook 127.0.0.1 at beforeBatch of batch 1 gave no verdict within its deadline of 2s"),
                "{message}"
            );
            assert!(message.contains("gave no answer within 300ms"), "{message}");
            assert_eq!(stop_calls(&run.sim.timeline()), 0, "nothing stopped");
        } else {
            assert_eq!(stop_calls(&run.sim.timeline()), 2, "went on");
        }
        run.invariants_hold(2, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_call_and_its_recorded_answer_repeats_the_call_with_the_same_key() {
    // The first afterBatch call is held while the operator is killed.
    let receiver = HookReceiver::start(SECRET, |before, call| {
        let first_after = call.body["point"] == "afterBatch"
            && !before.iter().any(|c| c.body["point"] == "afterBatch");
        if first_after {
            Reply::Never
        } else {
            succeeded()
        }
    })
    .await;
    let extra = json!({"timeout": "20s", "deadline": "1m"});
    let mut run = start("hook-crash", 2, hook(&receiver.url, &["afterBatch"], extra)).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let held = loop {
        if let Some(c) = receiver
            .calls()
            .into_iter()
            .find(|c| c.body["point"] == "afterBatch")
        {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "no afterBatch call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    run.operator.sigkill();
    run.operator = spawn_operator(&run.args, &run.env, "r2", &run.log);
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let again: Vec<Call> = receiver
        .calls()
        .into_iter()
        .filter(|c| c.key == held.key)
        .collect();
    assert_eq!(
        again.len(),
        2,
        "called again after the crash, with the same key: {again:#?}"
    );
    assert_eq!(
        again[1].body["attempt"], 1,
        "the first call's answer was never recorded"
    );
    assert_eq!(stop_calls(&run.sim.timeline()), 2);
    run.invariants_hold(2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_lists_each_hook_and_what_it_would_be_asked_and_calls_none() {
    let receiver = HookReceiver::start(SECRET, |_, _| succeeded()).await;
    let (sim, _c) = steady_service("prod", "web", 3, true).await;
    let dir = temp_dir("hook-dry-run");
    let file = dir.join("hooked.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: ecs-recycler/v1\nkind: RecycleRequest\nmetadata:\n  name: rotate\nspec:\n  cluster: prod\n  service: web\n  hooks:\n    - url: {}\n      at: [beforeStart, beforeBatch, afterBatch]\n      secret: {{env: SMOKE_HOOK_SECRET}}\n",
            receiver.url
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["apply", "--dry-run", "-f"])
        .arg(&file)
        .arg("--store")
        .arg(dir.join("store.json"))
        .envs(aws_env(sim.url()))
        .env("SMOKE_HOOK_SECRET", SECRET)
        .env_remove("ECS_RECYCLER_TABLE")
        .output()
        .expect("run apply");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        format!("Hook: POST {} (hook 127.0.0.1)", receiver.url),
        "with the operator's environment variable SMOKE_HOOK_SECRET".to_string(),
        "beforeStart: asked once, before anything is touched, told the 3 planned task(s)"
            .to_string(),
        "beforeBatch: asked before each of the 3 batch(es)".to_string(),
        "afterBatch: asked after each of the 3 batch(es) is serving".to_string(),
    ] {
        assert!(stdout.contains(&want), "{want:?} not in:\n{stdout}");
    }
    assert!(!stdout.contains(SECRET));
    assert!(receiver.calls().is_empty(), "a dry run calls no hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_signed_with_a_secrets_manager_key_is_called_and_the_key_is_never_stored() {
    let moto = tokio::task::spawn_blocking(support::moto::Moto::start)
        .await
        .unwrap();
    let aws = support::sdk_config(&moto.url, true).await;
    let key = "key-from-secrets-manager";
    let arn = aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name("smoke-hook")
        .secret_string(key)
        .send()
        .await
        .expect("create secret")
        .arn()
        .unwrap()
        .to_string();
    let receiver = HookReceiver::start(key, |_, _| succeeded()).await;
    let spec_hook = json!({"url": receiver.url, "at": ["beforeStart", "afterBatch", "afterEnd"],
                           "secret": {"secretsManager": arn}, "timeout": "2s"});
    let env = vec![(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_string(),
        moto.url.clone(),
    )];
    let mut run = start_with("hook-secrets-manager", 2, spec_hook, json!({}), env).await;
    let status = finish_then_stop(&run.store, "rotate", &mut run.operator, &run.log, WITHIN).await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let calls = receiver.calls();
    let points: Vec<String> = calls
        .iter()
        .map(|c| format!("{}/{}", c.body["point"].as_str().unwrap(), c.body["batch"]))
        .collect();
    assert_eq!(
        points,
        [
            "beforeStart/0",
            "afterBatch/1",
            "afterBatch/2",
            "afterEnd/0"
        ]
    );
    assert!(
        calls.iter().all(|c| c.signed),
        "signed with the secret's key: {calls:#?}"
    );
    assert!(
        !record_text(&run.store).await.contains(key),
        "the key is never stored"
    );
    run.invariants_hold(2, 2);
}
