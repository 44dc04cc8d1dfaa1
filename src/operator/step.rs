//! One step of one record, and what becomes of it. [`Reconciler::reconcile`]
//! advances a claimed request as far as it can go now and answers an
//! [`Outcome`]; [`Reconciler::conclude`] is the one place that turns an
//! outcome into a requeue, a lease given back or a record forgotten, and a
//! metric label (the kube-runtime shape: reconcile returns a value, one error
//! policy maps it). Nothing else here requeues.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::lease::Fence;
use super::metrics::OutcomeLabel;
use super::reconciler::{KIND, Reconciler};
use super::records::Claimed;
use crate::aws::observe::{self, Look, Want};
use crate::aws::{self, AwsError};
use crate::gates::{self, decide::AlarmsSeen};
use crate::hooks::call::About;
use crate::hooks::decide::{Answer, Ask, record};
use crate::notify::outbox;
use crate::request::decide::{self, Action, Context, Decision, needs_scaling, needs_tasks};
use crate::request::observation::{Observation, TaskView};
use crate::request::pacing;
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, RecycleStatus};
use crate::store::{StatusWrite, Store, StoreError, StoredRecord};

/// Maximum steps taken at once for a record whose decision asks to go on at once.
const MAX_IMMEDIATE_STEPS: usize = 16;

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
    /// Another replica holds the lease now.
    LeaseLost,
    /// The lease ran out by this replica's clock before it could act: nothing was sent.
    LeaseLapsed,
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
            Self::Failed(StepError::Observe(_)) => "observe_failed",
            Self::Failed(StepError::Act(_)) => "act_failed",
            Self::Failed(StepError::LeaseLost) => "lease_lost",
            Self::Failed(StepError::LeaseLapsed) => "lease_lapsed",
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
            }
            Outcome::Finished => {
                self.finished(name);
                self.leases.give_back(name).await;
                self.records.forget(name);
            }
            Outcome::Failed(StepError::Observe(e) | StepError::Act(e)) => {
                self.records.requeue(name, retry_after(&e, poll))
            }
            Outcome::Failed(StepError::LeaseLost) => self.forget(name),
            Outcome::Failed(StepError::LeaseLapsed) => self.give_up(name).await,
            Outcome::Failed(StepError::Changed) => self.records.requeue(name, Duration::ZERO),
            Outcome::Failed(StepError::NotWritten) => self.records.requeue(name, poll),
        }
    }

    /// Advances a claimed record as far as it can go now, starting from the
    /// tick's observation of its service.
    pub(super) async fn reconcile(
        &self,
        claimed: Claimed,
        first: Result<Look, AwsError>,
    ) -> Outcome {
        let Claimed {
            record,
            spec,
            mut status,
            blocked_by,
            clients,
            fence,
        } = claimed;
        let name = record.name.clone();
        let mut version = record.version;
        // notify: fold in delivery receipts; after a restart or a takeover,
        // notices already on record are handed on again.
        let mut unsaved = self.notifier.collect(&name, &mut status.notify);
        self.notifier.submit(&name, &status.notify, &fence);
        let mut first = match first {
            // A gated run reads its alarms at every look, so that an abort
            // meets a batch still waiting for its replacements.
            Ok(Look::NotYet(tasks)) if !unsaved && spec.alarm_gate().is_none() => {
                return self
                    .not_yet(&record, &spec, &status, &tasks, &blocked_by)
                    .await;
            }
            // Receipts to record: a whole look, and the step as usual.
            Ok(Look::NotYet(_)) => None,
            Ok(Look::Whole(o)) => Some(Ok(o)),
            Err(e) => Some(Err(e)),
        };
        // The observation in hand, and whether it includes the scalable
        // target and the tasks.
        let mut obs: Option<(Observation, bool, bool)> = None;
        // The gate alarms, read once per look at the record.
        let mut alarms: Option<AlarmsSeen> = None;
        for _ in 0..MAX_IMMEDIATE_STEPS {
            let step_began = Instant::now();
            let wants_scaling = needs_scaling(&status);
            let wants_tasks = needs_tasks(&status);
            let fresh = match (obs.take(), first.take()) {
                (Some((o, has_scaling, has_tasks)), _)
                    if (has_scaling || !wants_scaling) && (has_tasks || !wants_tasks) =>
                {
                    Ok(o)
                }
                (_, Some(tick_obs)) => tick_obs,
                _ => {
                    let want = Want {
                        clients: clients.clone(),
                        cluster: spec.cluster.clone(),
                        service: spec.service.clone(),
                        extra: status.batch.clone(),
                        scaling: wants_scaling,
                        tasks: wants_tasks,
                        awaiting: None,
                    };
                    observe::observe(&self.pool, want).await
                }
            };
            let current = match fresh {
                Ok(o) => o,
                Err(e) => {
                    // A call that got no answer was logged once, where it was made.
                    if matches!(e, AwsError::Unanswered { .. }) {
                        tracing::debug!(request = %name, error = %e, "could not observe; trying again");
                    } else {
                        tracing::warn!(request = %name, cluster = %spec.cluster, service = %spec.service, error = %e, "could not observe; trying again");
                    }
                    return Outcome::Failed(StepError::Observe(e));
                }
            };
            // The observation may have taken a while (many services, rate
            // limits, a slow endpoint): make sure the lease is still ours,
            // renewed if need be.
            if self.hold(&name, None).await.is_none() {
                return Outcome::Failed(StepError::LeaseLost);
            }
            if let Some(gate) = spec.alarm_gate()
                && alarms.is_none()
                && matches!(
                    status.phase,
                    Phase::Pending | Phase::Surging | Phase::Recycling
                )
            {
                let seen = gates::observe::describe(&clients, gate).await;
                if let Err(e) = &seen {
                    tracing::warn!(request = %name, error = %e.message, "could not read the gate alarms; holding");
                }
                alarms = Some(seen);
            }
            let now = Utc::now();
            let ctx = Context {
                name: &name,
                spec: &spec,
                now,
                poll: self.config.poll_interval,
                blocked_by: blocked_by.as_deref(),
                alarms: alarms.as_ref(),
            };
            let mut decision = self.records.with(&name, |t| {
                t.pace()
                    .learn(&current.tasks, status.started_at.or(Some(now)), now);
                let decision = decide::decide(&ctx, &status, &current);
                if let Some(step) = pacing::awaits_tasks(&status)
                    && pacing::awaits_tasks(&decision.status) != Some(step)
                {
                    t.pace().step_done(step, now);
                }
                decision
            });
            outbox::enqueue(&name, &spec, &status, &mut decision.status, ctx.now);
            if unsaved || decision.status != status {
                version = match self.persist(&name, version, &decision.status, &fence).await {
                    Ok(v) => v,
                    Err(e) => return Outcome::Failed(e),
                };
                unsaved = false;
                log_new_events(&spec, &name, &status, &decision.status);
            }
            let acted = !decision.actions.is_empty() || decision.hook.is_some();
            if let Err((action, refusal)) =
                self.act(&clients, &spec, &name, &decision, &fence).await
            {
                self.records.remember(&name, version, &blocked_by);
                if let AwsError::Deferred { wait, .. } = refusal {
                    // The decision is on record, as below; waiting past the
                    // lease for the token would only have it refused.
                    tracing::debug!(request = %name, error = %refusal, "action deferred: its token would come after the lease");
                    return Outcome::Deferred(wait);
                }
                if let AwsError::NotSent { .. } = refusal {
                    // The decision is on record; whoever holds the lease next
                    // decides again from it and a fresh look.
                    tracing::warn!(request = %name, error = %refusal, "lease lapsed before acting; nothing sent, deciding again at the next look");
                    return Outcome::Failed(StepError::LeaseLapsed);
                }
                if refusal.is_retryable() {
                    tracing::warn!(request = %name, error = %refusal, "action not done; trying again");
                    return Outcome::Failed(StepError::Act(refusal));
                }
                tracing::error!(request = %name, error = %refusal, "AWS refused an action");
                let mut failed =
                    decide::refused(&decision.status, ctx.now, &action, refusal.to_string());
                outbox::enqueue(&name, &spec, &decision.status, &mut failed, ctx.now);
                version = match self.persist(&name, version, &failed, &fence).await {
                    Ok(v) => v,
                    Err(e) => return Outcome::Failed(e),
                };
                log_new_events(&spec, &name, &decision.status, &failed);
                decision = Decision {
                    requeue: (!failed.phase.is_terminal()).then_some(Duration::ZERO),
                    status: failed,
                    actions: Vec::new(),
                    hook: None,
                };
            }
            if let Some(ask) = decision.hook.take() {
                // The call is on record; its answer is recorded before the
                // next decision, so a crash in between repeats it.
                let Some(answered) = self
                    .call_hook(&name, &spec, &decision.status, &ask, &fence)
                    .await
                else {
                    self.records.remember(&name, version, &blocked_by);
                    tracing::warn!(request = %name, "lease lapsed before calling a hook; nothing sent, deciding again at the next look");
                    return Outcome::Failed(StepError::LeaseLapsed);
                };
                version = match self.persist(&name, version, &answered, &fence).await {
                    Ok(v) => v,
                    Err(e) => return Outcome::Failed(e),
                };
                decision.status = answered;
            }
            self.pool
                .metrics()
                .step_seconds
                .observe(step_began.elapsed().as_secs_f64());
            status = decision.status;
            match decision.requeue {
                // notify: finished, with notices still to deliver.
                None if !status.notify.outbox.is_empty() => {
                    self.records.remember(&name, version, &blocked_by);
                    return Outcome::Requeued(self.config.poll_interval);
                }
                None => return Outcome::Finished,
                // Nothing was done to AWS: what was seen a moment ago still holds.
                Some(after) if after.is_zero() => {
                    if !acted {
                        obs = Some((current, wants_scaling, wants_tasks));
                    }
                    continue;
                }
                Some(after) => {
                    let after =
                        self.pace(&name, &spec, &status, &current.tasks, after, &blocked_by);
                    self.records.remember(&name, version, &blocked_by);
                    // Its notices go out under its lease: it is kept until they have.
                    if queued(&status, &blocked_by) && status.notify.outbox.is_empty() {
                        return Outcome::Queued(after);
                    }
                    return Outcome::Requeued(after);
                }
            }
        }
        self.records.remember(&name, version, &blocked_by);
        Outcome::Requeued(Duration::ZERO)
    }

    /// A step waiting for new tasks whose tasks show it is not done: only
    /// what they teach of the timings is kept, and the next look aimed.
    async fn not_yet(
        &self,
        record: &StoredRecord,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        tasks: &[TaskView],
        blocked_by: &Option<String>,
    ) -> Outcome {
        if self.hold(&record.name, None).await.is_none() {
            return Outcome::Failed(StepError::LeaseLost);
        }
        let now = Utc::now();
        self.records.with(&record.name, |t| {
            t.pace().learn(tasks, status.started_at.or(Some(now)), now)
        });
        let poll = self.config.poll_interval;
        let after = self.pace(&record.name, spec, status, tasks, poll, blocked_by);
        self.records
            .remember(&record.name, record.version, blocked_by);
        Outcome::NotYet(after)
    }

    /// When to look again: the decision's own time (a wait) stands; a
    /// transition expected is aimed at; only a person can move a paused or
    /// queued request on, and a change to it wakes it anyway.
    fn pace(
        &self,
        name: &str,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        tasks: &[TaskView],
        after: Duration,
        blocked_by: &Option<String>,
    ) -> Duration {
        let poll = self.config.poll_interval;
        if after != poll {
            return after;
        }
        if let Some(step) = pacing::awaits_tasks(status) {
            return self
                .records
                .with(name, |t| t.pace().next_look(tasks, step, Utc::now(), poll));
        }
        if queued(status, blocked_by) || (spec.paused && !spec.cancel) {
            return self.config.idle_poll_interval;
        }
        after
    }

    /// Writes the status, answering the new version.
    async fn persist(
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
    pub(super) async fn drain(&self, claimed: Claimed) {
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
            return self.conclude(name, Outcome::Failed(e)).await;
        }
        if status.notify.outbox.is_empty() {
            self.conclude(name, Outcome::Finished).await;
        } else {
            self.records.requeue(name, self.config.poll_interval);
        }
    }

    /// Makes the hook call `ask` asks for and answers the status with its
    /// outcome recorded; `None` when it was not sent (the lease lapsed).
    async fn call_hook(
        &self,
        name: &str,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        ask: &Ask,
        fence: &Fence,
    ) -> Option<RecycleStatus> {
        let hook = spec.hooks.get(ask.hook)?;
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
                    self.hold(name, None).await?;
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
        let answer = answer?;
        if let Answer::Unanswered { error } = &answer {
            tracing::warn!(request = %name, error = %error, "hook gave no verdict; calling again within its deadline");
        }
        let mut answered = status.clone();
        record(&mut answered, &ask.key, answer);
        Some(answered)
    }

    /// Performs the decided actions in order; the first that fails stops the rest.
    async fn act(
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
    pub(super) async fn fail_invalid(&self, record: &StoredRecord, message: String, fence: &Fence) {
        let now = Utc::now();
        let mut status: RecycleStatus = record
            .status
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        status.transition(now, Phase::Failed, format!("invalid record: {message}"));
        tracing::error!(request = %record.name, reason = %message, "invalid record marked Failed");
        let outcome = match self
            .persist(&record.name, record.version, &status, fence)
            .await
        {
            Ok(_) => Outcome::Finished,
            Err(e) => Outcome::Failed(e),
        };
        self.conclude(&record.name, outcome).await;
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

fn log_new_events(spec: &RecycleSpec, name: &str, before: &RecycleStatus, after: &RecycleStatus) {
    let seen = before.events.last().map(|e| (e.at, e.message.clone()));
    let start = seen
        .and_then(|s| {
            after
                .events
                .iter()
                .rposition(|e| (e.at, e.message.clone()) == s)
        })
        .map_or(0, |i| i + 1);
    for e in &after.events[start..] {
        tracing::info!(
            cluster = %spec.cluster,
            service = %spec.service,
            request = %name,
            task = e.task.as_deref(),
            reason = %e.reason,
            phase = ?after.phase,
            "{}",
            e.message
        );
    }
}

/// A request that has not started and waits for another on its service.
fn queued(status: &RecycleStatus, blocked_by: &Option<String>) -> bool {
    status.phase == Phase::Pending && blocked_by.is_some()
}
