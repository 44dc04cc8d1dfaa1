//! The operator's Prometheus metrics: one registry per operator, the typed
//! families the loop and the AWS layer update, and their text exposition for
//! `/metrics`. No global state: each operator (and each test) has its own.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The IAM action, e.g. `ecs:DescribeServices`.
    pub operation: String,
    /// `ok`, `throttled`, `refused` or `transient`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    /// The throttling bucket, e.g. `service-modify` (`api-limits`).
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DetailTypeLabel {
    /// ECS's `detail-type`, e.g. `task_state_change`.
    pub detail_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Every metric the operator exposes.
pub struct Metrics {
    registry: Registry,
    /// Reconciles of one record, by how they ended.
    pub reconciles: Family<OutcomeLabel, Counter>,
    /// One step: observe, decide, persist, act.
    pub step_seconds: Histogram,
    /// Every AWS call attempt, by IAM action and outcome.
    pub aws_calls: Family<CallLabels, Counter>,
    /// ThrottlingException answers, by IAM action.
    pub throttles: Family<OperationLabel, Counter>,
    /// Seconds spent waiting for the client-side rate limit or backing off.
    pub throttle_wait_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Seconds waited for a token of the client-side bucket, by category
    /// (summed over calls waiting at once).
    pub token_wait_seconds: Family<CategoryLabel, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// The live replicas this one splits the API share with, as last counted.
    pub replicas: Gauge,
    /// Active requests in the store, by phase, as of the last listing.
    pub active_requests: Family<PhaseLabel, Gauge>,
    /// Leases taken from another replica whose lease had expired.
    pub lease_takeovers: Counter,
    /// Listings of the active requests asked of the store (each one reads
    /// every active item: on DynamoDB, read capacity).
    pub store_listings: Counter,
    /// Tasks stopped by this operator (StopTask answered).
    pub tasks_recycled: Counter,
    /// RecyclePolicy looks at a fleet, by outcome (`ok`, `failed`).
    pub policy_looks: Family<OutcomeLabel, Counter>,
    /// RecycleRequests a RecyclePolicy made.
    pub policy_requests: Counter,
    /// Hook calls, by answer.
    pub hook_calls: Family<OutcomeLabel, Counter>,
    /// RecycleRequests that ended, by the phase they ended in.
    pub requests_finished: Family<PhaseLabel, Counter>,
    /// ECS's events, when the operator reads them (`--events-queue`).
    pub events: EventMetrics,
}

/// The metrics of ECS's events read as hints (`--events-queue`).
pub struct EventMetrics {
    /// Events read from the events queue, by `detail-type`.
    pub received: Family<DetailTypeLabel, Counter>,
    /// Events read and left aside, by why: duplicate, stale, foreign, malformed.
    pub ignored: Family<ReasonLabel, Counter>,
    /// Seconds from an event's `time` (to the second) to its handling.
    pub lag_seconds: Histogram,
    /// 1 while the events queue answers and is not silent past its heartbeat.
    pub feed_healthy: Gauge,
    /// Looks of records brought forward or aimed by events.
    pub wakes: Counter,
}

impl EventMetrics {
    fn new() -> Self {
        Self {
            received: Family::default(),
            ignored: Family::default(),
            // 10 ms to about 80 s.
            lag_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            feed_healthy: Gauge::default(),
            wakes: Counter::default(),
        }
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "events_received",
            "ECS's events read from the events queue, by detail-type",
            self.received.clone(),
        );
        r.register(
            "events_ignored",
            "ECS's events read and left aside (deleted), by reason: duplicate, stale, foreign, malformed",
            self.ignored.clone(),
        );
        r.register(
            "event_lag_seconds",
            "Seconds from an event's time (to the second) to its handling by the operator",
            self.lag_seconds.clone(),
        );
        r.register(
            "events_feed_healthy",
            "1 while the events queue answers and has not been silent past its heartbeat after a change the operator made; 0 otherwise (services are then looked at by polling)",
            self.feed_healthy.clone(),
        );
        r.register(
            "event_wakes",
            "Looks at records brought forward or aimed by ECS's events",
            self.wakes.clone(),
        );
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut metrics = Self {
            registry: Registry::with_prefix("ecs_recycler"),
            reconciles: Family::<OutcomeLabel, Counter>::default(),
            // 1 ms to about 33 s.
            step_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            aws_calls: Family::<CallLabels, Counter>::default(),
            throttles: Family::<OperationLabel, Counter>::default(),
            throttle_wait_seconds: Counter::<f64, std::sync::atomic::AtomicU64>::default(),
            token_wait_seconds:
                Family::<CategoryLabel, Counter<f64, std::sync::atomic::AtomicU64>>::default(),
            replicas: Gauge::default(),
            active_requests: Family::<PhaseLabel, Gauge>::default(),
            lease_takeovers: Counter::default(),
            store_listings: Counter::default(),
            tasks_recycled: Counter::default(),
            policy_looks: Family::<OutcomeLabel, Counter>::default(),
            policy_requests: Counter::default(),
            hook_calls: Family::<OutcomeLabel, Counter>::default(),
            requests_finished: Family::<PhaseLabel, Counter>::default(),
            events: EventMetrics::new(),
        };
        metrics.register();
        Arc::new(metrics)
    }

    /// Registers every metric with its name and help.
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "reconciles",
            "Reconciles of one record, by how they ended",
            self.reconciles.clone(),
        );
        r.register(
            "step_duration_seconds",
            "One reconcile step: observe, decide, persist and act",
            self.step_seconds.clone(),
        );
        r.register(
            "aws_calls",
            "AWS call attempts by IAM action and outcome (ok, throttled, refused, transient)",
            self.aws_calls.clone(),
        );
        r.register(
            "aws_throttles",
            "ThrottlingException answers by IAM action",
            self.throttles.clone(),
        );
        r.register(
            "aws_throttle_wait_seconds",
            "Seconds spent waiting for the client-side rate limit or backing off after throttling",
            self.throttle_wait_seconds.clone(),
        );
        r.register(
            "api_token_wait_seconds",
            "Seconds waited for a token of the client-side bucket of each throttling category (summed over calls waiting at once)",
            self.token_wait_seconds.clone(),
        );
        r.register(
            "replicas",
            "Live replicas (this one included) the API share is split between, as last counted from the leases",
            self.replicas.clone(),
        );
        r.register(
            "active_requests",
            "Active RecycleRequests in the store by phase, as of the last listing",
            self.active_requests.clone(),
        );
        r.register(
            "lease_takeovers",
            "Leases taken over from another replica after theirs expired",
            self.lease_takeovers.clone(),
        );
        r.register(
            "store_listings",
            "Listings of the active RecycleRequests asked of the store (one a poll interval at most; each reads every active item)",
            self.store_listings.clone(),
        );
        r.register(
            "tasks_recycled",
            "Tasks stopped by this operator to be replaced",
            self.tasks_recycled.clone(),
        );
        r.register(
            "policy_looks",
            "RecyclePolicy looks at a fleet by outcome (ok, failed)",
            self.policy_looks.clone(),
        );
        r.register(
            "policy_requests",
            "RecycleRequests made by RecyclePolicies",
            self.policy_requests.clone(),
        );
        r.register(
            "hook_calls",
            "Hook calls by answer: succeeded, failed, in_progress, unanswered (no verdict: a timeout, a refused connection, an HTTP error), not_sent (the lease lapsed first)",
            self.hook_calls.clone(),
        );
        r.register(
            "requests_finished",
            "RecycleRequests that ended, by the phase they ended in (Succeeded, Failed, Cancelled, WindowClosed), counted by the replica that wrote the end",
            self.requests_finished.clone(),
        );
        self.events.register(r);
    }

    /// The text exposition format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// A request's end, written by this replica.
    pub fn request_finished(&self, phase: &'static str) {
        self.requests_finished
            .get_or_create(&PhaseLabel { phase })
            .inc();
    }

    pub fn reconciled(&self, outcome: &'static str) {
        self.reconciles
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn aws_call(&self, operation: &str, outcome: &'static str) {
        self.aws_calls
            .get_or_create(&CallLabels {
                operation: operation.to_string(),
                outcome,
            })
            .inc();
        if outcome == "throttled" {
            self.throttles
                .get_or_create(&OperationLabel {
                    operation: operation.to_string(),
                })
                .inc();
        }
    }

    /// Sets the gauge of each phase from one listing: the caller names
    /// every phase a request can be active in, those with none at 0.
    pub fn set_active(&self, counts: &[(&'static str, i64)]) {
        for (phase, n) in counts {
            self.active_requests
                .get_or_create(&PhaseLabel { phase })
                .set(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_families_with_their_labels() {
        let m = Metrics::new();
        m.aws_call("ecs:StopTask", "ok");
        m.aws_call("ecs:ListTasks", "throttled");
        m.tasks_recycled.inc();
        m.set_active(&[("Pending", 0), ("Recycling", 2)]);
        let text = m.render();
        assert!(
            text.contains(
                r#"ecs_recycler_aws_calls_total{operation="ecs:StopTask",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ecs_recycler_aws_throttles_total{operation="ecs:ListTasks"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ecs_recycler_active_requests{phase="Recycling"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ecs_recycler_active_requests{phase="Pending"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("ecs_recycler_tasks_recycled_total 1"),
            "{text}"
        );
    }
}
