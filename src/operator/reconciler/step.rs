//! One step of one claimed request, advanced as far as it can go now: a
//! short sequence of named parts — observe, gate, decide (with the
//! scale-in protection of the tasks it would stop read right before),
//! persist, act, hook, pace — each answering `Continue` or the step's
//! [`Outcome`]. What becomes of the record then is [`super::conclude`]'s.

use std::ops::ControlFlow::{self, Break, Continue};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::super::feed::AfterStep;
use super::super::records::Claimed;
use super::Reconciler;
use super::conclude::{Outcome, StepError};
use crate::aws::observe::{self, Look, Want};
use crate::aws::{AwsError, Clients, protection};
use crate::fence::Fence;
use crate::gates::{self, decide::AlarmsSeen};
use crate::request::decide::{self, Context, Decision, needs_scaling, needs_tasks};
use crate::request::notices;
use crate::request::observation::{Observation, TaskView};
use crate::request::pacing;
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, RecycleStatus};
use crate::request::timeline;
use crate::store::Store;

/// Maximum decisions made at once for a record whose decision asks to go on at once.
const MAX_IMMEDIATE_STEPS: usize = 16;

/// Looks that ended at the tasks kept in memory until the next write.
const MAX_LOOKS_KEPT: usize = 32;

/// A request being stepped: what was read of it, and what the step has
/// learnt so far.
struct Stepping {
    name: String,
    spec: RecycleSpec,
    status: RecycleStatus,
    version: u64,
    blocked_by: Option<String>,
    clients: Clients,
    fence: Fence,
    /// Delivery receipts folded into the status and not written yet.
    unsaved: bool,
    /// The tick's look, until it is used.
    first: Option<Result<Observation, AwsError>>,
    /// The last look, still true while nothing was done to AWS.
    last: Option<Seen>,
    /// The gate alarms, read once per look at the record.
    alarms: Option<AlarmsSeen>,
    /// When the last decision was made.
    decided_at: DateTime<Utc>,
}

/// An observation, and whether it includes the scalable target and the tasks.
struct Seen {
    obs: Observation,
    scaling: bool,
    tasks: bool,
}

impl<S: Store> Reconciler<S> {
    /// Advances a claimed record as far as it can go now, starting from the
    /// tick's observation of its service.
    pub(super) async fn reconcile(
        &self,
        claimed: Claimed,
        first: Result<Look, AwsError>,
    ) -> Outcome {
        let mut s = self.begin(claimed);
        match first {
            // A gated run reads its alarms at every look, so that an abort
            // meets a batch still waiting for its replacements.
            Ok(Look::NotYet(tasks)) if !s.unsaved && s.spec.alarm_gate().is_none() => {
                return self.not_yet(&s, &tasks).await;
            }
            // Receipts to record: a whole look, and the step as usual.
            Ok(Look::NotYet(_)) => {}
            Ok(Look::Whole(o)) => s.first = Some(Ok(*o)),
            Err(e) => s.first = Some(Err(e)),
        }
        for _ in 0..MAX_IMMEDIATE_STEPS {
            if let Break(outcome) = self.step_once(&mut s).await {
                return outcome;
            }
        }
        self.remember(&s);
        Outcome::Requeued(Duration::ZERO)
    }

    /// The record as claimed, its delivery receipts folded in; after a
    /// restart or a takeover, notices already on record are handed on again.
    fn begin(&self, claimed: Claimed) -> Stepping {
        let Claimed {
            record,
            spec,
            mut status,
            blocked_by,
            clients,
            fence,
        } = claimed;
        let unsaved = self.notifier.collect(&record.name, &mut status.notify);
        self.notifier.submit(&record.name, &status.notify, &fence);
        Stepping {
            name: record.name,
            version: record.version,
            spec,
            status,
            blocked_by,
            clients,
            fence,
            unsaved,
            first: None,
            last: None,
            alarms: None,
            decided_at: Utc::now(),
        }
    }

    /// One decision and what follows it.
    async fn step_once(&self, s: &mut Stepping) -> ControlFlow<Outcome> {
        let began = Instant::now();
        let mut current = self.observe(s).await?;
        // The observation may have taken a while (many services, rate
        // limits, a slow endpoint): the lease must still be ours, renewed
        // if need be.
        if let Err(trouble) = self.hold(&s.name, None).await {
            return Break(trouble.mid_step());
        }
        self.read_gates(s).await;
        let mut decision = self.decide_protected(s, &mut current).await?;
        if s.unsaved || decision.status != s.status {
            self.save(s, &decision.status).await?;
            s.unsaved = false;
            log_new_events(&s.spec, &s.name, &s.status, &decision.status);
        }
        let acted = !decision.actions.is_empty() || decision.hook.is_some();
        self.act_on(s, &mut decision).await?;
        self.ask_hook(s, &mut decision).await?;
        self.pool
            .metrics()
            .step_seconds
            .observe(began.elapsed().as_secs_f64());
        self.pace_next(s, decision, current, acted)
    }

