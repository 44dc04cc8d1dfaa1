//! ECS's own events as hints (`--events-queue`): the operator reads the
//! SQS queue an EventBridge rule on `aws.ecs` fills, and an event that
//! shows a step done wakes its record's look; polling stays the safety
//! net. The look is still the truth: the reads that confirm a step (the
//! service, its tasks, their targets) are made; only the looks made in
//! case something changed are not.
//!
//! - **Reading.** One long poll at a time for up to 10 messages, waiting
//!   at most half an attempt's deadline ([`EventQueue::wait`]); every
//!   message is deleted once read, in one batched call: the events of
//!   accounts, Regions or clusters no active request is in (foreign), the
//!   copies and stale versions ([`Ledger`]), and a message that is not an
//!   ECS event (malformed), each counted. Nothing in a message stops the
//!   loop.
//! - **Pacing** (in the reconcile loop, [`Feed::next_look`]). While the
//!   feed is healthy, a step waiting for new tasks is looked at when the
//!   events show it done — after the batch's `wait`, counted from then,
//!   where no hook or load balancer comes after the task's health — and
//!   otherwise once, when it should have been done by the events of this
//!   run's earlier steps or its tasks' start times ([`Pace::deadline`]: an
//!   event lost, or read by another replica), and at least every
//!   `--safety-poll-interval`. With nothing to go by, and after a look the
//!   events brought finds the step not done, it is paced as without
//!   events. Everything else is paced as without events, and a
//!   record waiting for its service to settle is woken by its steady state.
//! - **Health.** The feed is unhealthy while the queue does not answer or
//!   refuses, and while it stays silent for half a lease after a change
//!   the operator made in a cluster (a stop or a desired count: ECS sends
//!   events for those at once). A quiet queue with no change made is not
//!   silent: there is nothing to hear. Unhealthy, it is said on `/readyz`
//!   and in `ecs_recycler_events_feed_healthy`, and every step waiting on
//!   it is looked at again at once and paced by polling: within a lease of
//!   the silence.
//! - **Several replicas on one queue.** Each message goes to one replica.
//!   One that reads an event of a record another replica holds deletes it
//!   like any other: the holder's look when the step should have been done
//!   stands in for it, as for a lost event. A wake-up written through the
//!   store would cost a write per event and reach the holder only at its
//!   next listing; the look it would save is the one the holder makes
//!   anyway, and no event is needed for correctness.

mod route;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::aws::ClientPool;
use crate::aws::events::EventQueue;
use crate::aws::events::ledger::{Admit, Ledger};
use crate::aws::events::parse;
use crate::metrics::Metrics;
use crate::request::hints::awaited;
use crate::request::observation::TaskView;
use crate::request::pacing::{Pace, awaits_tasks};
use crate::request::spec::RecycleSpec;
use crate::request::status::{Phase, RecycleStatus};
use crate::request::strategy::Pause;
use crate::store::ListedRecord;
pub(crate) use route::Effect;
use route::Routes;
use route::Watch;

/// How the operator reads ECS's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsConfig {
    /// The SQS queue an EventBridge rule sends ECS's events to.
    pub queue_url: String,
    /// While events flow, the longest a step waiting on ECS goes without a look.
    pub safety_poll: Duration,
}

impl EventsConfig {
    /// The default `--safety-poll-interval`: longer than a typical step
    /// and its wait, so that while events flow it seldom comes before them.
    pub const DEFAULT_SAFETY_POLL: Duration = Duration::from_secs(120);

    /// Every flag out of range, each with the reason.
    pub fn problems(&self, poll: Duration) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.queue_url.starts_with("https://") || self.queue_url.starts_with("http://")) {
            out.push(format!(
                "--events-queue {:?} is not a queue URL; give the queue's URL, such as https://sqs.us-east-1.amazonaws.com/123456789012/ecs-events",
                self.queue_url
            ));
        }
        if self.safety_poll < poll {
            out.push(format!(
                "--safety-poll-interval ({}) must not be shorter than --poll-interval ({})",
                crate::duration::format(self.safety_poll),
                crate::duration::format(poll)
            ));
        }
        out
    }
}

