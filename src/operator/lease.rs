//! A replica's right to act on a record, by its own clock.
//!
//! The store's conditional write proves a lease at the instant the store
//! applied it, not when its answer comes back: an answer delayed by a
//! stalled network may arrive after another replica took the record over.
//! So a replica counts its lease on its own monotonic clock from when it
//! *sent* the write that took or renewed it, less a safety margin, and sends
//! a mutating call (UpdateService, StopTask, RegisterScalableTarget, a
//! notification) only while that count has not run out. The count is a
//! [`Fence`], shared by everything that acts on the record.
//!
//! [`Leases`] keeps the leases one replica holds on records of one kind: the
//! reconcile loop and the schedule loop both take, renew and give back their
//! leases through it.
//!
//! What this rests on (docs/failure-model.md says it for users): the
//! replicas' wall clocks differ by less than the margin (the store's lease
//! expiry is a wall-clock time another replica compares with its own), and a
//! request sent inside the lease reaches AWS before the margin is used up.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::store::{Kind, StatusWrite, Store, StoreError};

/// How long a lease lasts and how much of its end is never used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTerms {
    pub duration: Duration,
}

impl LeaseTerms {
    /// The end of a lease that is never acted in: a tenth of it, for clock
    /// drift between replicas and a request's way to AWS.
    pub fn margin(&self) -> Duration {
        self.duration / 10
    }

    /// Until when a lease whose write was sent at `sent` may be acted on.
    pub fn valid_until(&self, sent: Instant) -> Instant {
        sent + self.duration - self.margin()
    }

    /// Flag-named reasons why a lease this long cannot protect a call that
    /// may take `attempt`: one attempt and the margin must fit in a lease.
    pub fn problems(&self, attempt: Duration) -> Vec<String> {
        if self.duration >= attempt + self.margin() {
            return Vec::new();
        }
        vec![format!(
            "--lease-duration ({}) must be at least --aws-attempt-timeout ({}) plus the lease's safety margin (a tenth of it, {}), or a call sent inside the lease may still be unanswered when the lease lapses",
            crate::duration::format(self.duration),
            crate::duration::format(attempt),
            crate::duration::format(self.margin())
        )]
    }
}

/// Until when this replica may act on one record; cloned to everything
/// that acts on it, so a renewal, a loss or a late answer is seen by all.
#[derive(Clone, Debug, Default)]
pub struct Fence(Arc<Mutex<Option<Instant>>>);

impl Fence {
    /// A fence that allows nothing until [`Fence::extend`]ed.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Option<Instant>> {
        self.0.lock()
    }

    /// A renewal landed: acting is allowed until `until` (never shortened,
    /// since a slower answer to an earlier write may come in after a later one).
    pub fn extend(&self, until: Instant) {
        let mut held = self.lock();
        if held.is_none_or(|now| now < until) {
            *held = Some(until);
        }
    }

    /// The lease is gone: nothing more may be sent under this fence.
    pub fn revoke(&self) {
        *self.lock() = None;
    }

    /// How long acting is still allowed; `None` once it is not.
    pub fn remaining(&self) -> Option<Duration> {
        let until = (*self.lock())?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Until when acting is (or was) allowed; `None` once the lease is
    /// gone, or before it is known.
    pub fn end(&self) -> Option<Instant> {
        *self.lock()
    }

    /// Whether a mutating call may be sent now.
    pub fn allows(&self) -> bool {
        self.remaining().is_some()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_counted_from_when_its_write_was_sent() {
        let terms = LeaseTerms {
            duration: Duration::from_secs(15),
        };
        let sent = Instant::now();
        // The answer takes 10 s: 3.5 s of the lease are left to act in.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let fence = Fence::new();
        assert!(!fence.allows(), "nothing before the lease is known");
        fence.extend(terms.valid_until(sent));
        assert_eq!(fence.remaining(), Some(Duration::from_millis(3500)));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!fence.allows(), "the margin is never acted in");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_to_an_earlier_write_does_not_shorten_the_lease() {
        let fence = Fence::new();
        let now = Instant::now();
        fence.extend(now + Duration::from_secs(10));
        fence.extend(now + Duration::from_secs(5));
        assert_eq!(fence.remaining(), Some(Duration::from_secs(10)));
        let shared = fence.clone();
        fence.revoke();
        assert!(!shared.allows(), "every clone sees the loss");
    }

    #[test]
    fn a_lease_shorter_than_an_attempt_and_the_margin_is_refused_naming_both_flags() {
        let terms = LeaseTerms {
            duration: Duration::from_secs(10),
        };
        let problems = terms.problems(Duration::from_secs(10)).join("; ");
        assert!(
            problems.contains("--lease-duration (10s)")
                && problems.contains("--aws-attempt-timeout (10s)"),
            "{problems}"
        );
        assert!(terms.problems(Duration::from_secs(9)).is_empty());
    }
}
