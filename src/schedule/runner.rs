//! The schedule loop the operator runs beside the reconciler: for each
//! active schedule — decide without I/O whether anything is to be done; if
//! so take the schedule's lease, read its requests, decide, then create,
//! cancel and delete requests, and write the status conditionally on the
//! schedule's version. Time comes from a [`Clock`], so tests drive the loop
//! across slots and daylight-saving changes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use super::decide::{Input, NewRequest, RequestView, decide, due_slot};
use super::spec::{ScheduleSpec, parse_schedule_spec};
use super::{MAX_NAME_LEN, SchedulePhase, ScheduleStatus, request_name, schedule_status};
use crate::clock::Clock;
use crate::fence::LeaseTerms;
use crate::leases::Leases;
use crate::request::status::{Reason, RecycleStatus};
use crate::store::{Kind, Store, StoreError, StoredRecord};

const KIND: Kind = Kind::RecycleSchedule;

/// What the schedule loop needs of the operator's settings.
#[derive(Clone, Debug)]
pub struct ScheduleSettings {
    /// The replica, as its leases name it.
    pub replica_id: String,
    pub lease: LeaseTerms,
    /// How often the active schedules are looked at.
    pub poll_interval: Duration,
}

pub struct Scheduler<S: Store> {
    store: Arc<S>,
    poll_interval: Duration,
    clock: Arc<dyn Clock>,
    /// Schedules whose lease this replica holds (given back on shutdown).
    leases: Leases<S>,
}

