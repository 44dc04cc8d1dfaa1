//! ECS's events for what happens in the simulator — task state changes
//! (with `detail.version`), service actions, deployment state changes and
//! container instance state changes — in EventBridge's envelope, delivered
//! to an SQS queue as an EventBridge rule would, through a feed that can
//! drop, duplicate, delay and reorder them (seeded) or fall silent.
//!
//! Nothing is emitted until `events.sqsQueueUrl` is set in `/_sim/config`.
//! Emitting never waits: the scheduler hands events to a bounded queue that
//! a background sender empties (`sender`); `GET /_sim/events` (and the
//! timeline's `events`) count what was emitted, dropped, duplicated,
//! reordered, sent and lost.

pub mod detail;
mod feed;
mod sender;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::duration::serde_opt_duration;
use crate::model::ACCOUNT;
use crate::world::World;
use feed::{Faults, Feed};

pub const TASK_STATE_CHANGE: &str = "ECS Task State Change";
pub const SERVICE_ACTION: &str = "ECS Service Action";
pub const DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";
pub const INSTANCE_STATE_CHANGE: &str = "ECS Container Instance State Change";

/// The simulator's event feed: where it goes, its faults, and its counts.
pub struct Events {
    queue_url: Option<String>,
    feed: Feed,
    sender: Option<sender::Sender>,
    by_type: BTreeMap<&'static str, u64>,
}

impl Events {
    pub fn new(seed: u64) -> Self {
        Self {
            queue_url: None,
            feed: Feed::new(seed),
            sender: None,
            by_type: BTreeMap::new(),
        }
    }

    fn on(&self) -> bool {
        self.queue_url.is_some()
    }
}

/// `events` in `/_sim/config`; a new one replaces the whole of the old one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsConfig {
    /// The queue to send to; events are off without one.
    sqs_queue_url: Option<String>,
    #[serde(default)]
    drop: f64,
    #[serde(default)]
    duplicate: f64,
    #[serde(default, with = "serde_opt_duration")]
    delay: Option<std::time::Duration>,
    #[serde(default)]
    reorder: bool,
    /// How far an event may be held back when reordering (1 s by default).
    #[serde(default, with = "serde_opt_duration")]
    reorder_window: Option<std::time::Duration>,
    #[serde(default)]
    silent: bool,
}

impl EventsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [("drop", self.drop), ("duplicate", self.duplicate)] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!(
                    "events.{name}: {v} is not a fraction between 0 and 1"
                ));
            }
        }
        out
    }
}

impl World {
    /// Applies an `events` configuration; starts (or replaces) the sender.
    pub fn configure_events(&mut self, config: EventsConfig) -> Result<(), String> {
        let sender = match &config.sqs_queue_url {
            Some(url) => Some(sender::start(url, &self.arns.region)?),
            None => None,
        };
        let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        self.events.feed.faults = Faults {
            drop: config.drop,
            duplicate: config.duplicate,
            delay: secs(config.delay),
            reorder_window: if config.reorder {
                config.reorder_window.map_or(1.0, |d| d.as_secs_f64())
            } else {
                0.0
            },
            silent: config.silent,
        };
        self.events.queue_url = config.sqs_queue_url;
        self.events.sender = sender;
        Ok(())
    }

    /// Emits one event in EventBridge's envelope.
    pub fn emit(
        &mut self,
        detail_type: &'static str,
        resources: Vec<String>,
        detail: Value,
        at: f64,
    ) {
        if !self.events.on() {
            return;
        }
        let envelope = json!({
            "version": "0",
            "id": self.random_uuid(),
            "detail-type": detail_type,
            "source": "aws.ecs",
            "account": ACCOUNT,
            "time": detail::iso_seconds(self.epoch(at)),
            "region": self.arns.region,
            "resources": resources,
            "detail": detail,
        });
        *self.events.by_type.entry(detail_type).or_default() += 1;
        self.events.feed.push(envelope.to_string(), at);
    }

    /// A task changed: its "ECS Task State Change".
    pub fn emit_task_change(&mut self, arn: &str, at: f64) {
        if !self.events.on() {
            return;
        }
        if let Some(d) = detail::task(self, arn, at) {
            self.emit(TASK_STATE_CHANGE, vec![arn.to_string()], d, at);
        }
    }

    /// A container instance changed: its version grows, and its event.
    pub fn emit_instance_change(&mut self, arn: &str, at: f64) {
        if let Some(ci) = self.capacity.instances.get_mut(arn) {
            ci.version += 1;
        }
        if !self.events.on() {
            return;
        }
        if let Some(d) = detail::instance(self, arn, at) {
            self.emit(INSTANCE_STATE_CHANGE, vec![arn.to_string()], d, at);
        }
    }

    /// A service action (SERVICE_STEADY_STATE and the like).
    pub fn emit_service_action(
        &mut self,
        key: &(String, String),
        event_type: &str,
        name: &str,
        extra: Value,
        at: f64,
    ) {
        if !self.events.on() {
            return;
        }
        let d = detail::service_action(self, &key.0, event_type, name, extra, at);
        let arn = self.arns.service(&key.0, &key.1);
        self.emit(SERVICE_ACTION, vec![arn], d, at);
    }

    /// A deployment's state change (SERVICE_DEPLOYMENT_IN_PROGRESS, ...).
    pub fn emit_deployment(
        &mut self,
        key: &(String, String),
        event_type: &str,
        name: &str,
        id: &str,
        reason: String,
        at: f64,
    ) {
        if !self.events.on() {
            return;
        }
        let d = detail::deployment(self, event_type, name, id, reason, at);
        let arn = self.arns.service(&key.0, &key.1);
        self.emit(DEPLOYMENT_STATE_CHANGE, vec![arn], d, at);
    }

    /// Hands the events due by `now` to the sender, never waiting for it.
    pub fn flush_events(&mut self, now: f64) {
        let due = self.events.feed.release(now);
        for body in due {
            let taken = self
                .events
                .sender
                .as_ref()
                .is_some_and(|s| s.queue.try_send(body).is_ok());
            if !taken {
                self.events.feed.counts.overflowed += 1;
            }
        }
    }

    /// `GET /_sim/events`: the feed's settings and counts.
    pub fn events_summary(&self) -> Value {
        let c = &self.events.feed.counts;
        let (sent, failed) = self.events.sender.as_ref().map_or((0, 0), |s| {
            (
                s.sent.sent.load(Ordering::Relaxed),
                s.sent.failed.load(Ordering::Relaxed),
            )
        });
        let f = &self.events.feed.faults;
        json!({
            "sqsQueueUrl": self.events.queue_url,
            "drop": f.drop, "duplicate": f.duplicate, "delay": f.delay,
            "reorderWindow": f.reorder_window, "silent": f.silent,
            "emitted": c.emitted, "dropped": c.dropped, "duplicated": c.duplicated,
            "reordered": c.reordered, "released": c.released, "held": self.events.feed.held(),
            "sent": sent, "failed": failed, "overflowed": c.overflowed,
            "byType": self.events.by_type,
        })
    }
}
