//! The reconcile loop: for each active request whose lease this replica
//! holds — observe the service, decide the next step, persist the decision
//! conditionally on the record's version and the lease, act, requeue.
//! Shaped after kube-runtime's controller: the loop never stops for one
//! record's trouble, and every step is decided again from what is observed.
//! One step of one record, and how its outcome becomes a requeue, is in
//! [`super::step`].
//!
//! A tick goes in three stages so that AWS is asked as little as possible:
//! claim the leases of the records that are due, observe their services a
//! cluster at a time ([`observe::observe_all`] shares calls per cluster),
//! then step each record from its observation. The tick waits for the
//! store (every record needs it) but never for AWS: each cluster's look and
//! steps run on their own, so a silent cluster, account or endpoint delays
//! only its own records, which later ticks leave alone until their step
//! ends (their leases are still renewed).
//!
//! A record is acted on only inside its lease as this replica counts it
//! ([`super::lease`]): every mutating call is sent through the record's
//! [`Fence`], and a lease whose answer came back too late is no lease.

use crate::hooks::call::Caller;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::OperatorConfig;
use super::health::Health;
use super::lease::{Fence, Hold, Leases};
use super::records::{Claimed, Records, ServiceKey};
use super::share::{self, Holder};
use super::strays;
use crate::aws::ClientPool;
use crate::aws::observe::{self, Want};
use crate::notify::deliver::Notifier;
use crate::request::decide::{needs_scaling, needs_tasks};
use crate::request::pacing;
use crate::request::spec::request_spec;
use crate::request::status::{Phase, request_status};
use crate::store::{Kind, ListedRecord, Store, StoreError, StoredRecord};

pub(super) const KIND: Kind = Kind::RecycleRequest;

/// Records under way at once (a look or a step in progress), per step
/// allowed at once. Claiming every due record of a big table in one tick
/// made the first look cover all of them before any step began — a
/// thousand services' reads (10 s of the share's read buckets at the
/// benchmark's scale) while UpdateService's bucket sat unused — and held
/// every one whole in memory. The benchmark's thousand requests finished
/// as fast with 6 per step as with 16 (records waiting for their next look
/// are not under way), started acting in 1 s rather than 2.7 s, and peaked
/// at 50–54 MiB rather than 59–62 (docs/performance.md).
const UNDER_WAY_PER_STEP: usize = 6;

/// However low the concurrency, a tick may claim this many, so that one
/// look still shares its calls over a cluster's services (DescribeTasks
/// takes 100 tasks a call, DescribeServices 10 services).
const UNDER_WAY_AT_LEAST: usize = 100;

/// Ticks a poll interval at most, of which one lists the active records;
/// the others plan from that listing (the loop's own steps are in its
/// schedule already; what others wrote shows at the next listing). Woken by
/// every record that came due, a replica that listed at every tick listed
/// as fast as the store answered: three replicas on one table were slower
/// than one, and on DynamoDB each listing reads every active item
/// (docs/performance.md). A record due between two ticks goes at the
/// earlier one, at most a tenth of a poll interval early.
const TICKS_PER_POLL: u32 = 10;

/// The last listing of the active records, and what became of them since.
struct Listing {
    /// When it was asked for. A listing that fails leaves the time of the
    /// last one that did not, so the next tick asks again.
    asked: Instant,
    records: Arc<Vec<ListedRecord>>,
    /// Records this replica finished since: still listed, gone from the store's index.
    finished: HashSet<String>,
}

pub(crate) struct Reconciler<S: Store> {
    pub(super) store: Arc<S>,
    pub(super) pool: Arc<ClientPool>,
    pub(super) config: OperatorConfig,
    pub(super) health: Arc<Health>,
    pub(super) records: Arc<Records>,
    pub(super) leases: Leases<S>,
    /// Steps under way at once, across ticks.
    steps: Arc<Semaphore>,
    /// The looks and steps running on their own, reaped by the loop.
    work: Mutex<JoinSet<()>>,
    /// Delivers the notices of request outboxes (see `crate::notify`).
    pub(super) notifier: Arc<Notifier>,
    /// Calls the hooks of requests (see `crate::hooks`).
    pub(super) hooks: Arc<Caller>,
    /// Records of an unknown kind reported so far (see [`strays`]).
    strays: strays::Reported,
    /// When this replica's heartbeat was last written, and who was alive then.
    heartbeat: Mutex<(Option<Instant>, Vec<String>)>,
    /// What the ticks between two listings plan from.
    listing: Mutex<Option<Listing>>,
}