    /// What the decision needs seen: the last look while it still holds
    /// and covers it, else the tick's, else a fresh whole look.
    async fn observe(&self, s: &mut Stepping) -> ControlFlow<Outcome, Seen> {
        let scaling = needs_scaling(&s.status);
        let tasks = needs_tasks(&s.status);
        let fresh = match (s.last.take(), s.first.take()) {
            (Some(seen), _) if (seen.scaling || !scaling) && (seen.tasks || !tasks) => Ok(seen.obs),
            (_, Some(first)) => first,
            _ => {
                let want = Want::of(&s.clients, &s.spec, &s.status, Utc::now(), false);
                observe::observe(&self.pool, want).await
            }
        };
        match fresh {
            Ok(obs) => {
                self.records.with(&s.name, |t| t.failed_looks = 0);
                Continue(Seen {
                    obs,
                    scaling,
                    tasks,
                })
            }
            Err(e) => {
                // A call that got no answer was logged once, where it was made.
                if matches!(e, AwsError::Unanswered { .. }) {
                    tracing::debug!(request = %s.name, error = %e, "could not observe; trying again");
                } else {
                    tracing::warn!(request = %s.name, cluster = %s.spec.cluster, service = %s.spec.service, error = %e, "could not observe; trying again");
                }
                Break(self.cannot_see(s, e).await)
            }
        }
    }

    /// A look that could not see the service whole (a read got no answer,
    /// or was denied): nothing is decided or changed; once the trouble has
    /// lasted a few looks, the request's status says what could not be
    /// seen and what to check — written only when the failing call changes,
    /// under the lease and the record's version like any status.
    async fn cannot_see(&self, s: &mut Stepping, e: AwsError) -> Outcome {
        let looks = self.records.with(&s.name, |t| {
            t.failed_looks = t.failed_looks.saturating_add(1);
            t.failed_looks
        });
        let target = format!("{}/{}", s.spec.cluster, s.spec.service);
        let trouble = decide::Trouble {
            call: e.action().to_string(),
            sentence: e.unseen(&target),
            denied: e.is_denied(),
            looks,
        };
        if let Some(said) = decide::unseen(&s.status, &trouble, Utc::now()) {
            match self.persist(&s.name, s.version, &said, &s.fence).await {
                Ok(version) => {
                    s.version = version;
                    log_new_events(&s.spec, &s.name, &s.status, &said);
                    s.status = said;
                }
                Err(written) => {
                    self.remember(s);
                    return Outcome::Failed(written);
                }
            }
        }
        self.remember(s);
        Outcome::Failed(StepError::Observe(e))
    }

    /// The decision, with the scale-in protection of the tasks it would
    /// stop read right before it: a decision that asks for protection
    /// changes nothing and is made again once it is read, so the stop it
    /// then decides is written and made right after that read. Protection
    /// read for an earlier decision of the step is not trusted: the status
    /// was written since.
    async fn decide_protected(
        &self,
        s: &mut Stepping,
        current: &mut Seen,
    ) -> ControlFlow<Outcome, Decision> {
        current.obs.protection.clear();
        // Each round reads tasks not read yet, so the rounds a whole plan
        // needs bound the loop (a batch may be every planned task).
        let planned = s.status.plan.as_ref().map_or(0, |p| p.tasks.len());
        let rounds = planned.div_ceil(crate::request::decide::READ_AT_ONCE) + 1;
        for _ in 0..rounds {
            let decision = self.decide(s, &current.obs);
            if decision.read_protection.is_empty() {
                return Continue(decision);
            }
            let wanted = &decision.read_protection;
            match protection::read(&s.clients, &s.spec.cluster, wanted).await {
                Ok(found) => current.obs.protection.extend(found),
                Err(e) => {
                    tracing::warn!(request = %s.name, error = %e, "could not read the scale-in protection of the tasks to stop; stopping none");
                    return Break(self.cannot_see(s, e).await);
                }
            }
        }
        self.remember(s);
        Break(Outcome::Requeued(Duration::ZERO))
    }

