//! Load balancers through the official aws-sdk-elasticloadbalancingv2
//! client, and ECS services behind them: targets registered once their
//! task runs, healthy after the health checks, drained before their task
//! stops (DEACTIVATING for the deregistration delay), replacements held
//! back by maximumPercent while a task drains, tasks whose targets fail
//! their health checks replaced, and the traffic the service serves and
//! drops meanwhile.
//!
//! Every test runs with targetTimeScale 20: a 5 s health-check interval is
//! 250 ms, the 20 s deregistration delay 1 s.

use std::time::Duration;

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentConfiguration, LoadBalancer as EcsLoadBalancer, PortMapping,
};
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::{
    Action, ActionTypeEnum, ProtocolEnum, TargetDescription, TargetGroupAttribute, TargetTypeEnum,
};
use serde_json::{Value, json};
use test_support::*;

pub(crate) const SCALE: f64 = 20.0;
/// The deregistration delay set on the target group, before the scale.
pub(crate) const DELAY: i32 = 20;
pub(crate) const WITHIN: Duration = Duration::from_secs(20);

pub(crate) struct Fixture {
    pub(crate) sim: Simulator,
    pub(crate) c: Clients,
    pub(crate) elb: elbv2::Client,
    pub(crate) tg: String,
}

async fn elb_client(sim: &Simulator) -> elbv2::Client {
    elbv2::Client::new(&sdk_config(sim.url(), true).await)
}

/// A load balancer with a listener forwarding to target group `web`
/// (ip targets, 5 s interval, thresholds 2 and 2, the delay above).
async fn target_group(elb: &elbv2::Client) -> String {
    let lb = elb
        .create_load_balancer()
        .name("web-lb")
        .subnets("subnet-1")
        .subnets("subnet-2")
        .send()
        .await
        .expect("create load balancer");
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let tg = elb
        .create_target_group()
        .name("web")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-0a1b2c3d4e5f60718")
        .target_type(TargetTypeEnum::Ip)
        .health_check_interval_seconds(5)
        .health_check_timeout_seconds(2)
        .healthy_threshold_count(2)
        .unhealthy_threshold_count(2)
        .send()
        .await
        .expect("create target group");
    let tg_arn = tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    elb.create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg_arn)
                .build(),
        )
        .send()
        .await
        .expect("create listener");
    elb.modify_target_group_attributes()
        .target_group_arn(&tg_arn)
        .attributes(
            TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value(DELAY.to_string())
                .build(),
        )
        .send()
        .await
        .expect("set the deregistration delay");
    tg_arn
}

async fn register_web_task_definition(ecs: &aws_sdk_ecs::Client) {
    ecs.register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("nginx:1")
                .port_mappings(PortMapping::builder().container_port(80).build())
                .build(),
        )
        .send()
        .await
        .expect("register task definition");
}

/// Service `prod/web` of `desired` tasks behind target group `web`, steady.
async fn service_behind_lb(desired: i32, max: i32, min: i32, faults: Option<Value>) -> Fixture {
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": SCALE})).unwrap();
    let c = clients(&sim).await;
    let elb = elb_client(&sim).await;
    let tg = target_group(&elb).await;
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    register_web_task_definition(&c.ecs).await;
    if let Some(f) = faults {
        sim.configure(json!({"faults": f})).unwrap();
    }
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition("web")
        .desired_count(desired)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .maximum_percent(max)
                .minimum_healthy_percent(min)
                .build(),
        )
        .load_balancers(
            EcsLoadBalancer::builder()
                .target_group_arn(&tg)
                .container_name("app")
                .container_port(80)
                .build(),
        )
        .health_check_grace_period_seconds(0)
        .send()
        .await
        .expect("create service");
    Fixture { sim, c, elb, tg }
}

pub(crate) async fn steady_behind_lb(desired: i32, max: i32, min: i32) -> Fixture {
    let f = service_behind_lb(desired, max, min, None).await;
    wait_steady(&f.c.ecs, "prod", "web", WITHIN).await;
    f
}

