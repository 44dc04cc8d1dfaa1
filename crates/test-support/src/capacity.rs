//! ECS beyond endless room, set up through the official SDK for the
//! simulator's tests and the operator's alike: container instances
//! registered as the agent does, a cluster whose capacity provider's Auto
//! Scaling group launches instances, services on a capacity provider
//! (Fargate Spot's among them), and the timeline's stops of protected tasks.

use std::time::Duration;

use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, CapacityProviderStrategyItem, ContainerDefinition, ManagedScaling,
    ManagedScalingStatus, Resource,
};
use serde_json::{Value, json};

use super::{Clients, Simulator, register_task_definition, wait_steady};

/// ECS's fixed durations run 100 times faster: a 90 s launch takes 0.9 s.
pub const ECS_TIME_SCALE: f64 = 100.0;

/// Task definition `family`, each task reserving `cpu` units and `memory`
/// MiB at the task level.
pub async fn sized_task_definition(
    ecs: &aws_sdk_ecs::Client,
    family: &str,
    cpu: &str,
    memory: &str,
) {
    ecs.register_task_definition()
        .family(family)
        .cpu(cpu)
        .memory(memory)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("nginx:1")
                .build(),
        )
        .send()
        .await
        .expect("register task definition");
}

/// Registers a container instance as the ECS agent does; answers its ARN.
pub async fn register_instance(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    cpu: i32,
    memory: i32,
) -> String {
    let resource = |name: &str, v: i32| {
        Resource::builder()
            .name(name)
            .r#type("INTEGER")
            .integer_value(v)
            .build()
    };
    ecs.register_container_instance()
        .cluster(cluster)
        .total_resources(resource("CPU", cpu))
        .total_resources(resource("MEMORY", memory))
        .send()
        .await
        .expect("register container instance")
        .container_instance()
        .and_then(|c| c.container_instance_arn())
        .expect("an ARN")
        .to_string()
}

pub fn strategy(provider: &str) -> CapacityProviderStrategyItem {
    CapacityProviderStrategyItem::builder()
        .capacity_provider(provider)
        .weight(1)
        .build()
        .expect("strategy item")
}

/// Cluster `prod` with one container instance of `cpu` units and `memory`
/// MiB, and a launch type EC2 service `web` of `desired` tasks of 512 MiB
/// each (container-level memory), steady; answers the instance's ARN.
pub async fn ec2_service(c: &Clients, cpu: i32, memory: i32, desired: i32) -> String {
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    let instance = register_instance(&c.ecs, "prod", cpu, memory).await;
    c.ecs
        .register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("nginx:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition("web")
        .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
        .desired_count(desired)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    instance
}

/// A cluster `prod` whose default strategy is provider `cp-web` over the
/// Auto Scaling group `asg-web` (`desired` instances of 1024 CPU and 2048
/// MiB up at once, at most `max`, each launched in `launch`, warm 300 s
/// later), with managed scaling; ECS's fixed durations run
/// [`ECS_TIME_SCALE`] times faster. Task definition `web` reserves 512 CPU
/// and 1024 MiB a task.
pub async fn cluster_on_group(sim: &Simulator, c: &Clients, desired: u32, max: u32, launch: &str) {
    sim.configure(json!({"ecsTimeScale": ECS_TIME_SCALE}))
        .unwrap();
    let group = sim
        .set_auto_scaling_group(
            json!({"name": "asg-web", "min": 0, "max": max, "desired": desired,
            "cpu": 1024, "memory": 2048, "launch": launch, "warmup": "300s"}),
        )
        .unwrap();
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    c.ecs
        .create_capacity_provider()
        .name("cp-web")
        .auto_scaling_group_provider(
            AutoScalingGroupProvider::builder()
                .auto_scaling_group_arn(group["autoScalingGroupArn"].as_str().unwrap())
                .managed_scaling(
                    ManagedScaling::builder()
                        .status(ManagedScalingStatus::Enabled)
                        .target_capacity(100)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .put_cluster_capacity_providers()
        .cluster("prod")
        .capacity_providers("cp-web")
        .default_capacity_provider_strategy(strategy("cp-web"))
        .send()
        .await
        .unwrap();
    sized_task_definition(&c.ecs, "web", "512", "1024").await;
}

/// Service `web` of cluster `prod`, task definition `web`, on the
/// cluster's default strategy.
pub async fn create_web(c: &Clients, desired: i32) {
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition("web")
        .desired_count(desired)
        .send()
        .await
        .unwrap();
}

/// Service `web` of `desired` tasks (with a container health check when
/// `health_check`) on Fargate `provider` in cluster `prod`, steady.
pub async fn service_on(c: &Clients, provider: &str, desired: i32, health_check: bool) {
    c.ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    c.ecs
        .put_cluster_capacity_providers()
        .cluster("prod")
        .capacity_providers("FARGATE")
        .capacity_providers("FARGATE_SPOT")
        .send()
        .await
        .unwrap();
    register_task_definition(&c.ecs, "web", health_check).await;
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition("web")
        .desired_count(desired)
        .capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider(provider)
                .weight(1)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
}

/// The transitions of every task that were marked as stops of a protected task.
pub fn protected_stops(timeline: &Value) -> Vec<String> {
    timeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["protected"] == true)
        })
        .map(|h| h["taskArn"].as_str().unwrap().to_string())
        .collect()
}
