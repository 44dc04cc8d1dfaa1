//! The embedded store: every record in one JSON file, for the sandbox, local
//! use and fast tests. Each operation takes an exclusive lock on a file
//! beside it, reads, changes and atomically replaces the data (write, fsync,
//! rename), so the operator and the CLI can use one store from separate
//! processes at once, and a crash never leaves half a file.
//!
//! [`EmbeddedStore::in_memory`] keeps the same data in memory instead, for
//! one process (the benchmark, where reading and rewriting a file of a
//! thousand records on every operation would measure the file, not the
//! operator).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Kind, Lease, StatusWrite, Store, StoreError, StoreResult, StoredRecord};

#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    backing: Backing,
}

#[derive(Clone, Debug)]
enum Backing {
    File(PathBuf),
    Memory(std::sync::Arc<std::sync::Mutex<Data>>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    /// `Kind/name` → record.
    records: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    kind: String,
    name: String,
    spec: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Value>,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
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

impl EmbeddedStore {
    /// A store kept in the file at `path` (created on first write).
    pub fn open(path: impl Into<PathBuf>) -> StoreResult<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the directory", e))?;
        }
        Ok(Self {
            backing: Backing::File(path),
        })
    }

    /// A store that lives in this process's memory only, gone when dropped.
    pub fn in_memory() -> Self {
        Self {
            backing: Backing::Memory(Default::default()),
        }
    }

    /// The file, for a store kept in one.
    pub fn path(&self) -> Option<&Path> {
        match &self.backing {
            Backing::File(p) => Some(p),
            Backing::Memory(_) => None,
        }
    }

    /// Runs `f` on the data under the lock, off the async threads; writes
    /// the data back only when `f` changed it and succeeded.
    async fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Data) -> StoreResult<(T, bool)> + Send + 'static,
    ) -> StoreResult<T> {
        let path = match &self.backing {
            Backing::File(path) => path.clone(),
            Backing::Memory(data) => {
                // Every operation checks before it changes anything, so a
                // refused one leaves the data as it was, as with the file.
                let mut data = data.lock().unwrap_or_else(|e| e.into_inner());
                return f(&mut data).map(|(out, _)| out);
            }
        };
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
            data.records.insert(k, entry);
            Ok((record, true))
        })
        .await
    }

    async fn get(&self, kind: Kind, name: &str) -> StoreResult<Option<StoredRecord>> {
        let k = key(kind, name);
        self.with_data(move |data| {
            let now = Utc::now();
            Ok((
                data.records
                    .get(&k)
                    .filter(|e| e.expires_at.is_none_or(|t| t > now))
                    .map(Entry::to_record)
                    .transpose()?,
                false,
            ))
        })
        .await
    }

    async fn list_active(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        let mut out = self
            .with_data(move |data| {
                let list = data
                    .records
                    .values()
                    .filter(|e| e.active && e.kind == kind.as_str())
                    .map(Entry::to_record)
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok((list, false))
            })
            .await?;
        out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(out)
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        self.with_data(move |data| {
            let now = Utc::now();
            // Finished records past their retention are forgotten, as DynamoDB's TTL does.
            let before = data.records.len();
            data.records
                .retain(|_, e| e.expires_at.is_none_or(|t| t > now));
            let changed = data.records.len() != before;
            let list = data
                .records
                .values()
                .filter(|e| e.kind == kind.as_str())
                .map(Entry::to_record)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((list, changed))
        })
        .await
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
            let entry = data
                .records
                .get_mut(&key(kind, &name))
                .ok_or_else(|| not_found(kind, &name))?;
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
            let entry = data
                .records
                .get_mut(&key(kind, &name))
                .ok_or_else(|| not_found(kind, &name))?;
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
            let entry = data
                .records
                .get_mut(&key(kind, &name))
                .ok_or_else(|| not_found(kind, &name))?;
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
            Some(e) if e.lease_holder.as_deref() == Some(holder.as_str()) => {
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
}