/// (id, port, state, reason) of every target DescribeTargetHealth lists.
pub(crate) async fn target_health(f: &Fixture) -> Vec<(String, i32, String, Option<String>)> {
    let out = f
        .elb
        .describe_target_health()
        .target_group_arn(&f.tg)
        .send()
        .await
        .expect("describe target health");
    out.target_health_descriptions()
        .iter()
        .map(|d| {
            let t = d.target().unwrap();
            let h = d.target_health().unwrap();
            (
                t.id().unwrap().to_string(),
                t.port().unwrap(),
                h.state().unwrap().as_str().to_string(),
                h.reason().map(|r| r.as_str().to_string()),
            )
        })
        .collect()
}

/// The private IPv4 address of a task's ENI, as DescribeTasks answers it.
pub(crate) async fn task_ip(f: &Fixture, arn: &str) -> String {
    let out =
        f.c.ecs
            .describe_tasks()
            .cluster("prod")
            .tasks(arn)
            .send()
            .await
            .unwrap();
    let attachment = &out.tasks()[0].attachments()[0];
    assert_eq!(attachment.r#type(), Some("ElasticNetworkInterface"));
    attachment
        .details()
        .iter()
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .expect("a private IP")
        .to_string()
}

pub(crate) fn task_history<'a>(timeline: &'a Value, arn: &str) -> &'a Value {
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["taskArn"] == arn)
        .expect("task in timeline")
}

/// When the task first reached `status`.
pub(crate) fn reached(history: &Value, status: &str) -> Option<f64> {
    history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["lastStatus"] == status)
        .map(|t| t["t"].as_f64().unwrap())
}

