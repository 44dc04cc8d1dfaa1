//! The leases one replica holds on records of one kind: the reconcile loop,
//! the schedule loop and the policy loop each take, renew and give back
//! their leases through a [`Leases`], and act under the [`Fence`] each
//! lease gives (see [`crate::fence`] for why a lease is counted by the
//! replica's own clock from when its write was sent).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::fence::{Fence, LeaseTerms};
use crate::store::{Kind, StatusWrite, Store, StoreError};

/// What asking for a lease found.
#[derive(Debug)]
pub(crate) enum Hold {
    /// Ours already, with more than half of it left: no write was needed.
    Kept(Fence),
    /// Taken or renewed by this write. `taken` is true when this replica
    /// did not hold it before.
    Granted { fence: Fence, taken: bool },
    /// Another replica holds it.
    Refused,
    /// The store granted it, but its answer came back after the lease's
    /// usable part had run out: nothing may be done under it.
    Late { waited: Duration },
    /// The store could not be asked.
    Failed(StoreError),
}

impl Hold {
    /// The fence to act under, if this replica may act now.
    pub(crate) fn fence(&self) -> Option<&Fence> {
        match self {
            Self::Kept(f) | Self::Granted { fence: f, .. } => Some(f),
            _ => None,
        }
    }
}

/// The leases one replica holds on records of one kind.
pub(crate) struct Leases<S: Store> {
    store: Arc<S>,
    kind: Kind,
    holder: String,
    terms: LeaseTerms,
    held: Mutex<HashMap<String, Fence>>,
}

impl<S: Store> Leases<S> {
    pub(crate) fn new(store: Arc<S>, kind: Kind, holder: String, terms: LeaseTerms) -> Self {
        Self {
            store,
            kind,
            holder,
            terms,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Fence>> {
        self.held.lock()
    }

    /// The fence of a lease this replica holds on `name`.
    pub(crate) fn fence(&self, name: &str) -> Option<Fence> {
        self.lock().get(name).cloned()
    }

    /// Keeps the lease on `name` if more than half of it is left, else
    /// takes or renews it.
    pub(crate) async fn hold(&self, name: &str) -> Hold {
        if let Some(fence) = self.fence(name)
            && fence
                .remaining()
                .is_some_and(|left| left > self.terms.duration / 2)
        {
            return Hold::Kept(fence);
        }
        self.take(name, Utc::now()).await
    }

    /// Takes or renews the lease on `name` with a write, `now` being the
    /// wall-clock time the expiry is counted from.
    pub(crate) async fn take(&self, name: &str, now: DateTime<Utc>) -> Hold {
        // The lease is counted from here, before the write is sent.
        let sent = Instant::now();
        let until = now + chrono::Duration::from_std(self.terms.duration).unwrap_or_default();
        match self
            .store
            .acquire_lease(self.kind, name, &self.holder, now, until)
            .await
        {
            Ok(true) => {
                let valid_until = self.terms.valid_until(sent);
                if Instant::now() >= valid_until {
                    self.lose(name);
                    return Hold::Late {
                        waited: sent.elapsed(),
                    };
                }
                let mut held = self.lock();
                let taken = !held.contains_key(name);
                let fence = held.entry(name.to_string()).or_default().clone();
                fence.extend(valid_until);
                Hold::Granted { fence, taken }
            }
            Ok(false) => {
                self.lose(name);
                Hold::Refused
            }
            Err(e) => Hold::Failed(e),
        }
    }

    /// The lease on `name` is no longer this replica's: nothing more is
    /// sent under it.
    pub(crate) fn lose(&self, name: &str) {
        if let Some(fence) = self.lock().remove(name) {
            fence.revoke();
        }
    }

    /// Gives the lease on `name` back, so another replica can go on at once.
    pub(crate) async fn give_back(&self, name: &str) {
        self.lose(name);
        if let Err(e) = self
            .store
            .release_lease(self.kind, name, &self.holder)
            .await
        {
            tracing::warn!(kind = self.kind.as_str(), record = %name, error = %e, "could not release lease");
        }
    }

    /// Forgets every lease on a record not in `keep`.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, fence| {
            let kept = keep(name);
            if !kept {
                fence.revoke();
            }
            kept
        });
    }

    /// Takes or renews the lease on `name`: whether this replica may act
    /// on the record now. For the schedule and policy loops, whose writes
    /// are all conditional on the lease and which send nothing to AWS, so
    /// they need no fence of their own.
    pub(crate) async fn may_act(&self, name: &str, now: DateTime<Utc>) -> bool {
        match self.take(name, now).await {
            Hold::Failed(e) => {
                tracing::warn!(kind = self.kind.as_str(), record = %name, error = %e, "could not take lease");
                false
            }
            hold => hold.fence().is_some(),
        }
    }

    /// Writes the status of an active record this replica holds the lease
    /// on, if `version` and the lease still hold; answers the new version.
    /// A record another replica moved on, or a person edited, is decided
    /// again at the next pass.
    pub(crate) async fn write_status(
        &self,
        name: &str,
        version: u64,
        status: &impl serde::Serialize,
        now: DateTime<Utc>,
    ) -> Option<u64> {
        let value = match serde_json::to_value(status) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(kind = self.kind.as_str(), record = %name, error = %e, "cannot encode status");
                return None;
            }
        };
        let write = StatusWrite {
            expected_version: version,
            status: value,
            active: true,
            holder: self.holder.clone(),
            now,
            expires_at: None,
        };
        match self.store.write_status(self.kind, name, write).await {
            Ok(v) => Some(v),
            Err(StoreError::Conflict { .. }) => None,
            Err(StoreError::LeaseLost { .. }) => {
                self.lose(name);
                None
            }
            Err(e) => {
                tracing::warn!(kind = self.kind.as_str(), record = %name, error = %e, "could not write status; trying again");
                None
            }
        }
    }

    /// Gives back every lease held (at shutdown).
    pub(crate) async fn give_back_all(&self) {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        for name in names {
            self.give_back(&name).await;
        }
    }
}
