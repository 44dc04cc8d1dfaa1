//! The reconcile loop's side of ECS's events ([`crate::operator::feed`]):
//! the listener that reads the queue and wakes the records this replica
//! holds, what each step tells the feed (what it waits on, the changes it
//! made), and what the feed tells the step (when to look again, when a
//! batch was seen serving). Without `--events-queue` every one of these is
//! a no-op and the loop polls as it always did.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::feed::{AfterStep, Effect};
use super::Reconciler;
use crate::request::status::RecycleStatus;
use crate::store::Store;

impl<S: Store> Reconciler<S> {
    /// Reads the events queue until `shutdown`, waking the records its
    /// events concern; `None` without a feed.
    pub(super) fn listen(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let feed = self.feed.clone()?;
        tracing::info!(queue = %feed.url(), "reading ECS's events as hints");
        Some(tokio::spawn(async move {
            while !*shutdown.borrow() {
                tokio::select! {
                    effects = feed.poll_once() => self.apply(effects),
                    _ = shutdown.changed() => {}
                }
            }
        }))
    }

    /// Wakes the records `effects` name that this replica holds (the holder
    /// of any other paces its own), each step shown done teaching its
    /// record's pace how long such a step takes.
    fn apply(&self, effects: Vec<Effect>) {
        let mut woke = false;
        for effect in effects {
            let Effect::Wake { name, at, settled } = effect else {
                continue;
            };
            if self.leases.fence(&name).is_none() {
                continue;
            }
            if let Some((began, done)) = settled {
                self.records.with(&name, |t| t.pace().settled(began, done));
            }
            self.records.wake(&name, instant(at));
            self.pool.metrics().events.wakes.inc();
            woke = true;
        }
        if woke {
            self.woken.notify_one();
        }
    }

    /// Tells readiness how the feed is, and when it stops being healthy
    /// looks at once at the steps that waited on it (polling from then on).
    pub(super) fn check_feed(&self) {
        let Some(feed) = &self.feed else {
            return;
        };
        self.health.events(feed.problem());
        let now = Instant::now();
        let mut hurried = false;
        for name in feed.turned_unhealthy() {
            if self.leases.fence(&name).is_some() {
                self.records.hurry(&name, now);
                hurried = true;
            }
        }
        if hurried {
            self.woken.notify_one();
        }
    }

    /// After a step: what its record waits on now.
    pub(super) fn watch(&self, after: AfterStep) {
        if let Some(feed) = &self.feed {
            let effects = feed.watch(after);
            self.apply(effects);
        }
    }

    /// `name` is no longer this replica's to step.
    pub(super) fn unwatch(&self, name: &str) {
        if let Some(feed) = &self.feed {
            feed.unwatch(name);
        }
    }

    /// When ECS's events showed `name`'s batch serving, for its decision.
    pub(super) fn serving_since(
        &self,
        name: &str,
        status: &RecycleStatus,
    ) -> Option<DateTime<Utc>> {
        self.feed.as_ref()?.serving_since(name, status)
    }

    /// The step changed the desired count or stopped tasks in `cluster`:
    /// ECS's events of it are due.
    pub(super) fn expect_events(&self, account: &str, cluster: &str) {
        if let Some(feed) = &self.feed {
            feed.expect(account, cluster);
        }
    }

    /// The next look at `name`, waiting for new tasks since `step`, as the
    /// feed paces it; `None`: as without events.
    pub(super) fn paced_by_events(&self, name: &str, step: DateTime<Utc>) -> Option<Duration> {
        let feed = self.feed.as_ref()?;
        let now = Utc::now();
        self.records
            .with(name, |t| feed.next_look(name, step, t.pace(), now))
    }
}

/// `at` on this replica's monotonic clock (now, if it is past).
fn instant(at: DateTime<Utc>) -> Instant {
    Instant::now() + (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}
