//! Either store behind one type, so every verb and the operator take the
//! store the flags name (`--table` or `--store`) without being written twice.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::dynamo::DynamoStore;
use super::embedded::EmbeddedStore;
use super::{Kind, ListedRecord, StatusWrite, Store, StoreResult, StoredRecord, Stray};

pub enum AnyStore {
    Embedded(EmbeddedStore),
    Dynamo(DynamoStore),
}

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Embedded($s) => $call.await,
            AnyStore::Dynamo($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn create(
        &self,
        kind: Kind,
        name: &str,
        spec: Value,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredRecord> {
        each!(self, s => s.create(kind, name, spec, now))
    }

    async fn get(&self, kind: Kind, name: &str) -> StoreResult<Option<StoredRecord>> {
        each!(self, s => s.get(kind, name))
    }

    async fn list_active(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        each!(self, s => s.list_active(kind))
    }

    async fn list_active_lean(&self, kind: Kind) -> StoreResult<Vec<ListedRecord>> {
        each!(self, s => s.list_active_lean(kind))
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        each!(self, s => s.list_all(kind))
    }

    async fn update_spec(
        &self,
        kind: Kind,
        name: &str,
        expected_version: u64,
        spec: Value,
    ) -> StoreResult<StoredRecord> {
        each!(self, s => s.update_spec(kind, name, expected_version, spec))
    }

    async fn write_status(&self, kind: Kind, name: &str, write: StatusWrite) -> StoreResult<u64> {
        each!(self, s => s.write_status(kind, name, write))
    }

    async fn acquire_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        each!(self, s => s.acquire_lease(kind, name, holder, now, until))
    }

    async fn release_lease(&self, kind: Kind, name: &str, holder: &str) -> StoreResult<()> {
        each!(self, s => s.release_lease(kind, name, holder))
    }

    async fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        each!(self, s => s.delete(kind, name))
    }

    async fn list_strays(&self) -> StoreResult<Vec<Stray>> {
        each!(self, s => s.list_strays())
    }

    async fn fail_stray(&self, stray: &Stray, status: Value) -> StoreResult<u64> {
        each!(self, s => s.fail_stray(stray, status))
    }

    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        each!(self, s => s.heartbeat(replica, now, until))
    }
}
