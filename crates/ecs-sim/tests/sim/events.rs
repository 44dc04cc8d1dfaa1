//! ECS's events as the simulator emits them, read back from an SQS queue on
//! moto's server with the official aws-sdk-sqs client: the envelope, a
//! task's life with versions that grow with every change, a service's
//! steady state, a deployment; the feed made unreliable at a seed (drops,
//! duplicates, reordering) and silent, and a queue that does not answer
//! never holding the scheduler back.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use test_support::moto::Moto;
use test_support::*;

use super::elb::wait_for;

/// moto's server, and a queue `ecs-events` on it.
async fn queue() -> (Moto, aws_sdk_sqs::Client, String) {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let config = sdk_config(&moto.url, false).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .create_queue()
        .queue_name("ecs-events")
        .send()
        .await
        .expect("create queue on moto")
        .queue_url()
        .unwrap()
        .to_string();
    (moto, sqs, url)
}

/// Receives (and deletes) what the queue holds until `enough` says so.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    mut enough: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while !enough(&got) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} events received, not enough",
            got.len()
        );
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from moto");
        for m in out.messages() {
            got.push(serde_json::from_str(m.body().unwrap()).expect("an event is JSON"));
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    got
}

fn named<'a>(events: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .collect()
}

/// Service `web` (2 tasks with a health check, on the FARGATE provider) in
/// cluster `prod`, steady, then through a forced deployment, steady again.
async fn service_through_a_deployment(c: &Clients) {
    super::spot::service_on(c, "FARGATE", 2, true).await;
    c.ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
}

/// The feed has handed on all it will, and the sender has done with it.
async fn settled(sim: &Simulator) -> Value {
    let mut summary = sim.events();
    wait_for("the feed to settle", || {
        summary = sim.events();
        let n = |k: &str| summary[k].as_u64().unwrap();
        summary["held"] == 0 && n("sent") + n("failed") + n("overflowed") == n("released")
    })
    .await;
    summary
}

