//! The reconcile loop: for each active request whose lease this replica
//! holds — observe the service, decide the next step, persist the decision
//! conditionally on the record's version and the lease, act, requeue.
//! Shaped after kube-runtime's controller: the loop never stops for one
//! record's trouble, and every step is decided again from what is observed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::aws::{self, AwsError, ClientPool};
use crate::decide::{self, Context, Decision};
use crate::notify::config::NotifyConfig;
use crate::notify::deliver::Notifier;
use crate::notify::outbox;
use crate::record::{RecycleSpec, parse_spec};
use crate::status::{Phase, RecycleStatus};
use crate::store::{Kind, StatusWrite, Store, StoreError, StoredRecord};

const KIND: Kind = Kind::RecycleRequest;

/// How one replica runs the loop.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub replica_id: String,
    /// Records reconciled at once.
    pub concurrency: usize,
    /// How often the loop looks for work, and how soon a record waiting for
    /// a transition is looked at again.
    pub poll_interval: Duration,
    pub lease_duration: Duration,
    /// How long finished records are kept before the store may forget them.
    pub retention: Duration,
}

impl OperatorConfig {
    /// Every flag out of range, each with the reason.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.concurrency == 0 {
            out.push("--concurrency must be at least 1".to_string());
        }
        if self.poll_interval.is_zero() {
            out.push("--poll-interval must be longer than 0s".into());
        }
        if self.poll_interval * 2 >= self.lease_duration {
            out.push(format!(
                "--poll-interval ({}) must be less than half of --lease-duration ({}), or leases lapse between renewals",
                crate::duration::format(self.poll_interval),
                crate::duration::format(self.lease_duration)
            ));
        }
        if self.replica_id.trim().is_empty() {
            out.push("--replica-id must not be empty".into());
        }
        out
    }
}

pub struct Reconciler<S: Store> {
    store: Arc<S>,
    pool: Arc<ClientPool>,
    config: OperatorConfig,
    /// Record name → when to reconcile it next.
    due: Mutex<HashMap<String, Instant>>,
    /// Records whose lease this replica holds.
    held: Mutex<HashSet<String>>,
    /// Delivers the notices of request outboxes (see `crate::notify`).
    notifier: Arc<Notifier>,
}

/// Maximum steps taken at once for a record whose decision asks to go on at once.
const MAX_IMMEDIATE_STEPS: usize = 16;

impl<S: Store> Reconciler<S> {
    /// A reconciler whose notifier has no SMTP relay (email notices fail
    /// and are recorded so); SNS and webhooks work.
    pub fn new(store: Arc<S>, pool: Arc<ClientPool>, config: OperatorConfig) -> Arc<Self> {
        let notifier = Notifier::new(NotifyConfig::default(), pool.base_config());
        Self::with_notifier(store, pool, config, notifier)
    }

