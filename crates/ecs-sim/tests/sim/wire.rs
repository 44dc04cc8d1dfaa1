//! The simulator at the wire: errors in AWS's shapes, throttling as the SDK
//! sees it, malformed requests that neither panic nor change state, and the
//! `/_sim/` control API over HTTP.

use aws_sdk_ecs::error::ProvideErrorMetadata;
use serde_json::{Value, json};
use test_support::*;

const ECS: &str = "AmazonEC2ContainerServiceV20141113";
const AAS: &str = "AnyScaleFrontendService";

#[tokio::test]
async fn injected_throttling_surfaces_as_the_sdk_throttling_error() {
    let sim = start_sim().await;
    let config = sdk_config(sim.url(), false).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    sim.configure(json!({"throttle": {"fraction": 1.0, "operations": ["ListTasks"]}}))
        .unwrap();
    let err = ecs.list_tasks().cluster("prod").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    // Other operations are not throttled.
    ecs.describe_clusters()
        .clusters("prod")
        .send()
        .await
        .unwrap();

    // A token bucket lets `capacity` calls through, then throttles.
    sim.configure(json!({"throttle": {"buckets": {"DescribeClusters": {"capacity": 2, "refillPerSecond": 0}}}}))
        .unwrap();
    for _ in 0..2 {
        ecs.describe_clusters()
            .clusters("prod")
            .send()
            .await
            .unwrap();
    }
    let err = ecs
        .describe_clusters()
        .clusters("prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));

    // With its standard retries the SDK rides through partial throttling.
    sim.configure(json!({"throttle": {"fraction": 0.3}}))
        .unwrap();
    let retrying = aws_sdk_ecs::Client::new(&sdk_config(sim.url(), true).await);
    for _ in 0..10 {
        retrying.list_tasks().cluster("prod").send().await.unwrap();
    }
    let throttled = sim.timeline()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["error"] == "ThrottlingException")
        .count();
    assert!(throttled >= 3, "throttled calls are in the timeline");
}

/// An ECS client signing with `key`: the simulator takes the access key
/// for the account.
async fn ecs_as(url: &str, key: &str, region: &str) -> aws_sdk_ecs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            key, "secret", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_ecs::Client::new(&config)
}

#[tokio::test]
async fn realistic_buckets_are_ecss_per_category_account_and_region() {
    let sim = start_sim().await;
    let ecs = ecs_as(sim.url(), "AKIAONE", "us-east-1").await;
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    sim.configure(json!({"throttle": {"realistic": {}}}))
        .unwrap();
    // ListTasks and DescribeTasks share "cluster resource read": 100 at once.
    let mut answered = 0;
    let mut throttled = 0;
    for i in 0..120 {
        let result = if i % 2 == 0 {
            ecs.list_tasks()
                .cluster("prod")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string))
        } else {
            ecs.describe_tasks()
                .cluster("prod")
                .tasks("none")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string))
        };
        match result {
            Ok(()) => answered += 1,
            Err(Some(code)) if code == "ThrottlingException" => throttled += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    // The bucket refills 20 a second while the calls go: a few more pass
    // (more on a loaded machine), but not all.
    assert!(
        (100..120).contains(&answered) && throttled > 0,
        "{answered} answered"
    );
    assert_eq!(answered + throttled, 120);
    // Another category, another account, another Region: buckets of their own.
    ecs.describe_clusters()
        .clusters("prod")
        .send()
        .await
        .unwrap();
    let other = ecs_as(sim.url(), "AKIATWO", "us-east-1").await;
    other.list_tasks().cluster("prod").send().await.unwrap();
    let elsewhere = ecs_as(sim.url(), "AKIAONE", "eu-west-1").await;
    elsewhere.list_tasks().cluster("prod").send().await.unwrap();
    let timeline = sim.timeline();
    assert_eq!(
        timeline["throttled"]["cluster-resource-read"],
        json!(throttled)
    );
    assert!(timeline["throttled"].get("cluster-read").is_none());
    // UpdateService's "service modify" holds 50.
    let mut refused = 0;
    for _ in 0..70 {
        let err = ecs
            .update_service()
            .cluster("prod")
            .service("ghost")
            .desired_count(1)
            .send()
            .await
            .unwrap_err();
        refused += usize::from(err.code() == Some("ThrottlingException"));
    }
    // 50 pass the bucket (to be refused as unknown); 5 a second refill it.
    assert!((1..=20).contains(&refused), "{refused} throttled of 70");
    // A bad time scale is refused, naming the field.
    let err = sim
        .configure(json!({"throttle": {"realistic": {"timeScale": 0}}}))
        .unwrap_err();
    assert!(err.contains("throttle.realistic.timeScale"), "{err}");
}

