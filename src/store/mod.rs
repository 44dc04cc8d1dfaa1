//! Where records live: a trait with two implementations that pass one shared
//! contract test suite (`tests/store_contract.rs`) — DynamoDB for production
//! and an embedded file-backed store for the sandbox, local use and fast
//! tests. Conditional writes and leases behave the same in both.
//!
//! A record is kept raw: its spec exactly as a client wrote it (validation is
//! the operator's job, so a malformed record can be marked failed rather than
//! lost), its status as the operator wrote it, a version for optimistic
//! concurrency, an `active` flag that keeps it in the sparse index of work to
//! do, and a lease.

pub mod any;
pub mod dynamo;

use std::future::Future;

pub mod embedded;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The kinds of record the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    RecycleRequest,
    RecycleSchedule,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecycleRequest => "RecycleRequest",
            Self::RecycleSchedule => "RecycleSchedule",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RecycleRequest" => Some(Self::RecycleRequest),
            "RecycleSchedule" => Some(Self::RecycleSchedule),
            _ => None,
        }
    }
}

/// One record as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    pub kind: Kind,
    pub name: String,
    /// The spec as written; `Err` says why it could not even be read as JSON.
    pub spec: Result<Value, String>,
    /// Written by the operator only.
    pub status: Option<Value>,
    /// Starts at 1 on create; every successful write adds one. A record put
    /// by a client that wrote no version reads as 0.
    pub version: u64,
    pub created_at: Option<DateTime<Utc>>,
    /// In the index of records with work left.
    pub active: bool,
    pub lease: Option<Lease>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

/// What a status write asks for, besides the status itself.
#[derive(Clone, Debug)]
pub struct StatusWrite {
    pub expected_version: u64,
    pub status: Value,
    /// False once the record is finished: it leaves the active index.
    pub active: bool,
    /// The write only lands while this replica holds the lease.
    pub holder: String,
    pub now: DateTime<Utc>,
    /// For finished records: when the store may forget them (TTL).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("{kind} {name} does not exist")]
    NotFound { kind: &'static str, name: String },
    /// The record changed since it was read: read it again and decide again.
    #[error("{kind} {name} changed since it was read (expected version {expected})")]
    Conflict {
        kind: &'static str,
        name: String,
        expected: u64,
    },
    /// Another replica holds the lease, or ours expired.
    #[error("the lease on {kind} {name} is not held by {holder}")]
    LeaseLost {
        kind: &'static str,
        name: String,
        holder: String,
    },
    #[error("the store could not be reached or refused the request: {0}")]
    Unavailable(String),
    #[error("the store holds data it cannot read: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The operations every store offers, with the same semantics.
pub trait Store: Send + Sync + 'static {
    /// Creates a record with version 1, active, no status. Refuses an existing name.
    fn create(
        &self,
        kind: Kind,
        name: &str,
        spec: Value,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<StoredRecord>> + Send;

    fn get(
        &self,
        kind: Kind,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<StoredRecord>>> + Send;

    /// Records with work left, oldest first (creation time, then name). Costs
    /// O(active records), not O(all records ever). May lag a write by a
    /// moment (DynamoDB's index is eventually consistent): decisions rest on
    /// conditional writes, never on this list alone. A record whose
    /// operator-written fields cannot be read is left out and logged.
    fn list_active(
        &self,
        kind: Kind,
    ) -> impl Future<Output = StoreResult<Vec<StoredRecord>>> + Send;

    /// Every record of the kind, by name: for people, not for the loop.
    fn list_all(&self, kind: Kind) -> impl Future<Output = StoreResult<Vec<StoredRecord>>> + Send;

    /// Replaces the spec if the version is still `expected_version`; the
    /// status, lease and active flag are left as they are.
    fn update_spec(
        &self,
        kind: Kind,
        name: &str,
        expected_version: u64,
        spec: Value,
    ) -> impl Future<Output = StoreResult<StoredRecord>> + Send;

    /// Writes the status if the lease is held by `holder` and unexpired
    /// (`LeaseLost` otherwise, even when the version is stale too) and the
    /// version is still `expected_version` (`Conflict`); answers the new version.
    fn write_status(
        &self,
        kind: Kind,
        name: &str,
        write: StatusWrite,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Takes or renews the lease if it is free, expired (expiry ≤ now), or
    /// already ours. Lease times are kept to the millisecond.
    /// Answers false when another replica holds it. Does not change the version.
    fn acquire_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Gives the lease up if it is ours; nothing otherwise.
    fn release_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn delete(&self, kind: Kind, name: &str) -> impl Future<Output = StoreResult<()>> + Send;
}
