//! The operator's hands on AWS: the clients (the operator's own and, for
//! services in other accounts, through an assumed role), how their errors are
//! sorted, and the decided actions. Every call goes through [`limit::call`]:
//! a client-side token bucket per service, account and Region, metrics, and
//! backoff on throttling. Observation lives in [`observe`].

pub mod known_tasks;
pub mod limit;
pub mod observe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use aws_sdk_ecs::error::ProvideErrorMetadata;

use crate::decide::Action;
use crate::metrics::Metrics;
use limit::{Limiter, RateLimit};

/// An AWS call that did not succeed, sorted by what the operator should do.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AwsError {
    /// Throttled even after backing off: try again later; never fail a request for it.
    #[error("{action} was throttled: {message}")]
    Throttled { action: String, message: String },
    /// Timed out, unreachable or a server error: try again later.
    #[error("{action} did not answer in time: {message}")]
    Transient { action: String, message: String },
    /// AWS refused: denied, not found, invalid. Fails the request with this sentence.
    #[error("{action} was refused: {code}: {message}")]
    Refused {
        action: String,
        code: String,
        message: String,
    },
}

impl AwsError {
    /// Worth trying again later (throttled or transient), as opposed to refused.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Refused { .. })
    }
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

const TRANSIENT_CODES: &[&str] = &["ServerException", "ServiceUnavailable", "InternalFailure"];

/// Sorts an SDK error: `action` names the IAM action, e.g. `ecs:StopTask`.
pub(crate) fn classify<E, R>(action: &str, err: aws_sdk_ecs::error::SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let action = action.to_string();
    match err.as_service_error() {
        Some(service_error) => {
            let code = service_error.code().unwrap_or("Unknown").to_string();
            let message = service_error.message().unwrap_or_default().to_string();
            if THROTTLING_CODES.contains(&code.as_str()) {
                AwsError::Throttled {
                    action,
                    message: format!("{code}: {message}"),
                }
            } else if TRANSIENT_CODES.contains(&code.as_str()) {
                AwsError::Transient {
                    action,
                    message: format!("{code}: {message}"),
                }
            } else {
                AwsError::Refused {
                    action,
                    code,
                    message,
                }
            }
        }
        None => AwsError::Transient {
            action,
            message: aws_smithy_error_text(&err),
        },
    }
}

fn aws_smithy_error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// ECS and Application Auto Scaling clients for one account, with the
/// rate limits of that account and Region.
#[derive(Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub aas: aws_sdk_applicationautoscaling::Client,
    /// Which account these clients reach: empty for the operator's own, else
    /// the role assumed. Observations are shared only within one account.
    pub account: String,
    /// The buckets of this account and Region, one per operation.
    limits: Arc<Limiters>,
    metrics: Arc<Metrics>,
}

impl Clients {
    /// One AWS call, `action` naming its IAM action (`ecs:ListTasks`):
    /// rate-limited, counted, tried again on throttling.
    pub async fn call<T, F, Fut>(&self, action: &str, attempt: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        // Callers beyond the cap wait here, holding no SDK future: a tick
        // over a thousand services costs the memory of a few dozen calls.
        let _slot = self.limits.in_flight.acquire().await;
        let bucket = self.limits.bucket(action);
        limit::call(&bucket, &self.metrics, action, attempt).await
    }
}

/// Clients for the operator's own account and, made on first use and kept,
/// for each role it assumes to reach services in other accounts.
pub struct ClientPool {
    base: aws_config::SdkConfig,
    own: Clients,
    assumed: Mutex<HashMap<(String, Option<String>), Clients>>,
    /// The buckets of each account reached, by account (Region is the pool's).
    limiters: Mutex<HashMap<String, Arc<Limiters>>>,
    limit: RateLimit,
    metrics: Arc<Metrics>,
    /// Task definition ARN → whether any container has a health check (they never change).
    health_checks: Mutex<HashMap<String, bool>>,
    /// Each service's tasks as last seen (see [`known_tasks`]).
    pub(crate) known_tasks: known_tasks::KnownTasks,
}

