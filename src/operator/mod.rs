//! The operator: the shell around the pure decision. It claims records
//! through leases ([`crate::leases`]), observes their services, persists each
//! decision before acting on it, and requeues ([`reconciler`], one step and
//! its outcome in [`step`], per-record state in [`records`]), woken early
//! by ECS's own events when it reads them ([`feed`]); it tells its
//! platform how it is ([`health`], [`crate::metrics`]) and names itself
//! ([`replica`]); records of a kind it does not know are reported
//! ([`strays`]).
//!
//! [`Operator::builder`] is the one way to start one — for the command
//! line, the sandbox, the benchmark and the tests alike: the reconcile
//! loop, the schedule loop, the policy loop, and optionally the HTTP endpoints.

mod balance;
mod feed;
pub(crate) mod health;
mod reconciler;
mod records;
pub(crate) mod replica;
mod strays;
#[cfg(all(test, feature = "simulator"))]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::aws::ClientPool;
use crate::aws::limit::ApiShare;
use crate::aws::sdk::Timeouts;
use crate::clock::{Clock, SystemClock};
use crate::fence::LeaseTerms;
use crate::metrics::Metrics;
use crate::notify::config::NotifyConfig;
use crate::notify::deliver::Notifier;
use crate::policy::{PolicyLoop, PolicySettings};
use crate::schedule::{ScheduleSettings, Scheduler};
use crate::store::Store;
pub use feed::EventsConfig;
pub use health::{BindError, healthcheck, http_get};
pub use replica::default_id;

use health::Health;
use reconciler::Reconciler;

/// glibc gives threads that allocate at once arenas of their own, up to
/// eight per core, and keeps what each has held; tokio moves work between
/// its threads, so an operator with many requests ends up holding memory in
/// all of them. Two arenas held the scale benchmark's peak under 64 MiB
/// where the default went past 70 (docs/performance.md). `MALLOC_ARENA_MAX`,
/// when set, is the user's choice and stands. Call it first in `main`, before any thread starts.
pub fn bound_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a glibc tunable; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// How one replica runs the loop.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub replica_id: String,
    /// Records reconciled at once.
    pub concurrency: usize,
    /// How often the loop looks for work, and how soon a record waiting for
    /// a transition it cannot predict is looked at again.
    pub poll_interval: Duration,
    /// How soon a record that only a person can move on (paused, or waiting
    /// for another request on its service) is looked at again; a change to
    /// the record wakes it at once.
    pub idle_poll_interval: Duration,
    /// How often each policy looks at its fleet (a changed policy looks at once).
    pub policy_interval: Duration,
    pub lease_duration: Duration,
    /// How long finished records are kept before the store may forget them.
    pub retention: Duration,
    /// The share of AWS's throttling buckets the operator may spend, all
    /// replicas together (each spends its part).
    pub api_share: ApiShare,
    /// The deadlines of every AWS call (the SDK configuration carries them;
    /// here to check them against the lease).
    pub aws_timeouts: Timeouts,
}

impl OperatorConfig {
    /// Every flag out of range, each with the reason.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.concurrency == 0 {
            out.push("--concurrency must be at least 1".to_string());
        }
        if self.poll_interval.is_zero() {
            out.push("--poll-interval must be longer than 0s".into());
        }
        if self.poll_interval * 2 >= self.lease_duration {
            out.push(format!(
                "--poll-interval ({}) must be less than half of --lease-duration ({}), or leases lapse between renewals",
                crate::duration::format(self.poll_interval),
                crate::duration::format(self.lease_duration)
            ));
        }
        if self.idle_poll_interval < self.poll_interval {
            out.push(format!(
                "--idle-poll-interval ({}) must not be shorter than --poll-interval ({}): it is the slow pace",
                crate::duration::format(self.idle_poll_interval),
                crate::duration::format(self.poll_interval)
            ));
        }
        if self.policy_interval < self.poll_interval {
            out.push(format!(
                "--policy-interval ({}) must not be shorter than --poll-interval ({})",
                crate::duration::format(self.policy_interval),
                crate::duration::format(self.poll_interval)
            ));
        }
        if self.replica_id.trim().is_empty() {
            out.push("--replica-id must not be empty".into());
        }
        out.extend(self.api_share.problems());
        out.extend(self.aws_timeouts.problems());
        out.extend(self.lease_terms().problems(self.aws_timeouts.attempt));
        out
    }

    pub(crate) fn lease_terms(&self) -> LeaseTerms {
        LeaseTerms {
            duration: self.lease_duration,
        }
    }

    /// What the schedule loop reads of these settings.
    pub fn schedule_settings(&self) -> ScheduleSettings {
        ScheduleSettings {
            replica_id: self.replica_id.clone(),
            lease: self.lease_terms(),
            poll_interval: self.poll_interval,
        }
    }

    /// What the policy loop reads of these settings.
    pub fn policy_settings(&self) -> PolicySettings {
        PolicySettings {
            replica_id: self.replica_id.clone(),
            lease: self.lease_terms(),
            poll_interval: self.poll_interval,
            policy_interval: self.policy_interval,
        }
    }
}

