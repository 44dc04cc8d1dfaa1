//! The decided actions, made: a desired count set (UpdateService), a task
//! stopped (StopTask, with the reason that names the request), the
//! autoscaler's settings set (RegisterScalableTarget) — each sent only
//! while the record's lease allows it.

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};

use super::{AwsError, Clients, classify, resource_id};
use crate::fence::Fence;
use crate::request::decide::Action;

/// Performs one decided action, only while `fence` allows it.
pub(crate) async fn act(
    clients: &Clients,
    cluster: &str,
    service: &str,
    action: &Action,
    fence: &Fence,
) -> Result<(), AwsError> {
    match action {
        Action::SetDesired { to, .. } => {
            clients
                .mutate("ecs:UpdateService", fence, || async {
                    clients
                        .ecs
                        .update_service()
                        .cluster(cluster)
                        .service(service)
                        .desired_count(*to as i32)
                        .send()
                        .await
                        .map_err(|e| classify("ecs:UpdateService", e))
                })
                .await?;
        }
        Action::StopTask { arn, reason } => {
            clients
                .mutate("ecs:StopTask", fence, || async {
                    clients
                        .ecs
                        .stop_task()
                        .cluster(cluster)
                        .task(arn)
                        .reason(reason)
                        .send()
                        .await
                        .map_err(|e| classify("ecs:StopTask", e))
                })
                .await?;
            clients.metrics.tasks_recycled.inc();
        }
        Action::SetScaling(s) => {
            let action = "application-autoscaling:RegisterScalableTarget";
            clients
                .mutate(action, fence, || async {
                    clients
                        .aas
                        .register_scalable_target()
                        .service_namespace(ServiceNamespace::Ecs)
                        .resource_id(resource_id(cluster, service))
                        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                        .max_capacity(s.max as i32)
                        .suspended_state(
                            SuspendedState::builder()
                                .dynamic_scaling_in_suspended(s.dynamic_scaling_in_suspended)
                                .dynamic_scaling_out_suspended(s.dynamic_scaling_out_suspended)
                                .scheduled_scaling_suspended(s.scheduled_scaling_suspended)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| classify(action, e))
                })
                .await?;
        }
    }
    Ok(())
}