impl ClientPool {
    pub fn new(base: aws_config::SdkConfig, limit: RateLimit, metrics: Arc<Metrics>) -> Self {
        let limiters = Mutex::new(HashMap::new());
        let own = make_clients(&base, String::new(), &limiters, limit, &metrics);
        Self {
            own,
            base,
            assumed: Mutex::new(HashMap::new()),
            limiters,
            limit,
            metrics,
            health_checks: Mutex::new(HashMap::new()),
            known_tasks: known_tasks::KnownTasks::default(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The operator's own configuration (region, credentials, endpoints).
    pub fn base_config(&self) -> &aws_config::SdkConfig {
        &self.base
    }

    pub async fn for_role(&self, role_arn: Option<&str>, external_id: Option<&str>) -> Clients {
        let Some(role) = role_arn else {
            return self.own.clone();
        };
        let key = (role.to_string(), external_id.map(str::to_string));
        if let Some(c) = self.lock_assumed().get(&key) {
            return c.clone();
        }
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("ecs-recycler")
            .configure(&self.base);
        if let Some(id) = external_id {
            provider = provider.external_id(id);
        }
        let provider = provider.build().await;
        let config = self
            .base
            .to_builder()
            .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build();
        // AWS's buckets are per account: the account is the role ARN's fifth field.
        let account = role.split(':').nth(4).unwrap_or(role).to_string();
        let clients = make_clients(&config, account, &self.limiters, self.limit, &self.metrics);
        self.lock_assumed().insert(key, clients.clone());
        clients
    }

    fn lock_assumed(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, Option<String>), Clients>> {
        self.assumed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn cached_health_check(&self, td: &str) -> Option<bool> {
        self.health_checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(td)
            .copied()
    }

    pub(crate) fn remember_health_check(&self, td: &str, has: bool) {
        self.health_checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(td.to_string(), has);
    }
}

/// AWS throttles each operation per account and Region: so does the operator.
pub struct Limiters {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Arc<Limiter>>>,
    /// Calls in flight (or backing off) at once in this account.
    in_flight: tokio::sync::Semaphore,
}

/// Calls in flight at once per account: far more than the rate limit needs.
const IN_FLIGHT: usize = 32;

impl Limiters {
    fn bucket(&self, action: &str) -> Arc<Limiter> {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(action.to_string())
            .or_insert_with(|| Arc::new(Limiter::new(self.limit)))
            .clone()
    }
}

fn make_clients(
    config: &aws_config::SdkConfig,
    account: String,
    limiters: &Mutex<HashMap<String, Arc<Limiters>>>,
    limit: RateLimit,
    metrics: &Arc<Metrics>,
) -> Clients {
    let limits = limiters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(account.clone())
        .or_insert_with(|| {
            Arc::new(Limiters {
                limit,
                buckets: Mutex::new(HashMap::new()),
                in_flight: tokio::sync::Semaphore::new(IN_FLIGHT),
            })
        })
        .clone();
    // Tries again happen in `limit::call`, where each attempt takes a token and
    // is counted; the SDK's own retries would slip past both.
    let ecs = aws_sdk_ecs::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let aas = aws_sdk_applicationautoscaling::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    Clients {
        ecs: aws_sdk_ecs::Client::from_conf(ecs),
        aas: aws_sdk_applicationautoscaling::Client::from_conf(aas),
        account,
        limits,
        metrics: metrics.clone(),
    }
}

pub(crate) fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// Performs one decided action.
pub async fn act(
    clients: &Clients,
    cluster: &str,
    service: &str,
    action: &Action,
) -> Result<(), AwsError> {
    match action {
        Action::SetDesired { to, .. } => {
            clients
                .call("ecs:UpdateService", || async {
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
                .call("ecs:StopTask", || async {
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
                .call(action, || async {
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
