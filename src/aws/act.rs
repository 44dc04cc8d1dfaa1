//! The decided actions, made: a desired count set (UpdateService), a task
//! stopped (StopTask, with the reason that names the request), the
//! autoscaler's settings set (RegisterScalableTarget) — each sent only
//! while the record's lease allows it.

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};

use super::observe::calls::describe_services;
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
        Action::SetDesired { from, to } => {
            // UpdateService sets the count whatever it is: read it right
            // before, and leave a count someone else set since the
            // decision's look (the autoscaler) as it is — the next look
            // decides on theirs. Found by the fault campaign (seed 3017: a
            // look slowed by the rate limit read 5, the autoscaler set 9
            // during it, and the surge set 6 over it).
            let now = desired_now(clients, cluster, service).await?;
            if now != Some(*from) {
                tracing::info!(cluster, service, from, to, now = ?now, "the desired count moved since the look; left as it is");
                return Ok(());
            }
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

/// The service's desired count as ECS has it now, read as every look reads
/// it; `None` for a service ECS no longer has ACTIVE.
async fn desired_now(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> Result<Option<u32>, AwsError> {
    let mut found = describe_services(clients, cluster, &[service.to_string()]).await;
    match found.remove(service) {
        Some(Ok(Ok(described))) => Ok(Some(described.view.desired)),
        Some(Err(e)) => Err(e),
        Some(Ok(Err(_))) | None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_config::retry::RetryConfig;

    use super::*;
    use crate::aws::ClientPool;
    use crate::aws::limit::ApiShare;
    use crate::metrics::Metrics;
    use crate::sandbox::fixture;

    /// The fault campaign's seed 3017: a count set by someone else after
    /// the decision's look is left as it is; an unmoved one is set.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_desired_count_is_set_only_from_the_count_the_decision_saw() {
        let sim = test_support::start_sim().await;
        let sdk = fixture::client_config(sim.url(), RetryConfig::standard()).await;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        fixture::create_service(&ecs, "prod", "web", 2, true)
            .await
            .unwrap();
        let pool = ClientPool::new(sdk.clone(), ApiShare::default(), Metrics::new());
        let clients = pool.for_role(None, None).await;
        let fence = Fence::new();
        fence.extend(tokio::time::Instant::now() + Duration::from_secs(60));
        let desired = || async {
            let out = ecs
                .describe_services()
                .cluster("prod")
                .services("web")
                .send()
                .await
                .unwrap();
            out.services()[0].desired_count()
        };
        // The autoscaler set 5 after the look that saw 2: left at 5.
        ecs.update_service()
            .cluster("prod")
            .service("web")
            .desired_count(5)
            .send()
            .await
            .unwrap();
        let surge = Action::SetDesired { from: 2, to: 3 };
        act(&clients, "prod", "web", &surge, &fence).await.unwrap();
        assert_eq!(desired().await, 5, "someone else's count is left");
        // From the count it saw: set.
        let surge = Action::SetDesired { from: 5, to: 6 };
        act(&clients, "prod", "web", &surge, &fence).await.unwrap();
        assert_eq!(desired().await, 6);
    }
}
