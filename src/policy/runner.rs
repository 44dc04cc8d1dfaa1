//! The policy loop the operator runs beside the reconciler. Each tick, for
//! each active policy: decide without I/O whether anything is due (a pass
//! of `--policy-interval`, a changed spec, a request of its own still
//! running, a decision not yet carried out); if so take the policy's
//! lease, look at the fleet when a pass is due (ECS, through the account's
//! rate limiter), read its requests and every active request's service,
//! decide, and write the decision before creating what it decided.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::decide::{Input, created, decide};
use super::fleet;
use super::spec::PolicySpec;
use super::{
    FleetService, MAX_NAME_LEN, PolicyPhase, PolicyStatus, parse_policy_spec, policy_status,
};
use crate::aws::ClientPool;
use crate::clock::Clock;
use crate::fence::LeaseTerms;
use crate::leases::Leases;
use crate::request::spec::listed_service;
use crate::request::status::{Phase, Reason, RecycleStatus};
use crate::store::{Kind, Store, StoreError, StoredRecord};

const KIND: Kind = Kind::RecyclePolicy;

/// What the policy loop needs of the operator's settings.
#[derive(Clone, Debug)]
pub struct PolicySettings {
    /// The replica, as its leases name it.
    pub replica_id: String,
    pub lease: LeaseTerms,
    /// How often the active policies are looked at.
    pub poll_interval: Duration,
    /// How often each policy looks at its fleet (a changed policy looks at once).
    pub policy_interval: Duration,
}

