//! The operator's hands on AWS: the clients (the operator's own and, for
//! services in other accounts, through an assumed role), how their errors are
//! sorted, and the decided actions. Every call goes through [`limit::call`]:
//! a client-side token bucket per throttling category, account and Region,
//! metrics, and backoff on throttling; every call has a deadline ([`sdk`]), and a
//! mutating one is sent only inside the record's lease ([`Fence`]).
//! Observation lives in [`observe`].

pub(crate) mod known_tasks;
pub(crate) mod limit;
pub(crate) mod observe;
pub mod sdk;
pub(crate) mod task_batches;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use aws_sdk_ecs::error::ProvideErrorMetadata;

use crate::operator::lease::Fence;
use crate::operator::metrics::Metrics;
use crate::request::decide::Action;
use limit::{ApiShare, Limiters, Replicas};

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
    /// Nothing came back in time, or no connection could be made; nothing
    /// says whether AWS acted. Try again later.
    #[error(
        "{action} got no answer from {endpoint} in {}: {cause}; check that {endpoint} is reachable from here (network, proxy, security groups, VPC endpoint, the AWS_ENDPOINT_URL_* variables), or raise --aws-attempt-timeout and --aws-operation-timeout",
        crate::duration::format(*waited)
    )]
    Unanswered {
        action: String,
        endpoint: String,
        waited: Duration,
        cause: String,
    },
    /// Not sent at all: this replica's lease on the record lapsed first.
    #[error("{action} was not sent: this replica's lease on the record lapsed")]
    NotSent { action: String },
    /// Not sent, and no token spent: the client-side bucket's turn for it
    /// would come only after the record's lease (or the call's deadline)
    /// ends, or a wait for it overran that end (a busy machine wakes late;
    /// the token went back). Try again once `wait` has passed.
    #[error(
        "{action} was not sent: its turn in the {category} bucket would come in {}, after this replica's lease on the record (or the call's deadline) ends",
        crate::duration::format(*wait)
    )]
    Deferred {
        action: String,
        category: &'static str,
        wait: Duration,
    },
}

