//! Service tags and task ages, through the official aws-sdk-ecs client:
//! tags given at CreateService, changed with TagResource and UntagResource,
//! read with ListTagsForResource and `include: [TAGS]`; bad ARNs and
//! reserved keys refused as ECS refuses them; `/_sim/age` moves a
//! service's tasks back in time.

use aws_sdk_ecs::types::{ServiceField, Tag};
use serde_json::json;
use test_support::*;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

#[tokio::test]
async fn tags_are_kept_changed_and_answered_as_ecs_answers_them() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 1, false).await;
    c.ecs
        .register_task_definition()
        .family("api")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("nginx:1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.ecs
        .create_service()
        .cluster("prod")
        .service_name("api")
        .task_definition("api")
        .desired_count(1)
        .tags(tag("team", "payments"))
        .send()
        .await
        .unwrap();
    let arn = |name: &str| format!("arn:aws:ecs:us-east-1:123456789012:service/prod/{name}");
    let web = describe(&c.ecs, "prod", "web")
        .await
        .service_arn()
        .unwrap()
        .to_string();
    assert_eq!(web, arn("web"));
    c.ecs
        .tag_resource()
        .resource_arn(&web)
        .tags(tag("team", "search"))
        .tags(tag("tier", "1"))
        .send()
        .await
        .unwrap();
    let listed = c
        .ecs
        .list_tags_for_resource()
        .resource_arn(&web)
        .send()
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = listed
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(pairs, [("team", "search"), ("tier", "1")]);

    let described = c
        .ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .services("api")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let teams: Vec<(&str, &str)> = described
        .services()
        .iter()
        .map(|s| {
            let team = s.tags().iter().find(|t| t.key() == Some("team")).unwrap();
            (s.service_name().unwrap(), team.value().unwrap())
        })
        .collect();
    assert_eq!(teams, [("web", "search"), ("api", "payments")]);
    // Without include, no tags (as ECS answers).
    let plain = describe(&c.ecs, "prod", "web").await;
    assert!(plain.tags().is_empty());

    c.ecs
        .untag_resource()
        .resource_arn(&web)
        .tag_keys("tier")
        .send()
        .await
        .unwrap();
    let listed = c
        .ecs
        .list_tags_for_resource()
        .resource_arn(&web)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.tags().len(), 1);

    let err = c
        .ecs
        .tag_resource()
        .resource_arn(arn("nope"))
        .tags(tag("a", "b"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{:?}", err.into_service_error()).contains("InvalidParameterException"));
    let err = c
        .ecs
        .tag_resource()
        .resource_arn(&web)
        .tags(tag("aws:owner", "me"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{:?}", err.into_service_error()).contains("reserved"));
}

#[tokio::test]
async fn a_service_can_be_made_older() {
    let (sim, c) = steady_service("prod", "web", 2, false).await;
    let before = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .set_tasks(Some(running_task_arns(&c.ecs, "prod", "web").await))
        .send()
        .await
        .unwrap();
    let started = |d: &aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput| -> Vec<i64> {
        d.tasks()
            .iter()
            .map(|t| t.started_at().unwrap().secs())
            .collect()
    };
    let answer = sim
        .age(json!({"cluster": "prod", "service": "web", "by": "8d"}))
        .unwrap();
    assert_eq!(answer["aged"], 2);
    let after = c
        .ecs
        .describe_tasks()
        .cluster("prod")
        .set_tasks(Some(running_task_arns(&c.ecs, "prod", "web").await))
        .send()
        .await
        .unwrap();
    for (b, a) in started(&before).iter().zip(started(&after)) {
        assert_eq!(b - a, 8 * 86_400);
    }
    let body = json!({"cluster": "prod", "service": "nope", "by": "1d"}).to_string();
    let (status, body) = raw_request(
        sim.url(),
        "POST",
        "/_sim/age",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