    pub fn with_notifier(
        store: Arc<S>,
        pool: Arc<ClientPool>,
        config: OperatorConfig,
        notifier: Arc<Notifier>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            pool,
            config,
            due: Mutex::new(HashMap::new()),
            held: Mutex::new(HashSet::new()),
            notifier,
        })
    }

    /// Runs until `shutdown` turns true; the step in flight finishes, then
    /// every lease held is released so another replica can go on at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(replica = %self.config.replica_id, "operator started");
        while !*shutdown.borrow() {
            if let Err(e) = self.clone().tick().await {
                tracing::warn!(error = %e, "could not list active requests; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        let held: Vec<String> = self.lock_held().drain().collect();
        for name in held {
            if let Err(e) = self
                .store
                .release_lease(KIND, &name, &self.config.replica_id)
                .await
            {
                tracing::warn!(request = %name, error = %e, "could not release lease");
            }
        }
        tracing::info!(replica = %self.config.replica_id, "operator stopped");
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_due(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pass over the active records.
    pub async fn tick(self: Arc<Self>) -> Result<(), StoreError> {
        let records = self.store.list_active(KIND).await?;
        // Each spec is read once a tick: for the order on each service and for the step.
        let records: Vec<(StoredRecord, Result<RecycleSpec, String>)> = records
            .into_iter()
            .map(|r| {
                let spec = read_spec(&r);
                (r, spec)
            })
            .collect();
        let heads = heads_per_service(&records);
        let now = Instant::now();
        let limit = Arc::new(Semaphore::new(self.config.concurrency));
        let mut work = JoinSet::new();
        let names: HashSet<String> = records.iter().map(|(r, _)| r.name.clone()).collect();
        self.lock_due().retain(|n, _| names.contains(n));
        for (record, spec) in records {
            let due = self
                .lock_due()
                .get(&record.name)
                .is_none_or(|at| *at <= now);
            let held = self.lock_held().contains(&record.name);
            if !due && !held {
                continue;
            }
            let blocked_by = spec
                .as_ref()
                .ok()
                .and_then(|s| heads.get(&(s.cluster.clone(), s.service.clone())))
                .filter(|head| **head != record.name)
                .cloned();
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            work.spawn(async move {
                let _permit = permit;
                if due {
                    me.reconcile(record, spec, blocked_by).await;
                } else {
                    me.renew(&record.name).await;
                }
            });
        }
        while work.join_next().await.is_some() {}
        Ok(())
    }

    async fn renew(&self, name: &str) {
        let now = Utc::now();
        match self
            .store
            .acquire_lease(KIND, name, &self.config.replica_id, now, now + self.lease())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(request = %name, "lease taken over by another replica");
                self.lock_held().remove(name);
            }
            Err(e) => tracing::warn!(request = %name, error = %e, "could not renew lease"),
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.lease_duration)
            .unwrap_or(chrono::Duration::seconds(15))
    }

    fn requeue(&self, name: &str, after: Duration) {
        self.lock_due()
            .insert(name.to_string(), Instant::now() + after);
    }

    fn forget(&self, name: &str) {
        self.lock_held().remove(name);
        self.lock_due().remove(name);
    }

    /// Takes the lease and advances the record as far as it can go now.
    async fn reconcile(
        &self,
        record: StoredRecord,
        spec: Result<RecycleSpec, String>,
        blocked_by: Option<String>,
    ) {
        let name = record.name.clone();
        let me = &self.config.replica_id;
        let now = Utc::now();
        match self
            .store
            .acquire_lease(KIND, &name, me, now, now + self.lease())
            .await
        {
            Ok(true) => {
                if self.lock_held().insert(name.clone()) {
                    tracing::info!(request = %name, replica = %me, "lease taken");
                }
            }
            Ok(false) => {
                self.forget(&name);
                self.requeue(&name, self.config.poll_interval);
                return;
            }
            Err(e) => {
                tracing::warn!(request = %name, error = %e, "could not take lease");
                return;
            }
        }
        let (spec, status) = match spec.and_then(|spec| Ok((spec, read_status(&record)?))) {
            Ok(p) => p,
            Err(message) => return self.fail_invalid(&record, message).await,
        };
        // notify: fold in delivery receipts; a finished request only drains its outbox.
        let mut status = status;
        let mut unsaved = self.notifier.collect(&name, &mut status.notify);
        // After a restart or a takeover, notices already on record are sent again.
        self.notifier.submit(&name, &status.notify);
        if status.phase.is_terminal() {
            return self
                .drain_outbox(&name, record.version, status, unsaved)
                .await;
        }
        let clients = self
            .pool
            .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
            .await;
        let mut version = record.version;
        for _ in 0..MAX_IMMEDIATE_STEPS {
            let obs = match aws::observe(
                &self.pool,
                &clients,
                &spec.cluster,
                &spec.service,
                &status.batch,
            )
            .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(request = %name, cluster = %spec.cluster, service = %spec.service, error = %e, "could not observe; trying again");
                    return self.requeue(&name, self.config.poll_interval);
                }
            };
            let ctx = Context {
                name: &name,
                spec: &spec,
                now: Utc::now(),
                poll: self.config.poll_interval,
                blocked_by: blocked_by.as_deref(),
            };
            let mut decision = decide::decide(&ctx, &status, &obs);
            outbox::enqueue(&name, &spec, &status, &mut decision.status, ctx.now);
            if unsaved || decision.status != status {
                match self.persist(&name, version, &decision.status).await {
                    Some(v) => version = v,
                    None => return,
                }
                unsaved = false;
                log_new_events(&spec, &name, &status, &decision.status);
            }
            if let Err(refusal) = self.act(&clients, &spec, &name, &decision).await {
                match refusal {
                    AwsError::Transient { .. } => {
                        tracing::warn!(request = %name, error = %refusal, "action not done; trying again");
                        return self.requeue(&name, self.config.poll_interval);
                    }
                    AwsError::Refused { .. } => {
                        tracing::error!(request = %name, error = %refusal, "AWS refused an action");
                        let mut failed =
                            decide::refused(&decision.status, ctx.now, refusal.to_string());
                        outbox::enqueue(&name, &spec, &decision.status, &mut failed, ctx.now);
                        match self.persist(&name, version, &failed).await {
                            Some(v) => version = v,
                            None => return,
                        }
                        log_new_events(&spec, &name, &decision.status, &failed);
                        decision = Decision {
                            requeue: (!failed.phase.is_terminal()).then_some(Duration::ZERO),
                            status: failed,
                            actions: Vec::new(),
                        };
                    }
                }
            }
            status = decision.status;
            match decision.requeue {
                None if status.notify.outbox.is_empty() => {
                    let _ = self.store.release_lease(KIND, &name, me).await;
                    self.forget(&name);
                    return;
                }
                // notify: finished, with notices still to deliver.
                None => return self.requeue(&name, self.config.poll_interval),
                Some(after) if after.is_zero() => continue,
                Some(after) => return self.requeue(&name, after),
            }
        }
        self.requeue(&name, Duration::ZERO);
    }

    /// Writes the status; `None` when this replica must stop acting on the record.
    async fn persist(&self, name: &str, version: u64, status: &RecycleStatus) -> Option<u64> {
        let now = Utc::now();
        let finished = status.phase.is_terminal();
        let value = match serde_json::to_value(status) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(request = %name, error = %e, "cannot encode status");
                return None;
            }
        };
        let write = StatusWrite {
            expected_version: version,
            status: value,
            // notify: a finished request stays listed until its outbox is empty.
            active: !finished || !status.notify.outbox.is_empty(),
            holder: self.config.replica_id.clone(),
            now,
            expires_at: finished
                .then(|| {
                    chrono::Duration::from_std(self.config.retention)
                        .ok()
                        .map(|r| now + r)
                })
                .flatten(),
        };
        match self.store.write_status(KIND, name, write).await {
            Ok(v) => {
                self.notifier.persisted(name, &status.notify);
                self.notifier.submit(name, &status.notify);
                Some(v)
            }
            Err(StoreError::Conflict { .. }) => {
                // Someone changed the record (a person paused it, say): read and decide again.
                self.requeue(name, Duration::ZERO);
                None
            }
            Err(StoreError::LeaseLost { .. }) => {
                tracing::warn!(request = %name, "lease lost; another replica goes on");
                self.forget(name);
                None
            }
            Err(e) => {
                tracing::warn!(request = %name, error = %e, "could not write status; trying again");
                self.requeue(name, self.config.poll_interval);
                None
            }
        }
    }

    async fn act(
        &self,
        clients: &aws::Clients,
        spec: &RecycleSpec,
        name: &str,
        decision: &Decision,
    ) -> Result<(), AwsError> {
        for action in &decision.actions {
            tracing::debug!(request = %name, ?action, "acting");
            aws::act(clients, &spec.cluster, &spec.service, action).await?;
        }
        Ok(())
    }

    /// notify: a finished request whose notices are not all delivered makes
    /// no AWS call: it records what was delivered (what is left was handed
    /// on already), and leaves the active index with the write that empties
    /// its outbox.
    async fn drain_outbox(&self, name: &str, version: u64, status: RecycleStatus, unsaved: bool) {
        if (unsaved || status.notify.outbox.is_empty())
            && self.persist(name, version, &status).await.is_none()
        {
            return;
        }
        if status.notify.outbox.is_empty() {
            let _ = self
                .store
                .release_lease(KIND, name, &self.config.replica_id)
                .await;
            self.forget(name);
        } else {
            self.requeue(name, self.config.poll_interval);
        }
    }

    /// A record that cannot be read is marked Failed once, with the reason.
    async fn fail_invalid(&self, record: &StoredRecord, message: String) {
        let now = Utc::now();
        let mut status: RecycleStatus = record
            .status
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        status.transition(now, Phase::Failed, format!("invalid record: {message}"));
        tracing::error!(request = %record.name, reason = %message, "invalid record marked Failed");
        if self
            .persist(&record.name, record.version, &status)
            .await
            .is_some()
        {
            let _ = self
                .store
                .release_lease(KIND, &record.name, &self.config.replica_id)
                .await;
            self.forget(&record.name);
        }
    }
}