/// A record after one of its steps, as the step saw it.
pub(crate) struct AfterStep<'a> {
    pub name: &'a str,
    /// Its clients' account (empty for the operator's own).
    pub account: &'a str,
    pub spec: &'a RecycleSpec,
    pub status: &'a RecycleStatus,
    /// Its tasks as last seen.
    pub tasks: &'a [TaskView],
    /// Behind a load balancer, when its look said.
    pub load_balanced: Option<bool>,
}

/// The events feed of one replica.
pub(crate) struct Feed {
    queue: EventQueue,
    safety_poll: Duration,
    /// How long the queue may stay silent after a change the operator made.
    heartbeat: Duration,
    poll: Duration,
    pool: Arc<ClientPool>,
    state: Mutex<State>,
    /// Holds a permit once the active requests have been listed.
    listed_once: tokio::sync::Notify,
}

struct State {
    link: Link,
    /// (account, cluster) → when a change made there has waited for an
    /// event since.
    expected: HashMap<(String, String), Instant>,
    ledger: Ledger,
    routes: Routes,
    /// Healthy at the last [`Feed::turned_unhealthy`].
    was_healthy: bool,
    /// The pause before the next read after a failed one.
    backoff: Duration,
    /// Malformed messages not logged yet, and when one last was.
    malformed: (u64, Option<Instant>),
}

enum Link {
    /// No read has ended yet.
    Starting,
    Up,
    /// The last read failed, so.
    Down(String),
}

/// The longest pause between reads of a queue that fails.
const MOST_BACKOFF: Duration = Duration::from_secs(30);
/// Malformed messages are logged at most this often.
const MALFORMED_LOG_EVERY: Duration = Duration::from_secs(60);

impl Feed {
    pub(crate) fn new(
        config: &EventsConfig,
        pool: Arc<ClientPool>,
        lease: Duration,
        poll: Duration,
    ) -> Arc<Self> {
        let sdk = pool.base_config();
        let queue = EventQueue::new(sdk, config.queue_url.clone());
        let region = sdk.region().map(|r| r.to_string());
        let routes = Routes::new(queue.account(), region);
        pool.metrics().events.feed_healthy.set(0);
        Arc::new(Self {
            queue,
            safety_poll: config.safety_poll,
            heartbeat: lease / 2,
            poll,
            pool,
            state: Mutex::new(State {
                link: Link::Starting,
                expected: HashMap::new(),
                ledger: Ledger::default(),
                routes,
                was_healthy: false,
                backoff: poll,
                malformed: (0, None),
            }),
            listed_once: tokio::sync::Notify::new(),
        })
    }

    /// The queue's URL.
    pub(crate) fn url(&self) -> &str {
        self.queue.url()
    }

    fn metrics(&self) -> &Metrics {
        self.pool.metrics()
    }

