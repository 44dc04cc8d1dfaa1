//! The reconcile loop: for each active request whose lease this replica
//! holds — observe the service, decide the next step, persist the decision
//! conditionally on the record's version and the lease, act, requeue.
//! Shaped after kube-runtime's controller: the loop never stops for one
//! record's trouble, and every step is decided again from what is observed.
//!
//! A tick goes in three stages so that AWS is asked as little as possible:
//! claim the leases of the records that are due, observe their services a
//! cluster at a time ([`aws::observe::observe_all`] shares calls per
//! cluster), then step each record from its observation. The tick waits for
//! the store (every record needs it) but never for AWS: each cluster's
//! look and steps run on their own, so a silent cluster, account or
//! endpoint delays only its own records, which are skipped by later ticks
//! until their step ends (their leases are still renewed).
//!
//! A record is acted on only inside its lease as this replica counts it
//! ([`crate::lease`]): every mutating call is sent through the record's
//! [`Fence`], and a lease whose answer came back too late is no lease.
//!
//! When to look again is the decision's, refined by [`pacing`]: aimed at
//! when new tasks should be serving, slow when only a person can change
//! anything, and at once when the record changes in the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::aws::limit::RateLimit;
use crate::aws::observe::{self, Look, Want};
use crate::aws::sdk::Timeouts;
use crate::aws::{self, AwsError, ClientPool};
use crate::decide::{self, Context, Decision};
use crate::endpoints::Vitals;
use crate::lease::{Fence, LeaseTerms};
use crate::notify::config::NotifyConfig;
use crate::notify::deliver::Notifier;
use crate::notify::outbox;
use crate::observation::{Observation, TaskView};
use crate::pacing::{self, Pace};
use crate::record::{RecycleSpec, request_spec};
use crate::status::{Phase, RecycleStatus, request_status};
use crate::store::{Kind, StatusWrite, Store, StoreError, StoredRecord};

const KIND: Kind = Kind::RecycleRequest;

/// How one replica runs the loop.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub replica_id: String,
    /// Records reconciled at once.
    pub concurrency: usize,
    /// How often the loop looks for work, and how soon a record waiting for
    /// a transition it cannot predict is looked at again.
    pub poll_interval: Duration,
    /// How soon a record that only a person can move on (paused, or waiting
    /// for another request on its service) is looked at again; a change to
    /// the record wakes it at once.
    pub idle_poll_interval: Duration,
    pub lease_duration: Duration,
    /// How long finished records are kept before the store may forget them.
    pub retention: Duration,
    /// The client-side limit on AWS calls, per operation, account and Region.
    pub api_rate_limit: RateLimit,
    /// The deadlines of every AWS call (the SDK configuration carries them;
    /// here to check them against the lease).
    pub aws_timeouts: Timeouts,
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
        if self.idle_poll_interval < self.poll_interval {
            out.push(format!(
                "--idle-poll-interval ({}) must not be shorter than --poll-interval ({}): it is the slow pace",
                crate::duration::format(self.idle_poll_interval),
                crate::duration::format(self.poll_interval)
            ));
        }
        if self.replica_id.trim().is_empty() {
            out.push("--replica-id must not be empty".into());
        }
        out.extend(self.api_rate_limit.problems());
        out.extend(self.aws_timeouts.problems());
        out.extend(self.lease_terms().problems(self.aws_timeouts.attempt));
        out
    }

    pub fn lease_terms(&self) -> LeaseTerms {
        LeaseTerms {
            duration: self.lease_duration,
        }
    }
}

/// What this replica keeps about one active record.
#[derive(Default)]
struct Tracked {
    /// When to reconcile it next.
    due: Option<Instant>,
    /// While this replica holds the lease: until when it may act.
    fence: Option<Fence>,
    /// (version, request it waits for) when last stepped: a change wakes it at once.
    seen: Option<(u64, Option<String>)>,
    /// What its run has learnt of its tasks' timings.
    pace: Pace,
    /// A look or a step of it is under way: later ticks leave it alone.
    busy: bool,
}