async fn state_fingerprint(url: &str) -> Value {
    let (_, services) = aws_call(
        url,
        &format!("{ECS}.DescribeServices"),
        r#"{"cluster":"prod","services":["web"]}"#,
    )
    .await;
    let (_, targets) = aws_call(
        url,
        &format!("{AAS}.DescribeScalableTargets"),
        r#"{"ServiceNamespace":"ecs"}"#,
    )
    .await;
    let s = &services["services"][0];
    json!({
        "desired": s["desiredCount"], "td": s["taskDefinition"], "deployments": s["deployments"].as_array().map(Vec::len),
        "status": s["status"], "config": s["deploymentConfiguration"], "targets": targets,
    })
}

#[tokio::test]
async fn malformed_requests_get_aws_errors_and_change_nothing() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 2, false).await;
    let url = sim.url().to_string();
    let before = state_fingerprint(&url).await;

    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "AmazonEC2ContainerServiceV20141113.Frobnicate",
            "{}",
            "UnknownOperationException",
        ),
        (
            "NoSuchService.DescribeServices",
            "{}",
            "UnknownOperationException",
        ),
        ("", "{}", "UnknownOperationException"),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            "{not json",
            "SerializationException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            "[1,2]",
            "SerializationException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            r#"{"cluster":"prod","service":"web","desiredCount":"ten"}"#,
            "SerializationException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            r#"{"cluster":"prod","service":"web","desiredCount":-1}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            r#"{"cluster":"prod","service":"web","desiredCount":5,"deploymentConfiguration":{"maximumPercent":50}}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            r#"{"cluster":"prod","service":"web","desiredCount":5,"taskDefinition":"nope:9"}"#,
            "ClientException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.UpdateService",
            r#"{"cluster":"prod"}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.DescribeServices",
            r#"{"cluster":"prod","services":[]}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.ListTasks",
            r#"{"cluster":"prod","maxResults":0}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.ListTasks",
            r#"{"cluster":"prod","nextToken":"garbage"}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.ListTasks",
            r#"{"cluster":"prod","desiredStatus":"DEAD"}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.StopTask",
            r#"{"cluster":"prod","task":"0000"}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.StopTask",
            r#"{"cluster":"prod"}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.CreateService",
            r#"{"cluster":"prod","serviceName":"web","taskDefinition":"web","desiredCount":1}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.CreateService",
            r#"{"cluster":"prod","serviceName":"bad name!","taskDefinition":"web","desiredCount":1}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
            r#"{"family":"web","containerDefinitions":[{"name":"x"}]}"#,
            "ClientException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.DeleteService",
            r#"{"cluster":"prod","service":"web"}"#,
            "InvalidParameterException",
        ),
        (
            "AmazonEC2ContainerServiceV20141113.DescribeServices",
            r#"{"cluster":"elsewhere","services":["web"]}"#,
            "ClusterNotFoundException",
        ),
        (
            "AnyScaleFrontendService.RegisterScalableTarget",
            r#"{"ServiceNamespace":"ecs","ResourceId":"service/prod/web","ScalableDimension":"ecs:service:DesiredCount"}"#,
            "ValidationException",
        ),
        (
            "AnyScaleFrontendService.RegisterScalableTarget",
            r#"{"ServiceNamespace":"ecs","ResourceId":"nonsense","ScalableDimension":"ecs:service:DesiredCount","MinCapacity":1,"MaxCapacity":2}"#,
            "ValidationException",
        ),
        (
            "AnyScaleFrontendService.RegisterScalableTarget",
            r#"{"ServiceNamespace":"ecs","ResourceId":"service/prod/web","ScalableDimension":"ecs:service:DesiredCount","MinCapacity":-1,"MaxCapacity":2}"#,
            "ValidationException",
        ),
        (
            "AnyScaleFrontendService.RegisterScalableTarget",
            r#"{"ServiceNamespace":"ecs","ResourceId":"service/prod/web","ScalableDimension":"ecs:service:DesiredCount","MinCapacity":1,"MaxCapacity":2,"SuspendedState":"yes"}"#,
            "SerializationException",
        ),
        (
            "AnyScaleFrontendService.DescribeScalableTargets",
            r#"{}"#,
            "ValidationException",
        ),
        (
            "AnyScaleFrontendService.DescribeScalableTargets",
            r#"{"ServiceNamespace":"ecs","MaxResults":1000}"#,
            "ValidationException",
        ),
    ];
    for (target, body, code) in &cases {
        let (status, answer) = aws_call(&url, target, body).await;
        assert_eq!(status, 400, "{target} {body}: {answer}");
        assert_eq!(answer["__type"], *code, "{target} {body}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    // Bytes that are not even text.
    let (status, _) = raw_request(
        &url,
        "POST",
        "/",
        &[(
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.UpdateService",
        )],
        &[0xff, 0xfe, 0x00, 0x7b],
    )
    .await;
    assert_eq!(status, 400);
    // Deeply nested JSON.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, _) = raw_request(
        &url,
        "POST",
        "/",
        &[(
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.UpdateService",
        )],
        deep.as_bytes(),
    )
    .await;
    assert_eq!(status, 400);

    assert_eq!(
        state_fingerprint(&url).await,
        before,
        "refused requests changed nothing"
    );
    // And the simulator still works.
    wait_steady(&c.ecs, "prod", "web", std::time::Duration::from_secs(20)).await;
}