/// The state transitions of the targets of a task: (t, state).
fn target_states(timeline: &Value, task_arn: &str) -> Vec<(f64, String)> {
    timeline["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["taskArn"] == task_arn)
        .flat_map(|t| t["transitions"].as_array().unwrap().iter())
        .map(|x| {
            (
                x["t"].as_f64().unwrap(),
                x["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub(crate) async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_rust_sdk_reads_target_groups_and_target_health() {
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": SCALE})).unwrap();
    let elb = elb_client(&sim).await;
    let tg = target_group(&elb).await;
    let named = elb
        .describe_target_groups()
        .names("web")
        .send()
        .await
        .unwrap();
    let group = &named.target_groups()[0];
    assert_eq!(group.target_group_arn(), Some(tg.as_str()));
    assert_eq!(group.health_check_interval_seconds(), Some(5));
    assert_eq!(group.load_balancer_arns().len(), 1);
    let modified = elb
        .modify_target_group()
        .target_group_arn(&tg)
        .health_check_interval_seconds(10)
        .send()
        .await
        .unwrap();
    assert_eq!(
        modified.target_groups()[0].health_check_interval_seconds(),
        Some(10)
    );

    elb.register_targets()
        .target_group_arn(&tg)
        .targets(
            TargetDescription::builder()
                .id("10.1.0.7")
                .port(8080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap();
    let d = &health.target_health_descriptions()[0];
    assert_eq!(d.target().unwrap().port(), Some(8080));
    assert_eq!(d.health_check_port(), Some("8080"));
    assert_eq!(
        d.target_health().unwrap().state().unwrap().as_str(),
        "initial"
    );

    let missing = elb
        .describe_target_health()
        .target_group_arn(tg.replace("/web/", "/ghost/"))
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_target_group_not_found_exception()),
        "{missing:?}"
    );
    let bad = elb
        .modify_target_group()
        .target_group_arn(&tg)
        .health_check_timeout_seconds(10)
        .send()
        .await
        .unwrap_err();
    let bad = bad.into_service_error();
    assert_eq!(bad.meta().code(), Some("ValidationError"));
    assert_eq!(
        bad.meta().message(),
        Some("Health check timeout '10' must be smaller than the interval '10'")
    );
}

#[tokio::test]
async fn a_services_tasks_register_when_running_and_turn_healthy() {
    let f = steady_behind_lb(2, 200, 100).await;
    let described = describe(&f.c.ecs, "prod", "web").await;
    let lb = &described.load_balancers()[0];
    assert_eq!(lb.target_group_arn(), Some(f.tg.as_str()));
    assert_eq!(
        (lb.container_name(), lb.container_port()),
        (Some("app"), Some(80))
    );
    assert_eq!(described.health_check_grace_period_seconds(), Some(0));

    let arns = running_task_arns(&f.c.ecs, "prod", "web").await;
    let mut ips = Vec::new();
    for arn in &arns {
        ips.push(task_ip(&f, arn).await);
    }
    assert_ne!(ips[0], ips[1], "each task has its own address");
    let mut health = target_health(&f).await;
    health.sort();
    ips.sort();
    let expected: Vec<_> = ips
        .iter()
        .map(|ip| (ip.clone(), 80, "healthy".to_string(), None))
        .collect();
    assert_eq!(health, expected);

    // Registered at RUNNING, initial, healthy two intervals (500 ms) later;
    // the service counted the task healthy only then.
    let timeline = f.sim.timeline();
    for arn in &arns {
        let running = reached(task_history(&timeline, arn), "RUNNING").unwrap();
        let states = target_states(&timeline, arn);
        let names: Vec<&str> = states.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(names, ["initial", "initial", "healthy"], "{states:?}");
        assert!(
            (states[0].0 - running).abs() < 1e-9,
            "registered at RUNNING"
        );
        let healthy_after = states[2].0 - running;
        assert!((healthy_after - 0.5).abs() < 1e-6, "{healthy_after}");
    }
    let last_healthy_target = arns
        .iter()
        .map(|a| target_states(&timeline, a)[2].0)
        .fold(0.0, f64::max);
    let first_two_healthy = samples(&timeline, "prod", "web")
        .iter()
        .find(|s| s.4 == 2)
        .map(|s| s.0)
        .unwrap();
    assert!(
        first_two_healthy >= last_healthy_target,
        "{first_two_healthy} < {last_healthy_target}"
    );
}

#[tokio::test]
async fn a_stopped_task_drains_for_the_deregistration_delay_then_stops() {
    let f = steady_behind_lb(2, 200, 100).await;
    let victim = running_task_arns(&f.c.ecs, "prod", "web").await[0].clone();
    let ip = task_ip(&f, &victim).await;
    let stopped =
        f.c.ecs
            .stop_task()
            .cluster("prod")
            .task(&victim)
            .send()
            .await
            .unwrap();
    let t = stopped.task().unwrap();
    assert_eq!(
        (t.last_status(), t.desired_status()),
        (Some("DEACTIVATING"), Some("STOPPED"))
    );
    let health = target_health(&f).await;
    let mine = health.iter().find(|h| h.0 == ip).expect("still listed");
    assert_eq!(
        (mine.2.as_str(), mine.3.as_deref()),
        ("draining", Some("Target.DeregistrationInProgress"))
    );

    let drain = f64::from(DELAY) / SCALE;
    wait_for("the task stops", || {
        reached(task_history(&f.sim.timeline(), &victim), "STOPPED").is_some()
    })
    .await;
    let timeline = f.sim.timeline();
    let history = task_history(&timeline, &victim);
    let deactivating = reached(history, "DEACTIVATING").unwrap();
    let stopping = reached(history, "STOPPING").unwrap();
    assert!(
        ((stopping - deactivating) - drain).abs() < 1e-6,
        "waited {}",
        stopping - deactivating
    );
    let states = target_states(&timeline, &victim);
    let draining = states.iter().find(|s| s.1 == "draining").unwrap().0;
    let unused = states.iter().find(|s| s.1 == "unused").unwrap().0;
    assert!((draining - deactivating).abs() < 1e-9);
    assert!(
        ((unused - draining) - drain).abs() < 1e-6,
        "drained {}",
        unused - draining
    );
    let events = describe(&f.c.ecs, "prod", "web").await;
    let messages: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert!(
        messages.contains(&"(service web) has begun draining connections on 1 tasks."),
        "{messages:?}"
    );
    assert!(
        !target_health(&f).await.iter().any(|h| h.0 == ip),
        "gone once drained"
    );
}

#[tokio::test]
async fn with_maximum_percent_100_a_replacement_waits_for_the_drain() {
    let f = steady_behind_lb(2, 100, 50).await;
    let victim = running_task_arns(&f.c.ecs, "prod", "web").await[0].clone();
    stop_task(&f.c.ecs, "prod", &victim).await;
    wait_steady(&f.c.ecs, "prod", "web", WITHIN).await;
    let timeline = f.sim.timeline();
    let history = task_history(&timeline, &victim);
    let deactivating = reached(history, "DEACTIVATING").unwrap();
    let stopped = reached(history, "STOPPED").unwrap();
    let replacement = timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| reached(t, "PROVISIONING").unwrap() > deactivating)
        .map(|t| reached(t, "PROVISIONING").unwrap())
        .next()
        .expect("a replacement");
    assert!(
        replacement >= stopped,
        "launched at {replacement}, before the drained task stopped at {stopped}"
    );
    assert!(replacement - deactivating >= f64::from(DELAY) / SCALE);
}

#[tokio::test]
async fn tasks_whose_targets_never_pass_are_stopped_and_replaced() {
    let f = service_behind_lb(1, 200, 100, Some(json!({"targetNeverHealthy": 1.0}))).await;
    let reason = format!("Task failed ELB health checks in (target-group {})", f.tg);
    wait_for("a task stopped for its ELB health checks", || {
        f.sim.timeline()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["stoppedReason"] == reason.as_str() && t["stoppedBy"] == "health-check")
    })
    .await;
    let timeline = f.sim.timeline();
    let first = &timeline["tasks"][0];
    let arn = first["taskArn"].as_str().unwrap();
    let states = target_states(&timeline, arn);
    assert!(states.iter().any(|s| s.1 == "unhealthy"), "{states:?}");
    wait_for("a replacement", || {
        f.sim.timeline()["tasks"].as_array().unwrap().len() >= 2
    })
    .await;
    let events = describe(&f.c.ecs, "prod", "web").await;
    assert!(
        events
            .events()
            .iter()
            .filter_map(|e| e.message())
            .any(|m| m.contains("is unhealthy in (target-group") && m.contains("(port 80)")),
        "{:?}",
        events.events()
    );
}

#[tokio::test]
async fn create_service_checks_its_load_balancers_as_ecs_does() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    let elb = elb_client(&sim).await;
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    register_web_task_definition(&c.ecs).await;
    let lonely = elb
        .create_target_group()
        .name("lonely")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-1")
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let tg = target_group(&elb).await;
    let attempt = |arn: &str, container: &str, port: i32| {
        c.ecs
            .create_service()
            .cluster("prod")
            .service_name("web")
            .task_definition("web")
            .desired_count(1)
            .load_balancers(
                EcsLoadBalancer::builder()
                    .target_group_arn(arn)
                    .container_name(container)
                    .container_port(port)
                    .build(),
            )
            .send()
    };
    let message = |e: aws_sdk_ecs::error::SdkError<_>| {
        let e: aws_sdk_ecs::operation::create_service::CreateServiceError = e.into_service_error();
        assert!(e.is_invalid_parameter_exception(), "{e:?}");
        e.meta().message().unwrap().to_string()
    };
    let missing = attempt(&tg.replace("/web/", "/ghost/"), "app", 80)
        .await
        .unwrap_err();
    assert!(
        message(missing)
            .starts_with("Unable to assume role and validate the specified targetGroupArn")
    );
    let unused = attempt(&lonely, "app", 80).await.unwrap_err();
    assert_eq!(
        message(unused),
        format!(
            "The target group with targetGroupArn {lonely} does not have an associated load balancer."
        )
    );
    let port = attempt(&tg, "app", 8080).await.unwrap_err();
    assert_eq!(
        message(port),
        "The container app did not have a container port 8080 defined."
    );
    let container = attempt(&tg, "sidecar", 80).await.unwrap_err();
    assert_eq!(
        message(container),
        "The container sidecar does not exist in the task definition."
    );
    // Nothing was created by the refused calls.
    let listed = c.ecs.list_services().cluster("prod").send().await.unwrap();
    assert!(listed.service_arns().is_empty());
}
