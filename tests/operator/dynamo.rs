//! The operator on DynamoDB (moto's server) and the simulator: `init`, two
//! replicas sharing one table, a lease holder killed and taken over, and an
//! item put straight into the table by another client, malformed or not.

use crate::support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use ecs_recycler::store::dynamo::DynamoStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::json;
use support::moto::Moto;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(90);

struct Bed {
    moto: Moto,
    store: DynamoStore,
    raw: aws_sdk_dynamodb::Client,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dir: std::path::PathBuf,
}

/// moto, a table made by `ecs-recycler init`, and the environment for operators.
async fn bed(sim_url: &str, label: &str) -> Bed {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let mut env = aws_env(sim_url);
    env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), moto.url.clone()));
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["init", "--table", "recycler"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(String::from_utf8_lossy(&init.stdout).contains("table recycler is ready"));
    let config = sdk_config(&moto.url, true).await;
    Bed {
        store: DynamoStore::new(&config, "recycler"),
        raw: aws_sdk_dynamodb::Client::new(&config),
        moto,
        env,
        args: vec!["--table".into(), "recycler".into()],
        dir: temp_dir(label),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_table_and_one_takes_over_when_the_other_dies() {
    let (sim, c) = steady_service("prod", "web", 2, false).await;
    for s in ["api", "jobs"] {
        create_service(&c.ecs, "prod", s, 2, false).await;
        wait_steady(&c.ecs, "prod", s, WITHIN).await;
    }
    let since = sim.now();
    let bed = bed(sim.url(), "replicas").await;
    for (name, service) in [("r-web", "web"), ("r-api", "api"), ("r-jobs", "jobs")] {
        bed.store
            .create(
                Kind::RecycleRequest,
                name,
                json!({"cluster": "prod", "service": service, "wait": "400ms"}),
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let log_a = bed.dir.join("a.log");
    let log_b = bed.dir.join("b.log");
    let mut a = spawn_operator(&bed.args, &bed.env, "replica-a", &log_a);
    let mut b = spawn_operator(&bed.args, &bed.env, "replica-b", &log_b);
    // Kill whichever holds r-web once it is recycling; the other must finish it.
    wait_phase(&bed.store, "r-web", &["Recycling"], WITHIN, &log_a).await;
    let holder = bed
        .store
        .get(Kind::RecycleRequest, "r-web")
        .await
        .unwrap()
        .unwrap()
        .lease
        .unwrap()
        .holder;
    let (victim, survivor, survivor_log) = if holder == "replica-a" {
        (&mut a, "replica-b", &log_b)
    } else {
        (&mut b, "replica-a", &log_a)
    };
    victim.sigkill();
    for name in ["r-web", "r-api", "r-jobs"] {
        let status = wait_phase(&bed.store, name, &FINISHED, WITHIN, survivor_log).await;
        assert_eq!(status["phase"], "Succeeded", "{name}: {status:#}");
    }
    let web = bed
        .store
        .get(Kind::RecycleRequest, "r-web")
        .await
        .unwrap()
        .unwrap();
    assert!(!web.active, "finished records leave the active index");
    let log = std::fs::read_to_string(survivor_log).unwrap();
    assert!(log.contains("lease taken"), "{survivor} took leases");
    let timeline = sim.timeline();
    for service in ["web", "api", "jobs"] {
        let facts = run_facts(&timeline, "prod", service, since);
        let mut stopped = facts.stopped_by_stop_task.clone();
        stopped.sort();
        stopped.dedup();
        assert_eq!(
            stopped.len(),
            facts.stopped_by_stop_task.len(),
            "no task stopped twice"
        );
        assert_eq!(stopped.len(), 2, "{service}: {facts:?}");
        assert!(
            facts.replacements_stopped.is_empty(),
            "{service}: {facts:?}"
        );
        assert!(facts.min_running >= 2, "{service}: {facts:?}");
        assert_eq!(facts.final_desired, 2, "{service}: {facts:?}");
    }
    let survivor_process = if survivor == "replica-a" {
        &mut a
    } else {
        &mut b
    };
    assert!(survivor_process.sigterm().success(), "SIGTERM: exit 0");
    drop(bed.moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_put_straight_into_the_table_are_worked_on_and_a_malformed_one_fails_alone() {
    let (sim, _c) = steady_service("prod", "web", 2, false).await;
    let bed = bed(sim.url(), "putitem").await;
    let s = |v: &str| AttributeValue::S(v.to_string());
    let now = Utc::now().to_rfc3339();
    let good = bed
        .raw
        .put_item()
        .table_name("recycler")
        .item("pk", s("RecycleRequest/by-cli"))
        .item("kind", s("RecycleRequest"))
        .item("name", s("by-cli"))
        .item("active", s("1"))
        .item("createdAt", s(&now))
        .item(
            "spec",
            AttributeValue::M(
                [("cluster", "prod"), ("service", "web"), ("wait", "0s")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), s(v)))
                    .collect(),
            ),
        );
    good.send().await.unwrap();
    for (name, spec) in [
        ("bad-json", "{not json"),
        (
            "bad-fields",
            r#"{"cluster":"prod","service":"web","batchSize":"two"}"#,
        ),
    ] {
        bed.raw
            .put_item()
            .table_name("recycler")
            .item("pk", s(&format!("RecycleRequest/{name}")))
            .item("kind", s("RecycleRequest"))
            .item("name", s(name))
            .item("active", s("1"))
            .item("createdAt", s(&now))
            .item("spec", s(spec))
            .send()
            .await
            .unwrap();
    }
    let log = bed.dir.join("op.log");
    let mut op = spawn_operator(&bed.args, &bed.env, "r1", &log);
    let done = ["Succeeded", "Failed", "Cancelled"];
    let good = wait_phase(&bed.store, "by-cli", &done, WITHIN, &log).await;
    assert_eq!(good["phase"], "Succeeded", "{good:#}");
    let bad_json = wait_phase(&bed.store, "bad-json", &done, WITHIN, &log).await;
    assert_eq!(bad_json["phase"], "Failed");
    assert!(
        bad_json["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid record: spec:"),
        "{bad_json:#}"
    );
    let bad_fields = wait_phase(&bed.store, "bad-fields", &done, WITHIN, &log).await;
    assert_eq!(bad_fields["phase"], "Failed");
    assert!(
        bad_fields["message"]
            .as_str()
            .unwrap()
            .contains("spec.batchSize"),
        "{bad_fields:#}"
    );
    assert!(op.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_an_unknown_kind_is_marked_failed_and_an_unreadable_one_is_logged_once() {
    let (sim, _c) = steady_service("prod", "web", 2, false).await;
    let bed = bed(sim.url(), "strays").await;
    let s = |v: &str| AttributeValue::S(v.to_string());
    let spec = r#"{"cluster":"prod","service":"web","wait":"0s"}"#;
    let created = |seconds: i64| (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339();
    let put = |pk: &str, kind: &str, at: String| {
        bed.raw
            .put_item()
            .table_name("recycler")
            .item("pk", s(pk))
            .item("kind", s(kind))
            .item("name", s(pk.split_once('/').unwrap().1))
            .item("active", s("1"))
            .item("createdAt", s(&at))
            .item("spec", s(spec))
    };
    put("RecycleRequest/good", "RecycleRequest", created(0))
        .send()
        .await
        .unwrap();
    put("RecycleRequests/typo", "RecycleRequests", created(0))
        .send()
        .await
        .unwrap();
    put("RecycleRequest/bad-status", "RecycleRequest", created(1))
        .item("status", s("{phase"))
        .send()
        .await
        .unwrap();
    put("RecycleRequest/bad-version", "RecycleRequest", created(2))
        .item("version", AttributeValue::N("1.5".into()))
        .send()
        .await
        .unwrap();

    let log = bed.dir.join("op.log");
    let mut op = spawn_operator(&bed.args, &bed.env, "r1", &log);
    let good = wait_phase(&bed.store, "good", &FINISHED, WITHIN, &log).await;
    assert_eq!(good["phase"], "Succeeded", "{good:#}");
    let bad_status = wait_phase(&bed.store, "bad-status", &FINISHED, WITHIN, &log).await;
    assert_eq!(bad_status["phase"], "Failed");
    let message = bad_status["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid record: status: cannot be read") && message.contains("{phase"),
        "{bad_status:#}"
    );

    let typo = bed
        .raw
        .get_item()
        .table_name("recycler")
        .key("pk", s("RecycleRequests/typo"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(typo["status"].as_s().expect("a status is written")).unwrap();
    assert_eq!(status["phase"], "Failed", "{status:#}");
    assert_eq!(
        status["message"],
        "unknown kind \"RecycleRequests\" (did you mean RecycleRequest?); the operator reads RecycleRequest, RecycleSchedule and RecyclePolicy"
    );
    assert_eq!(typo["spec"], s(spec), "the spec is kept as written");
    assert!(!typo.contains_key("active"), "out of the active index");

    // The good request took many ticks; the item nobody can write to was
    // logged once in all of them, the stray once when it was failed.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("RecycleRequest/bad-version"), 1, "{text}");
    assert_eq!(lines("RecycleRequests/typo"), 1, "{text}");
    assert!(op.sigterm().success());
}
