//! Services behind a load balancer on the simulator, made through the
//! official SDKs: a load balancer with a listener forwarding to a target
//! group, and an ECS service whose tasks ECS registers in it.

use aws_sdk_ecs::types::{DeploymentConfiguration, LoadBalancer};
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::{Action, ActionTypeEnum, ProtocolEnum, TargetGroupAttribute, TargetTypeEnum};

/// A target group's health check and drain, as AWS takes them (seconds).
#[derive(Clone, Copy, Debug)]
pub struct TargetGroupSettings {
    pub interval: i32,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    pub deregistration_delay: i32,
}

impl Default for TargetGroupSettings {
    /// AWS's defaults for an HTTP target group but the health-check interval
    /// (5 s, its minimum) and thresholds of 2.
    fn default() -> Self {
        Self {
            interval: 5,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            deregistration_delay: 300,
        }
    }
}

/// Load balancer `{name}-lb` with an HTTP listener forwarding to target
/// group `name` (ip targets on port 80); answers the target group's ARN.
pub async fn target_group(elb: &elbv2::Client, name: &str, s: TargetGroupSettings) -> String {
    let lb = elb
        .create_load_balancer()
        .name(format!("{name}-lb"))
        .subnets("subnet-0a1b2c3d")
        .subnets("subnet-1a2b3c4d")
        .send()
        .await
        .expect("create load balancer");
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .expect("load balancer ARN")
        .to_string();
    let tg = elb
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-0a1b2c3d4e5f60718")
        .target_type(TargetTypeEnum::Ip)
        .health_check_interval_seconds(s.interval)
        .health_check_timeout_seconds(2)
        .healthy_threshold_count(s.healthy_threshold)
        .unhealthy_threshold_count(s.unhealthy_threshold)
        .send()
        .await
        .expect("create target group");
    let tg_arn = tg.target_groups()[0]
        .target_group_arn()
        .expect("target group ARN")
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
                .value(s.deregistration_delay.to_string())
                .build(),
        )
        .send()
        .await
        .expect("set the deregistration delay");
    tg_arn
}

/// A service behind a target group, as [`service_behind`] makes it.
#[derive(Clone, Debug)]
pub struct Behind<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub desired: i32,
    pub maximum_percent: i32,
    pub minimum_healthy_percent: i32,
    pub grace_period: i32,
    /// Whether container `app` has a health check.
    pub health_check: bool,
    pub target_group: &'a str,
}

impl<'a> Behind<'a> {
    /// `desired` tasks of `cluster/service` in `target_group`: ECS's
    /// default percents (200, 100), no grace period, no container health check.
    pub fn new(cluster: &'a str, service: &'a str, desired: i32, target_group: &'a str) -> Self {
        Self {
            cluster,
            service,
            desired,
            maximum_percent: 200,
            minimum_healthy_percent: 100,
            grace_period: 0,
            health_check: false,
            target_group,
        }
    }
}

/// The cluster, the task definition (container `app`, port 80) and the
/// service, whose tasks ECS registers in the target group.
pub async fn service_behind(ecs: &aws_sdk_ecs::Client, b: &Behind<'_>) {
    ecs.create_cluster()
        .cluster_name(b.cluster)
        .send()
        .await
        .expect("create cluster");
    crate::register_task_definition(ecs, b.service, b.health_check).await;
    ecs.create_service()
        .cluster(b.cluster)
        .service_name(b.service)
        .task_definition(b.service)
        .desired_count(b.desired)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .maximum_percent(b.maximum_percent)
                .minimum_healthy_percent(b.minimum_healthy_percent)
                .build(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(b.target_group)
                .container_name("app")
                .container_port(80)
                .build(),
        )
        .health_check_grace_period_seconds(b.grace_period)
        .send()
        .await
        .expect("create service");
}

/// How many targets of `target_group` are `healthy`, as DescribeTargetHealth says.
pub async fn healthy_targets(elb: &elbv2::Client, target_group: &str) -> usize {
    let answer = elb
        .describe_target_health()
        .target_group_arn(target_group)
        .send()
        .await
        .expect("describe target health");
    answer
        .target_health_descriptions()
        .iter()
        .filter(|d| {
            d.target_health()
                .and_then(|h| h.state())
                .is_some_and(|s| s.as_str() == "healthy")
        })
        .count()
}
