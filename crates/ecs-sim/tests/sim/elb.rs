//! Elastic Load Balancing through the official
//! aws-sdk-elasticloadbalancingv2 client and the raw Query protocol, and the
//! fixture the tests of services behind load balancers share: a load
//! balancer, a listener, target group `web`, and service `prod/web`.
//!
//! Every test runs with targetTimeScale 20: a 5 s health-check interval is
//! 250 ms, the 20 s deregistration delay 1 s.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::TargetDescription;
use serde_json::{Value, json};
use test_support::load_balancer::{self, Behind, TargetGroupSettings, service_behind};
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

/// A load balancer with a listener forwarding to target group `web`
/// (ip targets, 5 s interval, thresholds 2 and 2, the delay above).
pub(crate) async fn target_group(elb: &elbv2::Client) -> String {
    let settings = TargetGroupSettings {
        deregistration_delay: DELAY,
        ..TargetGroupSettings::default()
    };
    load_balancer::target_group(elb, "web", settings).await
}

/// Service `prod/web` of `desired` tasks behind target group `web`, steady.
pub(crate) async fn service_behind_lb(
    desired: i32,
    max: i32,
    min: i32,
    grace: i32,
    faults: Option<Value>,
) -> Fixture {
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": SCALE})).unwrap();
    let c = clients(&sim).await;
    let elb = c.elb.clone();
    let tg = target_group(&elb).await;
    if let Some(f) = faults {
        sim.configure(json!({"faults": f})).unwrap();
    }
    let behind = Behind {
        maximum_percent: max,
        minimum_healthy_percent: min,
        grace_period: grace,
        ..Behind::new("prod", "web", desired, &tg)
    };
    service_behind(&c.ecs, &behind).await;
    Fixture { sim, c, elb, tg }
}

pub(crate) async fn steady_behind_lb(desired: i32, max: i32, min: i32) -> Fixture {
    let f = service_behind_lb(desired, max, min, 0, None).await;
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
pub(crate) fn target_states(timeline: &Value, task_arn: &str) -> Vec<(f64, String)> {
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
    let elb = clients(&sim).await.elb;
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
        Some("Health check interval must be greater than the timeout.")
    );
}

#[tokio::test]
async fn the_query_protocol_answers_errors_and_throttling_in_elbs_own_xml() {
    let sim = start_sim().await;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, body) = raw_request(
        sim.url(),
        "POST",
        "/",
        &form,
        b"Action=DescribeNothing&Version=2015-12-01",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>"),
        "{body}"
    );

    sim.configure(json!({"throttle": {"fraction": 1.0, "operations": ["DescribeTargetGroups"]}}))
        .unwrap();
    let (status, body) = raw_request(
        sim.url(),
        "POST",
        "/",
        &form,
        b"Action=DescribeTargetGroups&Version=2015-12-01",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("<Code>Throttling</Code><Message>Rate exceeded</Message>"),
        "{body}"
    );
    let (status, body) = raw_request(
        sim.url(),
        "POST",
        "/",
        &form,
        b"Action=DescribeLoadBalancers&Version=2015-12-01",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("<DescribeLoadBalancersResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeLoadBalancersResult><LoadBalancers></LoadBalancers></DescribeLoadBalancersResult><ResponseMetadata><RequestId>"),
        "{body}"
    );
    let timeline = sim.timeline();
    let calls: Vec<(&str, Option<&str>)> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["op"].as_str().unwrap(), c["error"].as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("DescribeNothing", Some("InvalidAction")),
            ("DescribeTargetGroups", Some("Throttling")),
            ("DescribeLoadBalancers", None)
        ]
    );
    assert_eq!(timeline["throttled"]["load-balancing-read"], 1);
}
