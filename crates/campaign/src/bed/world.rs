//! The services of a schedule, made on the simulator before the replicas
//! start: on Fargate (behind a load balancer or not), on a capacity
//! provider strategy with Fargate Spot in it, or on an EC2 capacity
//! provider with managed scaling and no room to spare, each with its
//! Application Auto Scaling target; every one steady before the run.

use std::time::Duration;

use anyhow::Context;
use test_support::load_balancer::{Behind, TargetGroupSettings, service_behind, target_group};

use super::Clients;
use super::sim::SimProcess;
use crate::plan::{CLUSTER, ServicePlan, Spot};

pub(super) async fn make_services(
    sim: &SimProcess,
    c: &Clients,
    services: &[ServicePlan],
) -> anyhow::Result<()> {
    let mut providers = vec!["FARGATE".to_string(), "FARGATE_SPOT".to_string()];
    if services.iter().any(|s| s.spot.is_some() || s.ec2) {
        c.ecs.create_cluster().cluster_name(CLUSTER).send().await?;
        for s in services.iter().filter(|s| s.ec2) {
            providers.push(ec2_provider(sim, c, s).await?);
        }
        c.ecs
            .put_cluster_capacity_providers()
            .cluster(CLUSTER)
            .set_capacity_providers(Some(providers.clone()))
            .set_default_capacity_provider_strategy(Some(Vec::new()))
            .send()
            .await
            .context("the cluster's capacity providers")?;
    }
    for s in services {
        if s.ec2 {
            service_on_ec2(c, s).await?;
        } else if let Some(spot) = s.spot {
            service_on_spot(c, s, spot).await?;
        } else if s.load_balancer {
            let settings = TargetGroupSettings {
                deregistration_delay: 5,
                ..TargetGroupSettings::default()
            };
            let tg = target_group(&c.elb, &s.name, settings).await;
            let mut behind = Behind::new(CLUSTER, &s.name, s.tasks as i32, &tg);
            behind.health_check = s.health_check;
            service_behind(&c.ecs, &behind).await;
        } else {
            test_support::create_service(&c.ecs, CLUSTER, &s.name, s.tasks as i32, s.health_check)
                .await;
        }
        if let Some((min, max)) = s.autoscaling {
            use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
            c.aas
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(format!("service/{CLUSTER}/{}", s.name))
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .min_capacity(min as i32)
                .max_capacity(max as i32)
                .send()
                .await?;
        }
    }
    for s in services {
        test_support::wait_steady(&c.ecs, CLUSTER, &s.name, Duration::from_secs(30)).await;
    }
    Ok(())
}

/// Service `s` on a capacity provider strategy with FARGATE_SPOT in it,
/// behind its own target group when it has a load balancer (ECS's default
/// percents, as the others).
async fn service_on_spot(c: &Clients, s: &ServicePlan, spot: Spot) -> anyhow::Result<()> {
    use aws_sdk_ecs::types::{CapacityProviderStrategyItem, LoadBalancer};
    let item = |provider: &str, base: i32| {
        CapacityProviderStrategyItem::builder()
            .capacity_provider(provider)
            .weight(1)
            .base(base)
            .build()
    };
    let strategy = match spot {
        Spot::Only => vec![item("FARGATE_SPOT", 0)?],
        Spot::Mixed => vec![item("FARGATE", 1)?, item("FARGATE_SPOT", 0)?],
    };
    test_support::register_task_definition(&c.ecs, &s.name, s.health_check).await;
    let mut create = c
        .ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name(&s.name)
        .task_definition(&s.name)
        .desired_count(s.tasks as i32)
        .set_capacity_provider_strategy(Some(strategy));
    if s.load_balancer {
        let settings = TargetGroupSettings {
            deregistration_delay: 5,
            ..TargetGroupSettings::default()
        };
        let tg = target_group(&c.elb, &s.name, settings).await;
        create = create.load_balancers(
            LoadBalancer::builder()
                .target_group_arn(tg)
                .container_name("app")
                .container_port(80)
                .build(),
        );
    }
    create
        .send()
        .await
        .with_context(|| format!("create {} on Fargate Spot", s.name))?;
    Ok(())
}

/// Each task of an EC2 service reserves this much CPU and memory.
const TASK_CPU: i32 = 256;
const TASK_MEMORY: i32 = 512;

/// An Auto Scaling group of one instance with room for exactly the
/// service's tasks (so the surge waits for a launch), at most three,
/// each launched in a minute of ECS's and warm two minutes after; and
/// capacity provider `cp-<service>` over it with managed scaling.
/// Answers the provider's name.
async fn ec2_provider(sim: &SimProcess, c: &Clients, s: &ServicePlan) -> anyhow::Result<String> {
    use aws_sdk_ecs::types::{AutoScalingGroupProvider, ManagedScaling, ManagedScalingStatus};
    let group = sim
        .control(
            "/_sim/auto-scaling-groups",
            serde_json::json!({"name": format!("asg-{}", s.name), "min": 0, "max": 3, "desired": 1,
                "cpu": TASK_CPU * s.tasks as i32, "memory": TASK_MEMORY * s.tasks as i32,
                "launch": "60s", "warmup": "120s"}),
        )
        .await?;
    let arn = group["autoScalingGroupArn"]
        .as_str()
        .context("the group's ARN")?;
    let name = format!("cp-{}", s.name);
    let scaling = ManagedScaling::builder()
        .status(ManagedScalingStatus::Enabled)
        .target_capacity(100)
        .build();
    c.ecs
        .create_capacity_provider()
        .name(&name)
        .auto_scaling_group_provider(
            AutoScalingGroupProvider::builder()
                .auto_scaling_group_arn(arn)
                .managed_scaling(scaling)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("create capacity provider {name}"))?;
    Ok(name)
}

/// Service `s` on its EC2 capacity provider, its tasks sized to fill the
/// group's one instance (a container health check if it has one).
async fn service_on_ec2(c: &Clients, s: &ServicePlan) -> anyhow::Result<()> {
    use aws_sdk_ecs::types::{CapacityProviderStrategyItem, ContainerDefinition, HealthCheck};
    let mut container = ContainerDefinition::builder().name("app").image("nginx:1");
    if s.health_check {
        container = container.health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f http://localhost/ || exit 1")
                .build()?,
        );
    }
    c.ecs
        .register_task_definition()
        .family(&s.name)
        .cpu(TASK_CPU.to_string())
        .memory(TASK_MEMORY.to_string())
        .container_definitions(container.build())
        .send()
        .await?;
    c.ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name(&s.name)
        .task_definition(&s.name)
        .desired_count(s.tasks as i32)
        .capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider(format!("cp-{}", s.name))
                .weight(1)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("create {} on EC2", s.name))?;
    Ok(())
}