impl<S: Store> Reconciler<S> {
    pub(crate) fn new(
        store: Arc<S>,
        pool: Arc<ClientPool>,
        config: OperatorConfig,
        health: Arc<Health>,
        notifier: Arc<Notifier>,
        hooks: Arc<Caller>,
    ) -> Arc<Self> {
        let leases = Leases::new(
            store.clone(),
            KIND,
            config.replica_id.clone(),
            config.lease_terms(),
        );
        Arc::new(Self {
            steps: Arc::new(Semaphore::new(config.concurrency)),
            store,
            pool,
            config,
            health,
            records: Arc::default(),
            leases,
            work: Mutex::new(JoinSet::new()),
            notifier,
            hooks,
            strays: Default::default(),
            heartbeat: Mutex::default(),
            listing: Mutex::default(),
        })
    }

    /// Runs until `shutdown` turns true; the steps in flight finish, then
    /// every lease held is released so another replica can go on at once.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(replica = %self.config.replica_id, "operator started");
        while !*shutdown.borrow() {
            let started = Instant::now();
            self.reap();
            self.health.aws(self.pool.unanswered());
            let poll = self.config.poll_interval;
            // Between two listings, a tick plans from the last one.
            let last = (self.listing.lock().as_ref())
                .filter(|l| l.asked.elapsed() < poll)
                .map(|l| l.records.clone());
            let result = match last {
                Some(records) => {
                    self.health.beat();
                    self.clone().plan(&records).await;
                    Ok(())
                }
                None => self.clone().tick().await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not list active requests; trying again");
            }
            // List every poll interval, and wake for the first record due
            // before that, but tick no more often than `TICKS_PER_POLL`
            // times a poll interval.
            let listed = self.listing.lock().as_ref().map_or(started, |l| l.asked);
            let poll = listed + poll;
            let next = self
                .records
                .next_due()
                .map_or(poll, |at| at.min(poll))
                .max(started + self.config.poll_interval / TICKS_PER_POLL)
                .max(Instant::now() + Duration::from_millis(2));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.settle().await;
        self.leases.give_back_all().await;
        // Leaving: the others count one replica fewer at their next heartbeat.
        let now = Utc::now();
        if let Err(e) = self
            .store
            .heartbeat(&self.config.replica_id, now, now)
            .await
        {
            tracing::warn!(error = %e, "could not end this replica's heartbeat; the others will count it for up to a lease");
        }
        tracing::info!(replica = %self.config.replica_id, "operator stopped");
    }