    /// Reads the gate alarms, once per look, in the phases they may hold.
    async fn read_gates(&self, s: &mut Stepping) {
        let Some(gate) = s.spec.alarm_gate() else {
            return;
        };
        if s.alarms.is_some()
            || !matches!(
                s.status.phase,
                Phase::Pending | Phase::Surging | Phase::Recycling
            )
        {
            return;
        }
        let seen = gates::observe::describe(&s.clients, gate).await;
        if let Err(e) = &seen {
            tracing::warn!(request = %s.name, error = %e.message, "could not read the gate alarms; holding");
        }
        s.alarms = Some(seen);
    }

    /// The pure decision, what the run has learnt of its tasks' timings,
    /// and the notices the change makes.
    fn decide(&self, s: &mut Stepping, obs: &Observation) -> Decision {
        let now = Utc::now();
        s.decided_at = now;
        let serving_since = self.serving_since(&s.name, &s.status);
        let ctx = Context {
            name: &s.name,
            spec: &s.spec,
            now,
            poll: self.config.poll_interval,
            blocked_by: s.blocked_by.as_deref(),
            alarms: s.alarms.as_ref(),
            serving_since,
        };
        let status = &s.status;
        let mut decision = self.records.with(&s.name, |t| {
            t.pace()
                .learn(&obs.tasks, status.started_at.or(Some(now)), now);
            let decision = decide::decide(&ctx, status, obs);
            // A look the events timed after the batch's wait is no sample
            // of how soon a first look finds a step done.
            if let Some(step) = pacing::awaits_tasks(status)
                && pacing::awaits_tasks(&decision.status) != Some(step)
                && serving_since.is_none()
            {
                t.pace().step_done(step, now);
            }
            decision
        });
        notices::enqueue(&s.name, &s.spec, &s.status, &mut decision.status, now);
        if decision.status != s.status {
            let looks = self.records.with(&s.name, |t| std::mem::take(&mut t.looks));
            timeline::ride(&s.status, &mut decision.status, &looks, obs, now);
        } else if let Some(counts) = decision.look_kept {
            self.keep_look(&s.name, now, counts);
        }
        decision
    }

    /// Writes `status` under the step's version and lease.
    async fn save(&self, s: &mut Stepping, status: &RecycleStatus) -> ControlFlow<Outcome> {
        match self.persist(&s.name, s.version, status, &s.fence).await {
            Ok(version) => {
                s.version = version;
                if status.phase.is_terminal() && !s.status.phase.is_terminal() {
                    self.pool.metrics().request_finished(status.phase.as_str());
                }
                Continue(())
            }
            Err(e) => Break(Outcome::Failed(e)),
        }
    }

    /// Makes the decided actions; one AWS refuses fails the run through
    /// Restoring, with that decision written in the place of this one.
    async fn act_on(&self, s: &mut Stepping, decision: &mut Decision) -> ControlFlow<Outcome> {
        let changes_tasks = decision.actions.iter().any(|a| {
            matches!(
                a,
                decide::Action::SetDesired { .. } | decide::Action::StopTask { .. }
            )
        });
        let Err((action, refusal)) = self
            .act(&s.clients, &s.spec, &s.name, decision, &s.fence)
            .await
        else {
            if changes_tasks {
                self.expect_events(&s.clients.account, &s.spec.cluster);
            }
            return Continue(());
        };
        self.remember(s);
        match refusal {
            // The decision is on record; waiting past the lease for the
            // token would only have it refused.
            AwsError::Deferred { wait, .. } => {
                tracing::debug!(request = %s.name, error = %refusal, "action deferred: its token would come after the lease");
                return Break(Outcome::Deferred(wait));
            }
            // The decision is on record; whoever holds the lease next
            // decides again from it and a fresh look.
            AwsError::NotSent { .. } => {
                tracing::warn!(request = %s.name, error = %refusal, "lease lapsed before acting; nothing sent, deciding again at the next look");
                return Break(Outcome::Failed(StepError::LeaseLapsed));
            }
            e if e.is_retryable() => {
                tracing::warn!(request = %s.name, error = %e, "action not done; trying again");
                return Break(Outcome::Failed(StepError::Act(e)));
            }
            _ => {}
        }
        tracing::error!(request = %s.name, error = %refusal, "AWS refused an action");
        let now = s.decided_at;
        let mut failed = decide::refused(&decision.status, now, &action, refusal.to_string());
        notices::enqueue(&s.name, &s.spec, &decision.status, &mut failed, now);
        self.save(s, &failed).await?;
        log_new_events(&s.spec, &s.name, &decision.status, &failed);
        *decision = Decision {
            requeue: (!failed.phase.is_terminal()).then_some(Duration::ZERO),
            status: failed,
            actions: Vec::new(),
            hook: None,
            read_protection: Vec::new(),
            look_kept: None,
        };
        Continue(())
    }

