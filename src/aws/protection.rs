//! The scale-in protection of tasks (GetTaskProtection), read right before
//! a batch is stopped and for a dry run: up to
//! [`READ_AT_ONCE`](crate::request::decide::READ_AT_ONCE) tasks a call,
//! through [`Clients::call`] like every read (the `task-protection`
//! throttling category). A task ECS no longer knows or that is stopping
//! (`MISSING`, `TASK_NOT_VALID`) is not protected: ECS protects only tasks
//! of a service that are meant to run.

use super::observe::calls::to_utc;
use super::{AwsError, Clients, classify};
use crate::request::decide::READ_AT_ONCE;
use crate::request::observation::TaskProtection;

pub(crate) const ACTION: &str = "ecs:GetTaskProtection";

/// The protection of each of `arns`, in the cluster.
pub(crate) async fn read(
    clients: &Clients,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<TaskProtection>, AwsError> {
    let mut out = Vec::new();
    for chunk in arns.chunks(READ_AT_ONCE) {
        let answer = clients
            .call(ACTION, || async {
                clients
                    .ecs
                    .get_task_protection()
                    .cluster(cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify(ACTION, e))
            })
            .await?;
        for arn in chunk {
            let found = answer
                .protected_tasks()
                .iter()
                .find(|p| p.task_arn().is_some_and(|a| same_task(a, arn)));
            out.push(TaskProtection {
                arn: arn.clone(),
                protected: found.is_some_and(|p| p.protection_enabled()),
                until: found
                    .filter(|p| p.protection_enabled())
                    .and_then(|p| to_utc(p.expiration_date())),
            });
        }
    }
    Ok(out)
}

/// An ARN and an ARN or id name the same task.
fn same_task(a: &str, b: &str) -> bool {
    a == b || a.rsplit('/').next() == b.rsplit('/').next()
}