/// How to start an operator; see [`Operator::builder`].
pub struct OperatorBuilder<S: Store> {
    store: Arc<S>,
    sdk: aws_config::SdkConfig,
    config: OperatorConfig,
    notify: NotifyConfig,
    http: Option<SocketAddr>,
    clock: Arc<dyn Clock>,
    /// Whether `/metrics` is served (see [`OperatorBuilder::prometheus`]).
    prometheus: bool,
    events: Option<EventsConfig>,
}

/// An operator running in this process: its loops, and its endpoints if asked for.
pub struct Operator {
    stop: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    http: Option<SocketAddr>,
    metrics: Arc<Metrics>,
}

impl Operator {
    /// An operator on `store`, reaching AWS with `sdk` (which should come
    /// from [`crate::aws::sdk::load`], so every call has its deadlines).
    pub fn builder<S: Store>(
        store: Arc<S>,
        sdk: aws_config::SdkConfig,
        config: OperatorConfig,
    ) -> OperatorBuilder<S> {
        OperatorBuilder {
            store,
            sdk,
            config,
            notify: NotifyConfig::default(),
            http: None,
            clock: Arc::new(SystemClock),
            prometheus: true,
            events: None,
        }
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served, if they are.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops both loops: the steps in flight finish, every lease is given back.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for running in self.loops {
            if let Err(e) = running.await {
                tracing::error!(error = %e, "an operator loop failed");
            }
        }
        if let Some(server) = self.server {
            let _ = server.await;
        }
    }
}

impl<S: Store> OperatorBuilder<S> {
    /// How notices are sent (by default: no SMTP relay; SNS and webhooks work).
    pub fn notify(mut self, notify: NotifyConfig) -> Self {
        self.notify = notify;
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `addr` (port 0 picks one).
    pub fn serve(mut self, addr: SocketAddr) -> Self {
        self.http = Some(addr);
        self
    }

    /// Whether the endpoints include `/metrics` (on by default; off when the
    /// metrics go to the log in EMF alone).
    pub fn prometheus(mut self, serve: bool) -> Self {
        self.prometheus = serve;
        self
    }

    /// The schedule loop's clock (tests move time on by hand).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reads ECS's events from an SQS queue as hints (see [`feed`]).
    pub fn events(mut self, events: EventsConfig) -> Self {
        self.events = Some(events);
        self
    }

    /// Starts the reconcile loop, the schedule loop and the endpoints.
    pub async fn start(self) -> Result<Operator, health::BindError> {
        let metrics = Metrics::new();
        let health = Health::new(self.config.poll_interval, self.config.lease_duration);
        let (stop, stopped) = watch::channel(false);
        let (http, server) = match self.http {
            Some(addr) => {
                let mut http_stopped = stopped.clone();
                let (bound, server) = health::serve(
                    addr,
                    health.clone(),
                    metrics.clone(),
                    self.prometheus,
                    async move {
                        let _ = http_stopped.changed().await;
                    },
                )
                .await?;
                if self.prometheus {
                    tracing::info!(addr = %bound, "serving /healthz, /readyz and /metrics");
                } else {
                    tracing::info!(addr = %bound, "serving /healthz and /readyz (metrics go to the log in EMF)");
                }
                (Some(bound), Some(server))
            }
            None => (None, None),
        };
        let notifier = Notifier::new(self.notify, &self.sdk);
        let hooks = crate::hooks::call::Caller::new(&self.sdk);
        let pool = Arc::new(ClientPool::new(
            self.sdk,
            self.config.api_share.clone(),
            metrics.clone(),
        ));
        let scheduler = Scheduler::new(
            self.store.clone(),
            self.config.schedule_settings(),
            self.clock.clone(),
        );
        let policies = PolicyLoop::new(
            self.store.clone(),
            pool.clone(),
            self.config.policy_settings(),
            self.clock,
        );
        let feed = self.events.as_ref().map(|events| {
            feed::Feed::new(
                events,
                pool.clone(),
                self.config.lease_duration,
                self.config.poll_interval,
            )
        });
        let reconciler =
            Reconciler::new(self.store, pool, self.config, health, notifier, hooks, feed);
        let loops = vec![
            tokio::spawn(reconciler.run(stopped.clone())),
            tokio::spawn(scheduler.run(stopped.clone())),
            tokio::spawn(policies.run(stopped)),
        ];
        Ok(Operator {
            stop,
            loops,
            server,
            http,
            metrics,
        })
    }
}