    /// One read of the queue, its messages handled and deleted; answers
    /// the records to wake. A read that fails is waited out here (a
    /// growing pause), and an empty one when SQS answers at once. Nothing
    /// is read before the first listing says which clusters are served.
    pub(crate) async fn poll_once(&self) -> Vec<Effect> {
        self.listed_once.notified().await;
        self.listed_once.notify_one();
        let messages = match self.queue.receive(self.metrics()).await {
            Ok(m) => m,
            Err(e) => {
                let pause = {
                    let mut s = self.state.lock();
                    if !matches!(&s.link, Link::Down(_)) {
                        tracing::warn!(queue = %self.queue.url(), error = %e, "cannot read ECS's events; looking at services by polling meanwhile");
                    }
                    s.link = Link::Down(e.to_string());
                    let pause = s.backoff;
                    s.backoff = (s.backoff * 2).min(MOST_BACKOFF.max(self.poll));
                    pause
                };
                self.publish_health();
                tokio::time::sleep(pause).await;
                return Vec::new();
            }
        };
        {
            let mut s = self.state.lock();
            if matches!(&s.link, Link::Down(_)) {
                tracing::info!(queue = %self.queue.url(), "reading ECS's events again");
            }
            s.link = Link::Up;
            s.backoff = self.poll;
        }
        let empty = messages.is_empty();
        let mut receipts = Vec::with_capacity(messages.len());
        let mut effects = Vec::new();
        for m in messages {
            effects.extend(self.handle(&m.body));
            receipts.push(m.receipt);
        }
        match self.queue.delete(self.metrics(), receipts).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(
                    failed = n,
                    "SQS did not delete some events; their copies will be known"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not delete the events read; their copies will be known as such")
            }
        }
        self.publish_health();
        let mut learnt = Vec::new();
        effects.retain(|e| match e {
            Effect::Learn { key, arns, at } => {
                learnt.push((key.clone(), arns.clone(), *at));
                false
            }
            Effect::Wake { .. } => true,
        });
        for ((account, cluster, service), arns, at) in learnt {
            self.pool
                .looks
                .known_tasks
                .learn(&account, &cluster, &service, &arns, at);
        }
        if empty && self.queue.wait().is_zero() {
            // SQS answers at once when no whole second fits in an attempt.
            tokio::time::sleep(self.poll / 4).await;
        }
        effects
    }

    /// One message: read, sorted, and weighed for the records it concerns.
    fn handle(&self, body: &str) -> Vec<Effect> {
        let received = Utc::now();
        let m = self.metrics();
        let event = match parse::parse(body, received) {
            Ok(e) => e,
            Err(why) => {
                m.events
                    .ignored
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: "malformed",
                    })
                    .inc();
                self.log_malformed(&why);
                return Vec::new();
            }
        };
        m.events
            .received
            .get_or_create(&crate::metrics::DetailTypeLabel {
                detail_type: event.kind.label(),
            })
            .inc();
        m.events
            .lag_seconds
            .observe((received - event.time).num_milliseconds().max(0) as f64 / 1000.0);
        let mut s = self.state.lock();
        // Any event of a cluster shows the feed flows there, whether or not
        // a request is still at work in it (the last one just finished).
        if let Some(place) = s.routes.place(&event) {
            s.expected.remove(&place);
        }
        let Some(served) = s.routes.serves(&event) else {
            drop(s);
            self.ignored("foreign");
            return Vec::new();
        };
        match s.ledger.admit(&event) {
            Admit::New => {}
            other => {
                drop(s);
                self.ignored(other.label());
                return Vec::new();
            }
        }
        s.routes.apply(served, event, received)
    }

    fn ignored(&self, reason: &'static str) {
        self.metrics()
            .events
            .ignored
            .get_or_create(&crate::metrics::ReasonLabel { reason })
            .inc();
    }

    fn log_malformed(&self, why: &str) {
        let mut s = self.state.lock();
        s.malformed.0 += 1;
        if s.malformed
            .1
            .is_none_or(|at| at.elapsed() >= MALFORMED_LOG_EVERY)
        {
            tracing::warn!(queue = %self.queue.url(), count = s.malformed.0, reason = %why, "deleted messages that are not ECS events (is something else sending to the events queue?)");
            s.malformed = (0, Some(Instant::now()));
        }
    }

    /// The active requests as listed: which accounts and clusters are the operator's.
    pub(crate) fn listed(&self, records: &[ListedRecord]) {
        self.state.lock().routes.listed(records);
        self.listed_once.notify_one();
    }

    /// What a record waits on after one of its steps; answers the wakes
    /// what is known already makes.
    pub(crate) fn watch(&self, after: AfterStep) -> Vec<Effect> {
        let AfterStep {
            name,
            account,
            spec,
            status,
            tasks,
            load_balanced,
        } = after;
        let health_checked = tasks.is_empty() || tasks.iter().any(|t| t.health_checked);
        let step = awaited(status, health_checked);
        let mut s = self.state.lock();
        let load_balanced =
            load_balanced.unwrap_or_else(|| s.routes.load_balanced(name).unwrap_or(true));
        // Only a plain `wait` may count from the events' word: a canary's
        // bake and a linear step's `every` are watched from a look (the
        // decision paces them), and a strategy that writes no `wait` has
        // only the default's.
        let plain_wait = match spec.strategy.pause(status.batches.max(1), spec.wait) {
            Pause::Wait(wait) => Some(wait),
            Pause::Bake(_) | Pause::Every(_) => None,
        };
        let waits_from_events = status.phase == Phase::Recycling
            && step.is_some()
            && spec.hooks.is_empty()
            && !load_balanced;
        let settling = step.is_none()
            && status.wait_until.is_none()
            && !status.phase.is_terminal()
            && !spec.paused;
        let watch = Watch {
            key: (
                account.to_string(),
                spec.cluster.clone(),
                spec.service.clone(),
            ),
            awaited: step,
            wait: plain_wait.filter(|_| waits_from_events),
            settling,
            load_balanced,
        };
        s.routes.watch(name, watch, Utc::now())
    }

    pub(crate) fn unwatch(&self, name: &str) {
        self.state.lock().routes.unwatch(name);
    }

    /// When the events showed `name`'s batch serving, for the decision
    /// (its wait may count from then).
    pub(crate) fn serving_since(
        &self,
        name: &str,
        status: &RecycleStatus,
    ) -> Option<DateTime<Utc>> {
        let step = awaits_tasks(status).filter(|_| status.phase == Phase::Recycling)?;
        let s = self.state.lock();
        if !s.routes.waits_from_events(name) {
            return None;
        }
        s.routes.settled(name, step)
    }

    /// How long until `name`'s next look, for a step waiting for new tasks
    /// since `step` that its last look found not done; `None`: paced as
    /// without events.
    pub(crate) fn next_look(
        &self,
        name: &str,
        step: DateTime<Utc>,
        pace: &Pace,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        if !self.healthy() {
            return None;
        }
        let s = self.state.lock();
        // The events showed it done and a look since did not: polling from here.
        if s.routes.settled(name, step).is_some() {
            return None;
        }
        let deadline = pace.deadline(step, now, self.poll)?;
        Some(deadline.min(self.safety_poll))
    }

    /// A change the operator made in (account, cluster): ECS sends events for it at once.
    pub(crate) fn expect(&self, account: &str, cluster: &str) {
        self.state
            .lock()
            .expected
            .entry((account.to_string(), cluster.to_string()))
            .or_insert_with(Instant::now);
    }

    /// Why the feed is not to be relied on now, as a sentence; `None` when it is.
    pub(crate) fn problem(&self) -> Option<String> {
        self.problem_in(&self.state.lock())
    }

    fn problem_in(&self, s: &State) -> Option<String> {
        let url = self.queue.url();
        let meanwhile = "services are looked at by polling meanwhile";
        match &s.link {
            Link::Down(why) => Some(format!(
                "ECS's events queue {url} cannot be read: {why}; {meanwhile}"
            )),
            _ => {
                let silent = s
                    .expected
                    .iter()
                    .filter(|(_, since)| since.elapsed() > self.heartbeat)
                    .max_by_key(|(_, since)| since.elapsed())?;
                let ((account, cluster), since) = silent;
                let whose = if account.is_empty() {
                    String::new()
                } else {
                    format!(" of account {account}")
                };
                Some(format!(
                    "ECS's events queue {url} has been silent for {} since the operator changed cluster {cluster}{whose} (ECS sends events for that within seconds): check the EventBridge rule, its target and the queue's policy; {meanwhile}",
                    crate::duration::format(whole(since.elapsed()))
                ))
            }
        }
    }

    /// Whether events flow: the queue answered its last read and has not
    /// been silent past its heartbeat.
    pub(crate) fn healthy(&self) -> bool {
        let s = self.state.lock();
        matches!(s.link, Link::Up) && self.problem_in(&s).is_none()
    }

    fn publish_health(&self) {
        let healthy = self.healthy();
        self.metrics().events.feed_healthy.set(i64::from(healthy));
    }

    /// The records to look at again at once because the feed stopped
    /// being healthy since the last call (they are paced by polling from
    /// then); empty otherwise.
    pub(crate) fn turned_unhealthy(&self) -> Vec<String> {
        let healthy = self.healthy();
        self.publish_health();
        let mut s = self.state.lock();
        let was = std::mem::replace(&mut s.was_healthy, healthy);
        if was && !healthy {
            tracing::warn!(queue = %self.queue.url(), "ECS's events are not flowing; looking at services by polling");
            return s.routes.awaiting();
        }
        Vec::new()
    }
}

/// A time to say: to the second past one, to the millisecond below.
fn whole(d: Duration) -> Duration {
    if d >= Duration::from_secs(1) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests;
