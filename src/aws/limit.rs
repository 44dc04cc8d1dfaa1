//! Staying under AWS's request limits and riding out throttling.
//!
//! AWS throttles each API per account and Region with a token bucket (ECS:
//! a burst, then a sustained rate). The SDK's own retry modes were measured
//! against the simulator's throttling (docs/performance.md): `standard`
//! gives up after 3 attempts and `adaptive` only slows down after being
//! throttled, per client; neither keeps several clients of one account under
//! a shared limit, and both turn sustained throttling into failed calls. So
//! every call goes through a [`Limiter`] (one bucket per operation, account
//! and Region, as AWS keeps them, taken before every attempt) and, when answered with a throttling
//! error, is tried again with jittered exponential backoff (`backon`); a call
//! still throttled after that is a transient error, which requeues the
//! request — throttling never fails a request.

use parking_lot::Mutex;
use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

use super::AwsError;
use crate::operator::metrics::Metrics;

/// A client-side limit: `burst` calls at once, then `per_second` on average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    /// ECS's published bucket for cluster reads (DescribeClusters): 50 tokens,
    /// 20 a second; the other read buckets are at least as large.
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 50,
        }
    }
}

impl RateLimit {
    /// Flag-named reasons why the limit cannot be used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.per_second > 0.0 && self.per_second.is_finite()) {
            out.push(format!(
                "--api-rate-limit ({}) must be more than 0 calls a second, or no call is ever made",
                self.per_second
            ));
        }
        if self.burst == 0 {
            out.push("--api-burst must be at least 1, or no call is ever made".into());
        }
        out
    }
}

/// A token bucket shared by every call to one AWS service in one account and
/// Region. Callers reserve a token, possibly in the future, and sleep until
/// it is theirs: fair, and no thundering herd when the bucket refills.
pub(crate) struct Limiter {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Waits for a token; answers how long that took.
    pub(crate) async fn acquire(&self) -> Duration {
        let wait = {
            let mut state = self.state.lock();
            let now = Instant::now();
            let (tokens, at) = &mut *state;
            let refill = now.saturating_duration_since(*at).as_secs_f64() * self.limit.per_second;
            *tokens = (*tokens + refill).min(f64::from(self.limit.burst));
            *at = now;
            *tokens -= 1.0;
            if *tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-*tokens / self.limit.per_second)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

/// How throttled calls are tried again: jittered exponential backoff from
/// 100 ms, doubling up to 5 s, eight times (about 20 s at most).
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(8)
}

/// One AWS call made politely: a token before each attempt, every attempt
/// counted in the metrics by `action` and outcome, throttling and other
/// transient failures tried again with backoff.
pub(crate) async fn call<T, F, Fut>(
    limiter: &Limiter,
    metrics: &Metrics,
    action: &str,
    mut attempt: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let once = || {
        let fut = attempt();
        async move {
            let waited = limiter.acquire().await;
            if !waited.is_zero() {
                metrics.throttle_wait_seconds.inc_by(waited.as_secs_f64());
            }
            let result = fut.await;
            metrics.aws_call(action, outcome(&result));
            result
        }
    };
    // Throttling gets the whole schedule; other transient failures three tries.
    let mut others = 0u32;
    once.retry(backoff())
        .when(|e: &AwsError| match e {
            AwsError::Throttled { .. } => true,
            AwsError::Transient { .. } | AwsError::Unanswered { .. } => {
                others += 1;
                others <= 3
            }
            AwsError::Refused { .. } | AwsError::NotSent { .. } => false,
        })
        .notify(|_, delay| {
            metrics.throttle_wait_seconds.inc_by(delay.as_secs_f64());
        })
        .await
}

fn outcome<T>(result: &Result<T, AwsError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(AwsError::Throttled { .. }) => "throttled",
        Err(AwsError::Transient { .. }) => "transient",
        Err(AwsError::Refused { .. }) => "refused",
        Err(AwsError::Unanswered { .. }) => "unanswered",
        Err(AwsError::NotSent { .. }) => "not_sent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_a_burst_through_then_the_rate() {
        let limiter = Limiter::new(RateLimit {
            per_second: 10.0,
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((0.95..1.1).contains(&took), "10 more at 10/s: {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_tried_again_until_it_passes_and_counted() {
        let limiter = Limiter::new(RateLimit::default());
        let metrics = Metrics::new();
        let mut left = 5;
        let result = call(&limiter, &metrics, "ecs:ListTasks", || {
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
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"ecs_recycler_aws_calls_total{operation="ecs:ListTasks",outcome="throttled"} 4"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ecs_recycler_aws_calls_total{operation="ecs:ListTasks",outcome="ok"} 1"#
            ),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_not_tried_again() {
        let limiter = Limiter::new(RateLimit::default());
        let metrics = Metrics::new();
        let mut attempts = 0;
        let result: Result<(), _> = call(&limiter, &metrics, "ecs:StopTask", || {
            attempts += 1;
            async {
                Err(AwsError::Refused {
                    action: "ecs:StopTask".into(),
                    code: "AccessDeniedException".into(),
                    message: "no".into(),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts, 1);
    }
}