const ORDER: [&str; 8] = [
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_life_a_steady_state_and_a_deployment_arrive_as_ecs_sends_them() {
    let (_moto, sqs, url) = queue().await;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"events": {"sqsQueueUrl": url}}))
        .unwrap();
    service_through_a_deployment(&c).await;
    let summary = settled(&sim).await;
    let emitted = summary["emitted"].as_u64().unwrap() as usize;
    assert!(emitted > 20, "{summary}");
    assert_eq!(
        (summary["sent"].as_u64(), summary["dropped"].as_u64()),
        (Some(emitted as u64), Some(0))
    );
    let events = receive(&sqs, &url, |got| got.len() >= emitted).await;
    assert_eq!(events.len(), emitted);

    // The envelope, for every event.
    let mut ids = std::collections::HashSet::new();
    for e in &events {
        assert_eq!(
            (e["version"].as_str(), e["source"].as_str()),
            (Some("0"), Some("aws.ecs")),
            "{e}"
        );
        assert_eq!(
            (e["account"].as_str(), e["region"].as_str()),
            (Some("123456789012"), Some("us-east-1"))
        );
        let time = e["time"].as_str().unwrap();
        assert!(
            time.len() == 20 && time.ends_with('Z') && &time[10..11] == "T",
            "{time}"
        );
        assert_eq!(e["id"].as_str().unwrap().len(), 36);
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_string()),
            "ids are unique"
        );
        assert_eq!(e["resources"].as_array().unwrap().len(), 1);
    }

    // Each task's changes: versions 1, 2, 3... in the order of its life.
    let mut by_task: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in named(&events, "ECS Task State Change") {
        let d = &e["detail"];
        assert_eq!(e["resources"][0], d["taskArn"]);
        assert_eq!(d["group"], "service:web");
        assert_eq!(d["capacityProviderName"], "FARGATE");
        assert!(d["clusterArn"].as_str().unwrap().ends_with(":cluster/prod"));
        assert!(d["startedBy"].as_str().unwrap().starts_with("ecs-svc/"));
        assert!(
            d["taskDefinitionArn"]
                .as_str()
                .unwrap()
                .contains(":task-definition/web:")
        );
        assert!(d["containers"][0]["healthStatus"].is_string(), "{d}");
        assert!(d["createdAt"].as_str().unwrap().ends_with('Z'));
        by_task
            .entry(d["taskArn"].as_str().unwrap().to_string())
            .or_default()
            .push(d);
    }
    assert_eq!(by_task.len(), 4, "two tasks, then two replacements");
    for (arn, mut changes) in by_task {
        changes.sort_by_key(|d| d["version"].as_i64().unwrap());
        let versions: Vec<i64> = changes
            .iter()
            .map(|d| d["version"].as_i64().unwrap())
            .collect();
        assert_eq!(
            versions,
            (1..=versions.len() as i64).collect::<Vec<_>>(),
            "{arn}"
        );
        let place = |d: &&Value| ORDER.iter().position(|s| d["lastStatus"] == *s).unwrap();
        assert!(
            changes.windows(2).all(|w| place(&w[0]) <= place(&w[1])),
            "{arn}: {changes:?}"
        );
        let last = changes.last().unwrap();
        if last["desiredStatus"] == "STOPPED" {
            assert_eq!(last["lastStatus"], "STOPPED");
            assert!(
                last["stopCode"].is_string() && last["stoppedReason"].is_string(),
                "{last}"
            );
        }
        // HEALTHY is a change of its own, after RUNNING.
        assert!(
            changes
                .iter()
                .any(|d| d["containers"][0]["healthStatus"] == "HEALTHY"),
            "{arn}"
        );
        let described = c
            .ecs
            .describe_tasks()
            .cluster("prod")
            .tasks(&arn)
            .send()
            .await
            .unwrap();
        assert_eq!(
            described.tasks()[0].version(),
            last["version"].as_i64().unwrap(),
            "{arn}"
        );
    }

    // The service's steady state, and both deployments.
    let service_arn = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
    let steady = named(&events, "ECS Service Action");
    assert!(steady.iter().any(|e| {
        e["detail"]["eventName"] == "SERVICE_STEADY_STATE"
            && e["detail"]["eventType"] == "INFO"
            && e["resources"][0] == service_arn
            && e["detail"]["clusterArn"]
                .as_str()
                .unwrap()
                .ends_with(":cluster/prod")
    }));
    let deployments = named(&events, "ECS Deployment State Change");
    let second = describe(&c.ecs, "prod", "web").await.deployments()[0]
        .id()
        .unwrap()
        .to_string();
    for (name, reason) in [
        (
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            format!("ECS deployment {second} in progress."),
        ),
        (
            "SERVICE_DEPLOYMENT_COMPLETED",
            format!("ECS deployment {second} completed."),
        ),
    ] {
        assert!(
            deployments.iter().any(|e| e["detail"]["eventName"] == name
                && e["detail"]["deploymentId"] == second.as_str()
                && e["detail"]["reason"] == reason.as_str()
                && e["resources"][0] == service_arn),
            "{name}: {deployments:#?}"
        );
    }
    assert_eq!(sim.timeline()["events"]["emitted"], json!(emitted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_duplicates_and_reordering_at_a_seed_are_counted_and_delivered_so() {
    let (_moto, sqs, url) = queue().await;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(
        json!({"events": {"sqsQueueUrl": url, "drop": 0.3, "duplicate": 0.3,
        "reorder": true, "reorderWindow": "500ms", "delay": "100ms"}}),
    )
    .unwrap();
    service_through_a_deployment(&c).await;
    let s = settled(&sim).await;
    let n = |k: &str| s[k].as_u64().unwrap();
    assert!(
        n("dropped") > 0 && n("duplicated") > 0 && n("reordered") > 0,
        "{s}"
    );
    assert_eq!((n("failed"), n("overflowed")), (0, 0), "{s}");
    assert_eq!(
        n("sent"),
        n("emitted") - n("dropped") + n("duplicated"),
        "{s}"
    );
    let events = receive(&sqs, &url, |got| got.len() as u64 >= n("sent")).await;
    assert_eq!(events.len() as u64, n("sent"));
    let mut copies: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        *copies.entry(e["id"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(
        copies.values().filter(|c| **c == 2).count() as u64,
        n("duplicated")
    );
    assert_eq!(copies.len() as u64, n("emitted") - n("dropped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_feed_sends_nothing_and_counts_every_event_dropped() {
    let (_moto, sqs, url) = queue().await;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"events": {"sqsQueueUrl": url, "silent": true}}))
        .unwrap();
    create_service(&c.ecs, "prod", "web", 2, false).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    let s = settled(&sim).await;
    assert!(s["emitted"].as_u64().unwrap() > 0);
    assert_eq!(s["dropped"], s["emitted"]);
    assert_eq!(s["sent"], 0);
    let out = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(out.messages().is_empty());
}

#[tokio::test]
async fn a_queue_that_does_not_answer_never_holds_the_scheduler_back() {
    // A port nobody listens on: every send fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"events": {"sqsQueueUrl": format!("http://127.0.0.1:{port}/123456789012/ecs-events")}}))
        .unwrap();
    create_service(&c.ecs, "prod", "web", 3, false).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(10)).await;
    let s = settled(&sim).await;
    assert_eq!(s["sent"], 0);
    assert!(s["failed"].as_u64().unwrap() > 0, "{s}");
    // A queue URL that is not one is refused, naming the field.
    let err = sim
        .configure(json!({"events": {"sqsQueueUrl": "ecs-events"}}))
        .unwrap_err();
    assert!(err.contains("events.sqsQueueUrl"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_events_name_the_provider_the_instance_and_what_it_lacks() {
    let (_moto, sqs, url) = queue().await;
    let sim = start_sim().await;
    let c = clients(&sim).await;
    sim.configure(json!({"events": {"sqsQueueUrl": url}}))
        .unwrap();
    // On a capacity provider: a surge that needs a new instance.
    super::capacity::cluster_on_group(&sim, &c, 1, 2, "90s").await;
    super::capacity::create_web(&c, 3).await;
    wait_steady(&c.ecs, "prod", "web", Duration::from_secs(20)).await;
    // Launch type EC2 on a full cluster.
    c.ecs
        .create_cluster()
        .cluster_name("full")
        .send()
        .await
        .unwrap();
    let instance = super::capacity::register_instance(&c.ecs, "full", 1024, 1024).await;
    c.ecs
        .create_service()
        .cluster("full")
        .service_name("api")
        .task_definition("web")
        .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let events = receive(&sqs, &url, |got| {
        got.iter()
            .any(|e| e["detail"]["eventName"] == "SERVICE_TASK_PLACEMENT_FAILURE")
            && got
                .iter()
                .any(|e| e["detail"]["eventName"] == "CAPACITY_PROVIDER_STEADY_STATE")
    })
    .await;
    let failure = events
        .iter()
        .find(|e| e["detail"]["eventName"] == "SERVICE_TASK_PLACEMENT_FAILURE")
        .unwrap();
    assert_eq!(failure["detail"]["eventType"], "ERROR");
    assert_eq!(failure["detail"]["reason"], "RESOURCE:MEMORY");
    assert_eq!(
        failure["detail"]["containerInstanceArns"],
        json!([instance])
    );
    assert_eq!(
        failure["resources"][0],
        "arn:aws:ecs:us-east-1:123456789012:service/full/api"
    );
    let steady = events
        .iter()
        .find(|e| e["detail"]["eventName"] == "CAPACITY_PROVIDER_STEADY_STATE")
        .unwrap();
    assert_eq!(
        steady["detail"]["capacityProviderArns"],
        json!(["arn:aws:ecs:us-east-1:123456789012:capacity-provider/cp-web"])
    );
    // The instance full of tasks: its changes, versions growing, the last
    // with no room left.
    let mut changes: Vec<&Value> = named(&events, "ECS Container Instance State Change")
        .into_iter()
        .filter(|e| e["resources"][0] == instance.as_str())
        .map(|e| &e["detail"])
        .collect();
    changes.sort_by_key(|d| d["version"].as_i64().unwrap());
    assert!(
        changes.len() >= 2,
        "registered, then a task placed: {changes:?}"
    );
    assert_eq!(changes[0]["version"], 1);
    let last = changes.last().unwrap();
    assert_eq!(last["remainingResources"][1]["name"], "MEMORY");
    assert_eq!(last["remainingResources"][1]["integerValue"], 0, "{last}");
    assert!(
        last["clusterArn"]
            .as_str()
            .unwrap()
            .ends_with(":cluster/full")
    );
}
