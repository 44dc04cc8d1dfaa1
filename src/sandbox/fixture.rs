//! Services made on the simulator through the official SDK, as a person
//! would make them on ECS: for the sandbox and the benchmark. Client code,
//! not the simulator's: built from the SDK's public calls only, so what it
//! sets up is what an operator meets on AWS.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ecs::types::{ContainerDefinition, HealthCheck};

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A call was refused or could not be made.
    #[error("{0}")]
    Aws(String),
    /// The service did not settle in time.
    #[error("{0}")]
    NotSteady(String),
}

fn failed(what: &str, e: impl std::fmt::Display) -> FixtureError {
    FixtureError::Aws(format!("{what}: {e}"))
}

/// SDK configuration for a local endpoint (the simulator, moto): its URL,
/// a fixed Region and placeholder credentials, which neither checks.
pub async fn client_config(url: &str, retry: RetryConfig) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .retry_config(retry)
        .load()
        .await
}

/// Cluster, task definition (with a container health check) and service.
pub async fn create_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    desired: i32,
    new_cluster: bool,
) -> Result<(), FixtureError> {
    if new_cluster {
        ecs.create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .map_err(|e| failed("CreateCluster", e))?;
    }
    let container = ContainerDefinition::builder()
        .name("app")
        .image("nginx:1")
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f http://localhost/ || exit 1")
                .build()
                .map_err(|e| failed("health check", e))?,
        )
        .build();
    ecs.register_task_definition()
        .family(service)
        .container_definitions(container)
        .send()
        .await
        .map_err(|e| failed("RegisterTaskDefinition", e))?;
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(service)
        .desired_count(desired)
        .send()
        .await
        .map_err(|e| failed("CreateService", e))?;
    Ok(())
}

/// Waits until every named service of the cluster runs `desired` healthy
/// tasks with one completed deployment.
pub async fn wait_steady(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
    desired: usize,
    within: Duration,
) -> Result<(), FixtureError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if steady(ecs, cluster, services, desired).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(FixtureError::NotSteady(format!(
                "the services of {cluster} were not steady within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether every named service runs `desired` healthy tasks with one completed deployment.
pub async fn steady(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
    desired: usize,
) -> Result<bool, FixtureError> {
    for chunk in services.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| failed("DescribeServices", e))?;
        for s in out.services() {
            let d = s.deployments();
            let steady = d.len() == 1
                && d[0].rollout_state()
                    == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Completed)
                && s.running_count() as usize == desired
                && s.pending_count() == 0;
            if !steady {
                return Ok(false);
            }
        }
    }
    for service in services {
        let arns = ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .send()
            .await
            .map_err(|e| failed("ListTasks", e))?
            .task_arns()
            .to_vec();
        if arns.len() != desired {
            return Ok(false);
        }
        let tasks = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .map_err(|e| failed("DescribeTasks", e))?;
        if tasks
            .tasks()
            .iter()
            .any(|t| t.health_status().map(|h| h.as_str()) != Some("HEALTHY"))
        {
            return Ok(false);
        }
    }
    Ok(true)
}
