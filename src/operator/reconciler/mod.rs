//! The reconcile loop: for each active request whose lease this replica
//! holds — observe the service, decide the next step, persist the decision
//! conditionally on the record's version and the lease, act, requeue.
//! Shaped after kube-runtime's controller: the loop never stops for one
//! record's trouble, and every step is decided again from what is observed.
//!
//! A tick goes in three stages so that AWS is asked as little as possible
//! ([`tick`]): claim the leases of the records that are due ([`claim`]),
//! observe their services a cluster at a time ([`observe::observe_all`]
//! shares calls per cluster), then step each record from its observation
//! ([`step`]). The tick waits for the store (every record needs it) but
//! never for AWS: each cluster's look and steps run on their own, so a
//! silent cluster, account or endpoint delays only its own records, which
//! later ticks leave alone until their step ends (their leases are still
//! renewed). What becomes of a record after its step — requeued, its lease
//! given back, forgotten — is decided in one place, [`conclude`]; the
//! step's writes and calls are [`effects`].
//!
//! A record is acted on only inside its lease as this replica counts it
//! ([`crate::fence`]): every mutating call is sent through the record's
//! [`Fence`], and a lease whose answer came back too late is no lease.

mod claim;
mod conclude;
mod effects;
mod events;
mod step;
mod tick;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::OperatorConfig;
use super::feed::Feed;
use super::health::Health;
use super::records::Records;
use super::strays;
use crate::aws::ClientPool;
use crate::hooks::call::Caller;
use crate::leases::Leases;
use crate::notify::deliver::Notifier;
use crate::store::{Kind, ListedRecord, Store};

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
    store: Arc<S>,
    pool: Arc<ClientPool>,
    config: OperatorConfig,
    health: Arc<Health>,
    records: Arc<Records>,
    leases: Leases<S>,
    /// Steps under way at once, across ticks.
    steps: Arc<Semaphore>,
    /// The looks and steps running on their own, reaped by the loop.
    work: Mutex<JoinSet<()>>,
    /// Delivers the notices of request outboxes (see `crate::notify`).
    notifier: Arc<Notifier>,
    /// Calls the hooks of requests (see `crate::hooks`).
    hooks: Arc<Caller>,
    /// Records of an unknown kind reported so far (see [`strays`]).
    strays: strays::Reported,
    /// When this replica's heartbeat was last written, and who was alive then.
    heartbeat: Mutex<(Option<Instant>, Vec<String>)>,
    /// What the ticks between two listings plan from.
    listing: Mutex<Option<Listing>>,
    /// ECS's events, when the operator reads them (see [`super::feed`]).
    feed: Option<Arc<Feed>>,
    /// Rings when an event makes a record due sooner than the loop sleeps.
    woken: Notify,
}

impl<S: Store> Reconciler<S> {
    pub(crate) fn new(
        store: Arc<S>,
        pool: Arc<ClientPool>,
        config: OperatorConfig,
        health: Arc<Health>,
        notifier: Arc<Notifier>,
        hooks: Arc<Caller>,
        feed: Option<Arc<Feed>>,
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
            feed,
            woken: Notify::new(),
        })
    }

    /// Runs until `shutdown` turns true; the steps in flight finish, then
    /// every lease held is released so another replica can go on at once.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(replica = %self.config.replica_id, "operator started");
        let listener = self.clone().listen(shutdown.clone());
        while !*shutdown.borrow() {
            let started = Instant::now();
            self.reap();
            self.health.aws(self.pool.unanswered());
            self.check_feed();
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
            // times a poll interval. An event that makes a record due
            // sooner wakes the sleep to aim again.
            loop {
                let listed = self.listing.lock().as_ref().map_or(started, |l| l.asked);
                let poll = listed + poll;
                let next = self
                    .records
                    .next_due()
                    .map_or(poll, |at| at.min(poll))
                    .max(started + self.config.poll_interval / TICKS_PER_POLL)
                    .max(Instant::now() + Duration::from_millis(2));
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => break,
                    _ = shutdown.changed() => break,
                    _ = self.woken.notified() => {}
                }
            }
        }
        if let Some(listener) = listener {
            let _ = listener.await;
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
}
