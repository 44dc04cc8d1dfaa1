//! What becomes of a record after its step, in one place: the kube-runtime
//! shape — a step answers an [`Outcome`], and [`Reconciler::conclude`]
//! alone turns it into a requeue, a lease given back or a record
//! forgotten, and a metric label. Nothing else requeues.

use std::time::Duration;

use super::Reconciler;
use crate::aws::AwsError;
use crate::store::Store;

/// How one step of one record ended: what a dashboard counts, and what
/// becomes of the record.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Stepped; look again after this long.
    Requeued(Duration),
    /// Stepped, and waiting its turn behind another request on its service:
    /// the lease is given back; look again after this long, or when the
    /// request ahead of it ends (that wakes it at once).
    Queued(Duration),
    /// Its tasks showed the step not done: nothing written; look again after this long.
    NotYet(Duration),
    /// Its action's turn in a client-side bucket would have come after the
    /// lease's end: nothing sent, no token taken, the lease kept; look
    /// again when the turn would have come.
    Deferred(Duration),
    /// Finished, its notices delivered: the lease is given back, the record forgotten.
    Finished,
    /// No longer in the store: forgotten.
    Gone,
    /// Could not be stepped now.
    Failed(StepError),
}

/// Why a step could not be made; [`Reconciler::conclude`] says what follows.
#[derive(Debug)]
pub(super) enum StepError {
    /// The service could not be looked at (throttled, unanswered): try again.
    Observe(AwsError),
    /// A decided action could not be made, for a reason worth trying again.
    Act(AwsError),
    /// Another replica holds the lease now, or it could not be renewed
    /// mid-step: nothing more is sent under it.
    LeaseLost,
    /// The lease ran out by this replica's clock before it could act, or
    /// the store confirmed it too late: nothing was sent; it is given back
    /// so that a replica with a better way to the store goes on.
    LeaseLapsed,
    /// Another replica holds the lease (found when claiming or renewing it).
    LeaseRefused,
    /// The store could not be asked for the lease.
    LeaseUnavailable,
    /// The record changed since it was read (a person paused it, say).
    Changed,
    /// The status could not be written (it may have landed: the next read tells).
    NotWritten,
}

impl Outcome {
    /// The label of `ecs_recycler_reconciles_total{outcome}`.
    fn label(&self) -> &'static str {
        match self {
            Self::Requeued(_) => "requeued",
            Self::Queued(_) => "queued",
            Self::NotYet(_) => "not_yet",
            Self::Deferred(_) => "deferred",
            Self::Finished => "finished",
            Self::Gone => "gone",
            Self::Failed(StepError::Observe(_)) => "observe_failed",
            Self::Failed(StepError::Act(_)) => "act_failed",
            Self::Failed(StepError::LeaseLost) => "lease_lost",
            Self::Failed(StepError::LeaseLapsed) => "lease_lapsed",
            Self::Failed(StepError::LeaseRefused) => "lease_refused",
            Self::Failed(StepError::LeaseUnavailable) => "lease_unavailable",
            Self::Failed(StepError::Changed | StepError::NotWritten) => "persist_stopped",
        }
    }
}

impl<S: Store> Reconciler<S> {
    /// The error policy: what becomes of a record after its step, in one place.
    pub(super) async fn conclude(&self, name: &str, outcome: Outcome) {
        self.pool.metrics().reconciled(outcome.label());
        let poll = self.config.poll_interval;
        match outcome {
            Outcome::Requeued(after) | Outcome::NotYet(after) | Outcome::Deferred(after) => {
                self.records.requeue(name, after)
            }
            // Nothing moves a queued request on but the end of the one
            // ahead of it or a change to it, and either wakes it. Holding
            // its lease meanwhile would renew it every half lease for
            // nothing: 9,000 writes a half lease at 10,000 requests queued
            // ten to a service.
            Outcome::Queued(after) => {
                self.records.requeue(name, after);
                self.leases.give_back(name).await;
                self.unwatch(name);
            }
            Outcome::Finished => {
                self.finished(name);
                self.leases.give_back(name).await;
                self.records.forget(name);
                self.unwatch(name);
            }
            Outcome::Gone | Outcome::Failed(StepError::LeaseLost) => {
                self.leases.lose(name);
                self.records.forget(name);
                self.unwatch(name);
            }
            Outcome::Failed(StepError::Observe(e) | StepError::Act(e)) => {
                self.records.requeue(name, retry_after(&e, poll))
            }
            Outcome::Failed(StepError::LeaseLapsed) => {
                self.records.requeue(name, poll);
                self.leases.give_back(name).await;
                self.unwatch(name);
            }
            Outcome::Failed(StepError::Changed) => self.records.requeue(name, Duration::ZERO),
            Outcome::Failed(
                StepError::NotWritten | StepError::LeaseRefused | StepError::LeaseUnavailable,
            ) => self.records.requeue(name, poll),
        }
    }
}

/// After a failure worth trying again: throttling backs off further.
fn retry_after(e: &AwsError, poll: Duration) -> Duration {
    match e {
        AwsError::Throttled { .. } => {
            let jitter = 1.0 + fastrand::f64();
            poll.mul_f64(2.0 * jitter)
        }
        // A read whose token would come past its deadline: when it would have.
        AwsError::Deferred { wait, .. } => (*wait).max(poll),
        _ => poll,
    }
}
