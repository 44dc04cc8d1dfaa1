//! A wire-compatible stand-in for Amazon ECS, Application Auto Scaling and
//! Elastic Load Balancing v2 with a real service scheduler, health-checked
//! load-balancer targets, a traffic model, EC2 capacity (container
//! instances, capacity providers over simulated Auto Scaling groups), task
//! scale-in protection, Fargate Spot interruptions, ECS's events delivered
//! to SQS, injected faults and an audit timeline. The official SDKs, boto3
//! and the AWS CLI talk to it as they would to AWS; tests check the
//! operator's invariants from its timeline.
//!
//! It knows nothing of the operator: everything it offers is its wire
//! protocol and its `/_sim/` control API (both also in-process, through
//! [`Simulator`]). Start it in-process with [`Simulator::start`], or from the
//! command line as `ecs-recycler sim`.

mod autoscaling;
mod buckets;
mod capacity;
pub mod control;
mod duration;
mod ecs;
mod elb;
mod events;
pub mod faults;
mod http;
pub mod model;
mod protection;
mod scheduler;
mod service_targets;
mod spot;
mod tags;
mod timeline;
mod traffic;
mod wire;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use buckets::RealisticThrottle;
pub use faults::{FaultProfile, ThrottleConfig, TimingOverrides, Timings};
pub use wire::ApiError;

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub region: String,
    pub timings: Timings,
    /// How often the world advances on its own, between requests.
    pub tick: Duration,
    /// Seeds every random choice: jitter, faults, identifiers.
    pub seed: u64,
    /// ECS's published buckets per category, account and Region from the
    /// start (`throttle.realistic` in `/_sim/config` sets it later).
    pub realistic_throttling: Option<RealisticThrottle>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            region: "us-east-1".into(),
            timings: Timings {
                task_start: 5.0,
                task_healthy: 3.0,
                task_stop: 2.0,
                scheduler: 1.0,
                jitter: 0.2,
            },
            tick: Duration::from_millis(10),
            seed: 1,
            realistic_throttling: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    url: String,
    shared: http::Shared,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: JoinHandle<()>,
}

impl Simulator {
    pub async fn start(options: SimOptions) -> Result<Self, SimError> {
        let mut world = world::World::new(options.region.clone(), options.timings, options.seed);
        if let Some(realistic) = options.realistic_throttling {
            world.throttle.configure(ThrottleConfig {
                realistic: Some(realistic),
                ..ThrottleConfig::default()
            });
        }
        let shared = http::Shared(Arc::new(Mutex::new(world)));
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: options.listen,
            source,
        })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = http::router(shared.clone());
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        let ticking = shared.clone();
        let tick = options.tick;
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                drop(ticking.lock());
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            stop: Some(stop),
            server: Some(server),
            ticker,
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint for ECS, Application Auto
    /// Scaling and Elastic Load Balancing alike.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The audit timeline, as `GET /_sim/timeline` answers it.
    pub fn timeline(&self) -> Value {
        self.shared.lock().timeline_json()
    }

    /// Seconds since the simulator started: the timeline's clock.
    pub fn now(&self) -> f64 {
        self.shared.lock().now()
    }

    /// `POST /_sim/config`, in-process.
    pub fn configure(&self, body: Value) -> Result<Value, String> {
        control::set_config(&mut self.shared.lock(), body)
    }

    /// `POST /_sim/services/{cluster}/{service}`, in-process.
    pub fn configure_service(
        &self,
        cluster: &str,
        service: &str,
        body: Value,
    ) -> Result<Value, String> {
        control::set_service(&mut self.shared.lock(), cluster, service, body)
    }

    /// `POST /_sim/clusters/{cluster}`, in-process.
    pub fn configure_cluster(&self, cluster: &str, body: Value) -> Result<Value, String> {
        control::set_cluster(&mut self.shared.lock(), cluster, body)
    }

    /// `POST /_sim/scale`, in-process: the scaling policy asks for `desired` now.
    pub fn policy_scale(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<Value, String> {
        let mut world = self.shared.lock();
        let now = world.now();
        let body =
            serde_json::json!({"cluster": cluster, "service": service, "desiredCount": desired});
        control::scale(&mut world, body, now)
    }

    /// `POST /_sim/age`, in-process: makes a service's tasks (or one task)
    /// older, as if started `by` earlier.
    pub fn age(&self, body: Value) -> Result<Value, String> {
        control::age(&mut self.shared.lock(), body)
    }

    /// `POST /_sim/policies`, in-process.
    pub fn set_policy(&self, body: Value) -> Result<Value, String> {
        let mut world = self.shared.lock();
        let now = world.now();
        control::set_policy(&mut world, body, now)
    }

    /// `POST /_sim/traffic`, in-process.
    pub fn set_traffic(&self, body: Value) -> Result<Value, String> {
        let mut world = self.shared.lock();
        let now = world.now();
        control::set_traffic(&mut world, body, now)
    }

    /// `POST /_sim/auto-scaling-groups`, in-process.
    pub fn set_auto_scaling_group(&self, body: Value) -> Result<Value, String> {
        let mut world = self.shared.lock();
        let now = world.now();
        capacity::scaling::set_group(&mut world, body, now)
    }

    /// `GET /_sim/auto-scaling-groups/{name}`, in-process; `Null` for none.
    pub fn auto_scaling_group(&self, name: &str) -> Value {
        capacity::scaling::group_json(&self.shared.lock(), name)
    }

    /// `POST /_sim/spot-interruptions`, in-process.
    pub fn interrupt_spot(&self, body: Value) -> Result<Value, String> {
        let mut world = self.shared.lock();
        let now = world.now();
        spot::interrupt(&mut world, body, now)
    }

    /// `GET /_sim/events`, in-process: what the event feed emitted, dropped,
    /// duplicated, reordered, sent and lost.
    pub fn events(&self) -> Value {
        self.shared.lock().events_summary()
    }

    /// `GET /_sim/traffic?cluster=..&service=..`, in-process.
    pub fn traffic_summary(&self, cluster: &str, service: &str) -> Value {
        self.shared.lock().traffic_summary(cluster, service)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.ticker.abort();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ticker.abort();
    }
}