pub struct PolicyLoop<S: Store> {
    store: Arc<S>,
    pool: Arc<ClientPool>,
    poll_interval: Duration,
    policy_interval: Duration,
    clock: Arc<dyn Clock>,
    leases: Leases<S>,
    /// Policies whose last look failed: (failures in a row, no look before).
    /// A fleet that cannot be looked at is tried again later and later, up
    /// to `--policy-interval`, not at every tick.
    held_back: parking_lot::Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl<S: Store> PolicyLoop<S> {
    pub fn new(
        store: Arc<S>,
        pool: Arc<ClientPool>,
        settings: PolicySettings,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            leases: Leases::new(store.clone(), KIND, settings.replica_id, settings.lease),
            store,
            pool,
            poll_interval: settings.poll_interval,
            policy_interval: settings.policy_interval,
            clock,
            held_back: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// Runs until `shutdown` turns true, then releases every lease it holds.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "could not list policies; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.leases.give_back_all().await;
    }

    /// One pass over the active policies.
    pub async fn tick(&self) -> Result<(), StoreError> {
        for record in self.store.list_active(KIND).await? {
            self.visit(record).await;
        }
        Ok(())
    }

    async fn visit(&self, record: StoredRecord) {
        let now = self.clock.now();
        let name = record.name.clone();
        let (spec, status) = match (read_spec(&record), policy_status(&record)) {
            (Ok(spec), Ok(status)) => (spec, status),
            (Err(message), _) | (Ok(_), Err(message)) => {
                let status = record
                    .status
                    .as_ref()
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                return self.mark_invalid(&record, status, message, now).await;
            }
        };
        let seen = fingerprint(&record);
        let Some(look_due) = self.worth_a_visit(&name, &spec, &seen, &status, now) else {
            return;
        };
        if !self.leases.may_act(&name, now).await {
            return;
        }
        let (mut version, mut status) = (record.version, status);
        // A decision written before a crash is carried out first.
        if !status.pending.is_empty() {
            let Some(v) = self.carry_out(&name, version, status.clone(), now).await else {
                return;
            };
            (version, status) = v;
        }
        let Some(requests) = self.phases_of_requests(&name, &status).await else {
            return;
        };
        let fleet = if look_due && !spec.suspend {
            match self.look(&spec).await {
                Ok(f) => {
                    self.held_back.lock().remove(&name);
                    self.look_counted("ok");
                    Some(f)
                }
                Err(e) => return self.look_failed(&name, version, status, e, now).await,
            }
        } else {
            None
        };
        // A look at a large fleet takes a while: the lease is renewed
        // before anything is written on what it found.
        if !self.leases.may_act(&name, self.clock.now()).await {
            return;
        }
        let input = Input {
            name: &name,
            spec: &spec,
            spec_seen: &seen,
            status: &status,
            now,
            fleet,
            requests: &requests,
            busy: &HashSet::new(),
        };
        self.decide_and_write(input, version).await;
    }

    /// Whether a policy is worth a visit now, without I/O, and if so
    /// whether its fleet is due a look: its spec changed, it failed, a
    /// pass is due, a request of its own is under way, or the last look
    /// as it stands would start something now (a window opened, a slot freed).
    fn worth_a_visit(
        &self,
        name: &str,
        spec: &PolicySpec,
        seen: &str,
        status: &PolicyStatus,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        let held_back = self
            .held_back
            .lock()
            .get(name)
            .is_some_and(|(_, until)| now < *until);
        let look_due = !held_back
            && (status.spec_seen != seen
                || status.phase == PolicyPhase::Failed
                || status.last_look.is_none_or(|t| {
                    now - t >= chrono::Duration::from_std(self.policy_interval).unwrap_or_default()
                }));
        let following = status.active().next().is_some() || !status.pending.is_empty();
        let nothing = HashMap::new();
        let no_one = HashSet::new();
        let wants = !decide(&Input {
            name,
            spec,
            spec_seen: seen,
            status,
            now,
            fleet: None,
            requests: &nothing,
            busy: &no_one,
        })
        .create()
        .is_empty();
        (look_due || following || wants).then_some(look_due)
    }

    /// The phase of each request the policy follows; `None` when one
    /// cannot be read (the visit is tried again at the next tick).
    async fn phases_of_requests(
        &self,
        name: &str,
        status: &PolicyStatus,
    ) -> Option<HashMap<String, Option<Phase>>> {
        let mut requests = HashMap::new();
        for r in status.active() {
            match self.phase_of(&r.name).await {
                Ok(phase) => {
                    requests.insert(r.name.clone(), phase);
                }
                Err(e) => {
                    tracing::warn!(policy = %name, request = %r.name, error = %e, "could not read request; trying again");
                    return None;
                }
            }
        }
        Some(requests)
    }

    /// The fleet the policy covers, through the account's rate limiter.
    async fn look(&self, spec: &PolicySpec) -> Result<Vec<FleetService>, crate::aws::AwsError> {
        let clients = self
            .pool
            .for_role(
                spec.template.role_arn.as_deref(),
                spec.template.external_id.as_deref(),
            )
            .await;
        fleet::look(&clients, &spec.services).await
    }

    /// Decides, writes the decision, then makes what it decided. Who else
    /// works on which service matters only when there is something to
    /// make: the listing of every active request is spared otherwise.
    async fn decide_and_write(&self, mut input: Input<'_>, version: u64) {
        let name = input.name;
        let mut d = decide(&input);
        let busy;
        if !d.create().is_empty() {
            busy = match busy_services(self.store.as_ref()).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(policy = %name, error = %e, "could not list active requests; trying again");
                    return;
                }
            };
            input.busy = &busy;
            d = decide(&input);
        }
        if d.status == *input.status {
            return;
        }
        log_new_events(name, input.status, &d.status);
        let Some(version) = self
            .leases
            .write_status(name, version, &d.status, input.now)
            .await
        else {
            return;
        };
        if !d.create().is_empty() {
            self.carry_out(name, version, d.status, input.now).await;
        }
    }

    /// Creates the status's pending requests (one that exists already is
    /// the one decided: a crash or another replica got there first), then
    /// writes them as made. Answers the new version and status.
    async fn carry_out(
        &self,
        name: &str,
        version: u64,
        status: PolicyStatus,
        now: DateTime<Utc>,
    ) -> Option<(u64, PolicyStatus)> {
        for made in &status.pending {
            let request_spec = made.spec.clone().unwrap_or_default();
            match self
                .store
                .create(Kind::RecycleRequest, &made.name, request_spec, now)
                .await
            {
                Ok(_) => {
                    self.pool.metrics().policy_requests.inc();
                    tracing::info!(policy = %name, request = %made.name, service = %format!("{}/{}", made.cluster, made.service), "request created")
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    tracing::info!(policy = %name, request = %made.name, "the request exists already; taking it")
                }
                Err(e) => {
                    tracing::warn!(policy = %name, request = %made.name, error = %e, "could not create request; trying again");
                    return None;
                }
            }
        }
        let status = created(status, now);
        let version = self
            .leases
            .write_status(name, version, &status, now)
            .await?;
        Some((version, status))
    }

    /// Holds the next look back (twice as long each time, up to the
    /// policy interval) and says why in the status, once.
    async fn look_failed(
        &self,
        name: &str,
        version: u64,
        mut status: PolicyStatus,
        error: crate::aws::AwsError,
        now: DateTime<Utc>,
    ) {
        let failures = {
            let mut held = self.held_back.lock();
            let entry = held.entry(name.to_string()).or_insert((0, now));
            entry.0 += 1;
            let wait = self
                .poll_interval
                .saturating_mul(1 << entry.0.min(16))
                .min(self.policy_interval);
            entry.1 = now + chrono::Duration::from_std(wait).unwrap_or_default();
            (entry.0, wait)
        };
        self.look_counted("failed");
        tracing::warn!(policy = %name, error = %error, failures = failures.0, "could not look at the fleet; trying again later");
        let message = format!(
            "could not look at the fleet: {error}; trying again in {}",
            crate::duration::format(failures.1)
        );
        if status.message != message {
            status.message = message;
            self.leases.write_status(name, version, &status, now).await;
        }
    }

    fn look_counted(&self, outcome: &'static str) {
        self.pool
            .metrics()
            .policy_looks
            .get_or_create(&crate::metrics::OutcomeLabel { outcome })
            .inc();
    }

    async fn phase_of(&self, request: &str) -> Result<Option<Phase>, StoreError> {
        let record = match self.store.get(Kind::RecycleRequest, request).await {
            Ok(r) => r,
            // No replica can step a request whose item cannot be read: it
            // is counted as Failed so it holds no slot of the budget forever.
            Err(StoreError::Corrupt(reason)) => {
                tracing::warn!(request, reason = %reason, "a policy's request cannot be read; counted as Failed");
                return Ok(Some(Phase::Failed));
            }
            Err(e) => return Err(e),
        };
        Ok(record.map(|r| {
            r.status
                .and_then(|v| serde_json::from_value::<RecycleStatus>(v).ok())
                .map(|s| s.phase)
                .unwrap_or_default()
        }))
    }

    async fn mark_invalid(
        &self,
        record: &StoredRecord,
        mut status: PolicyStatus,
        reason: String,
        now: DateTime<Utc>,
    ) {
        let message = format!("invalid record: {reason}");
        if status.phase == PolicyPhase::Failed && status.message == message {
            return;
        }
        if !self.leases.may_act(&record.name, now).await {
            return;
        }
        tracing::error!(policy = %record.name, reason = %reason, "invalid policy marked Failed");
        status.phase = PolicyPhase::Failed;
        status.event(now, Reason::Invalid, message.clone());
        status.message = message;
        self.leases
            .write_status(&record.name, record.version, &status, now)
            .await;
    }
}

