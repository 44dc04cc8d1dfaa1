//! What the tests of the simulator and of the operator share: an in-process
//! simulator with SDK clients pointed at it, services made and waited on
//! through the SDK, readings of the audit timeline, a raw HTTP helper for
//! malformed requests and the control API, the pinned Python environment
//! (moto[server], which brings boto3, and aiosmtpd) that some tests need,
//! made once under the workspace's `target/`, and moto's server started
//! from it ([`moto::Moto`], for the tests and the benchmark alike); bad
//! networks on loopback ([`proxy`]), a scripted lifecycle hook receiver
//! ([`lifecycle`]) and a gate's CloudWatch alarm ([`alarm`]), for the
//! operator's tests and the fault campaign alike.

pub mod alarm;
pub mod capacity;
pub mod lifecycle;
pub mod load_balancer;
pub mod moto;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_config::retry::RetryConfig;
pub use ecs_sim::{SimOptions, Simulator, Timings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The moto release the tests are written against.
pub const MOTO_PIN: &str = "moto[server]==5.2.5";
/// The SMTP server the notification tests send email to.
pub const AIOSMTPD_PIN: &str = "aiosmtpd==1.4.6";
/// Everything installed into the test venv; the marker file holds this list.
pub const PYTHON_PINS: [&str; 2] = [MOTO_PIN, AIOSMTPD_PIN];

/// Fast, realistic-in-shape timings: a start takes 300 ms, health 200 ms.
pub fn fast_timings() -> Timings {
    Timings {
        task_start: 0.3,
        task_healthy: 0.2,
        task_stop: 0.2,
        scheduler: 0.05,
        jitter: 0.2,
    }
}

pub async fn start_sim() -> Simulator {
    start_sim_with(fast_timings()).await
}

pub async fn start_sim_with(timings: Timings) -> Simulator {
    Simulator::start(SimOptions {
        timings,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

pub async fn sdk_config(url: &str, retries: bool) -> aws_config::SdkConfig {
    let retry = if retries {
        RetryConfig::standard()
    } else {
        RetryConfig::disabled()
    };
    // What the sandbox's fixture sets, written out here: the simulator's
    // own tests cannot reach the product's code.
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .retry_config(retry)
        .load()
        .await
}

pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub aas: aws_sdk_applicationautoscaling::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
}

pub async fn clients(sim: &Simulator) -> Clients {
    let config = sdk_config(sim.url(), true).await;
    Clients {
        ecs: aws_sdk_ecs::Client::new(&config),
        aas: aws_sdk_applicationautoscaling::Client::new(&config),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
    }
}

/// Creates cluster `cluster`, task definition `family` (with a container
/// health check when `health_check`), and a service of `desired` tasks.
pub async fn create_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    desired: i32,
    health_check: bool,
) {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("create cluster");
    register_task_definition(ecs, service, health_check).await;
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(service)
        .desired_count(desired)
        .send()
        .await
        .expect("create service");
}

/// Task definition `family`: one container `app` (nginx, port 80), with a
/// container health check when `health_check`.
pub async fn register_task_definition(ecs: &aws_sdk_ecs::Client, family: &str, health_check: bool) {
    use aws_sdk_ecs::types::{ContainerDefinition, HealthCheck, PortMapping};
    let mut container = ContainerDefinition::builder()
        .name("app")
        .image("nginx:1")
        .port_mappings(PortMapping::builder().container_port(80).build());
    if health_check {
        container = container.health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f http://localhost/ || exit 1")
                .build()
                .expect("health check"),
        );
    }
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container.build())
        .send()
        .await
        .expect("register task definition");
}

/// Services `s00`, `s01`, … (`n` of them, `tasks` tasks each, no container
/// health check), service `i` in cluster `cluster_of(i)`; each steady.
pub async fn steady_services(
    ecs: &aws_sdk_ecs::Client,
    n: usize,
    tasks: i32,
    cluster_of: impl Fn(usize) -> String,
) {
    for i in 0..n {
        create_service(ecs, &cluster_of(i), &format!("s{i:02}"), tasks, false).await;
    }
    for i in 0..n {
        wait_steady(
            ecs,
            &cluster_of(i),
            &format!("s{i:02}"),
            Duration::from_secs(30),
        )
        .await;
    }
}

/// A simulator with one service of `desired` tasks, already steady.
pub async fn steady_service(
    cluster: &str,
    service: &str,
    desired: i32,
    health_check: bool,
) -> (Simulator, Clients) {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, cluster, service, desired, health_check).await;
    wait_steady(&c.ecs, cluster, service, Duration::from_secs(20)).await;
    (sim, c)
}

/// Registers (or updates) the scalable target of `service/prod/web`.
pub async fn register_target(
    c: &Clients,
    min: Option<i32>,
    max: Option<i32>,
    suspended: Option<aws_sdk_applicationautoscaling::types::SuspendedState>,
) {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    c.aas
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/prod/web")
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .set_min_capacity(min)
        .set_max_capacity(max)
        .set_suspended_state(suspended)
        .send()
        .await
        .expect("register scalable target");
}

pub async fn describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> aws_sdk_ecs::types::Service {
    ecs.describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .expect("describe services")
        .services()
        .first()
        .cloned()
        .expect("service described")
}

