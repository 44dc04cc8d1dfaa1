//! The embedded store: every record in one JSON file, for the sandbox, local
//! use and fast tests. Each operation takes an exclusive lock on a file
//! beside it, reads, changes and atomically replaces the data (write, fsync,
//! rename), so the operator and the CLI can use one store from separate
//! processes at once, and a crash never leaves half a file.
//!
//! The file may be edited by hand, so an entry that cannot be read as a
//! record (a version that is not a number, say) is kept exactly as it is,
//! left out of listings and logged with backoff ([`Unreadable`]), and every
//! other entry carries on; an entry of an unknown kind is listed by
//! [`Store::list_strays`].

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::unreadable::Unreadable;
use super::{Kind, Lease, STRAY, StatusWrite, Store, StoreError, StoreResult, StoredRecord, Stray};

#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    path: PathBuf,
    /// Entries left out of listings, logged with backoff.
    unreadable: Arc<Unreadable>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    /// `Kind/name` → record.
    records: BTreeMap<String, Slot>,
    /// Replica → until when its heartbeat says it is alive. Kept as plain
    /// JSON: a hand edit that spoils it costs the heartbeats, never the file.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    replicas: Value,
}

/// One entry of the file: a record, or what a hand edit left that cannot
/// be read as one, written back exactly as it was found.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Slot {
    Readable(Entry),
    Unreadable(Value),
}

impl Slot {
    fn entry(&self) -> Option<&Entry> {
        match self {
            Self::Readable(e) => Some(e),
            Self::Unreadable(_) => None,
        }
    }

    /// The entry, to change it; an unreadable one is never written.
    fn entry_mut(&mut self, key: &str) -> StoreResult<&mut Entry> {
        match self {
            Self::Readable(e) => Ok(e),
            Self::Unreadable(v) => Err(StoreError::Corrupt(format!(
                "{key} cannot be read: {}",
                unreadable_reason(v)
            ))),
        }
    }
}

/// Why an entry does not read as a record, in serde's words.
fn unreadable_reason(value: &Value) -> String {
    serde_json::from_value::<Entry>(value.clone())
        .err()
        .map_or_else(|| "it is not a record".into(), |e| e.to_string())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    kind: String,
    name: String,
    /// A hand-made entry without a spec is a record the operator fails
    /// ("must be a mapping"), as a client's item without one is in DynamoDB.
    #[serde(default)]
    spec: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Value>,
    /// 0 when a hand-made entry has none, as for a client's item in DynamoDB.
    #[serde(default)]
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
    /// Not active unless it says so, as DynamoDB's sparse index.
    #[serde(default)]
    active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_expires: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl Entry {
    fn to_record(&self) -> StoreResult<StoredRecord> {
        let kind = Kind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown kind {:?}", self.kind)))?;
        Ok(StoredRecord {
            kind,
            name: self.name.clone(),
            spec: Ok(self.spec.clone()),
            status: self.status.clone(),
            version: self.version,
            created_at: self.created_at,
            active: self.active,
            lease: match (&self.lease_holder, self.lease_expires) {
                (Some(holder), Some(expires_at)) => Some(Lease {
                    holder: holder.clone(),
                    expires_at,
                }),
                _ => None,
            },
        })
    }

    fn lease_held_by(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.lease_holder.as_deref() == Some(holder) && self.lease_expires.is_some_and(|e| e > now)
    }
}

fn key(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

/// The kind a key claims: what comes before the first `/`.
fn kind_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(kind, _)| kind)
}

/// Records listed, and the entries left out: key and why.
type Listed<T> = (Vec<T>, Vec<(String, String)>);

impl EmbeddedStore {
    /// A store kept in the file at `path` (created on first write).
    pub fn open(path: impl Into<PathBuf>) -> StoreResult<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the directory", e))?;
        }
        Ok(Self {
            path,
            unreadable: Arc::default(),
        })
    }

    /// The file the store is kept in: always there now that every embedded
    /// store is a file; an `Option` still, so its callers are unchanged.
    pub fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    /// Logs the entries a listing left out, with backoff, and forgets those
    /// it covers (`covers`) that it did not leave out this time.
    fn left_out(&self, left_out: Vec<(String, String)>, covers: impl Fn(&str) -> bool) {
        let place = self.path.display().to_string();
        let mut keys = HashSet::new();
        for (key, reason) in left_out {
            self.unreadable.left_out(&place, &key, &reason);
            keys.insert(key);
        }
        self.unreadable.settle(covers, &keys);
    }

    /// Runs `f` on the data under the lock, off the async threads; writes
    /// the data back only when `f` changed it and succeeded.
    async fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Data) -> StoreResult<(T, bool)> + Send + 'static,
    ) -> StoreResult<T> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let lock_path = path.with_extension("lock");
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| io_error(&lock_path, "open the lock file", e))?;
            lock.lock()
                .map_err(|e| io_error(&lock_path, "lock the store", e))?;
            let mut data = read(&path)?;
            let (out, changed) = f(&mut data)?;
            if changed {
                write(&path, &data)?;
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the store task failed: {e}")))?
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("could not {what} at {}: {e}", path.display()))
}