/// The record's spec, or a sentence saying what is wrong with it.
fn read_spec(record: &StoredRecord) -> Result<RecycleSpec, String> {
    let value = record.spec.as_ref().map_err(|e| format!("spec: {e}"))?;
    parse_spec(value, "spec").map_err(|e| e.to_string())
}

/// The record's status, or a sentence saying why it cannot be read.
fn read_status(record: &StoredRecord) -> Result<RecycleStatus, String> {
    match &record.status {
        None => Ok(RecycleStatus::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            format!("status: cannot be read ({e}); it is written by the operator only")
        }),
    }
}

/// The first active request of each service, in creation order: it goes first.
fn heads_per_service(
    records: &[(StoredRecord, Result<RecycleSpec, String>)],
) -> HashMap<(String, String), String> {
    let mut heads = HashMap::new();
    for (r, spec) in records {
        // notify: a finished request still delivering its notices goes before nobody.
        let finished = r
            .status
            .as_ref()
            .and_then(|s| serde_json::from_value::<Phase>(s["phase"].clone()).ok())
            .is_some_and(Phase::is_terminal);
        if finished {
            continue;
        }
        if let Ok(spec) = spec {
            heads
                .entry((spec.cluster.clone(), spec.service.clone()))
                .or_insert_with(|| r.name.clone());
        }
    }
    heads
}

fn log_new_events(spec: &RecycleSpec, name: &str, before: &RecycleStatus, after: &RecycleStatus) {
    let seen = before.events.last().map(|e| (e.at, e.message.clone()));
    let start = seen
        .and_then(|s| {
            after
                .events
                .iter()
                .rposition(|e| (e.at, e.message.clone()) == s)
        })
        .map_or(0, |i| i + 1);
    for e in &after.events[start..] {
        tracing::info!(
            cluster = %spec.cluster,
            service = %spec.service,
            request = %name,
            task = e.task.as_deref(),
            reason = %e.reason,
            phase = ?after.phase,
            "{}",
            e.message
        );
    }
}
