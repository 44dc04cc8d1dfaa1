//! Claiming a due record: taking (or keeping) its lease, reading it whole,
//! and the clients of its account; and the lease in use while it is
//! stepped. Trouble with a lease is answered as a value
//! ([`LeaseTrouble`]) for [`super::conclude`] to act on: nothing here
//! requeues.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::super::records::Claimed;
use super::conclude::{Outcome, StepError};
use super::{KIND, Reconciler};
use crate::fence::Fence;
use crate::leases::Hold;
use crate::request::spec::request_spec;
use crate::request::status::request_status;
use crate::store::{ListedRecord, Store, StoredRecord};

/// Why this replica may not act on a record now.
#[derive(Debug)]
pub(super) enum LeaseTrouble {
    /// Another replica holds the lease.
    Refused,
    /// The store granted it, but its answer came too late to act on.
    Late,
    /// The store could not be asked.
    Unavailable,
}

impl LeaseTrouble {
    /// What becomes of a record whose lease could not be taken or renewed
    /// between steps.
    pub(super) fn between_steps(self) -> Outcome {
        Outcome::Failed(match self {
            Self::Refused => StepError::LeaseRefused,
            Self::Late => StepError::LeaseLapsed,
            Self::Unavailable => StepError::LeaseUnavailable,
        })
    }

    /// What becomes of a record whose lease could not be renewed in the
    /// middle of its step: nothing more is sent under it.
    pub(super) fn mid_step(self) -> Outcome {
        Outcome::Failed(match self {
            Self::Late => StepError::LeaseLapsed,
            Self::Refused | Self::Unavailable => StepError::LeaseLost,
        })
    }
}

impl<S: Store> Reconciler<S> {
    /// Takes the leases of the due records, at most `concurrency` at once;
    /// answers those this replica may step now. A record that cannot be
    /// read is marked Failed here.
    pub(super) async fn claim_all(
        self: Arc<Self>,
        due: Vec<(ListedRecord, Option<String>)>,
        limit: &Arc<Semaphore>,
    ) -> Vec<Claimed> {
        let mut work = JoinSet::new();
        for (record, blocked_by) in due {
            let me = self.clone();
            let permit = limit.clone().acquire_owned().await;
            work.spawn(async move {
                let _permit = permit;
                let name = record.name.clone();
                match me.claim(record, blocked_by).await {
                    Ok(claimed) => Some(claimed),
                    Err(Some(outcome)) => {
                        me.conclude(&name, outcome).await;
                        None
                    }
                    Err(None) => None,
                }
            });
        }
        let mut claimed = Vec::new();
        while let Some(done) = work.join_next().await {
            if let Ok(Some(c)) = done {
                claimed.push(c);
            }
        }
        claimed
    }

    /// The record claimed, or what becomes of it (`None`: nothing; it is
    /// due again at the next tick).
    async fn claim(
        &self,
        record: ListedRecord,
        blocked_by: Option<String>,
    ) -> Result<Claimed, Option<Outcome>> {
        let previous = record.lease.as_ref().map(|l| l.holder.clone());
        let fence = self
            .hold(&record.name, Some(previous.as_deref()))
            .await
            .map_err(|trouble| Some(trouble.between_steps()))?;
        // The listing holds only the phase: the step reads the record whole,
        // as it is now (the listing may also lag a write by a moment).
        let whole = match self.store.get(KIND, &record.name).await {
            Ok(Some(whole)) => whole,
            Ok(None) => return Err(Some(Outcome::Gone)),
            Err(e) => {
                tracing::warn!(request = %record.name, error = %e, "could not read the request to step it; trying again at the next look");
                return Err(None);
            }
        };
        let read = request_spec(&whole.spec)
            .and_then(|spec| Ok((spec, request_status(whole.status.as_ref())?)));
        let (spec, status) = match read {
            Ok(read) => read,
            Err(message) => return Err(Some(self.fail_invalid(&whole, message, &fence).await)),
        };
        let clients = self
            .pool
            .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
            .await;
        // Only the name, version and lease are needed from here on: the
        // raw spec and status go, so a tick over many records holds less.
        let record = StoredRecord {
            spec: Err(String::new()),
            status: None,
            ..whole
        };
        Ok(Claimed {
            record,
            spec,
            status,
            blocked_by,
            clients,
            fence,
        })
    }

    /// Takes, keeps or renews the record's lease; answers the fence to act
    /// under, or why this replica may not act on the record now.
    /// `claiming` names the holder the store showed when the record is
    /// being claimed (to log a takeover), and is `None` for a renewal.
    pub(super) async fn hold(
        &self,
        name: &str,
        claiming: Option<Option<&str>>,
    ) -> Result<Fence, LeaseTrouble> {
        let held_before = self.leases.fence(name).is_some();
        let hold = self.leases.hold(name).await;
        match hold {
            Hold::Kept(fence) => Ok(fence),
            Hold::Granted { fence, taken } => {
                self.health.lease(Ok(()));
                if taken && let Some(previous) = claiming {
                    self.log_taken(name, previous);
                }
                Ok(fence)
            }
            Hold::Refused => {
                self.health.lease(Ok(()));
                if held_before {
                    tracing::warn!(request = %name, "lease taken over by another replica");
                }
                Err(LeaseTrouble::Refused)
            }
            Hold::Late { waited } => {
                self.health.lease(Ok(()));
                tracing::warn!(
                    request = %name,
                    waited = %crate::duration::format(waited),
                    "the store confirmed the lease too late to act on; giving it back, deciding again at the next look"
                );
                Err(LeaseTrouble::Late)
            }
            Hold::Failed(e) => {
                self.health.lease(Err(e.to_string()));
                tracing::warn!(request = %name, error = %e, "could not take or renew the lease");
                Err(LeaseTrouble::Unavailable)
            }
        }
    }

    /// Says that this replica took a lease, and from whom.
    fn log_taken(&self, name: &str, previous: Option<&str>) {
        let me = &self.config.replica_id;
        match previous.filter(|p| p != me) {
            Some(other) => {
                self.pool.metrics().lease_takeovers.inc();
                tracing::info!(request = %name, replica = %me, from = %other, "lease taken over");
            }
            // A queued request is taken again at each of its looks (it
            // gives its lease back between): said once.
            None if self
                .records
                .peek(name, |t| t.is_some_and(|t| t.seen.is_some())) =>
            {
                tracing::debug!(request = %name, replica = %me, "lease taken again");
            }
            None => tracing::info!(request = %name, replica = %me, "lease taken"),
        }
    }
}