fn read(path: &Path) -> StoreResult<Data> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("{} is not a store file: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Data::default()),
        Err(e) => Err(io_error(path, "read the store", e)),
    }
}

fn write(path: &Path, data: &Data) -> StoreResult<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(data)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode the store: {e}")))?;
    let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, "create", e))?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| io_error(&tmp, "write", e))?;
    fs::rename(&tmp, path).map_err(|e| io_error(path, "replace the store", e))
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        kind: kind.as_str(),
        name: name.to_string(),
    }
}

impl Store for EmbeddedStore {
    async fn create(
        &self,
        kind: Kind,
        name: &str,
        spec: Value,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredRecord> {
        let name = name.to_string();
        self.with_data(move |data| {
            let k = key(kind, &name);
            if data.records.contains_key(&k) {
                return Err(StoreError::AlreadyExists {
                    kind: kind.as_str(),
                    name,
                });
            }
            let entry = Entry {
                kind: kind.as_str().into(),
                name,
                spec,
                status: None,
                version: 1,
                created_at: Some(now),
                active: true,
                lease_holder: None,
                lease_expires: None,
                expires_at: None,
            };
            let record = entry.to_record()?;
            data.records.insert(k, Slot::Readable(entry));
            Ok((record, true))
        })
        .await
    }

    async fn get(&self, kind: Kind, name: &str) -> StoreResult<Option<StoredRecord>> {
        let k = key(kind, name);
        self.with_data(move |data| {
            let now = Utc::now();
            let record = match data.records.get_mut(&k) {
                None => None,
                Some(slot) => Some(slot.entry_mut(&k)?)
                    .filter(|e| e.expires_at.is_none_or(|t| t > now))
                    .map(|e| e.to_record())
                    .transpose()?,
            };
            Ok((record, false))
        })
        .await
    }

    async fn list_active(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        let (mut out, left_out) = self
            .with_data(move |data| {
                let listed: Listed<StoredRecord> = listing(data, kind, |e| e.active)?;
                Ok((listed, false))
            })
            .await?;
        self.left_out(left_out, |k| kind_of(k) == kind.as_str());
        out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(out)
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        let (list, left_out) = self
            .with_data(move |data| {
                let now = Utc::now();
                // Finished records past their retention are forgotten, as DynamoDB's TTL does.
                let before = data.records.len();
                data.records.retain(|_, slot| {
                    slot.entry()
                        .is_none_or(|e| e.expires_at.is_none_or(|t| t > now))
                });
                let changed = data.records.len() != before;
                Ok((listing(data, kind, |_| true)?, changed))
            })
            .await?;
        self.left_out(left_out, |k| kind_of(k) == kind.as_str());
        Ok(list)
    }

    async fn update_spec(
        &self,
        kind: Kind,
        name: &str,
        expected_version: u64,
        spec: Value,
    ) -> StoreResult<StoredRecord> {
        let name = name.to_string();
        self.with_data(move |data| {
            let k = key(kind, &name);
            let entry = data
                .records
                .get_mut(&k)
                .ok_or_else(|| not_found(kind, &name))?
                .entry_mut(&k)?;
            if entry.version != expected_version {
                return Err(StoreError::Conflict {
                    kind: kind.as_str(),
                    name,
                    expected: expected_version,
                });
            }
            entry.spec = spec;
            entry.version += 1;
            Ok((entry.to_record()?, true))
        })
        .await
    }

    async fn write_status(&self, kind: Kind, name: &str, write: StatusWrite) -> StoreResult<u64> {
        let name = name.to_string();
        self.with_data(move |data| {
            let k = key(kind, &name);
            let entry = data
                .records
                .get_mut(&k)
                .ok_or_else(|| not_found(kind, &name))?
                .entry_mut(&k)?;
            // The same write sent again (its first answer was lost) finds
            // itself landed: answered as done, changing nothing.
            if entry.version == write.expected_version + 1
                && entry.status.as_ref() == Some(&write.status)
                && entry.lease_holder.as_deref() == Some(write.holder.as_str())
            {
                return Ok((entry.version, false));
            }
            // A lost lease wins over a stale version: either way this
            // replica must stop, but only a conflict invites a retry.
            if !entry.lease_held_by(&write.holder, write.now) {
                return Err(StoreError::LeaseLost {
                    kind: kind.as_str(),
                    name,
                    holder: write.holder,
                });
            }
            if entry.version != write.expected_version {
                return Err(StoreError::Conflict {
                    kind: kind.as_str(),
                    name,
                    expected: write.expected_version,
                });
            }
            entry.status = Some(write.status);
            entry.active = write.active;
            entry.expires_at = write.expires_at;
            entry.version += 1;
            Ok((entry.version, true))
        })
        .await
    }

    async fn acquire_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with_data(move |data| {
            let k = key(kind, &name);
            let entry = data
                .records
                .get_mut(&k)
                .ok_or_else(|| not_found(kind, &name))?
                .entry_mut(&k)?;
            let free = entry.lease_holder.is_none()
                || entry.lease_holder.as_deref() == Some(holder.as_str())
                || entry.lease_expires.is_none_or(|e| e <= now);
            if !free {
                return Ok((false, false));
            }
            entry.lease_holder = Some(holder);
            entry.lease_expires = Some(until);
            Ok((true, true))
        })
        .await
    }