pub struct Reconciler<S: Store> {
    store: Arc<S>,
    pool: Arc<ClientPool>,
    config: OperatorConfig,
    vitals: Arc<Vitals>,
    records: Mutex<HashMap<String, Tracked>>,
    /// Steps under way at once, across ticks.
    steps: Arc<Semaphore>,
    /// The looks and steps running on their own, reaped by the loop.
    work: Mutex<JoinSet<()>>,
    /// Delivers the notices of request outboxes (see `crate::notify`).
    notifier: Arc<Notifier>,
    /// Records of an unknown kind reported so far (see `crate::strays`).
    strays: crate::strays::Reported,
}

/// Maximum steps taken at once for a record whose decision asks to go on at once.
const MAX_IMMEDIATE_STEPS: usize = 16;

/// A record claimed for this tick, with what was read of it.
struct Claimed {
    record: StoredRecord,
    spec: RecycleSpec,
    status: RecycleStatus,
    blocked_by: Option<String>,
    clients: aws::Clients,
    fence: Fence,
}

/// Clears a record's `busy` mark when its look or step ends, however it ends.
struct Busy<S: Store> {
    reconciler: Arc<Reconciler<S>>,
    name: String,
}

impl<S: Store> Drop for Busy<S> {
    fn drop(&mut self) {
        if let Some(t) = self.reconciler.lock_records().get_mut(&self.name) {
            t.busy = false;
        }
    }
}

impl<S: Store> Reconciler<S> {
    /// A reconciler whose notifier has no SMTP relay (email notices fail
    /// and are recorded so); SNS and webhooks work.
    pub fn new(
        store: Arc<S>,
        pool: Arc<ClientPool>,
        config: OperatorConfig,
        vitals: Arc<Vitals>,
    ) -> Arc<Self> {
        let notifier = Notifier::new(NotifyConfig::default(), pool.base_config());
        Self::with_notifier(store, pool, config, vitals, notifier)
    }

    pub fn with_notifier(
        store: Arc<S>,
        pool: Arc<ClientPool>,
        config: OperatorConfig,
        vitals: Arc<Vitals>,
        notifier: Arc<Notifier>,
    ) -> Arc<Self> {
        let steps = Arc::new(Semaphore::new(config.concurrency));
        Arc::new(Self {
            store,
            pool,
            config,
            vitals,
            records: Mutex::new(HashMap::new()),
            steps,
            work: Mutex::new(JoinSet::new()),
            notifier,
            strays: Default::default(),
        })
    }

