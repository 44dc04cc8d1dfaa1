//! Application Auto Scaling in the simulator, driven by the official
//! aws-sdk-applicationautoscaling client: min/max clamp the desired count,
//! suspended states are stored exactly and honoured by the simulated policy.

use std::time::Duration;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use serde_json::json;
use test_support::*;

async fn desired(c: &Clients) -> i32 {
    describe(&c.ecs, "prod", "web").await.desired_count()
}

#[tokio::test]
async fn registering_a_minimum_above_desired_raises_it_and_max_clamps_the_policy() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 2, false).await;
    register_target(&c, Some(3), Some(5), None).await;
    assert_eq!(desired(&c).await, 3);

    let target = c
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids("service/prod/web")
        .send()
        .await
        .unwrap();
    let t = &target.scalable_targets()[0];
    assert_eq!((t.min_capacity(), t.max_capacity()), (3, 5));
    let s = t.suspended_state().unwrap();
    assert_eq!(
        (
            s.dynamic_scaling_in_suspended(),
            s.dynamic_scaling_out_suspended(),
            s.scheduled_scaling_suspended()
        ),
        (Some(false), Some(false), Some(false))
    );

    // The policy asks for 9: it gets max.
    let out = sim.policy_scale("prod", "web", 9).unwrap();
    assert_eq!(out["after"], 5);
    assert_eq!(desired(&c).await, 5);
    // Lowering max below desired brings desired down with it.
    register_target(&c, None, Some(4), None).await;
    assert_eq!(desired(&c).await, 4);
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn suspended_scale_in_is_stored_and_honoured() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 4, false).await;
    register_target(
        &c,
        Some(1),
        Some(8),
        Some(
            SuspendedState::builder()
                .dynamic_scaling_in_suspended(true)
                .build(),
        ),
    )
    .await;

    let out = sim.policy_scale("prod", "web", 2).unwrap();
    assert_eq!(out["after"], 4);
    assert_eq!(out["notScaledReason"], "DynamicScalingInSuspended");
    assert_eq!(desired(&c).await, 4);
    // Scale-out is not suspended.
    assert_eq!(sim.policy_scale("prod", "web", 6).unwrap()["after"], 6);

    // A SuspendedState given again replaces the old one; omitted members are false.
    register_target(
        &c,
        None,
        None,
        Some(
            SuspendedState::builder()
                .scheduled_scaling_suspended(true)
                .build(),
        ),
    )
    .await;
    let t = c
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let s = t.scalable_targets()[0].suspended_state().unwrap();
    assert_eq!(s.dynamic_scaling_in_suspended(), Some(false));
    assert_eq!(s.scheduled_scaling_suspended(), Some(true));
    assert_eq!(sim.policy_scale("prod", "web", 2).unwrap()["after"], 2);

    // Every policy decision is in the timeline.
    let timeline = sim.timeline();
    let decisions: Vec<_> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "_sim:ScalingPolicy")
        .collect();
    assert_eq!(decisions.len(), 3);
    assert_eq!(
        decisions[0]["params"]["blocked"],
        "DynamicScalingInSuspended"
    );
}

#[tokio::test]
async fn a_driven_policy_changes_desired_count_on_its_own() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 3, false).await;
    register_target(&c, Some(1), Some(10), None).await;
    sim.set_policy(
        json!({"cluster": "prod", "service": "web", "every": "100ms", "targets": [5, 2]}),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    sim.set_policy(json!({"cluster": "prod", "service": "web"}))
        .unwrap();
    let timeline = sim.timeline();
    let seen: Vec<u64> = samples(&timeline, "prod", "web")
        .iter()
        .map(|s| s.1)
        .collect();
    assert!(seen.contains(&5) && seen.contains(&2), "{seen:?}");
    let activities = c
        .aas
        .describe_scaling_activities()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/prod/web")
        .send()
        .await
        .unwrap();
    assert!(activities.scaling_activities().len() >= 3);
}

#[tokio::test]
async fn errors_come_in_the_shapes_aws_uses() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 1, false).await;
    let err = c
        .aas
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/prod/web")
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_object_not_found_exception(), "{err:?}");

    let err = c
        .aas
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/prod/web")
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .min_capacity(5)
        .max_capacity(2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    let err = c
        .aas
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id("service/prod/ghost")
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .min_capacity(1)
        .max_capacity(2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert!(err.to_string().contains("service/prod/ghost"), "{err}");
    // Nothing was registered by the refused calls.
    let t = c
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    assert!(t.scalable_targets().is_empty());
}