    /// Forgets the looks and steps that have ended; a panic in one is logged.
    fn reap(&self) {
        let mut work = self.work.lock();
        while let Some(done) = work.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "a reconcile task failed");
            }
        }
    }

    /// Waits until every look and step under way has ended (a tick only
    /// starts them).
    pub(crate) async fn settle(&self) {
        let mut work = std::mem::take(&mut *self.work.lock());
        while let Some(done) = work.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a reconcile task failed");
            }
        }
    }

    /// Lists the active records and makes one pass over them. Returns once
    /// the due records are claimed and their looks started; it does not
    /// wait for AWS.
    pub(crate) async fn tick(self: Arc<Self>) -> Result<(), StoreError> {
        self.health.beat();
        let records = self.list().await?;
        self.plan(&records).await;
        Ok(())
    }

    /// Lists the active records, lean, and forgets what this replica kept
    /// of the ones no longer listed.
    async fn list(&self) -> Result<Arc<Vec<ListedRecord>>, StoreError> {
        let asked = Instant::now();
        self.pool.metrics().store_listings.inc();
        // The last listing goes before the next comes, so that a replica
        // holds one listing of every active record at a time, not two.
        if let Some(l) = self.listing.lock().as_mut() {
            l.records = Arc::default();
        }
        let listed = self.store.list_active_lean(KIND).await;
        let records = match listed {
            Ok(r) => {
                self.health.listed(Ok(()));
                Arc::new(r)
            }
            Err(e) => {
                self.health.listed(Err(e.to_string()));
                return Err(e);
            }
        };
        strays::report(self.store.as_ref(), &self.strays).await;
        let phases: Vec<Phase> = records.iter().map(listed_phase).collect();
        self.count_phases(&phases);
        let names: HashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        self.records.retain(|n| names.contains(n));
        let busy = |n: &str| self.records.peek(n, |t| t.is_some_and(|t| t.busy));
        self.leases.retain(|n| names.contains(n) || busy(n));
        *self.listing.lock() = Some(Listing {
            asked,
            records: records.clone(),
            finished: HashSet::new(),
        });
        Ok(records)
    }

    /// This replica finished `name`: later passes over the same listing
    /// leave it out (the next queued on its service goes first now).
    pub(super) fn finished(&self, name: &str) {
        if let Some(l) = self.listing.lock().as_mut() {
            l.finished.insert(name.to_string());
        }
    }

    /// One pass over the listed records: claims the due ones and starts their looks.
    async fn plan(self: Arc<Self>, listed: &[ListedRecord]) {
        let finished = self
            .listing
            .lock()
            .as_ref()
            .map(|l| l.finished.clone())
            .unwrap_or_default();
        let records: Vec<&ListedRecord> = listed
            .iter()
            .filter(|r| !finished.contains(&r.name))
            .collect();
        // The service of each, for the order on each service (a spec is
        // parsed when its version changes, not at every pass).
        let services: Vec<Option<ServiceKey>> =
            records.iter().map(|r| self.records.service(r)).collect();
        let phases: Vec<Phase> = records.iter().map(|r| listed_phase(r)).collect();
        let heads = heads_per_service(&records, &services, &phases);
        // The steps are where the records at work are: those are shared
        // apart from the ones queued behind them. A spec that cannot be
        // read is at work: its step marks it failed.
        let at_work: Vec<bool> = records
            .iter()
            .zip(&services)
            .map(|(r, service)| match service {
                Some(service) => heads.get(service) == Some(&r.name),
                None => true,
            })
            .collect();
        let (replicas, holders) = self.share(&records).await;
        let plans = share::plans(replicas, &holders, &at_work);
        let busy = |n: &str| self.records.peek(n, |t| t.is_some_and(|t| t.busy));
        // Records due before the next tick can come go now, together,
        // so their looks are shared.
        let horizon = Instant::now() + self.config.poll_interval / TICKS_PER_POLL;
        let mut due = Vec::new();
        let mut renew = Vec::new();
        // Beyond its part, this replica gives back the newest records it
        // is not stepping now; the rest go at a later tick.
        let mut give_back = Vec::new();
        for (class, plan) in plans.iter().enumerate() {
            give_back.extend(
                records
                    .iter()
                    .zip(&at_work)
                    .rev()
                    .filter(|(_, w)| usize::from(**w) == class)
                    .map(|(r, _)| &r.name)
                    .filter(|n| self.leases.fence(n).is_some() && !busy(n))
                    .take(plan.give_back)
                    .cloned(),
            );
        }
        let mut may_take = plans.clone().map(|p| p.may_take);
        // Records are claimed oldest first up to the cap on records under
        // way; the rest stay due for a later tick.
        let cap = (self.config.concurrency * UNDER_WAY_PER_STEP).max(UNDER_WAY_AT_LEAST);
        let mut room = cap.saturating_sub(self.records.under_way());
        for ((record, service), at_work) in records.iter().zip(services).zip(at_work) {
            let class = usize::from(at_work);
            let held = self.leases.fence(&record.name).is_some();
            if give_back.contains(&record.name) {
                continue;
            }
            // A record another replica holds is left to it; a free one is
            // taken only up to this replica's part.
            if !held {
                if holder(record, &self.config.replica_id) == Holder::Other {
                    continue;
                }
                if may_take[class] == 0 {
                    continue;
                }
            }
            let blocked_by = service
                .and_then(|s| heads.get(&s))
                .filter(|head| **head != record.name)
                .cloned();
            let (busy, is_due) = self.records.peek(&record.name, |t| {
                // A listing that has not caught up with this replica's own
                // write (DynamoDB's index lags; a pass between listings
                // plans from the last one) is no change.
                let changed =
                    t.and_then(|t| t.seen.as_ref())
                        .is_some_and(|(version, waits_for)| {
                            record.version > *version || *waits_for != blocked_by
                        });
                let due_now = t.and_then(|t| t.due).is_none_or(|at| at <= horizon);
                (t.is_some_and(|t| t.busy), changed || due_now)
            });
            if !busy && is_due && room > 0 {
                if !held {
                    may_take[class] -= 1;
                }
                room -= 1;
                due.push(((*record).clone(), blocked_by));
            } else if held {
                renew.push(record.name.clone());
            }
        }
        self.health.beat();
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
        for name in give_back {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            store_work.spawn(async move {
                let _permit = permit;
                tracing::info!(request = %name, replica = %me.config.replica_id, "lease given back: another replica's part");
                me.leases.give_back(&name).await;
            });
        }
        let claimed = self.clone().claim_all(due, &limit).await;
        while store_work.join_next().await.is_some() {}
        self.health.beat();
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
        let mut work = self.work.lock();
        for (_, members) in clusters {
            let me = self.clone();
            work.spawn(async move { me.look_and_step(members).await });
        }
    }

    /// Looks at the services of one account and cluster at once, then steps
    /// each of its records from what was seen.
    async fn look_and_step(self: Arc<Self>, members: Vec<Claimed>) {
        let busy: Vec<_> = members
            .iter()
            .map(|c| self.records.busy(&c.record.name))
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
                let name = claimed.record.name.clone();
                let outcome = me.reconcile(claimed, obs).await;
                me.conclude(&name, outcome).await;
            });
        }
        while steps.join_next().await.is_some() {}
    }

    /// Beats this replica's heartbeat (three times a lease), counts the
    /// live replicas, splits the API share by them, and answers the count
    /// and who holds each of `records`. When the store does not answer,
    /// the last count stands.
    async fn share(&self, records: &[&ListedRecord]) -> (usize, Vec<Holder>) {
        let me = &self.config.replica_id;
        let beat_every = self.config.lease_duration / 3;
        let last = self.heartbeat.lock().0;
        if last.is_none_or(|at| at.elapsed() >= beat_every) {
            let now = Utc::now();
            let until =
                now + chrono::Duration::from_std(self.config.lease_duration).unwrap_or_default();
            match self.store.heartbeat(me, now, until).await {
                Ok(alive) => *self.heartbeat.lock() = (Some(Instant::now()), alive),
                Err(e) => tracing::warn!(error = %e, "could not write this replica's heartbeat"),
            }
        }
        let alive = self.heartbeat.lock().1.clone();
        let leases = records.iter().filter_map(|r| r.lease.as_ref());
        let replicas = share::live_replicas(&alive, leases, me, Utc::now());
        self.pool.set_replicas(replicas);
        let holders: Vec<Holder> = records
            .iter()
            .map(|r| {
                if self.leases.fence(&r.name).is_some() {
                    Holder::Me
                } else {
                    holder(r, me)
                }
            })
            .collect();
        (replicas, holders)
    }

    fn count_phases(&self, phases: &[Phase]) {
        let mut counts: HashMap<Phase, i64> = HashMap::new();
        for phase in phases {
            *counts.entry(*phase).or_default() += 1;
        }
        let counts: Vec<(Phase, i64)> = counts.into_iter().collect();
        self.pool.metrics().set_active(&counts);
    }

    /// Takes the leases of the due records, at most `concurrency` at once;
    /// answers those this replica may step now. A record that cannot be read
    /// is marked Failed here.
    async fn claim_all(
        self: Arc<Self>,
        due: Vec<(ListedRecord, Option<String>)>,
        limit: &Arc<Semaphore>,
    ) -> Vec<Claimed> {
        let mut work = JoinSet::new();
        for (record, blocked_by) in due {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            work.spawn(async move {
                let _permit = permit;
                me.claim(record, blocked_by).await
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

    async fn claim(&self, record: ListedRecord, blocked_by: Option<String>) -> Option<Claimed> {
        let previous = record.lease.as_ref().map(|l| l.holder.clone());
        let fence = self.hold(&record.name, Some(previous.as_deref())).await?;
        // The listing holds only the phase: the step reads the record whole,
        // as it is now (the listing may also lag a write by a moment).
        let (record, spec) = match self.store.get(KIND, &record.name).await {
            Ok(Some(whole)) => {
                let spec = request_spec(&whole);
                (whole, spec)
            }
            Ok(None) => {
                self.forget(&record.name);
                return None;
            }
            Err(e) => {
                tracing::warn!(request = %record.name, error = %e, "could not read the request to step it; trying again at the next look");
                return None;
            }
        };
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
    /// `claiming` names the holder the store showed when the record is
    /// being claimed (to log a takeover), and is `None` for a renewal.
    pub(super) async fn hold(&self, name: &str, claiming: Option<Option<&str>>) -> Option<Fence> {
        let me = &self.config.replica_id;
        let held_before = self.leases.fence(name).is_some();
        let hold = self.leases.hold(name).await;
        match &hold {
            Hold::Kept(_) => {}
            Hold::Granted { taken, .. } => {
                self.health.lease(Ok(()));
                if *taken && let Some(previous) = claiming {
                    match previous.filter(|p| p != me) {
                        Some(other) => {
                            self.pool.metrics().lease_takeovers.inc();
                            tracing::info!(request = %name, replica = %me, from = %other, "lease taken over");
                        }
                        // A queued request is taken again at each of its
                        // looks (it gives its lease back between): said once.
                        None if self
                            .records
                            .peek(name, |t| t.is_some_and(|t| t.seen.is_some())) =>
                        {
                            tracing::debug!(request = %name, replica = %me, "lease taken again");
                        }
                        None => tracing::info!(request = %name, replica = %me, "lease taken"),
                    }
                }
            }
            Hold::Refused => {
                self.health.lease(Ok(()));
                if held_before {
                    tracing::warn!(request = %name, "lease taken over by another replica");
                }
                self.records.requeue(name, self.config.poll_interval);
            }
            Hold::Late { waited } => {
                self.health.lease(Ok(()));
                tracing::warn!(
                    request = %name,
                    waited = %crate::duration::format(*waited),
                    "the store confirmed the lease too late to act on; giving it back, deciding again at the next look"
                );
                self.give_up(name).await;
            }
            Hold::Failed(e) => {
                self.health.lease(Err(e.to_string()));
                tracing::warn!(request = %name, error = %e, "could not take or renew the lease");
                self.records.requeue(name, self.config.poll_interval);
            }
        }
        hold.fence().cloned()
    }

    /// The store answers this replica too slowly to act inside a lease:
    /// the lease is given back so that a replica with a better way to the
    /// store goes on, and this one looks again after a poll interval.
    pub(super) async fn give_up(&self, name: &str) {
        self.records.requeue(name, self.config.poll_interval);
        self.leases.give_back(name).await;
    }

    /// Forgets a record this replica is done with (finished, or lost).
    pub(super) fn forget(&self, name: &str) {
        self.leases.lose(name);
        self.records.forget(name);
    }
}

/// Who holds `record`'s lease as listed: another replica while its lease
/// has not run out; otherwise nobody this replica must leave it to.
fn holder(record: &ListedRecord, me: &str) -> Holder {
    match &record.lease {
        Some(l) if l.holder != me && l.expires_at > Utc::now() => Holder::Other,
        _ => Holder::Free,
    }
}

/// A listed record's phase; Pending before the first status, as the status
/// reader says. Read in place: every tick reads every listed record's.
fn listed_phase(record: &ListedRecord) -> Phase {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error;
    record
        .phase
        .as_deref()
        .and_then(|p| Phase::deserialize(IntoDeserializer::<Error>::into_deserializer(p)).ok())
        .unwrap_or_default()
}

/// The first active request of each service, in creation order: it goes first.
fn heads_per_service(
    records: &[&ListedRecord],
    services: &[Option<ServiceKey>],
    phases: &[Phase],
) -> HashMap<ServiceKey, String> {
    let mut heads = HashMap::new();
    for ((r, service), phase) in records.iter().zip(services).zip(phases) {
        // notify: a finished request still delivering its notices goes before nobody.
        if phase.is_terminal() {
            continue;
        }
        if let Some(service) = service {
            heads
                .entry(service.clone())
                .or_insert_with(|| r.name.clone());
        }
    }
    heads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(phase: Option<&str>) -> ListedRecord {
        ListedRecord {
            name: "r".into(),
            spec: Ok("{}".into()),
            phase: phase.map(Into::into),
            version: 1,
            created_at: None,
            lease: None,
        }
    }

    #[test]
    fn a_listed_phase_reads_as_the_status_reader_reads_it() {
        assert_eq!(listed_phase(&listed(Some("Recycling"))), Phase::Recycling);
        assert_eq!(
            listed_phase(&listed(Some("WindowClosed"))),
            Phase::WindowClosed
        );
        assert_eq!(listed_phase(&listed(None)), Phase::Pending);
        assert_eq!(listed_phase(&listed(Some("Bogus"))), Phase::Pending);
    }
}
