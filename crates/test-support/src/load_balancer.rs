//! Services behind a load balancer on the simulator, made through the
//! official SDKs: a load balancer with a listener forwarding to a target
//! group, and an ECS service whose tasks ECS registers in it.

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentConfiguration, HealthCheck, LoadBalancer, PortMapping,
};
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

/// Cluster `cluster` and service `service` of `desired` tasks whose
/// container `app` (port 80) ECS registers in `target_group`; a container
/// health check only when `health_check`.
pub async fn service_behind(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    desired: i32,
    maximum_percent: i32,
    target_group: &str,
    health_check: bool,
) {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("create cluster");
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
        .family(service)
        .container_definitions(container.build())
        .send()
        .await
        .expect("register task definition");
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(service)
        .desired_count(desired)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .maximum_percent(maximum_percent)
                .minimum_healthy_percent(100)
                .build(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(target_group)
                .container_name("app")
                .container_port(80)
                .build(),
        )
        .health_check_grace_period_seconds(0)
        .send()
        .await
        .expect("create service");
}