impl AwsError {
    /// Worth trying again later (throttled, transient, unanswered), as opposed to refused.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Refused { .. } | Self::NotSent { .. })
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
pub fn classify<E, R>(action: &str, err: aws_sdk_ecs::error::SdkError<E, R>) -> AwsError
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
        None => {
            use aws_sdk_ecs::error::SdkError;
            let cause = match &err {
                SdkError::TimeoutError(_) => Some("timed out".to_string()),
                SdkError::DispatchFailure(f) if f.is_timeout() => {
                    Some("could not connect in time (--aws-connect-timeout)".to_string())
                }
                SdkError::DispatchFailure(f) if f.is_io() => Some(sdk::chain(&err)),
                _ => None,
            };
            match cause {
                // The endpoint and the time waited are filled in by `Clients::call`.
                Some(cause) => AwsError::Unanswered {
                    action,
                    endpoint: String::new(),
                    waited: Duration::ZERO,
                    cause,
                },
                None => AwsError::Transient {
                    action,
                    message: sdk::chain(&err),
                },
            }
        }
    }
}

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
    limits: Arc<AccountLimits>,
    metrics: Arc<Metrics>,
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
        let bucket = self.limits.buckets.bucket(action);
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
pub(crate) struct Unanswered(Mutex<BTreeMap<(String, String), String>>);

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
    pub(crate) fn now(&self) -> Vec<String> {
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

/// Clients for the operator's own account and, made on first use and kept,
/// for each role it assumes to reach services in other accounts.
pub struct ClientPool {
    base: aws_config::SdkConfig,
    own: Clients,
    assumed: Mutex<HashMap<(String, Option<String>), Clients>>,
    /// The buckets of each account reached, by account (Region is the pool's).
    limiters: Mutex<HashMap<String, Arc<AccountLimits>>>,
    share: ApiShare,
    /// The live replicas the share is split between.
    replicas: Arc<Replicas>,
    metrics: Arc<Metrics>,
    /// Task definition ARN → whether any container has a health check (they never change).
    health_checks: Mutex<HashMap<String, bool>>,
    /// Target group ARN → its deregistration delay, and when it was read.
    drains: Mutex<HashMap<String, (std::time::Instant, Duration)>>,
    /// Each service's tasks as last seen (see [`known_tasks`]).
    pub(crate) known_tasks: known_tasks::KnownTasks,
    /// The DescribeTasks calls of each cluster open to more tasks (see [`task_batches`]).
    pub(crate) task_batches: task_batches::TaskBatches,
    unanswered: Arc<Unanswered>,
}

impl ClientPool {
    /// Clients made from `base`, which should come from [`sdk::load`]
    /// so that every call has its deadlines.
    pub fn new(base: aws_config::SdkConfig, share: ApiShare, metrics: Arc<Metrics>) -> Self {
        let limiters = Mutex::new(HashMap::new());
        let unanswered = Arc::new(Unanswered::default());
        let replicas = Arc::new(Replicas::default());
        let limits = Limits {
            by_account: &limiters,
            share: &share,
            replicas: &replicas,
        };
        let own = make_clients(&base, String::new(), &limits, &metrics, &unanswered);
        Self {
            own,
            base,
            assumed: Mutex::new(HashMap::new()),
            limiters,
            share,
            replicas,
            metrics,
            health_checks: Mutex::new(HashMap::new()),
            drains: Mutex::new(HashMap::new()),
            known_tasks: known_tasks::KnownTasks::default(),
            task_batches: task_batches::TaskBatches::default(),
            unanswered,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// How many replicas are live (this one included): each spends that
    /// part of the API share from now on.
    pub(crate) fn set_replicas(&self, n: usize) {
        let n = n.max(1);
        if self.replicas.get() != n {
            tracing::info!(replicas = n, "the API share is split between {n} replicas");
        }
        self.replicas.set(n);
        self.metrics.replicas.set(n as i64);
    }

    /// The services whose last call got no answer, each as a sentence.
    pub fn unanswered(&self) -> Vec<String> {
        self.unanswered.now()
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
        let limits = Limits {
            by_account: &self.limiters,
            share: &self.share,
            replicas: &self.replicas,
        };
        let clients = make_clients(&config, account, &limits, &self.metrics, &self.unanswered);
        self.lock_assumed().insert(key, clients.clone());
        clients
    }

    fn lock_assumed(
        &self,
    ) -> parking_lot::MutexGuard<'_, HashMap<(String, Option<String>), Clients>> {
        self.assumed.lock()
    }

    pub(crate) fn cached_health_check(&self, td: &str) -> Option<bool> {
        self.health_checks.lock().get(td).copied()
    }

    pub(crate) fn remember_health_check(&self, td: &str, has: bool) {
        self.health_checks.lock().insert(td.to_string(), has);
    }

    /// A target group's deregistration delay read less than `kept` ago.
    pub(crate) fn cached_drain(&self, arn: &str, kept: Duration) -> Option<Duration> {
        self.drains
            .lock()
            .get(arn)
            .filter(|(at, _)| at.elapsed() < kept)
            .map(|(_, d)| *d)
    }

    pub(crate) fn remember_drain(&self, arn: &str, delay: Duration) {
        self.drains
            .lock()
            .insert(arn.to_string(), (std::time::Instant::now(), delay));
    }
}

/// AWS throttles each category per account and Region: so does the operator.
pub(crate) struct AccountLimits {
    buckets: Limiters,
}

/// What the clients of a new account take their buckets from.
struct Limits<'a> {
    by_account: &'a Mutex<HashMap<String, Arc<AccountLimits>>>,
    share: &'a ApiShare,
    replicas: &'a Arc<Replicas>,
}

fn make_clients(
    config: &aws_config::SdkConfig,
    account: String,
    limits: &Limits<'_>,
    metrics: &Arc<Metrics>,
    unanswered: &Arc<Unanswered>,
) -> Clients {
    let limits = limits
        .by_account
        .lock()
        .entry(account.clone())
        .or_insert_with(|| {
            Arc::new(AccountLimits {
                buckets: Limiters::new(limits.share.clone(), limits.replicas.clone()),
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

pub(crate) fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// Performs one decided action, only while `fence` allows it.
pub(crate) async fn act(
    clients: &Clients,
    cluster: &str,
    service: &str,
    action: &Action,
    fence: &Fence,
) -> Result<(), AwsError> {
    match action {
        Action::SetDesired { to, .. } => {
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
