//! One tick of the loop: list the active records (once a poll interval;
//! the ticks between plan from the last listing), choose which are due
//! and which leases to keep or give back, claim the due ones, and start
//! their looks a cluster at a time. A tick waits for the store, never for
//! AWS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::super::balance::{self, Holder};
use super::super::records::{Claimed, ServiceKey};
use super::{
    KIND, Listing, Reconciler, TICKS_PER_POLL, UNDER_WAY_AT_LEAST, UNDER_WAY_PER_STEP, strays,
};
use crate::aws::observe::{self, Want};
use crate::request::status::Phase;
use crate::store::{ListedRecord, Store, StoreError};

/// Where each listed record stands on its service.
struct Queues {
    /// The service each names, `None` when its spec cannot be read.
    services: Vec<Option<ServiceKey>>,
    /// The first active request of each service: it goes first.
    heads: HashMap<ServiceKey, String>,
    /// Whether each is at work (the head of its service, or unreadable:
    /// its step marks it failed) rather than queued behind another.
    at_work: Vec<bool>,
}

/// What one tick does about the listed records.
#[derive(Default)]
struct Chosen {
    /// Due now, with the request each waits for, if any.
    due: Vec<(ListedRecord, Option<String>)>,
    /// Held and not due: their leases renewed.
    renew: Vec<String>,
    /// Held beyond this replica's part: given back.
    give_back: Vec<String>,
}

impl<S: Store> Reconciler<S> {
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
        if let Some(feed) = &self.feed {
            feed.listed(&records);
        }
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
    pub(super) async fn plan(self: Arc<Self>, listed: &[ListedRecord]) {
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
        let queues = self.queues(&records);
        let (replicas, holders) = self.replicas_and_holders(&records).await;
        let parts = balance::plans(replicas, &holders, &queues.at_work);
        let chosen = self.choose(&records, queues, &parts);
        self.health.beat();
        // The store's work (renewals, claims, finished records' outboxes)
        // is done here; AWS's is not waited for.
        let limit = Arc::new(Semaphore::new(self.config.concurrency));
        let mut kept = self
            .clone()
            .keep_leases(chosen.renew, chosen.give_back, &limit)
            .await;
        let claimed = self.clone().claim_all(chosen.due, &limit).await;
        while kept.join_next().await.is_some() {}
        self.health.beat();
        self.start(claimed, &limit).await;
    }

    /// The service of each record and the order on each service (a spec
    /// is parsed when its version changes, not at every pass).
    fn queues(&self, records: &[&ListedRecord]) -> Queues {
        let services: Vec<Option<ServiceKey>> =
            records.iter().map(|r| self.records.service(r)).collect();
        let phases: Vec<Phase> = records.iter().map(|r| listed_phase(r)).collect();
        let heads = heads_per_service(records, &services, &phases);
        // The steps are where the records at work are: those are shared
        // apart from the ones queued behind them.
        let at_work = records
            .iter()
            .zip(&services)
            .map(|(r, service)| match service {
                Some(service) => heads.get(service) == Some(&r.name),
                None => true,
            })
            .collect();
        Queues {
            services,
            heads,
            at_work,
        }
    }

    /// Which records go now, which leases are renewed, which given back.
    fn choose(
        &self,
        records: &[&ListedRecord],
        queues: Queues,
        parts: &[balance::Plan; 2],
    ) -> Chosen {
        let busy = |n: &str| self.records.peek(n, |t| t.is_some_and(|t| t.busy));
        let mut chosen = Chosen::default();
        // Beyond its part, this replica gives back the newest records it
        // is not stepping now; the rest go at a later tick.
        for (class, part) in parts.iter().enumerate() {
            chosen.give_back.extend(
                records
                    .iter()
                    .zip(&queues.at_work)
                    .rev()
                    .filter(|(_, w)| usize::from(**w) == class)
                    .map(|(r, _)| &r.name)
                    .filter(|n| self.leases.fence(n).is_some() && !busy(n))
                    .take(part.give_back)
                    .cloned(),
            );
        }
        let mut may_take = parts.clone().map(|p| p.may_take);
        // Records due before the next tick can come go now, together, so
        // their looks are shared; they are claimed oldest first up to the
        // cap on records under way, the rest stay due for a later tick.
        let horizon = Instant::now() + self.config.poll_interval / TICKS_PER_POLL;
        let cap = (self.config.concurrency * UNDER_WAY_PER_STEP).max(UNDER_WAY_AT_LEAST);
        let mut room = cap.saturating_sub(self.records.under_way());
        let Queues {
            services,
            heads,
            at_work,
        } = queues;
        for ((record, service), at_work) in records.iter().zip(services).zip(at_work) {
            let class = usize::from(at_work);
            let held = self.leases.fence(&record.name).is_some();
            if chosen.give_back.contains(&record.name) {
                continue;
            }
            // A record another replica holds is left to it; a free one is
            // taken only up to this replica's part.
            if !held
                && (holder(record, &self.config.replica_id) == Holder::Other
                    || may_take[class] == 0)
            {
                continue;
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
                chosen.due.push(((*record).clone(), blocked_by));
            } else if held {
                chosen.renew.push(record.name.clone());
            }
        }
        chosen
    }

    /// Renews the leases of `renew` and gives back those of `give_back`,
    /// at most `limit` store calls at once; answers the work to wait for.
    async fn keep_leases(
        self: Arc<Self>,
        renew: Vec<String>,
        give_back: Vec<String>,
        limit: &Arc<Semaphore>,
    ) -> JoinSet<()> {
        let mut work = JoinSet::new();
        for name in renew {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            work.spawn(async move {
                let _permit = permit;
                if let Err(trouble) = me.hold(&name, None).await {
                    let outcome = trouble.between_steps();
                    me.conclude(&name, outcome).await;
                }
            });
        }
        for name in give_back {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            work.spawn(async move {
                let _permit = permit;
                tracing::info!(request = %name, replica = %me.config.replica_id, "lease given back: another replica's part");
                me.leases.give_back(&name).await;
            });
        }
        work
    }

    /// Drains the outboxes of the finished records claimed, and starts the
    /// looks of the others, a cluster at a time.
    async fn start(self: Arc<Self>, claimed: Vec<Claimed>, limit: &Arc<Semaphore>) {
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
                let name = c.record.name.clone();
                let outcome = me.drain(c).await;
                me.conclude(&name, outcome).await;
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
        let now = Utc::now();
        let wants: Vec<Want> = members
            .iter()
            .map(|c| Want::of(&c.clients, &c.spec, &c.status, now, true))
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
    async fn replicas_and_holders(&self, records: &[&ListedRecord]) -> (usize, Vec<Holder>) {
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
        let replicas = balance::live_replicas(&alive, leases, me, Utc::now());
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

    /// The gauge of active requests by phase, every phase under way named.
    fn count_phases(&self, phases: &[Phase]) {
        let counts: Vec<(&'static str, i64)> = Phase::ACTIVE
            .iter()
            .map(|active| {
                let n = phases.iter().filter(|p| *p == active).count();
                (active.as_str(), n as i64)
            })
            .collect();
        self.pool.metrics().set_active(&counts);
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
