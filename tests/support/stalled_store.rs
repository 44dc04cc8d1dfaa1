//! A store seen through a stalled network, for an operator run in the test's
//! process: from the first status write that matches a trigger, that write
//! lands at once but its answer, and every call made until the stall ends,
//! wait for the stall's end. Nothing is altered, only late.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ecs_recycler::store::{Kind, StatusWrite, Store, StoreResult, StoredRecord, Stray};
use serde_json::Value;
use tokio::time::Instant;

type Trigger = Box<dyn Fn(&Value) -> bool + Send + Sync>;

#[derive(Default)]
struct Stall {
    trigger: Option<(Trigger, Duration)>,
    until: Option<Instant>,
    triggered: Option<Instant>,
}

pub struct StalledStore<S> {
    inner: Arc<S>,
    stall: Mutex<Stall>,
}

impl<S: Store> StalledStore<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self {
            inner,
            stall: Mutex::new(Stall::default()),
        }
    }

    /// Stalls for `length` from the first status write whose status matches.
    pub fn stall_after(
        &self,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
        length: Duration,
    ) {
        self.stall.lock().trigger = Some((Box::new(matches), length));
    }

    pub fn triggered(&self) -> Option<Instant> {
        self.stall.lock().triggered
    }

    /// Waits out a stall under way.
    async fn network(&self) {
        let until = self.stall.lock().until;
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

impl<S: Store> Store for StalledStore<S> {
    async fn create(
        &self,
        kind: Kind,
        name: &str,
        spec: Value,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredRecord> {
        self.network().await;
        self.inner.create(kind, name, spec, now).await
    }

    async fn get(&self, kind: Kind, name: &str) -> StoreResult<Option<StoredRecord>> {
        self.network().await;
        self.inner.get(kind, name).await
    }

    async fn list_active(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        self.network().await;
        self.inner.list_active(kind).await
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        self.network().await;
        self.inner.list_all(kind).await
    }

    async fn update_spec(
        &self,
        kind: Kind,
        name: &str,
        expected_version: u64,
        spec: Value,
    ) -> StoreResult<StoredRecord> {
        self.network().await;
        self.inner
            .update_spec(kind, name, expected_version, spec)
            .await
    }

    async fn write_status(&self, kind: Kind, name: &str, write: StatusWrite) -> StoreResult<u64> {
        self.network().await;
        let stalls = {
            let mut s = self.stall.lock();
            match s.trigger.take() {
                Some((matches, length)) if matches(&write.status) => {
                    s.until = Some(Instant::now() + length);
                    s.triggered = Some(Instant::now());
                    true
                }
                other => {
                    s.trigger = other;
                    false
                }
            }
        };
        let result = self.inner.write_status(kind, name, write).await;
        if stalls {
            self.network().await;
        }
        result
    }

    async fn acquire_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.network().await;
        // The request left before the stall ended: its times are those it was sent with.
        self.inner
            .acquire_lease(kind, name, holder, now, until)
            .await
    }

    async fn release_lease(&self, kind: Kind, name: &str, holder: &str) -> StoreResult<()> {
        self.network().await;
        self.inner.release_lease(kind, name, holder).await
    }

    async fn list_strays(&self) -> StoreResult<Vec<Stray>> {
        self.network().await;
        self.inner.list_strays().await
    }

    async fn fail_stray(&self, stray: &Stray, status: Value) -> StoreResult<u64> {
        self.network().await;
        self.inner.fail_stray(stray, status).await
    }

    async fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        self.network().await;
        self.inner.delete(kind, name).await
    }

    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        self.network().await;
        self.inner.heartbeat(replica, now, until).await
    }
}
