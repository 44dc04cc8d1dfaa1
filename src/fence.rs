//! A replica's right to act on a record, by its own clock.
//!
//! The store's conditional write proves a lease at the instant the store
//! applied it, not when its answer comes back: an answer delayed by a
//! stalled network may arrive after another replica took the record over.
//! So a replica counts its lease on its own monotonic clock from when it
//! *sent* the write that took or renewed it, less a safety margin, and sends
//! a mutating call (UpdateService, StopTask, RegisterScalableTarget, a
//! notification, a hook call) only while that count has not run out. The
//! count is a [`Fence`], shared by everything that acts on the record; the
//! leases themselves are kept in the `leases` module, above this one.
//!
//! What this rests on (docs/failure-model.md says it for users): the
//! replicas' wall clocks differ by less than the margin (the store's lease
//! expiry is a wall-clock time another replica compares with its own), and a
//! request sent inside the lease reaches AWS before the margin is used up.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

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
