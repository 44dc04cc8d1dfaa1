//! The feed's pacing and health: a step paced by the events while they
//! flow and by polling once they do not, and which waits count from them.

use super::*;
use crate::aws::limit::ApiShare;
use crate::request::status::DesiredChange;

fn feed() -> Arc<Feed> {
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let pool = Arc::new(ClientPool::new(sdk, ApiShare::default(), Metrics::new()));
    let config = EventsConfig {
        queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-events".into(),
        safety_poll: Duration::from_secs(120),
    };
    Feed::new(
        &config,
        pool,
        Duration::from_secs(2),
        Duration::from_millis(100),
    )
}

/// A request whose surge waits for one spare task since `step`.
fn surging(step: DateTime<Utc>) -> RecycleStatus {
    RecycleStatus {
        phase: Phase::Surging,
        step_started_at: Some(step),
        surge: Some(DesiredChange { from: 2, to: 3 }),
        ..Default::default()
    }
}

/// Request `rotate` of `spec`, as its last step left `status`, watched
/// on a service behind no load balancer.
fn watch_rotate(f: &Feed, spec: &serde_json::Value, status: &RecycleStatus) {
    let spec: RecycleSpec = crate::request::spec::parse_spec(spec, "spec").unwrap();
    f.watch(AfterStep {
        name: "rotate",
        account: "",
        spec: &spec,
        status,
        tasks: &[],
        load_balanced: Some(false),
    });
}

/// The campaign's seed 2: a linear request (no `wait` written, so the
/// default 30s) read the events' word as "wait 30s after the batch
/// serves", and its next step came 30s late instead of `every` after.
#[tokio::test]
async fn only_a_plain_wait_counts_from_the_events_not_a_bake_or_a_linear_step() {
    let f = feed();
    let now = Utc::now();
    let status = RecycleStatus {
        phase: Phase::Recycling,
        step_started_at: Some(now),
        batches: 1,
        batch: vec!["arn:aws:ecs:us-east-1:123456789012:task/prod/a".into()],
        ..Default::default()
    };
    let cases = [
        (serde_json::json!({"wait": "5s"}), true),
        (
            serde_json::json!({"strategy": {"linear": {"step": 1, "every": "500ms"}}}),
            false,
        ),
        (
            serde_json::json!({"strategy": {"canary": {"first": 1, "bake": "2s"}}}),
            false,
        ),
        (serde_json::json!({"strategy": "allAtOnce"}), true),
    ];
    for (shape, from_events) in cases {
        let mut spec = serde_json::json!({"cluster": "prod", "service": "web"});
        spec.as_object_mut()
            .unwrap()
            .extend(shape.as_object().unwrap().clone());
        watch_rotate(&f, &spec, &status);
        assert_eq!(
            f.state.lock().routes.waits_from_events("rotate"),
            from_events,
            "{shape}"
        );
    }
}

#[tokio::test]
async fn while_events_flow_a_step_is_paced_by_them_and_by_polling_once_they_do_not() {
    let f = feed();
    let now = Utc::now();
    let spec = serde_json::json!({"cluster": "prod", "service": "web"});
    watch_rotate(&f, &spec, &surging(now));
    let mut pace = Pace::default();
    pace.settled(
        now - chrono::TimeDelta::seconds(100),
        now - chrono::TimeDelta::seconds(97),
    );
    // Not read yet: polling.
    assert_eq!(f.next_look("rotate", now, &pace, now), None);
    assert!(f.problem().is_none(), "starting is no fault");
    f.state.lock().link = Link::Up;
    // Flowing: the stand-in look, when the step should be done (3 s,
    // and a quarter more).
    assert_eq!(
        f.next_look("rotate", now, &pace, now),
        Some(Duration::from_millis(3750))
    );
    assert!(f.turned_unhealthy().is_empty());
    assert_eq!(f.metrics().events.feed_healthy.get(), 1);
    // A change made, and nothing heard of it for half a lease: silent.
    f.expect("", "prod");
    assert!(f.healthy(), "not yet");
    f.state.lock().expected.insert(
        (String::new(), "prod".into()),
        Instant::now() - Duration::from_secs(5),
    );
    let why = f.problem().unwrap();
    assert!(
        why.contains("has been silent for 5s since the operator changed cluster prod"),
        "{why}"
    );
    assert_eq!(f.next_look("rotate", now, &pace, now), None, "polling");
    assert_eq!(f.turned_unhealthy(), ["rotate"], "looked at again at once");
    assert!(f.turned_unhealthy().is_empty(), "once");
    assert_eq!(f.metrics().events.feed_healthy.get(), 0);
    // Heard from again: flowing.
    f.state.lock().expected.clear();
    assert!(f.healthy());
    // A queue that cannot be read says why.
    f.state.lock().link = Link::Down("sqs:ReceiveMessage was refused: AccessDenied".into());
    let why = f.problem().unwrap();
    assert!(
        why.contains("cannot be read: sqs:ReceiveMessage was refused"),
        "{why}"
    );
}
