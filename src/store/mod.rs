//! Where records live: a trait with two implementations that pass one shared
//! contract test suite (`tests/store/contract.rs`) — DynamoDB for production
//! and an embedded file-backed store for the sandbox, local use and fast
//! tests. Conditional writes and leases behave the same in both.
//!
//! A record is kept raw: its spec exactly as a client wrote it (validation is
//! the operator's job, so a malformed record can be marked failed rather than
//! lost), its status as the operator wrote it, a version for optimistic
//! concurrency, an `active` flag that keeps it in the sparse index of work to
//! do, and a lease.
//!
//! What only the operator writes is read strictly, but one bad item never
//! stops the others: a status that cannot be read comes back as the string
//! the store holds (no status reader accepts it, so the operator marks the
//! record failed with the reason); an item whose version or lease cannot be
//! read admits no safe conditional write, so it is left out of listings and
//! logged with backoff ([`unreadable`]). An active item of a kind the
//! operator does not read is listed apart ([`Store::list_strays`]) so it can
//! be reported instead of sitting in the index forever.

pub mod any;
pub mod dynamo;
pub mod embedded;
pub mod unreadable;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The kinds of record the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    RecycleRequest,
    RecycleSchedule,
    RecyclePolicy,
}

impl Kind {
    /// Every kind the operator reads; a record of any other is a stray.
    pub const ALL: [Kind; 3] = [
        Self::RecycleRequest,
        Self::RecycleSchedule,
        Self::RecyclePolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecycleRequest => "RecycleRequest",
            Self::RecycleSchedule => "RecycleSchedule",
            Self::RecyclePolicy => "RecyclePolicy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One record as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    pub kind: Kind,
    pub name: String,
    /// The spec as written; `Err` says why it could not even be read as JSON.
    pub spec: Result<Value, String>,
    /// Written by the operator only. One the store holds but cannot read as
    /// JSON is the JSON string of what it holds, which no status reader
    /// accepts, so the record is failed with the reason rather than hidden.
    pub status: Option<Value>,
    /// Starts at 1 on create; every successful write adds one. A record put
    /// by a client that wrote no version reads as 0.
    pub version: u64,
    pub created_at: Option<DateTime<Utc>>,
    /// In the index of records with work left.
    pub active: bool,
    pub lease: Option<Lease>,
}

/// An active item whose kind is none of [`Kind::ALL`] — a client's typo
/// (`RecycleRequests`) or a kind this version does not know. It is in no
/// listing of a kind, so it is listed apart to be reported, never worked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stray {
    /// What identifies the item: DynamoDB's `pk`, the embedded store's key.
    pub key: String,
    /// The kind it claims.
    pub kind: String,
    /// As for records: 0 when the client wrote none.
    pub version: u64,
    pub created_at: Option<DateTime<Utc>>,
}

/// How a stray is named in errors: its key says the rest.
pub const STRAY: &str = "record";

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

/// An active record as the loop lists it to schedule work: its spec, and of
/// its status only the phase. Ten thousand of these are held at once, every
/// listing, so the spec is kept as the JSON text it reads as (a tree of
/// values weighs several times its text) and the loop parses it only when
/// the version changed. The loop reads a record whole ([`Store::get`]) when
/// it steps it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedRecord {
    pub name: String,
    /// The spec as JSON text; `Err` says why it could not even be read as JSON.
    pub spec: Result<Box<str>, String>,
    /// The status's phase as written; `None` before the first status, or
    /// when the status names none (the step, which reads it whole, says why).
    pub phase: Option<Box<str>>,
    pub version: u64,
    pub created_at: Option<DateTime<Utc>>,
    pub lease: Option<Lease>,
}

impl ListedRecord {
    /// The listing of a record read whole.
    pub fn of(record: StoredRecord) -> Self {
        Self {
            phase: record.status.as_ref().and_then(status_phase),
            spec: record.spec.map(|spec| spec.to_string().into_boxed_str()),
            name: record.name,
            version: record.version,
            created_at: record.created_at,
            lease: record.lease,
        }
    }
}

/// A status's phase, if it names one.
pub fn status_phase(status: &Value) -> Option<Box<str>> {
    status.get("phase").and_then(Value::as_str).map(Into::into)
}

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
    /// conditional writes, never on this list alone. A record whose version
    /// or lease cannot be read is left out and logged with backoff; one whose
    /// status cannot be read is listed (see [`StoredRecord::status`]).
    fn list_active(
        &self,
        kind: Kind,
    ) -> impl Future<Output = StoreResult<Vec<StoredRecord>>> + Send;

    /// [`Store::list_active`] as the loop schedules from it
    /// ([`ListedRecord`]): name, version, lease, spec and phase, and no
    /// whole statuses, in memory or (where the store can help it) on the wire.
    fn list_active_lean(
        &self,
        kind: Kind,
    ) -> impl Future<Output = StoreResult<Vec<ListedRecord>>> + Send {
        async move {
            Ok(self
                .list_active(kind)
                .await?
                .into_iter()
                .map(ListedRecord::of)
                .collect())
        }
    }

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

    /// Active items of no known kind, oldest first (creation time, then
    /// key). Costs what [`Store::list_active`] costs. One whose version
    /// cannot be read is left out and logged with backoff, as there.
    fn list_strays(&self) -> impl Future<Output = StoreResult<Vec<Stray>>> + Send;

    /// Marks a stray failed: writes `status` (the operator's shape: phase
    /// Failed, a message), adds one to the version and takes the item out
    /// of the active index — only while its version is still the one listed
    /// and it is still active (`Conflict` otherwise; `NotFound` if it is
    /// gone), so an item changed meanwhile is never overwritten. Its spec and
    /// every other attribute stay as they are. No lease: no replica works on
    /// a stray. Answers the new version.
    fn fail_stray(
        &self,
        stray: &Stray,
        status: Value,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Says `replica` is alive until `until` (an `until` at or before `now`
    /// says it is leaving) and answers every replica alive at `now`, by
    /// name: this one among them unless it is leaving. Replicas split the
    /// account's API share and the active records by this count, so it is
    /// one item read and written in one round trip, not a listing; a
    /// replica whose heartbeat ran out is forgotten.
    fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
}
