//! Every client the operator uses, in one pool: its own account's, and,
//! made on first use and kept, those of each role it assumes to reach
//! services in other accounts; the buckets of each account reached; and
//! what the looks keep between ticks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::clients::{Clients, Unanswered, make_clients};
use super::limit::{ApiShare, Limiters, Replicas};
use super::{known_tasks, task_batches};
use crate::metrics::Metrics;

/// Clients for the operator's own account and, made on first use and kept,
/// for each role it assumes to reach services in other accounts.
pub struct ClientPool {
    base: aws_config::SdkConfig,
    own: Clients,
    assumed: Mutex<HashMap<(String, Option<String>), Clients>>,
    buckets: AccountBuckets,
    metrics: Arc<Metrics>,
    /// What looks keep between ticks.
    pub(crate) looks: LookCaches,
    unanswered: Arc<Unanswered>,
}

/// What the looks at services keep between ticks, so that what never (or
/// seldom) changes is not asked again.
#[derive(Default)]
pub(crate) struct LookCaches {
    /// Whether each task definition has a health check.
    pub(crate) health_checks: HealthChecks,
    /// Each target group's deregistration delay.
    pub(crate) drains: DrainDelays,
    /// Each service's tasks as last seen (see [`known_tasks`]).
    pub(crate) known_tasks: known_tasks::KnownTasks,
    /// The DescribeTasks calls of each cluster open to more tasks (see [`task_batches`]).
    pub(crate) task_batches: task_batches::TaskBatches,
    /// Capacity providers described (see [`super::observe::capacity`]).
    pub(crate) providers: super::observe::capacity::Providers,
}

/// Task definition ARN → whether any container has a health check (a task
/// definition never changes).
#[derive(Default)]
pub(crate) struct HealthChecks(Mutex<HashMap<String, bool>>);

impl HealthChecks {
    pub(crate) fn get(&self, task_definition: &str) -> Option<bool> {
        self.0.lock().get(task_definition).copied()
    }

    pub(crate) fn remember(&self, task_definition: &str, has: bool) {
        self.0.lock().insert(task_definition.to_string(), has);
    }
}

/// Target group ARN → its deregistration delay, and when it was read.
#[derive(Default)]
pub(crate) struct DrainDelays(Mutex<HashMap<String, (std::time::Instant, Duration)>>);

impl DrainDelays {
    /// A target group's deregistration delay read less than `kept` ago.
    pub(crate) fn get(&self, arn: &str, kept: Duration) -> Option<Duration> {
        self.0
            .lock()
            .get(arn)
            .filter(|(at, _)| at.elapsed() < kept)
            .map(|(_, d)| *d)
    }

    pub(crate) fn remember(&self, arn: &str, delay: Duration) {
        self.0
            .lock()
            .insert(arn.to_string(), (std::time::Instant::now(), delay));
    }
}

/// The buckets of every account reached (AWS throttles each category per
/// account and Region: so does the operator; the Region is the pool's),
/// each sized to this replica's part of the share.
struct AccountBuckets {
    by_account: Mutex<HashMap<String, Arc<Limiters>>>,
    share: ApiShare,
    /// The live replicas the share is split between.
    replicas: Arc<Replicas>,
}

impl AccountBuckets {
    fn of(&self, account: &str) -> Arc<Limiters> {
        self.by_account
            .lock()
            .entry(account.to_string())
            .or_insert_with(|| Arc::new(Limiters::new(self.share.clone(), self.replicas.clone())))
            .clone()
    }
}

impl ClientPool {
    /// Clients made from `base`, which should come from [`sdk::load`]
    /// so that every call has its deadlines.
    pub fn new(base: aws_config::SdkConfig, share: ApiShare, metrics: Arc<Metrics>) -> Self {
        let unanswered = Arc::new(Unanswered::default());
        let buckets = AccountBuckets {
            by_account: Mutex::new(HashMap::new()),
            share,
            replicas: Arc::new(Replicas::default()),
        };
        let own = make_clients(&base, String::new(), buckets.of(""), &metrics, &unanswered);
        Self {
            own,
            base,
            assumed: Mutex::new(HashMap::new()),
            buckets,
            metrics,
            looks: LookCaches::default(),
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
        if self.buckets.replicas.get() != n {
            tracing::info!(replicas = n, "the API share is split between {n} replicas");
        }
        self.buckets.replicas.set(n);
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
        let limits = self.buckets.of(&account);
        let clients = make_clients(&config, account, limits, &self.metrics, &self.unanswered);
        self.lock_assumed().insert(key, clients.clone());
        clients
    }

    fn lock_assumed(
        &self,
    ) -> parking_lot::MutexGuard<'_, HashMap<(String, Option<String>), Clients>> {
        self.assumed.lock()
    }
}
