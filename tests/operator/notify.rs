//! Notifications end to end: the operator binary recycles a service on the
//! simulator and reports by email (a real SMTP server on loopback with
//! STARTTLS and AUTH, credentials from a Secrets Manager secret on moto),
//! SNS (moto, delivering to an HTTP subscription) and a webhook receiver.
//! Also: a channel that never answers neither delays nor fails the recycle.

use crate::support;

use std::path::Path;
use std::time::Duration;

use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::hooks::Receiver;
use support::moto::Moto;
use support::operator::{FINISHED, OperatorProcess, aws_env, spawn_operator, temp_dir, wait_phase};
use support::smtp::SmtpServer;

const WITHIN: Duration = Duration::from_secs(60);

struct Setup {
    store: EmbeddedStore,
    log: std::path::PathBuf,
    _operator: OperatorProcess,
}

fn operator(dir: &Path, flags: &[&str], env: Vec<(String, String)>) -> Setup {
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).expect("store");
    let log = dir.join("operator.log");
    let mut args = vec!["--store".to_string(), path.display().to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    let operator = spawn_operator(&args, &env, "r1", &log);
    Setup {
        store,
        log,
        _operator: operator,
    }
}

/// The status once the request has finished and its outbox is empty.
async fn notified(s: &Setup, name: &str) -> Value {
    wait_phase(&s.store, name, &FINISHED, WITHIN, &s.log).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let record = s
            .store
            .get(Kind::RecycleRequest, name)
            .await
            .unwrap()
            .unwrap();
        let status = record.status.clone().unwrap();
        let empty = status["notify"]["outbox"]
            .as_array()
            .is_none_or(|o| o.is_empty());
        if empty && !record.active {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox of {name} was not drained: {status:#}\n{}",
            std::fs::read_to_string(&s.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn attempts<'a>(status: &'a Value, channel_prefix: &str) -> Vec<&'a Value> {
    status["notify"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["channel"].as_str().unwrap().starts_with(channel_prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recycle_is_reported_by_email_sns_and_webhook() {
    let (sim, _c) = support::steady_service("prod", "web", 2, true).await;
    let moto = Moto::start();
    let dir = temp_dir("notify");
    let password = "s3cret-relay-password";
    // The relay refuses the first message once: a retry must follow.
    let smtp = SmtpServer::start(dir.join("smtp"), "recycler", password, 1);
    let hooks = Receiver::start().await;

    let aws = support::sdk_config(&moto.url, true).await;
    let sns = aws_sdk_sns::Client::new(&aws);
    let topic = sns
        .create_topic()
        .name("recycles")
        .send()
        .await
        .expect("create topic")
        .topic_arn()
        .expect("topic arn")
        .to_string();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(hooks.url("sns"))
        .send()
        .await
        .expect("subscribe");
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name("recycler/smtp")
        .secret_string(
            json!({"host": "127.0.0.1", "port": smtp.port.to_string(), "username": "recycler",
                   "password": password, "from_email": "Recycler <recycler@example.com>"})
            .to_string(),
        )
        .send()
        .await
        .expect("create secret");

    let mut env = aws_env(sim.url());
    env.push(("AWS_ENDPOINT_URL_SNS".into(), moto.url.clone()));
    env.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), moto.url.clone()));
    let ca = smtp.ca_file().display().to_string();
    let s = operator(
        &dir,
        &[
            "--smtp-secret",
            "recycler/smtp",
            "--smtp-ca-file",
            &ca,
            "--notify-backoff",
            "200ms",
        ],
        env,
    );
    s.store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "0s",
            "notify": {
                "events": ["started", "succeeded", "failed"],
                "email": {"to": ["ops@example.com", "On Call <oncall@example.com>"]},
                "sns": {"topicArn": topic},
                "webhook": {"url": hooks.url("hook"), "format": "slack"},
            }}),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let status = notified(&s, "rotate").await;
    assert_eq!(status["phase"], "Succeeded", "{status:#}");

    // Email: two messages (started, succeeded), over STARTTLS, authenticated.
    let mail = smtp.messages();
    assert_eq!(mail.len(), 2, "{mail:#?}");
    for m in &mail {
        assert_eq!(m["tls"], true);
        assert_eq!(m["authenticated"], true);
        assert_eq!(m["to"], json!(["ops@example.com", "oncall@example.com"]));
    }
    let done = mail
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .find(|d| d.contains("Subject: [AWS ECS] ECS Service Task Recycle Completed: prod/web"))
        .unwrap_or_else(|| panic!("no completion email in {mail:#?}"));
    for expected in [
        "Cluster:        prod",
        "Service:        web",
        "Tasks recycled: 2 of 2 planned",
        "Outcome:        Succeeded",
        "Duration:",
        "Timestamp:",
    ] {
        assert!(done.contains(expected), "{expected:?} not in:\n{done}");
    }
    let email = attempts(&status, "email");
    assert!(
        email
            .iter()
            .any(|a| a["delivered"] == false && a["error"].as_str().unwrap().contains("451")),
        "the refused attempt is recorded: {email:#?}"
    );
    assert_eq!(email.iter().filter(|a| a["delivered"] == true).count(), 2);

    // SNS: both events reached the topic's subscriber.
    let published = hooks.posts("sns");
    let subjects: Vec<&str> = published
        .iter()
        .filter_map(|p| p["Subject"].as_str())
        .collect();
    assert!(
        subjects.contains(&"ECS Service Task Recycle Completed: prod/web")
            && subjects.contains(&"ECS Service Task Recycle Started: prod/web"),
        "{published:#?}"
    );

    // Webhook: Slack's shape.
    let slack = hooks.posts("hook");
    assert_eq!(slack.len(), 2, "{slack:#?}");
    assert!(
        slack.iter().any(|p| p["text"]
            .as_str()
            .unwrap()
            .starts_with("*ECS Service Task Recycle Completed* `prod/web`")),
        "{slack:#?}"
    );

    // Credentials never reach the record or the log.
    let record = std::fs::read_to_string(s.store.path().expect("a file store")).unwrap();
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(!record.contains(password) && !log.contains(password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_that_never_answers_neither_delays_nor_fails_the_recycle() {
    let (sim, _c) = support::steady_service("prod", "web", 2, false).await;
    let hooks = Receiver::start().await;
    let dir = temp_dir("notify-down");
    let s = operator(
        &dir,
        &["--notify-attempts", "3", "--notify-backoff", "100ms"],
        aws_env(sim.url()),
    );
    let started = std::time::Instant::now();
    s.store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "0s",
                   "notify": {"webhook": {"url": hooks.url("down")},
                              "events": ["started", "batch", "succeeded"]}}),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let finished = wait_phase(&s.store, "rotate", &FINISHED, WITHIN, &s.log).await;
    assert_eq!(finished["phase"], "Succeeded", "{finished:#}");
    let recycle_took = started.elapsed();
    let status = notified(&s, "rotate").await;
    let tried = attempts(&status, "webhook");
    // started, two batches, succeeded: each tried three times, then given up.
    assert_eq!(tried.len(), 12, "{tried:#?}");
    assert!(tried.iter().all(|a| {
        a["delivered"] == false
            && a["error"]
                .as_str()
                .unwrap()
                .contains("500 Internal Server Error")
    }));
    assert_eq!(tried.iter().filter(|a| a["gaveUp"] == true).count(), 4);
    assert_eq!(hooks.posts("down").len(), 12);
    assert!(recycle_took < WITHIN, "the recycle took {recycle_took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_is_reported_with_its_reason_after_retries() {
    let (sim, _c) = support::steady_service("prod", "web", 2, false).await;
    sim.configure(json!({"throttle": {"deny": ["StopTask"]}}))
        .unwrap();
    let hooks = Receiver::start().await;
    let dir = temp_dir("notify-failed");
    let s = operator(&dir, &["--notify-backoff", "100ms"], aws_env(sim.url()));
    s.store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web",
                   "notify": {"webhook": {"url": hooks.url("flaky")}, "events": ["failed"]}}),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let status = notified(&s, "rotate").await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let posts = hooks.posts("flaky");
    assert_eq!(posts.len(), 3, "two refused, then delivered: {posts:#?}");
    let report = &posts[2];
    assert_eq!(report["event"], "failed");
    assert_eq!(report["cluster"], "prod");
    assert_eq!(report["title"], "ECS Service Task Recycle Failed");
    assert!(
        report["reason"].as_str().unwrap().contains("StopTask"),
        "{report:#}"
    );
    let tried = attempts(&status, "webhook");
    assert_eq!(tried.len(), 3);
    assert_eq!(tried[2]["delivered"], true);
}