    async fn release_lease(&self, kind: Kind, name: &str, holder: &str) -> StoreResult<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with_data(move |data| match data.records.get_mut(&key(kind, &name)) {
            Some(Slot::Readable(e)) if e.lease_holder.as_deref() == Some(holder.as_str()) => {
                e.lease_holder = None;
                e.lease_expires = None;
                Ok(((), true))
            }
            _ => Ok(((), false)),
        })
        .await
    }

    async fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        let k = key(kind, name);
        self.with_data(move |data| {
            let removed = data.records.remove(&k).is_some();
            Ok(((), removed))
        })
        .await
    }

    async fn list_strays(&self) -> StoreResult<Vec<Stray>> {
        let (mut strays, left_out) = self
            .with_data(move |data| {
                let mut listed: Listed<Stray> = Default::default();
                for (key, slot) in &data.records {
                    match slot {
                        Slot::Readable(e) if e.active && Kind::parse(&e.kind).is_none() => {
                            listed.0.push(Stray {
                                key: key.clone(),
                                kind: e.kind.clone(),
                                version: e.version,
                                created_at: e.created_at,
                            });
                        }
                        Slot::Readable(_) => {}
                        Slot::Unreadable(v) if Kind::parse(kind_of(key)).is_none() => {
                            listed.1.push((key.clone(), unreadable_reason(v)));
                        }
                        Slot::Unreadable(_) => {}
                    }
                }
                Ok((listed, false))
            })
            .await?;
        self.left_out(left_out, |k| Kind::parse(kind_of(k)).is_none());
        strays.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
        Ok(strays)
    }

    async fn fail_stray(&self, stray: &Stray, status: Value) -> StoreResult<u64> {
        let (k, expected) = (stray.key.clone(), stray.version);
        self.with_data(move |data| {
            let entry = data
                .records
                .get_mut(&k)
                .ok_or_else(|| StoreError::NotFound {
                    kind: STRAY,
                    name: k.clone(),
                })?
                .entry_mut(&k)?;
            if entry.version != expected || !entry.active {
                return Err(StoreError::Conflict {
                    kind: STRAY,
                    name: k,
                    expected,
                });
            }
            entry.status = Some(status);
            entry.active = false;
            entry.version += 1;
            Ok((entry.version, true))
        })
        .await
    }

    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let replica = replica.to_string();
        self.with_data(move |data| {
            // Entries that are not a time in the future are forgotten.
            let mut alive: BTreeMap<String, DateTime<Utc>> = data
                .replicas
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, at)| {
                    let at = serde_json::from_value::<DateTime<Utc>>(at.clone()).ok()?;
                    Some((name.clone(), at))
                })
                .collect();
            alive.insert(replica, until);
            alive.retain(|_, alive_until| *alive_until > now);
            let names = alive.keys().cloned().collect();
            data.replicas = serde_json::to_value(alive)
                .map_err(|e| StoreError::Corrupt(format!("heartbeats: {e}")))?;
            Ok((names, true))
        })
        .await
    }
}

/// The records of `kind` that `keep` keeps, and the entries under the
/// kind's keys that cannot be read.
fn listing(
    data: &Data,
    kind: Kind,
    keep: impl Fn(&Entry) -> bool,
) -> StoreResult<Listed<StoredRecord>> {
    let mut listed: Listed<StoredRecord> = Default::default();
    for (key, slot) in &data.records {
        match slot {
            Slot::Readable(e) if e.kind == kind.as_str() && keep(e) => {
                listed.0.push(e.to_record()?);
            }
            Slot::Readable(_) => {}
            Slot::Unreadable(v) if kind_of(key) == kind.as_str() => {
                listed.1.push((key.clone(), unreadable_reason(v)));
            }
            Slot::Unreadable(_) => {}
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hand_edit_that_spoils_the_heartbeats_costs_only_them() {
        let dir = std::env::temp_dir().join(format!(
            "ecs-recycler-heartbeats-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.json");
        fs::write(
            &path,
            r#"{"records": {}, "replicas": {"old": "not a time", "r9": 7}}"#,
        )
        .unwrap();
        let store = EmbeddedStore::open(&path).unwrap();
        let now = Utc::now();
        let alive = store
            .heartbeat("r1", now, now + chrono::Duration::seconds(15))
            .await
            .unwrap();
        assert_eq!(alive, ["r1"]);
        fs::write(&path, r#"{"records": {}, "replicas": "garbage"}"#).unwrap();
        let alive = store
            .heartbeat("r2", now, now + chrono::Duration::seconds(15))
            .await
            .unwrap();
        assert_eq!(alive, ["r2"]);
        assert!(
            store
                .list_active(Kind::RecycleRequest)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
