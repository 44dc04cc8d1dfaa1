//! The client-side buckets: categories shared, the share and the replicas
//! splitting it, the flags' checks, and the retries.

use super::*;

fn limiters(share: ApiShare, replicas: usize) -> Limiters {
    let r = Arc::new(Replicas::default());
    r.set(replicas);
    Limiters::new(share, r)
}

/// A deadline no test reaches.
fn far() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(3600))
}

/// Takes `n` tokens from `action`'s bucket; answers the paused clock's time taken.
async fn take(l: &Limiters, action: &str, n: usize) -> f64 {
    let start = Instant::now();
    let bucket = l.bucket(action);
    for _ in 0..n {
        bucket.acquire().await;
    }
    start.elapsed().as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn list_and_describe_tasks_draw_from_one_bucket_at_half_its_rate() {
    let l = limiters(ApiShare::default(), 1);
    assert!(Arc::ptr_eq(
        &l.bucket("ecs:ListTasks"),
        &l.bucket("ecs:DescribeTasks")
    ));
    assert_eq!(
        l.bucket("ecs:ListTasks").category(),
        "cluster-resource-read"
    );
    // Half of 20 a second: 10 a second, from an empty bucket.
    let took = take(&l, "ecs:ListTasks", 10).await + take(&l, "ecs:DescribeTasks", 10).await;
    assert!((1.95..2.05).contains(&took), "20 reads at 10/s: {took}");
}

#[tokio::test(start_paused = true)]
async fn update_service_gets_half_of_five_a_second_and_its_burst_once_full() {
    let l = limiters(ApiShare::default(), 1);
    let took = take(&l, "ecs:UpdateService", 5).await;
    assert!((1.95..2.05).contains(&took), "5 at 2.5/s: {took}");
    // Left alone, the bucket fills to half of 50 and lets 25 through at once.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let took = take(&l, "ecs:UpdateService", 25).await;
    assert!(took < 0.01, "the burst of 25: {took}");
    let took = take(&l, "ecs:UpdateService", 1).await;
    assert!((0.35..0.45).contains(&took), "then 2.5/s again: {took}");
}

#[tokio::test(start_paused = true)]
async fn three_replicas_each_spend_a_third_of_the_share() {
    let l = limiters(ApiShare::default(), 3);
    // 2.5 / 3 a second.
    let took = take(&l, "ecs:UpdateService", 5).await;
    assert!((5.9..6.1).contains(&took), "5 at 0.833/s: {took}");
}

#[tokio::test(start_paused = true)]
async fn per_category_shares_and_quotas_override_the_default() {
    let share = ApiShare {
        share: 0.5,
        per_category: [("service-modify".to_string(), 0.2)].into(),
        quotas: [(
            "cluster-resource-read".to_string(),
            Quota {
                burst: 1000,
                refill_per_second: 200.0,
            },
        )]
        .into(),
    };
    assert!(share.problems().is_empty(), "{:?}", share.problems());
    let l = limiters(share, 1);
    // 0.2 × 5 = 1 a second.
    let took = take(&l, "ecs:UpdateService", 3).await;
    assert!((2.95..3.05).contains(&took), "{took}");
    // 0.5 × 200 = 100 a second.
    let took = take(&l, "ecs:ListTasks", 100).await;
    assert!((0.95..1.05).contains(&took), "{took}");
    // Other categories keep the published figures at the default share.
    assert_eq!(
        l.bucket("ecs:StopTask").category(),
        "cluster-resource-modify"
    );
    let took = take(&l, "ecs:StopTask", 20).await;
    assert!((0.95..1.05).contains(&took), "40 × 0.5 a second: {took}");
}

#[test]
fn bad_shares_and_quotas_are_refused_by_flag() {
    let share = ApiShare {
        share: 1.5,
        per_category: [("servce-modify".to_string(), 0.0)].into(),
        quotas: [(
            "service-read".to_string(),
            Quota {
                burst: 0,
                refill_per_second: 1.0,
            },
        )]
        .into(),
    };
    let p = share.problems().join("\n");
    assert!(
        p.contains("--api-share (1.5) must be more than 0 and at most 1"),
        "{p}"
    );
    assert!(
        p.contains("no throttling category is named servce-modify (did you mean service-modify?)"),
        "{p}"
    );
    assert!(p.contains("--api-category-share servce-modify=0"), "{p}");
    assert!(p.contains("--api-quota service-read=0/1"), "{p}");
    assert!(ApiShare::default().problems().is_empty());
}

#[test]
fn the_flags_forms_are_read_or_refused_with_the_form() {
    assert_eq!(
        parse_category_share("service-modify=0.2"),
        Ok(("service-modify".into(), 0.2))
    );
    assert_eq!(
        parse_quota("service-modify=100/10"),
        Ok((
            "service-modify".into(),
            Quota {
                burst: 100,
                refill_per_second: 10.0
            }
        ))
    );
    assert!(
        parse_category_share("service-modify")
            .unwrap_err()
            .contains("CATEGORY=SHARE")
    );
    assert!(
        parse_quota("service-modify=100")
            .unwrap_err()
            .contains("CATEGORY=BURST/REFILL")
    );
    assert!(
        parse_quota("x=a/1")
            .unwrap_err()
            .contains("not a whole number")
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_is_tried_again_until_it_passes_and_counted() {
    let l = limiters(ApiShare::default(), 1);
    let metrics = Metrics::new();
    let mut left = 5;
    let result = call(
        &l.bucket("ecs:ListTasks"),
        &metrics,
        "ecs:ListTasks",
        far,
        || {
            left -= 1;
            let throttled = left > 0;
            async move {
                if throttled {
                    Err(AwsError::Throttled {
                        action: "ecs:ListTasks".into(),
                        message: "Rate exceeded".into(),
                    })
                } else {
                    Ok(7)
                }
            }
        },
    )
    .await;
    assert_eq!(result.unwrap(), 7);
    let text = metrics.render();
    for line in [
        r#"ecs_recycler_aws_calls_total{operation="ecs:ListTasks",outcome="throttled"} 4"#,
        r#"ecs_recycler_aws_calls_total{operation="ecs:ListTasks",outcome="ok"} 1"#,
        r#"ecs_recycler_api_token_wait_seconds_total{category="cluster-resource-read"}"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_not_tried_again() {
    let l = limiters(ApiShare::default(), 1);
    let metrics = Metrics::new();
    let mut attempts = 0;
    let result: Result<(), _> = call(
        &l.bucket("ecs:StopTask"),
        &metrics,
        "ecs:StopTask",
        far,
        || {
            attempts += 1;
            async {
                Err(AwsError::Refused {
                    action: "ecs:StopTask".into(),
                    code: "AccessDeniedException".into(),
                    message: "no".into(),
                })
            }
        },
    )
    .await;
    assert!(result.is_err());
    assert_eq!(attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_turn_past_the_deadline_is_not_taken_and_costs_the_queue_nothing() {
    let l = limiters(ApiShare::default(), 1);
    let bucket = l.bucket("ecs:UpdateService");
    // From empty at 2.5 a second: the first turn is 0.4 s away.
    let soon = Instant::now() + Duration::from_millis(300);
    let wait = bucket.take(soon).err().expect("a turn after the deadline");
    assert!((0.39..0.41).contains(&wait.as_secs_f64()), "{wait:?}");
    // Nothing was taken: the next caller's turn is still the first.
    let Ok((token, wait)) = bucket.take(Instant::now() + Duration::from_secs(1)) else {
        panic!("a turn within a second");
    };
    assert!((0.39..0.41).contains(&wait.as_secs_f64()), "{wait:?}");
    // That token, dropped unspent, goes back: the turn after it is not pushed back.
    drop(token);
    assert!((0.39..0.41).contains(&bucket.wait_now().as_secs_f64()));
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_token_would_come_after_its_lease_is_deferred_unsent() {
    let l = limiters(ApiShare::default(), 1);
    let metrics = Metrics::new();
    let bucket = l.bucket("ecs:UpdateService");
    let lease_end = Instant::now() + Duration::from_millis(900);
    let sent = std::sync::atomic::AtomicUsize::new(0);
    // Two turns fit in the 0.9 s left (at 0.4 s and 0.8 s); the third (1.2 s) does not.
    let mut results = Vec::new();
    for _ in 0..3 {
        let (waited, result) = {
            let started = Instant::now();
            let result = call(
                &bucket,
                &metrics,
                "ecs:UpdateService",
                || Some(lease_end),
                || async {
                    sent.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                },
            )
            .await;
            (started.elapsed(), result)
        };
        results.push((waited, result));
    }
    assert!(results[0].1.is_ok() && results[1].1.is_ok(), "{results:?}");
    match &results[2].1 {
        Err(AwsError::Deferred { wait, category, .. }) => {
            assert_eq!(*category, "service-modify");
            assert!((0.39..0.41).contains(&wait.as_secs_f64()), "{wait:?}");
        }
        other => panic!("deferred, not {other:?}"),
    }
    assert!(results[2].0.is_zero(), "answered at once, not after a wait");
    assert_eq!(sent.into_inner(), 2, "the deferred call was never sent");
    let text = metrics.render();
    assert!(
        text.contains(
            r#"ecs_recycler_aws_calls_total{operation="ecs:UpdateService",outcome="deferred"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_lost_during_the_wait_gives_the_token_back() {
    let l = limiters(ApiShare::default(), 1);
    let metrics = Metrics::new();
    let bucket = l.bucket("ecs:UpdateService");
    let lease_end = Instant::now() + Duration::from_secs(1);
    let lost = std::sync::atomic::AtomicBool::new(false);
    let by = || (!lost.load(Ordering::Relaxed)).then_some(lease_end);
    let waiting = call(&bucket, &metrics, "ecs:UpdateService", by, || async {
        Ok::<_, AwsError>(())
    });
    let losing = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lost.store(true, Ordering::Relaxed);
    };
    let (result, ()) = tokio::join!(waiting, losing);
    assert!(
        matches!(result, Err(AwsError::NotSent { .. })),
        "{result:?}"
    );
    // Its turn (at 0.4 s) is free again: the next caller gets it.
    let wait = bucket.wait_now();
    assert!(wait <= Duration::from_millis(1), "{wait:?}");
}
