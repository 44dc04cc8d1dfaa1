//! A store in this process's memory, for the benchmark alone: the embedded
//! store reads and rewrites its whole file on every operation, so with a
//! thousand records it would measure the file, not the operator. It keeps
//! the store contract's clauses (versions, conditional writes, leases,
//! heartbeats, lean listings: `tests/store_contract.rs` runs the product's
//! own suite against it) and the embedded store's retention; what only a
//! hand edit or another client can make (unreadable entries, strays)
//! cannot arise here.
//! Specs and statuses are kept as JSON text, as DynamoDB keeps them on its
//! side: held as trees of values, which weigh several times their text, ten
//! thousand finished statuses were most of the 10,000-request run's peak,
//! and the scale scenario measures the operator's memory, not the store's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::product::{
    Kind, Lease, ListedRecord, STRAY, StatusWrite, Store, StoreError, StoreResult, StoredRecord,
    Stray, status_phase,
};

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// (kind, name) → the record and, once it is finished, when it may be forgotten.
    records: Mutex<BTreeMap<(Kind, String), Entry>>,
    /// Replica → until when its heartbeat says it is alive.
    replicas: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// The bytes of status text held: what a benchmark takes off this
    /// process's memory to tell the operator's part from the store's.
    status_bytes: AtomicUsize,
}

#[derive(Debug)]
struct Entry {
    /// What a lean listing answers: the spec as text, the status's phase.
    record: ListedRecord,
    kind: Kind,
    active: bool,
    /// The whole status, as JSON text.
    status: Option<Box<str>>,
    expires_at: Option<DateTime<Utc>>,
}

impl Entry {
    /// The record with its whole spec and status.
    fn whole(&self) -> StoredRecord {
        let r = &self.record;
        StoredRecord {
            kind: self.kind,
            name: r.name.clone(),
            spec: r.spec.as_deref().map(parse).map_err(Clone::clone),
            status: self.status.as_deref().map(parse),
            version: r.version,
            created_at: r.created_at,
            active: self.active,
            lease: r.lease.clone(),
        }
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    fn lease_held_by(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.record
            .lease
            .as_ref()
            .is_some_and(|l| l.holder == holder && l.expires_at > now)
    }
}

/// JSON text this store wrote itself.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON this store wrote")
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        kind: kind.as_str(),
        name: name.to_string(),
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes of status text this store holds now.
    pub fn status_bytes(&self) -> usize {
        self.status_bytes.load(Ordering::Relaxed)
    }

    /// Counts `entry`'s status text as no longer held.
    fn drop_status(&self, entry: &Entry) {
        let held = entry.status.as_ref().map_or(0, |s| s.len());
        self.status_bytes.fetch_sub(held, Ordering::Relaxed);
    }

    /// The records, locked. Every operation checks before it changes
    /// anything, so one that panicked left them whole.
    fn records(&self) -> MutexGuard<'_, BTreeMap<(Kind, String), Entry>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_entry<T>(
        &self,
        kind: Kind,
        name: &str,
        f: impl FnOnce(&mut Entry) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut records = self.records();
        let entry = records
            .get_mut(&(kind, name.to_string()))
            .ok_or_else(|| not_found(kind, name))?;
        f(entry)
    }
}