#[tokio::test]
async fn the_control_api_speaks_json_over_http() {
    let sim = start_sim().await;
    let c = clients(&sim).await;
    create_service(&c.ecs, "prod", "web", 1, false).await;
    let url = sim.url().to_string();
    let (status, body) = raw_request(&url, "GET", "/_sim/health", &[], b"").await;
    assert_eq!((status, body.contains("true")), (200, true));

    let (status, body) = raw_request(
        &url,
        "POST",
        "/_sim/config",
        &[],
        br#"{"timings":{"taskStart":"250ms","taskStop":"1s"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["timings"]["taskStart"], "250ms");
    assert_eq!(v["timings"]["taskStop"], "1s");

    for bad in [
        r#"{"timings":{"taskStart":"soon"}}"#,
        r#"{"faults":{"failStart":2}}"#,
        r#"{"throttle":{"fraction":-1}}"#,
        r#"{"timing":{}}"#,
        "not json",
    ] {
        let (status, body) = raw_request(&url, "POST", "/_sim/config", &[], bad.as_bytes()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("error"), "{body}");
    }
    let (status, _) = raw_request(
        &url,
        "POST",
        "/_sim/services/prod/web",
        &[],
        br#"{"timings":{"taskHealthy":"100ms"}}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = raw_request(&url, "POST", "/_sim/services/prod/ghost", &[], b"{}").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw_request(
        &url,
        "POST",
        "/_sim/scale",
        &[],
        br#"{"cluster":"prod","service":"web","desiredCount":3}"#,
    )
    .await;
    assert_eq!(status, 400, "no scalable target yet: {body}");
    assert!(body.contains("no scalable target"), "{body}");

    let (status, body) = raw_request(&url, "GET", "/_sim/timeline", &[], b"").await;
    assert_eq!(status, 200);
    let timeline: Value = serde_json::from_str(&body).unwrap();
    for key in ["calls", "tasks", "services"] {
        assert!(timeline[key].is_array(), "{key}");
    }
    let call = &timeline["calls"][0];
    assert_eq!(call["op"], "CreateCluster");
    assert!(call["t"].as_f64().unwrap() >= 0.0);
}
