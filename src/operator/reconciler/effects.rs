//! What a step writes and calls: the status (conditionally on the
//! record's version and the lease), the decided actions, a hook, and — for
//! a finished request — the notices left in its outbox. Each answers what
//! it found; [`super::conclude`] decides what follows.

use chrono::Utc;

use super::super::records::Claimed;
use super::claim::LeaseTrouble;
use super::conclude::{Outcome, StepError};
use super::{KIND, Reconciler};
use crate::aws::{self, AwsError};
use crate::fence::Fence;
use crate::hooks::call::About;
use crate::hooks::decide::{Answer, Ask, record};
use crate::metrics::OutcomeLabel;
use crate::request::decide::{Action, Decision};
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, RecycleStatus};
use crate::store::{StatusWrite, Store, StoreError, StoredRecord};

impl<S: Store> Reconciler<S> {
    /// Writes the status, answering the new version.
    pub(super) async fn persist(
        &self,
        name: &str,
        version: u64,
        status: &RecycleStatus,
        fence: &Fence,
    ) -> Result<u64, StepError> {
        let now = Utc::now();
        let finished = status.phase.is_terminal();
        let value = serde_json::to_value(status).map_err(|e| {
            tracing::error!(request = %name, error = %e, "cannot encode status");
            StepError::NotWritten
        })?;
        let write = StatusWrite {
            expected_version: version,
            status: value,
            // notify: a finished request stays listed until its outbox is empty.
            active: !finished || !status.notify.outbox.is_empty(),
            holder: self.config.replica_id.clone(),
            now,
            expires_at: finished
                .then(|| {
                    chrono::Duration::from_std(self.config.retention)
                        .ok()
                        .map(|r| now + r)
                })
                .flatten(),
        };
        match self.store.write_status(KIND, name, write).await {
            Ok(v) => {
                self.notifier.persisted(name, &status.notify);
                self.notifier.submit(name, &status.notify, fence);
                Ok(v)
            }
            Err(StoreError::Conflict { .. }) => Err(StepError::Changed),
            Err(StoreError::LeaseLost { .. }) => {
                tracing::warn!(request = %name, "lease lost; another replica goes on");
                Err(StepError::LeaseLost)
            }
            Err(e) => {
                tracing::warn!(request = %name, error = %e, "could not write status; reading it again at the next look");
                Err(StepError::NotWritten)
            }
        }
    }

    /// notify: a finished request whose notices are not all delivered makes
    /// no AWS call: it records what was delivered (what is left was handed
    /// on already), and leaves the active index with the write that empties
    /// its outbox.
    pub(super) async fn drain(&self, claimed: Claimed) -> Outcome {
        let Claimed {
            record,
            mut status,
            fence,
            ..
        } = claimed;
        let name = record.name.as_str();
        let unsaved = self.notifier.collect(name, &mut status.notify);
        self.notifier.submit(name, &status.notify, &fence);
        if (unsaved || status.notify.outbox.is_empty())
            && let Err(e) = self.persist(name, record.version, &status, &fence).await
        {
            return Outcome::Failed(e);
        }
        if status.notify.outbox.is_empty() {
            Outcome::Finished
        } else {
            Outcome::Requeued(self.config.poll_interval)
        }
    }

    /// Makes the hook call `ask` asks for and answers the status with its
    /// outcome recorded; an error when it was not sent (the lease lapsed or
    /// could not be renewed while the hook took its time).
    pub(super) async fn call_hook(
        &self,
        name: &str,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        ask: &Ask,
        fence: &Fence,
    ) -> Result<RecycleStatus, Outcome> {
        let Some(hook) = spec.hooks.get(ask.hook) else {
            return Ok(status.clone());
        };
        let phase = format!("{:?}", status.phase);
        let about = About {
            request: name,
            cluster: &spec.cluster,
            service: &spec.service,
            phase: &phase,
        };
        tracing::info!(request = %name, hook = %hook.label(), point = ask.point.as_str(), batch = ask.batch, attempt = ask.attempt, key = %ask.key, "calling a hook");
        // The lease is renewed while the hook takes its time, so its answer
        // can be recorded; lost meanwhile, the answer is dropped and whoever
        // holds the record next calls again, with the same key.
        let call = self.hooks.call(hook, &about, ask, fence);
        tokio::pin!(call);
        let answer = loop {
            tokio::select! {
                answer = &mut call => break answer,
                () = tokio::time::sleep(self.config.lease_duration / 4) => {
                    self.hold(name, None).await.map_err(LeaseTrouble::mid_step)?;
                }
            }
        };
        let outcome = match &answer {
            None => "not_sent",
            Some(Answer::Succeeded { .. }) => "succeeded",
            Some(Answer::Failed { .. }) => "failed",
            Some(Answer::InProgress { .. }) => "in_progress",
            Some(Answer::Unanswered { .. }) => "unanswered",
        };
        self.pool
            .metrics()
            .hook_calls
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        let Some(answer) = answer else {
            tracing::warn!(request = %name, "lease lapsed before calling a hook; nothing sent, deciding again at the next look");
            return Err(Outcome::Failed(StepError::LeaseLapsed));
        };
        if let Answer::Unanswered { error } = &answer {
            tracing::warn!(request = %name, error = %error, "hook gave no verdict; calling again within its deadline");
        }
        let mut answered = status.clone();
        record(&mut answered.hook, &ask.key, answer);
        Ok(answered)
    }

    /// Performs the decided actions in order; the first that fails stops the rest.
    pub(super) async fn act(
        &self,
        clients: &aws::Clients,
        spec: &RecycleSpec,
        name: &str,
        decision: &Decision,
        fence: &Fence,
    ) -> Result<(), (Action, AwsError)> {
        for action in &decision.actions {
            tracing::debug!(request = %name, ?action, "acting");
            aws::act(clients, &spec.cluster, &spec.service, action, fence)
                .await
                .map_err(|e| (action.clone(), e))?;
        }
        Ok(())
    }

    /// A record that cannot be read is marked Failed once, with the reason.
    pub(super) async fn fail_invalid(
        &self,
        record: &StoredRecord,
        message: String,
        fence: &Fence,
    ) -> Outcome {
        let now = Utc::now();
        let mut status: RecycleStatus = record
            .status
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        status.transition(now, Phase::Failed, format!("invalid record: {message}"));
        tracing::error!(request = %record.name, reason = %message, "invalid record marked Failed");
        match self
            .persist(&record.name, record.version, &status, fence)
            .await
        {
            Ok(_) => {
                self.pool.metrics().request_finished(Phase::Failed.as_str());
                Outcome::Finished
            }
            Err(e) => Outcome::Failed(e),
        }
    }
}