    /// Calls the hook the decision put on record, and writes its answer
    /// before the next decision: a crash in between repeats the call.
    async fn ask_hook(&self, s: &mut Stepping, decision: &mut Decision) -> ControlFlow<Outcome> {
        let Some(ask) = decision.hook.take() else {
            return Continue(());
        };
        let answered = match self
            .call_hook(&s.name, &s.spec, &decision.status, &ask, &s.fence)
            .await
        {
            Ok(answered) => answered,
            Err(outcome) => {
                self.remember(s);
                return Break(outcome);
            }
        };
        self.save(s, &answered).await?;
        decision.status = answered;
        Continue(())
    }

    /// Goes on at once, or ends the step with when to look again.
    fn pace_next(
        &self,
        s: &mut Stepping,
        decision: Decision,
        current: Seen,
        acted: bool,
    ) -> ControlFlow<Outcome> {
        s.status = decision.status;
        match decision.requeue {
            // notify: finished, with notices still to deliver.
            None if !s.status.notify.outbox.is_empty() => {
                self.remember(s);
                Break(Outcome::Requeued(self.config.poll_interval))
            }
            None => Break(Outcome::Finished),
            // Nothing was done to AWS: what was seen a moment ago still holds.
            Some(after) if after.is_zero() => {
                if !acted {
                    s.last = Some(current);
                }
                Continue(())
            }
            Some(after) => {
                let tasks = &current.obs.tasks;
                let load_balanced = (current.obs.service.as_ref())
                    .ok()
                    .map(|svc| !svc.load_balancers.is_empty());
                self.watch(AfterStep {
                    name: &s.name,
                    account: &s.clients.account,
                    spec: &s.spec,
                    status: &s.status,
                    tasks,
                    load_balanced,
                });
                let after = self.pace(&s.name, &s.spec, &s.status, tasks, after, &s.blocked_by);
                self.remember(s);
                // Its notices go out under its lease: it is kept until they have.
                if queued(&s.status, &s.blocked_by) && s.status.notify.outbox.is_empty() {
                    Break(Outcome::Queued(after))
                } else {
                    Break(Outcome::Requeued(after))
                }
            }
        }
    }

    /// Keeps the counts of a look that wrote nothing for the next write,
    /// a few at most: the timeline is thinned anyway.
    fn keep_look(&self, name: &str, now: DateTime<Utc>, counts: timeline::Counts) {
        self.records.with(name, |t| {
            if t.looks.last().map(|l| l.1) != Some(counts) && t.looks.len() < MAX_LOOKS_KEPT {
                t.looks.push((now, counts));
            }
        });
    }

    /// A step waiting for new tasks whose tasks show it is not done: only
    /// what they teach of the timings is kept, and the next look aimed.
    async fn not_yet(&self, s: &Stepping, tasks: &[TaskView]) -> Outcome {
        if let Err(trouble) = self.hold(&s.name, None).await {
            return trouble.mid_step();
        }
        let now = Utc::now();
        self.records.with(&s.name, |t| {
            t.pace()
                .learn(tasks, s.status.started_at.or(Some(now)), now);
        });
        if let Some(counts) = timeline::tasks_look(&s.status, tasks) {
            self.keep_look(&s.name, now, counts);
        }
        self.watch(AfterStep {
            name: &s.name,
            account: &s.clients.account,
            spec: &s.spec,
            status: &s.status,
            tasks,
            load_balanced: None,
        });
        let poll = self.config.poll_interval;
        let after = self.pace(&s.name, &s.spec, &s.status, tasks, poll, &s.blocked_by);
        self.remember(s);
        Outcome::NotYet(after)
    }

    /// What the record was when last stepped: a change to it wakes it at once.
    fn remember(&self, s: &Stepping) {
        self.records.remember(&s.name, s.version, &s.blocked_by);
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
            if let Some(after) = self.paced_by_events(name, step) {
                return after;
            }
            return self
                .records
                .with(name, |t| t.pace().next_look(tasks, step, Utc::now(), poll));
        }
        if queued(status, blocked_by) || (spec.paused && !spec.cancel) {
            return self.config.idle_poll_interval;
        }
        after
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