/// The policy's spec, or a sentence saying what is wrong with it.
fn read_spec(record: &StoredRecord) -> Result<PolicySpec, String> {
    let value = record.spec.as_ref().map_err(|e| format!("spec: {e}"))?;
    if record.name.len() > MAX_NAME_LEN {
        return Err(format!(
            "metadata.name: is {} characters; a policy's name is at most {MAX_NAME_LEN}, so that the requests it makes (name-service-yyyymmddhhmm) fit in 128",
            record.name.len()
        ));
    }
    parse_policy_spec(value, "spec").map_err(|e| e.to_string())
}

/// What identifies the spec as written (a changed spec looks at the fleet at once).
fn fingerprint(record: &StoredRecord) -> String {
    let text = record
        .spec
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!("{:016x}", super::stable_hash(&text))
}

fn log_new_events(name: &str, before: &PolicyStatus, after: &PolicyStatus) {
    for e in crate::request::status::events_added(&before.events, &after.events) {
        tracing::info!(policy = %name, reason = %e.reason, "{}", e.message);
    }
}

/// (cluster, service) of every active request, whoever made it: a policy
/// makes no request for a service that has one.
pub(crate) async fn busy_services<S: Store>(
    store: &S,
) -> Result<HashSet<(String, String)>, StoreError> {
    Ok(store
        .list_active_lean(Kind::RecycleRequest)
        .await?
        .iter()
        .filter_map(|r| listed_service(&r.spec))
        .collect())
}