impl<S: Store> Scheduler<S> {
    pub fn new(store: Arc<S>, settings: ScheduleSettings, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            leases: Leases::new(store.clone(), KIND, settings.replica_id, settings.lease),
            store,
            poll_interval: settings.poll_interval,
            clock,
        })
    }

    /// Runs until `shutdown` turns true, then releases every lease it holds.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "could not list schedules; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.leases.give_back_all().await;
    }

    /// One pass over the active schedules.
    pub async fn tick(&self) -> Result<(), StoreError> {
        for record in self.store.list_active(KIND).await? {
            self.visit(record).await;
        }
        Ok(())
    }

    async fn visit(&self, record: StoredRecord) {
        let now = self.clock.now();
        let name = record.name.clone();
        let (spec, status) = match (read_spec(&record), schedule_status(&record)) {
            (Ok(spec), Ok(status)) => (spec, status),
            (Err(message), _) | (Ok(_), Err(message)) => {
                let status = match &record.status {
                    Some(v) => serde_json::from_value(v.clone()).unwrap_or_default(),
                    None => ScheduleStatus::default(),
                };
                return self.mark_invalid(&record, status, message, now).await;
            }
        };
        let created_at = record.created_at.unwrap_or(now);
        // First a decision on what is recorded, without I/O: most looks end here.
        let recorded: Vec<RequestView> = Vec::new();
        let quiet = decide(&Input {
            name: &name,
            spec: &spec,
            status: &status,
            created_at,
            now,
            requests: &recorded,
        });
        let unsettled = status.requests.iter().any(|r| !r.settled());
        if !unsettled
            && quiet.create.is_none()
            && quiet.cancel.is_empty()
            && quiet.delete.is_empty()
            && quiet.status == status
        {
            return;
        }
        if !self.leases.may_act(&name, now).await {
            return;
        }
        let Some(views) = self.views(&name, &spec, &status, created_at, now).await else {
            return;
        };
        let d = decide(&Input {
            name: &name,
            spec: &spec,
            status: &status,
            created_at,
            now,
            requests: &views,
        });
        if let Some(new) = &d.create {
            // A consistent read: a replica working from an old view of the
            // schedule (a lagging index, a long pause) gives up here.
            match self.store.get(KIND, &name).await {
                Ok(Some(current)) if current.version == record.version => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "could not re-read schedule; trying again");
                    return;
                }
            }
            for old in &d.cancel {
                self.cancel(&name, old).await;
            }
            if !self.create(&name, new, now).await {
                return;
            }
        }
        for old in &d.delete {
            match self.store.delete(Kind::RecycleRequest, old).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(schedule = %name, request = %old, error = %e, "could not delete old request")
                }
            }
        }
        if d.status != status {
            log_new_events(&name, &status, &d.status);
            self.leases
                .write_status(&record.name, record.version, &d.status, now)
                .await;
        }
    }

    /// The requests the decision needs to see: those not settled, and the
    /// due slot's if it exists already; `None` when one cannot be read.
    async fn views(
        &self,
        name: &str,
        spec: &ScheduleSpec,
        status: &ScheduleStatus,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Vec<RequestView>> {
        let mut views = Vec::new();
        for r in status.requests.iter().filter(|r| !r.settled()) {
            match self.view(&r.name).await {
                Ok(v) => views.push(v),
                Err(e) => {
                    tracing::warn!(schedule = %name, request = %r.name, error = %e, "could not read request; trying again");
                    return None;
                }
            }
        }
        if let Some(due) = due_slot(spec, status, created_at, now) {
            let slot_name = request_name(name, due.slot);
            match self.view(&slot_name).await {
                Ok(v) if v.phase.is_some() => views.push(v),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "could not read the slot's request; trying again");
                    return None;
                }
            }
        }
        Some(views)
    }

    /// Creates the slot's request; one that exists already is the one
    /// decided (another replica, or a crash, got there first). False when
    /// the store could not be asked.
    async fn create(&self, name: &str, new: &NewRequest, now: DateTime<Utc>) -> bool {
        match self
            .store
            .create(Kind::RecycleRequest, &new.name, new.spec.clone(), now)
            .await
        {
            Ok(_) => {
                tracing::info!(schedule = %name, request = %new.name, slot = %new.slot, "request created for the slot");
                true
            }
            Err(StoreError::AlreadyExists { .. }) => {
                tracing::info!(schedule = %name, request = %new.name, "the slot's request exists already; taking it");
                true
            }
            Err(e) => {
                tracing::warn!(schedule = %name, request = %new.name, error = %e, "could not create request; trying again");
                false
            }
        }
    }

    async fn view(&self, request: &str) -> Result<RequestView, StoreError> {
        let record = match self.store.get(Kind::RecycleRequest, request).await {
            Ok(r) => r,
            // A request whose item cannot be read (its version, its lease)
            // admits no conditional write: no replica will ever step it. It
            // is counted as Failed so the schedule goes on, instead of
            // waiting for it at every tick.
            Err(StoreError::Corrupt(reason)) => {
                tracing::warn!(request, reason = %reason, "a schedule's request cannot be read; counted as Failed");
                return Ok(RequestView {
                    name: request.to_string(),
                    phase: Some(crate::request::status::Phase::Failed),
                    finished_at: None,
                    notifying: false,
                });
            }
            Err(e) => return Err(e),
        };
        let status: Option<RecycleStatus> = record.as_ref().map(|r| {
            r.status
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        });
        Ok(RequestView {
            name: request.to_string(),
            phase: status.as_ref().map(|s| s.phase),
            finished_at: status.as_ref().and_then(|s| s.finished_at),
            notifying: status.as_ref().is_some_and(|s| !s.notify.outbox.is_empty()),
        })
    }

    /// Asks a request to cancel (it restores capacity and ends Cancelled).
    async fn cancel(&self, schedule: &str, request: &str) {
        for _ in 0..3 {
            let record = match self.store.get(Kind::RecycleRequest, request).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(schedule, request, error = %e, "could not read request to cancel it");
                    return;
                }
            };
            let Ok(Value::Object(mut spec)) = record.spec.clone() else {
                return;
            };
            if spec.get("cancel") == Some(&Value::Bool(true)) {
                return;
            }
            spec.insert("cancel".into(), Value::Bool(true));
            match self
                .store
                .update_spec(
                    Kind::RecycleRequest,
                    request,
                    record.version,
                    Value::Object(spec),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(
                        schedule,
                        request,
                        "request cancelled (concurrencyPolicy Replace)"
                    );
                    return;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    tracing::warn!(schedule, request, error = %e, "could not cancel request");
                    return;
                }
            }
        }
    }

    /// A schedule that cannot be read is marked Failed with the reason,
    /// once per reason; it stays listed so that a fixed spec is picked up.
    async fn mark_invalid(
        &self,
        record: &StoredRecord,
        mut status: ScheduleStatus,
        reason: String,
        now: DateTime<Utc>,
    ) {
        let message = format!("invalid record: {reason}");
        if status.phase == SchedulePhase::Failed && status.message == message {
            return;
        }
        if !self.leases.may_act(&record.name, now).await {
            return;
        }
        tracing::error!(schedule = %record.name, reason = %reason, "invalid schedule marked Failed");
        status.phase = SchedulePhase::Failed;
        status.next_schedule_time = None;
        status.event(now, Reason::Invalid, message.clone());
        status.message = message;
        self.leases
            .write_status(&record.name, record.version, &status, now)
            .await;
    }
}

/// The schedule's spec, or a sentence saying what is wrong with it.
fn read_spec(record: &StoredRecord) -> Result<ScheduleSpec, String> {
    let value = record.spec.as_ref().map_err(|e| format!("spec: {e}"))?;
    if record.name.len() > MAX_NAME_LEN {
        return Err(format!(
            "metadata.name: is {} characters; a schedule's name is at most {MAX_NAME_LEN}, so that the requests it makes (name-yyyymmddhhmm) fit in 128",
            record.name.len()
        ));
    }
    parse_schedule_spec(value, "spec").map_err(|e| e.to_string())
}

fn log_new_events(name: &str, before: &ScheduleStatus, after: &ScheduleStatus) {
    for e in crate::request::status::events_added(&before.events, &after.events) {
        tracing::info!(schedule = %name, reason = %e.reason, "{}", e.message);
    }
}
