//! The images a service's tasks start from, for the dry run: what each
//! container's task definition writes (a tag or a digest) and the digest
//! ECS resolved it to for the current deployment, read from one running
//! task (every task of a deployment starts from the same digests).

use super::{AwsError, Clients, classify};
use crate::request::observation::ContainerImage;

/// The images of `task` (an ARN of `cluster`) and of its task definition.
pub(crate) async fn images(
    clients: &Clients,
    cluster: &str,
    task: &str,
) -> Result<Vec<ContainerImage>, AwsError> {
    let action = "ecs:DescribeTasks";
    let described = clients
        .call(action, || async {
            clients
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .tasks(task)
                .send()
                .await
                .map_err(|e| classify(action, e))
        })
        .await?;
    let Some(task) = described.tasks().first() else {
        return Ok(Vec::new());
    };
    let td = task.task_definition_arn().unwrap_or_default().to_string();
    let action = "ecs:DescribeTaskDefinition";
    let definition = clients
        .call(action, || async {
            clients
                .ecs
                .describe_task_definition()
                .task_definition(&td)
                .send()
                .await
                .map_err(|e| classify(action, e))
        })
        .await?;
    let definitions = definition
        .task_definition()
        .map(|d| d.container_definitions())
        .unwrap_or_default();
    Ok(definitions
        .iter()
        .map(|c| {
            let name = c.name().unwrap_or_default().to_string();
            let running = task.containers().iter().find(|r| r.name() == Some(&name));
            ContainerImage {
                written: c.image().unwrap_or_default().to_string(),
                digest: running.and_then(|r| r.image_digest()).map(str::to_string),
                pinned: c.version_consistency().map(|v| v.as_str()) != Some("disabled"),
                container: name,
            }
        })
        .collect())
}