impl Store for MemoryStore {
    async fn create(
        &self,
        kind: Kind,
        name: &str,
        spec: Value,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredRecord> {
        let mut records = self.records();
        let key = (kind, name.to_string());
        if records.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                kind: kind.as_str(),
                name: name.to_string(),
            });
        }
        let entry = Entry {
            record: ListedRecord {
                name: name.to_string(),
                spec: Ok(spec.to_string().into()),
                phase: None,
                version: 1,
                created_at: Some(now),
                lease: None,
            },
            kind,
            active: true,
            status: None,
            expires_at: None,
        };
        let record = entry.whole();
        records.insert(key, entry);
        Ok(record)
    }

    async fn get(&self, kind: Kind, name: &str) -> StoreResult<Option<StoredRecord>> {
        let now = Utc::now();
        Ok(self
            .records()
            .get(&(kind, name.to_string()))
            .filter(|e| !e.expired(now))
            .map(Entry::whole))
    }

    async fn list_active(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        let mut out: Vec<StoredRecord> = self
            .records()
            .values()
            .filter(|e| e.kind == kind && e.active)
            .map(Entry::whole)
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(out)
    }

    async fn list_active_lean(&self, kind: Kind) -> StoreResult<Vec<ListedRecord>> {
        // Kept cut: the whole statuses are never copied at all.
        let mut out: Vec<ListedRecord> = self
            .records()
            .values()
            .filter(|e| e.kind == kind && e.active)
            .map(|e| e.record.clone())
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(out)
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        let now = Utc::now();
        let mut records = self.records();
        // Finished records past their retention are forgotten, as DynamoDB's TTL does.
        records.retain(|_, e| {
            let keep = !e.expired(now);
            if !keep {
                self.drop_status(e);
            }
            keep
        });
        Ok(records
            .values()
            .filter(|e| e.kind == kind)
            .map(Entry::whole)
            .collect())
    }

    async fn update_spec(
        &self,
        kind: Kind,
        name: &str,
        expected_version: u64,
        spec: Value,
    ) -> StoreResult<StoredRecord> {
        self.with_entry(kind, name, |e| {
            if e.record.version != expected_version {
                return Err(StoreError::Conflict {
                    kind: kind.as_str(),
                    name: name.to_string(),
                    expected: expected_version,
                });
            }
            e.record.spec = Ok(spec.to_string().into());
            e.record.version += 1;
            Ok(e.whole())
        })
    }

    async fn write_status(&self, kind: Kind, name: &str, write: StatusWrite) -> StoreResult<u64> {
        let text = write.status.to_string();
        self.with_entry(kind, name, |e| {
            // The same write sent again (its first answer was lost) finds
            // itself landed: answered as done, changing nothing.
            if e.record.version == write.expected_version + 1
                && e.status.as_deref() == Some(text.as_str())
                && e.record.lease.as_ref().map(|l| l.holder.as_str()) == Some(write.holder.as_str())
            {
                return Ok(e.record.version);
            }
            // A lost lease wins over a stale version, as in every store.
            if !e.lease_held_by(&write.holder, write.now) {
                return Err(StoreError::LeaseLost {
                    kind: kind.as_str(),
                    name: name.to_string(),
                    holder: write.holder,
                });
            }
            if e.record.version != write.expected_version {
                return Err(StoreError::Conflict {
                    kind: kind.as_str(),
                    name: name.to_string(),
                    expected: write.expected_version,
                });
            }
            e.record.phase = status_phase(&write.status);
            self.drop_status(e);
            self.status_bytes.fetch_add(text.len(), Ordering::Relaxed);
            e.status = Some(text.into());
            e.active = write.active;
            e.expires_at = write.expires_at;
            e.record.version += 1;
            Ok(e.record.version)
        })
    }

    async fn acquire_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.with_entry(kind, name, |e| {
            let free = e
                .record
                .lease
                .as_ref()
                .is_none_or(|l| l.holder == holder || l.expires_at <= now);
            if free {
                e.record.lease = Some(Lease {
                    holder: holder.to_string(),
                    expires_at: until,
                });
            }
            Ok(free)
        })
    }

    async fn release_lease(&self, kind: Kind, name: &str, holder: &str) -> StoreResult<()> {
        if let Some(e) = self.records().get_mut(&(kind, name.to_string()))
            && e.record.lease.as_ref().is_some_and(|l| l.holder == holder)
        {
            e.record.lease = None;
        }
        Ok(())
    }

    async fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        if let Some(e) = self.records().remove(&(kind, name.to_string())) {
            self.drop_status(&e);
        }
        Ok(())
    }

    /// None: records come in through [`Store::create`] alone, each of a known kind.
    async fn list_strays(&self) -> StoreResult<Vec<Stray>> {
        Ok(Vec::new())
    }

    async fn fail_stray(&self, stray: &Stray, _status: Value) -> StoreResult<u64> {
        Err(StoreError::NotFound {
            kind: STRAY,
            name: stray.key.clone(),
        })
    }

    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let mut replicas = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
        replicas.insert(replica.to_string(), until);
        replicas.retain(|_, alive_until| *alive_until > now);
        Ok(replicas.keys().cloned().collect())
    }
}