/// Polls until the service is steady: one COMPLETED deployment, running =
/// desired, nothing pending, and the steady-state event written.
pub async fn wait_steady(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Tasks first, then the service: a replacement launched in between
        // then shows in the service's counters, never the other way round.
        let listed = running_task_arns(ecs, cluster, service).await.len();
        let s = describe(ecs, cluster, service).await;
        let deployments = s.deployments();
        let steady = deployments.len() == 1
            && deployments[0].rollout_state()
                == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Completed)
            && s.running_count() == s.desired_count()
            && s.pending_count() == 0
            && s.events()
                .first()
                .and_then(|e| e.message())
                .is_some_and(|m| m.contains("has reached a steady state"));
        // Right after StopTask a stopping task still counts as running, so
        // the counters alone can look steady before anything was replaced.
        if steady && listed == s.desired_count() as usize {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "service {cluster}/{service} not steady within {within:?}: running {} desired {} pending {} deployments {:?}",
            s.running_count(),
            s.desired_count(),
            s.pending_count(),
            deployments
                .iter()
                .map(|d| (
                    d.status().unwrap_or_default().to_string(),
                    d.rollout_state().cloned()
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls the service's events (newest first, as DescribeServices answers
/// them) until one satisfies `wanted`; answers them all then. Fails, with
/// the events seen, when none does `within`.
pub async fn wait_for_service_event(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    wanted: impl Fn(&str) -> bool,
    within: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let events: Vec<String> = describe(ecs, cluster, service)
            .await
            .events()
            .iter()
            .map(|e| e.message().unwrap_or_default().to_string())
            .collect();
        if events.iter().any(|e| wanted(e)) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such event of {cluster}/{service} within {within:?}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One task as DescribeTasks answers it.
pub async fn describe_task(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    arn: &str,
) -> aws_sdk_ecs::types::Task {
    ecs.describe_tasks()
        .cluster(cluster)
        .tasks(arn)
        .send()
        .await
        .expect("describe tasks")
        .tasks()
        .first()
        .cloned()
        .expect("task described")
}

/// Stops a task behind the operator's back, as a person or ECS would.
pub async fn stop_task(ecs: &aws_sdk_ecs::Client, cluster: &str, arn: &str) {
    ecs.stop_task()
        .cluster(cluster)
        .task(arn)
        .send()
        .await
        .expect("stop task");
}

pub async fn running_task_arns(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Vec<String> {
    let mut arns = Vec::new();
    let mut pages = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        arns.extend(page.expect("list tasks").task_arns().iter().cloned());
    }
    arns
}

/// The samples of one service in the timeline: (t, desired, running, pending, healthy).
pub fn samples(timeline: &Value, cluster: &str, service: &str) -> Vec<(f64, u64, u64, u64, u64)> {
    timeline["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["cluster"] == cluster && s["service"] == service)
        .map(|s| {
            s["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .map(|x| {
                    let n = |k: &str| x[k].as_u64().expect("count");
                    (
                        x["t"].as_f64().expect("t"),
                        n("desired"),
                        n("running"),
                        n("pending"),
                        n("healthy"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The lowest running count from time `from` on.
pub fn min_running_since(timeline: &Value, cluster: &str, service: &str, from: f64) -> u64 {
    let s = samples(timeline, cluster, service);
    let before = s.iter().rev().find(|x| x.0 <= from).map(|x| x.2);
    s.iter()
        .filter(|x| x.0 > from)
        .map(|x| x.2)
        .chain(before)
        .min()
        .expect("samples exist")
}

/// One raw HTTP/1.1 request; answers (status, body). For bodies no SDK would send.
pub async fn raw_request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

pub async fn aws_call(url: &str, target: &str, body: &str) -> (u16, Value) {
    let (status, text) = raw_request(
        url,
        "POST",
        "/",
        &[
            ("X-Amz-Target", target),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        body.as_bytes(),
    )
    .await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
    )
}

/// The workspace's root: this crate is `crates/test-support` in it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_path_buf()
}

/// The Python interpreter of `target/moto-venv`, one for every crate's
/// tests, made on first use with the
/// pinned moto[server] (which brings boto3) and aiosmtpd. Fails, saying why,
/// when it cannot be made: tests never skip silently.
pub fn python() -> PathBuf {
    let venv = project_root().join("target").join("moto-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".pinned");
    let pins = PYTHON_PINS.join(" ");
    if marker.exists() && std::fs::read_to_string(&marker).ok() == Some(pins.clone()) {
        return python;
    }
    std::fs::create_dir_all(project_root().join("target")).expect("target dir");
    let lock = std::fs::File::create(project_root().join("target").join("moto-venv.lock"))
        .expect("lock file");
    lock.lock().expect("lock the venv while it is made");
    if marker.exists() && std::fs::read_to_string(&marker).ok() == Some(pins.clone()) {
        return python;
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(PYTHON_PINS),
        &format!("pip install {pins}"),
    );
    std::fs::write(&marker, &pins).expect("marker");
    python
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what} could not run ({e}); python3 with venv and pip is required")
    });
    assert!(
        out.status.success(),
        "{what} failed; tests that need moto, boto3 or aiosmtpd cannot run:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