    /// Runs until `shutdown` turns true; the steps in flight finish, then
    /// every lease held is released so another replica can go on at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(replica = %self.config.replica_id, "operator started");
        while !*shutdown.borrow() {
            let started = Instant::now();
            self.reap();
            self.vitals.aws(self.pool.unanswered());
            if let Err(e) = self.clone().tick().await {
                tracing::warn!(error = %e, "could not list active requests; trying again");
            }
            // Look for work every poll interval, and wake for the first record due before that.
            let next = self
                .lock_records()
                .values()
                .filter(|t| !t.busy)
                .filter_map(|t| t.due)
                .min()
                .map_or(started + self.config.poll_interval, |at| {
                    at.min(started + self.config.poll_interval)
                })
                .max(Instant::now() + Duration::from_millis(2));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.settle().await;
        let held: Vec<String> = self
            .lock_records()
            .drain()
            .filter(|(_, t)| t.fence.is_some())
            .map(|(n, _)| n)
            .collect();
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

    fn lock_records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_work(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the looks and steps that have ended; a panic in one is logged.
    fn reap(&self) {
        let mut work = self.lock_work();
        while let Some(done) = work.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "a reconcile task failed");
            }
        }
    }

    /// One pass over the active records. Returns once the due records are
    /// claimed and their looks started; it does not wait for AWS.
    pub async fn tick(self: Arc<Self>) -> Result<(), StoreError> {
        self.vitals.beat();
        let records = match self.store.list_active(KIND).await {
            Ok(r) => {
                self.vitals.listed(Ok(()));
                r
            }
            Err(e) => {
                self.vitals.listed(Err(e.to_string()));
                return Err(e);
            }
        };
        crate::strays::report(self.store.as_ref(), &self.strays).await;
        // Each spec is read once a tick: for the order on each service and for the step.
        let records: Vec<(StoredRecord, Result<RecycleSpec, String>)> = records
            .into_iter()
            .map(|r| {
                let spec = request_spec(&r);
                (r, spec)
            })
            .collect();
        self.count_phases(&records);
        let heads = heads_per_service(&records);
        let names: HashSet<String> = records.iter().map(|(r, _)| r.name.clone()).collect();
        self.lock_records()
            .retain(|n, t| t.busy || names.contains(n));
        // Records due within a sliver of now go together, so their looks are shared.
        let horizon = Instant::now() + self.config.poll_interval / 20;
        let mut due = Vec::new();
        let mut renew = Vec::new();
        for (record, spec) in records {
            let blocked_by = spec
                .as_ref()
                .ok()
                .and_then(|s| heads.get(&(s.cluster.clone(), s.service.clone())))
                .filter(|head| **head != record.name)
                .cloned();
            let tracked = self.lock_records();
            let t = tracked.get(&record.name);
            let busy = t.is_some_and(|t| t.busy);
            let held = t.is_some_and(|t| t.fence.is_some());
            let changed = t
                .and_then(|t| t.seen.as_ref())
                .is_some_and(|seen| *seen != (record.version, blocked_by.clone()));
            let is_due = changed || t.and_then(|t| t.due).is_none_or(|at| at <= horizon);
            drop(tracked);
            if !busy && is_due {
                due.push((record, spec, blocked_by));
            } else if held {
                renew.push(record.name);
            }
        }
        self.vitals.beat();
        // The store's work (renewals, claims, finished records' outboxes)
        // is done here; AWS's is not waited for.
        let limit = Arc::new(Semaphore::new(self.config.concurrency));
        let mut store_work = JoinSet::new();
        for name in renew {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            store_work.spawn(async move {
                let _permit = permit;
                me.hold(&name, None).await;
            });
        }
        let claimed = self.clone().claim_all(due, &limit).await;
        while store_work.join_next().await.is_some() {}
        self.vitals.beat();
        // notify: a finished request only drains its outbox; it is not looked at.
        let (finished, claimed): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|c| c.status.phase.is_terminal());
        let mut drains = JoinSet::new();
        for c in finished {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            drains.spawn(async move {
                let _permit = permit;
                me.drain(c).await;
            });
        }
        while drains.join_next().await.is_some() {}
        let mut clusters: BTreeMap<(String, String), Vec<Claimed>> = BTreeMap::new();
        for c in claimed {
            clusters
                .entry((c.clients.account.clone(), c.spec.cluster.clone()))
                .or_default()
                .push(c);
        }
        let mut work = self.lock_work();
        for (_, members) in clusters {
            {
                let mut tracked = self.lock_records();
                for c in &members {
                    tracked.entry(c.record.name.clone()).or_default().busy = true;
                }
            }
            let me = self.clone();
            work.spawn(async move { me.look_and_step(members).await });
        }
        Ok(())
    }

    /// Looks at the services of one account and cluster at once, then steps
    /// each of its records from what was seen.
    async fn look_and_step(self: Arc<Self>, members: Vec<Claimed>) {
        let busy: Vec<Busy<S>> = members
            .iter()
            .map(|c| Busy {
                reconciler: self.clone(),
                name: c.record.name.clone(),
            })
            .collect();
        let wants: Vec<Want> = members
            .iter()
            .map(|c| Want {
                clients: c.clients.clone(),
                cluster: c.spec.cluster.clone(),
                service: c.spec.service.clone(),
                extra: c.status.batch.clone(),
                scaling: needs_scaling(&c.status),
                tasks: needs_tasks(&c.status),
                awaiting: pacing::tasks_first(&c.spec, &c.status, Utc::now()),
            })
            .collect();
        let observations = observe::observe_all(&self.pool, wants).await;
        let mut steps = JoinSet::new();
        for ((claimed, obs), busy) in members.into_iter().zip(observations).zip(busy) {
            let me = self.clone();
            steps.spawn(async move {
                let _busy = busy;
                let Ok(_permit) = me.steps.clone().acquire_owned().await else {
                    return;
                };
                me.reconcile(claimed, obs).await;
            });
        }
        while steps.join_next().await.is_some() {}
    }

    /// Waits until every look and step under way has ended (a tick only
    /// starts them).
    pub async fn settle(&self) {
        let mut work = std::mem::take(&mut *self.lock_work());
        while let Some(done) = work.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a reconcile task failed");
            }
        }
    }

    fn count_phases(&self, records: &[(StoredRecord, Result<RecycleSpec, String>)]) {
        let mut counts: HashMap<Phase, i64> = HashMap::new();
        for (r, _) in records {
            let phase = request_status(r).map(|s| s.phase).unwrap_or_default();
            *counts.entry(phase).or_default() += 1;
        }
        let counts: Vec<(Phase, i64)> = counts.into_iter().collect();
        self.pool.metrics().set_active(&counts);
    }

    /// Takes the leases of the due records, at most `concurrency` at once;
    /// answers those this replica may step now. A record that cannot be read
    /// is marked Failed here.
    async fn claim_all(
        self: Arc<Self>,
        due: Vec<(StoredRecord, Result<RecycleSpec, String>, Option<String>)>,
        limit: &Arc<Semaphore>,
    ) -> Vec<Claimed> {
        let mut work = JoinSet::new();
        for (record, spec, blocked_by) in due {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            work.spawn(async move {
                let _permit = permit;
                me.claim(record, spec, blocked_by).await
            });
        }
        let mut claimed = Vec::new();
        while let Some(done) = work.join_next().await {
            if let Ok(Some(c)) = done {
                claimed.push(c);
            }
        }
        claimed
    }

    async fn claim(
        &self,
        record: StoredRecord,
        spec: Result<RecycleSpec, String>,
        blocked_by: Option<String>,
    ) -> Option<Claimed> {
        let previous = record.lease.as_ref().map(|l| l.holder.clone());
        let fence = self.hold(&record.name, Some(previous.as_deref())).await?;
        let (spec, status) = match spec.and_then(|spec| Ok((spec, request_status(&record)?))) {
            Ok(p) => p,
            Err(message) => {
                self.fail_invalid(&record, message, &fence).await;
                return None;
            }
        };
        let clients = self
            .pool
            .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
            .await;
        // Only the name, version and lease are needed from here on: the
        // raw spec and status go, so a tick over many records holds less.
        let record = StoredRecord {
            spec: Err(String::new()),
            status: None,
            ..record
        };
        Some(Claimed {
            record,
            spec,
            status,
            blocked_by,
            clients,
            fence,
        })
    }

    /// Takes, keeps or renews the record's lease; answers the fence to act
    /// under, or `None` when this replica may not act on the record now.
    /// A lease with more than half its time left is kept without a write.
    /// `claiming` names the holder the store showed when the record is
    /// being claimed (to log a takeover), and is `None` for a renewal.
    async fn hold(&self, name: &str, claiming: Option<Option<&str>>) -> Option<Fence> {
        let terms = self.config.lease_terms();
        let me = &self.config.replica_id;
        let kept = self.lock_records().get(name).and_then(|t| t.fence.clone());
        if let Some(fence) = &kept
            && fence
                .remaining()
                .is_some_and(|left| left > terms.duration / 2)
        {
            return kept;
        }
        // The lease is counted from here, before the write is sent.
        let sent = Instant::now();
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(terms.duration).unwrap_or_default();
        match self.store.acquire_lease(KIND, name, me, now, until).await {
            Ok(true) => {
                self.vitals.lease(Ok(()));
                let valid_until = terms.valid_until(sent);
                if Instant::now() >= valid_until {
                    tracing::warn!(
                        request = %name,
                        waited = %crate::duration::format(sent.elapsed()),
                        "the store confirmed the lease too late to act on; deciding again at the next look"
                    );
                    self.give_up(name).await;
                    return None;
                }
                let fence = kept.unwrap_or_default();
                fence.extend(valid_until);
                let new = {
                    let mut tracked = self.lock_records();
                    let t = tracked.entry(name.to_string()).or_default();
                    let new = t.fence.is_none();
                    t.fence = Some(fence.clone());
                    new
                };
                if new && let Some(previous) = claiming {
                    match previous.filter(|p| p != me) {
                        Some(other) => {
                            self.pool.metrics().lease_takeovers.inc();
                            tracing::info!(request = %name, replica = %me, from = %other, "lease taken over");
                        }
                        None => tracing::info!(request = %name, replica = %me, "lease taken"),
                    }
                }
                Some(fence)
            }
            Ok(false) => {
                self.vitals.lease(Ok(()));
                if kept.is_some() {
                    tracing::warn!(request = %name, "lease taken over by another replica");
                }
                self.lose(name);
                self.requeue(name, self.config.poll_interval);
                None
            }
            Err(e) => {
                self.vitals.lease(Err(e.to_string()));
                tracing::warn!(request = %name, error = %e, "could not take or renew the lease");
                self.requeue(name, self.config.poll_interval);
                None
            }
        }
    }

    fn requeue(&self, name: &str, after: Duration) {
        self.lock_records().entry(name.to_string()).or_default().due = Some(Instant::now() + after);
    }

    /// The lease is no longer this replica's: nothing more is sent under it.
    fn lose(&self, name: &str) {
        if let Some(t) = self.lock_records().get_mut(name)
            && let Some(fence) = t.fence.take()
        {
            fence.revoke();
        }
    }

    /// The store answers this replica too slowly to act inside a lease:
    /// the lease is given back so that a replica with a better way to the
    /// store goes on, and this one looks again after a poll interval.
    async fn give_up(&self, name: &str) {
        self.lose(name);
        self.requeue(name, self.config.poll_interval);
        if let Err(e) = self
            .store
            .release_lease(KIND, name, &self.config.replica_id)
            .await
        {
            tracing::warn!(request = %name, error = %e, "could not release lease");
        }
    }

    /// Forgets a record this replica is done with (finished, or lost).
    fn forget(&self, name: &str) {
        if let Some(t) = self.lock_records().remove(name)
            && let Some(fence) = t.fence
        {
            fence.revoke();
        }
    }

    /// Advances a claimed record as far as it can go now, starting from the
    /// tick's observation of its service.
    async fn reconcile(&self, claimed: Claimed, first: Result<Look, AwsError>) {
        let Claimed {
            record,
            spec,
            mut status,
            blocked_by,
            clients,
            fence,
        } = claimed;
        let name = record.name.clone();
        let metrics = self.pool.metrics().clone();
        let mut version = record.version;
        // notify: fold in delivery receipts; after a restart or a takeover,
        // notices already on record are handed on again.
        let mut unsaved = self.notifier.collect(&name, &mut status.notify);
        self.notifier.submit(&name, &status.notify, &fence);
        let mut first = match first {
            Ok(Look::NotYet(tasks)) if !unsaved => {
                return self
                    .not_yet(&record, &spec, &status, &tasks, &blocked_by)
                    .await;
            }
            // Receipts to record: a whole look, and the step as usual.
            Ok(Look::NotYet(_)) => None,
            Ok(Look::Whole(o)) => Some(Ok(o)),
            Err(e) => Some(Err(e)),
        };
        // The observation in hand, and whether it includes the scalable
        // target and the tasks.
        let mut obs: Option<(Observation, bool, bool)> = None;
        for _ in 0..MAX_IMMEDIATE_STEPS {
            let step_began = Instant::now();
            let wants_scaling = needs_scaling(&status);
            let wants_tasks = needs_tasks(&status);
            let fresh = match (obs.take(), first.take()) {
                (Some((o, has_scaling, has_tasks)), _)
                    if (has_scaling || !wants_scaling) && (has_tasks || !wants_tasks) =>
                {
                    Ok(o)
                }
                (_, Some(tick_obs)) => tick_obs,
                _ => {
                    let want = Want {
                        clients: clients.clone(),
                        cluster: spec.cluster.clone(),
                        service: spec.service.clone(),
                        extra: status.batch.clone(),
                        scaling: wants_scaling,
                        tasks: wants_tasks,
                        awaiting: None,
                    };
                    observe::observe(&self.pool, want).await
                }
            };
            let current = match fresh {
                Ok(o) => o,
                Err(e) => {
                    // A call that got no answer was logged once, where it was made.
                    if matches!(e, AwsError::Unanswered { .. }) {
                        tracing::debug!(request = %name, error = %e, "could not observe; trying again");
                    } else {
                        tracing::warn!(request = %name, cluster = %spec.cluster, service = %spec.service, error = %e, "could not observe; trying again");
                    }
                    metrics.reconciled("observe_failed");
                    return self.requeue(&name, self.retry_after(&e));
                }
            };
            // The observation may have taken a while (many services, rate
            // limits, a slow endpoint): make sure the lease is still ours,
            // renewed if need be.
            if self.hold(&name, None).await.is_none() {
                return metrics.reconciled("lease_lost");
            }
            let now = Utc::now();
            let ctx = Context {
                name: &name,
                spec: &spec,
                now,
                poll: self.config.poll_interval,
                blocked_by: blocked_by.as_deref(),
            };
            let mut decision = {
                let mut tracked = self.lock_records();
                let pace = &mut tracked.entry(name.clone()).or_default().pace;
                pace.learn(&current.tasks, status.started_at.or(Some(now)), now);
                let decision = decide::decide(&ctx, &status, &current);
                if let Some(step) = pacing::awaits_tasks(&status)
                    && pacing::awaits_tasks(&decision.status) != Some(step)
                {
                    pace.step_done(step, now);
                }
                decision
            };
            outbox::enqueue(&name, &spec, &status, &mut decision.status, ctx.now);
            if unsaved || decision.status != status {
                match self.persist(&name, version, &decision.status, &fence).await {
                    Some(v) => version = v,
                    None => return metrics.reconciled("persist_stopped"),
                }
                unsaved = false;
                log_new_events(&spec, &name, &status, &decision.status);
            }
            let acted = !decision.actions.is_empty();
            if let Err((action, refusal)) =
                self.act(&clients, &spec, &name, &decision, &fence).await
            {
                if let AwsError::NotSent { .. } = refusal {
                    // The decision is on record; whoever holds the lease next
                    // decides again from it and a fresh look.
                    tracing::warn!(request = %name, error = %refusal, "lease lapsed before acting; nothing sent, deciding again at the next look");
                    metrics.reconciled("lease_lapsed");
                    self.remember(&name, version, &blocked_by);
                    return self.give_up(&name).await;
                }
                if refusal.is_retryable() {
                    tracing::warn!(request = %name, error = %refusal, "action not done; trying again");
                    metrics.reconciled("act_failed");
                    self.remember(&name, version, &blocked_by);
                    return self.requeue(&name, self.retry_after(&refusal));
                }
                tracing::error!(request = %name, error = %refusal, "AWS refused an action");
                let mut failed =
                    decide::refused(&decision.status, ctx.now, &action, refusal.to_string());
                outbox::enqueue(&name, &spec, &decision.status, &mut failed, ctx.now);
                match self.persist(&name, version, &failed, &fence).await {
                    Some(v) => version = v,
                    None => return metrics.reconciled("persist_stopped"),
                }
                log_new_events(&spec, &name, &decision.status, &failed);
                decision = Decision {
                    requeue: (!failed.phase.is_terminal()).then_some(Duration::ZERO),
                    status: failed,
                    actions: Vec::new(),
                };
            }
            metrics
                .step_seconds
                .observe(step_began.elapsed().as_secs_f64());
            status = decision.status;
            match decision.requeue {
                // notify: finished, with notices still to deliver.
                None if !status.notify.outbox.is_empty() => {
                    self.remember(&name, version, &blocked_by);
                    return self.requeue(&name, self.config.poll_interval);
                }
                None => {
                    let _ = self
                        .store
                        .release_lease(KIND, &name, &self.config.replica_id)
                        .await;
                    self.forget(&name);
                    return metrics.reconciled("finished");
                }
                // Nothing was done to AWS: what was seen a moment ago still holds.
                Some(after) if after.is_zero() => {
                    if !acted {
                        obs = Some((current, wants_scaling, wants_tasks));
                    }
                    continue;
                }
                Some(after) => {
                    let after =
                        self.pace(&name, &spec, &status, &current.tasks, after, &blocked_by);
                    self.remember(&name, version, &blocked_by);
                    metrics.reconciled("requeued");
                    return self.requeue(&name, after);
                }
            }
        }
        self.remember(&name, version, &blocked_by);
        self.requeue(&name, Duration::ZERO);
    }

    /// A step waiting for new tasks whose tasks show it is not done: only
    /// what they teach of the timings is kept, and the next look aimed.
    async fn not_yet(
        &self,
        record: &StoredRecord,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        tasks: &[TaskView],
        blocked_by: &Option<String>,
    ) {
        let metrics = self.pool.metrics().clone();
        if self.hold(&record.name, None).await.is_none() {
            return metrics.reconciled("lease_lost");
        }
        let now = Utc::now();
        self.lock_records()
            .entry(record.name.clone())
            .or_default()
            .pace
            .learn(tasks, status.started_at.or(Some(now)), now);
        let poll = self.config.poll_interval;
        let after = self.pace(&record.name, spec, status, tasks, poll, blocked_by);
        self.remember(&record.name, record.version, blocked_by);
        metrics.reconciled("not_yet");
        self.requeue(&record.name, after);
    }

    fn remember(&self, name: &str, version: u64, blocked_by: &Option<String>) {
        self.lock_records()
            .entry(name.to_string())
            .or_default()
            .seen = Some((version, blocked_by.clone()));
    }

    /// After a failure worth trying again: throttling backs off further.
    fn retry_after(&self, e: &AwsError) -> Duration {
        match e {
            AwsError::Throttled { .. } => {
                let jitter = 1.0 + fastrand::f64();
                self.config.poll_interval.mul_f64(2.0 * jitter)
            }
            _ => self.config.poll_interval,
        }
    }

    /// When to look again: the decision's own time (a wait) stands; a
    /// transition expected is aimed at; only a person can move a paused or
    /// queued request on, and a change to it wakes it anyway.
    fn pace(
        &self,
        name: &str,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        tasks: &[TaskView],
        after: Duration,
        blocked_by: &Option<String>,
    ) -> Duration {
        if after != self.config.poll_interval {
            return after;
        }
        if let Some(step) = pacing::awaits_tasks(status) {
            return self
                .lock_records()
                .entry(name.to_string())
                .or_default()
                .pace
                .next_look(tasks, step, Utc::now(), self.config.poll_interval);
        }
        let queued = status.phase == Phase::Pending && blocked_by.is_some();
        if queued || (spec.paused && !spec.cancel) {
            return self.config.idle_poll_interval;
        }
        after
    }

    /// Writes the status; `None` when this replica must stop acting on the
    /// record (for now: a record that changed is decided again at once).
    async fn persist(
        &self,
        name: &str,
        version: u64,
        status: &RecycleStatus,
        fence: &Fence,
    ) -> Option<u64> {
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
                self.notifier.submit(name, &status.notify, fence);
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
                // It may have landed all the same: the next read tells.
                tracing::warn!(request = %name, error = %e, "could not write status; reading it again at the next look");
                self.requeue(name, self.config.poll_interval);
                None
            }
        }
    }

    /// notify: a finished request whose notices are not all delivered makes
    /// no AWS call: it records what was delivered (what is left was handed
    /// on already), and leaves the active index with the write that empties
    /// its outbox.
    async fn drain(&self, claimed: Claimed) {
        let Claimed {
            record,
            mut status,
            fence,
            ..
        } = claimed;
        let name = record.name.as_str();
        let unsaved = self.notifier.collect(name, &mut status.notify);
        self.notifier.submit(name, &status.notify, &fence);
        if (unsaved || status.notify.outbox.is_empty())
            && self
                .persist(name, record.version, &status, &fence)
                .await
                .is_none()
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

    async fn act(
        &self,
        clients: &aws::Clients,
        spec: &RecycleSpec,
        name: &str,
        decision: &Decision,
        fence: &Fence,
    ) -> Result<(), (decide::Action, AwsError)> {
        for action in &decision.actions {
            tracing::debug!(request = %name, ?action, "acting");
            aws::act(clients, &spec.cluster, &spec.service, action, fence)
                .await
                .map_err(|e| (action.clone(), e))?;
        }
        Ok(())
    }

    /// A record that cannot be read is marked Failed once, with the reason.
    async fn fail_invalid(&self, record: &StoredRecord, message: String, fence: &Fence) {
        let now = Utc::now();
        let mut status: RecycleStatus = record
            .status
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        status.transition(now, Phase::Failed, format!("invalid record: {message}"));
        tracing::error!(request = %record.name, reason = %message, "invalid record marked Failed");
        if self
            .persist(&record.name, record.version, &status, fence)
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

/// Whether the decision may read the scalable target: in every phase but
/// Recycling, so the batches go without the call — except once every
/// planned task is stopped, when this look may end the run and restore.
/// Whether the decision reads the tasks: in every phase but Restoring,
/// which only puts the desired count and the scaling settings back.
fn needs_tasks(status: &RecycleStatus) -> bool {
    status.phase != Phase::Restoring
}

fn needs_scaling(status: &RecycleStatus) -> bool {
    let last_batch = status.plan.as_ref().is_some_and(|p| {
        p.tasks
            .iter()
            .all(|t| status.stopped.contains(t) || status.skipped.contains(t))
    });
    status.phase != Phase::Recycling || last_batch
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
