//! The clients of one account: ECS, Application Auto Scaling, CloudWatch
//! and Elastic Load Balancing, each built from the one SDK configuration
//! ([`super::sdk`]) with the SDK's retries off, every call sent through the
//! account's buckets ([`super::limit::call`]: a token per attempt, backoff
//! on throttling, metrics), within the operation's deadline, and — for a
//! call that changes something — only while the record's lease allows it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::error::AwsError;
use super::limit::{self, Limiters};
use super::sdk;
use crate::fence::Fence;
use crate::metrics::Metrics;

/// ECS and Application Auto Scaling clients for one account, with the
/// rate limits of that account and Region.
#[derive(Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub aas: aws_sdk_applicationautoscaling::Client,
    /// For the alarms of a request's gates (`gates`), in the same account.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// For the target health of load-balanced services, in the same account.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// Which account these clients reach: empty for the operator's own, else
    /// the role assumed. Observations are shared only within one account.
    pub account: String,
    /// The buckets of this account and Region, one per category.
    limits: Arc<Limiters>,
    pub(super) metrics: Arc<Metrics>,
    /// Where the calls go, for the sentence of a call that got no answer.
    ecs_endpoint: String,
    aas_endpoint: String,
    cloudwatch_endpoint: String,
    elb_endpoint: String,
    /// The longest one call may take, every attempt included.
    deadline: Duration,
    unanswered: Arc<Unanswered>,
}

impl Clients {
    /// One AWS call that reads, `action` naming its IAM action
    /// (`ecs:ListTasks`): rate-limited, counted, tried again on throttling,
    /// given up after the operation timeout.
    pub async fn call<T, F, Fut>(&self, action: &str, attempt: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        self.send(action, None, attempt).await
    }

    /// One AWS call that changes something: as [`Clients::call`], and each
    /// attempt is sent only while `fence` allows it: its token is taken
    /// only if it comes inside the lease, and the fence is asked again
    /// after the wait, right before the request goes out.
    pub async fn mutate<T, F, Fut>(
        &self,
        action: &str,
        fence: &Fence,
        attempt: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        self.send(action, Some(fence), attempt).await
    }

    async fn send<T, F, Fut>(
        &self,
        action: &str,
        fence: Option<&Fence>,
        mut attempt: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        let bucket = self.limits.bucket(action);
        let guarded = || {
            let sent = attempt();
            let action = action.to_string();
            async move {
                let began = tokio::time::Instant::now();
                let result = sent.await;
                // Readiness hears of a silent endpoint at its first attempt,
                // well inside a lease, not only once the call gives up.
                if let Err(AwsError::Unanswered { cause, .. }) = &result {
                    let e = self.no_answer(&action, began.elapsed(), cause.clone());
                    self.unanswered.set(&action, &self.account, Some(&e));
                }
                result
            }
        };
        let started = tokio::time::Instant::now();
        // A mutating call's token must come inside the lease (the fence is
        // asked before each attempt and again after its wait, right before
        // the request goes out); a read's, before its deadline.
        let deadline = started + self.deadline;
        let by = || match fence {
            Some(f) => f.end().map(|end| end.min(deadline)),
            None => Some(deadline),
        };
        let result = tokio::time::timeout(
            self.deadline,
            limit::call(&bucket, &self.metrics, action, by, guarded),
        )
        .await
        .unwrap_or_else(|_| {
            Err(AwsError::Unanswered {
                action: action.to_string(),
                endpoint: String::new(),
                waited: Duration::ZERO,
                cause: "timed out (--aws-operation-timeout), every attempt included".into(),
            })
        });
        match result {
            Err(AwsError::Unanswered { cause, .. }) => {
                let e = self.no_answer(action, started.elapsed(), cause);
                tracing::warn!(account = %self.account, error = %e, "an AWS call got no answer");
                self.unanswered.set(action, &self.account, Some(&e));
                Err(e)
            }
            Err(e @ (AwsError::NotSent { .. } | AwsError::Deferred { .. })) => Err(e),
            other => {
                self.unanswered.set(action, &self.account, None);
                other
            }
        }
    }

    /// The error of a call to `action` that got no answer after `waited`,
    /// with the endpoint it was sent to.
    fn no_answer(&self, action: &str, waited: Duration, cause: String) -> AwsError {
        let endpoint = match service_of(action) {
            s if s == sdk::ECS => &self.ecs_endpoint,
            s if s == sdk::CLOUDWATCH => &self.cloudwatch_endpoint,
            s if s == sdk::ELB => &self.elb_endpoint,
            _ => &self.aas_endpoint,
        };
        AwsError::Unanswered {
            action: action.to_string(),
            endpoint: endpoint.clone(),
            waited,
            cause,
        }
    }
}

/// The service an IAM action (`ecs:StopTask`) belongs to, among those
/// [`Clients`] reach.
fn service_of(action: &str) -> sdk::Service {
    match action.split_once(':').map(|(prefix, _)| prefix) {
        Some("ecs") => sdk::ECS,
        Some("cloudwatch") => sdk::CLOUDWATCH,
        Some("elasticloadbalancing") => sdk::ELB,
        _ => sdk::AUTO_SCALING,
    }
}

/// The AWS services that got no answer at their last call, for readiness:
/// (service, account) → the sentence of that call.
#[derive(Debug, Default)]
pub(super) struct Unanswered(Mutex<BTreeMap<(String, String), String>>);

impl Unanswered {
    /// What the last call to `action` in `account` found: no answer (`Some`) or one.
    fn set(&self, action: &str, account: &str, silence: Option<&AwsError>) {
        let service = service_of(action).name;
        let mut map = self.0.lock();
        let key = (service.to_string(), account.to_string());
        match silence {
            Some(e) => {
                map.insert(key, e.to_string());
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// Each service still unanswered, as a sentence.
    pub(super) fn now(&self) -> Vec<String> {
        let map = self.0.lock();
        map.iter()
            .map(|((service, account), sentence)| {
                let whose = if account.is_empty() {
                    String::new()
                } else {
                    format!(" in account {account}")
                };
                format!("{service}{whose}: {sentence}")
            })
            .collect()
    }
}

/// The clients of one account, reached with `config`, each call through
/// `limits` (that account's buckets).
pub(super) fn make_clients(
    config: &aws_config::SdkConfig,
    account: String,
    limits: Arc<Limiters>,
    metrics: &Arc<Metrics>,
    unanswered: &Arc<Unanswered>,
) -> Clients {
    // Tries again happen in `limit::call`, where each attempt takes a token and
    // is counted; the SDK's own retries would slip past both.
    let ecs = aws_sdk_ecs::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let aas = aws_sdk_applicationautoscaling::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let cloudwatch = aws_sdk_cloudwatch::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    Clients {
        ecs: aws_sdk_ecs::Client::from_conf(ecs),
        cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch),
        elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
        aas: aws_sdk_applicationautoscaling::Client::from_conf(aas),
        account,
        limits,
        metrics: metrics.clone(),
        ecs_endpoint: sdk::ECS.endpoint(config),
        aas_endpoint: sdk::AUTO_SCALING.endpoint(config),
        cloudwatch_endpoint: sdk::CLOUDWATCH.endpoint(config),
        elb_endpoint: sdk::ELB.endpoint(config),
        deadline: config
            .timeout_config()
            .and_then(|t| t.operation_timeout())
            .unwrap_or(sdk::Timeouts::default().operation),
        unanswered: unanswered.clone(),
    }
}
