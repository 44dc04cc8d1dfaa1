//! The operator's HTTP face for its platform: `/healthz` (the loop is
//! alive), `/readyz` (the store answers, leases are renewing, AWS answers
//! and, when read, ECS's events flow) and
//! `/metrics` (Prometheus text format); and the client side of the health
//! check, for `ecs-recycler healthcheck` in an image with no shell or curl.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// What the loop tells the endpoints about itself.
pub(crate) struct Health {
    started: Instant,
    state: Mutex<HealthState>,
    /// The loop is stuck when it has not beaten for this long.
    stuck_after: Duration,
    /// The store is unreachable when no listing succeeded for this long.
    stale_after: Duration,
}

#[derive(Default)]
struct HealthState {
    heartbeat: Option<Instant>,
    listed: Option<Instant>,
    store_error: Option<String>,
    lease_error: Option<String>,
    /// AWS services whose last call got no answer, each as a sentence.
    aws_unanswered: Vec<String>,
    /// Why ECS's events cannot be relied on, when they are read and cannot.
    events: Option<String>,
}

impl Health {
    pub(crate) fn new(poll: Duration, lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            state: Mutex::new(HealthState::default()),
            stuck_after: (poll * 30).max(Duration::from_secs(300)),
            stale_after: (poll * 3).max(lease),
        })
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HealthState> {
        self.state.lock()
    }

    pub(crate) fn beat(&self) {
        self.lock().heartbeat = Some(Instant::now());
    }

    pub(crate) fn listed(&self, result: Result<(), String>) {
        let mut s = self.lock();
        match result {
            Ok(()) => {
                s.listed = Some(Instant::now());
                s.store_error = None;
            }
            Err(e) => s.store_error = Some(e),
        }
    }

    /// A lease renewal's outcome; one failure makes the replica unready until one succeeds.
    pub(crate) fn lease(&self, result: Result<(), String>) {
        self.lock().lease_error = result.err();
    }

    /// The AWS services whose last call got no answer (none: all answer).
    pub(crate) fn aws(&self, unanswered: Vec<String>) {
        self.lock().aws_unanswered = unanswered;
    }

    /// Why ECS's events cannot be relied on now (`None`: they can, or are not read).
    pub(crate) fn events(&self, problem: Option<String>) {
        self.lock().events = problem;
    }

    /// `Err` says why the loop is not alive.
    pub(crate) fn alive(&self) -> Result<(), String> {
        let s = self.lock();
        let last = s.heartbeat.unwrap_or(self.started);
        let quiet = last.elapsed();
        if quiet > self.stuck_after {
            return Err(format!(
                "the reconcile loop has not run for {}",
                crate::duration::format(quiet)
            ));
        }
        Ok(())
    }

    /// `Err` says why this replica should not be sent work.
    pub(crate) fn ready(&self) -> Result<(), String> {
        self.alive()?;
        let s = self.lock();
        match s.listed {
            None => {
                return Err(match &s.store_error {
                    Some(e) => format!("the store has not answered yet: {e}"),
                    None => "the store has not been read yet".into(),
                });
            }
            Some(at) if at.elapsed() > self.stale_after => {
                return Err(format!(
                    "the store has not answered for {}{}",
                    crate::duration::format(at.elapsed()),
                    s.store_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
            Some(_) => {}
        }
        if let Some(e) = &s.lease_error {
            return Err(format!("leases are not renewing: {e}"));
        }
        if !s.aws_unanswered.is_empty() {
            return Err(format!(
                "AWS is not answering: {}",
                s.aws_unanswered.join("; ")
            ));
        }
        if let Some(why) = &s.events {
            return Err(why.clone());
        }
        Ok(())
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

fn check(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// The endpoints; `/metrics` only when `prometheus` (the operator may
/// write its metrics to its log in EMF instead: `crate::emf`).
pub(crate) fn router(health: Arc<Health>, metrics: Arc<Metrics>, prometheus: bool) -> Router {
    let app = Router::new()
        .route(
            "/healthz",
            get(|State(s): State<AppState>| async move { check(s.health.alive()) }),
        )
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move { check(s.health.ready()) }),
        );
    let app = if !prometheus {
        app
    } else {
        app.route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.render(),
                )
                    .into_response()
            }),
        )
    };
    app.with_state(AppState { health, metrics })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the health and metrics endpoints: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds `addr` and serves the endpoints until `stop` resolves; answers the
/// address actually bound (port 0 picks a free one).
pub(crate) async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    prometheus: bool,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BindError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    let app = router(health, metrics, prometheus);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the health and metrics endpoints stopped");
        }
    });
    Ok((bound, server))
}

/// GET `url` (plain `http://host:port/path`); `Ok` on a 2xx answer, else
/// a sentence saying what was answered or why nothing was.
pub async fn healthcheck(url: &str, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, http_get(url)).await {
        Ok(Ok((status, _))) if (200..300).contains(&status) => Ok(()),
        Ok(Ok((status, body))) => Err(format!("{url} answered {status}: {}", body.trim())),
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Err(_) => Err(format!(
            "{url} did not answer within {}",
            crate::duration::format(within)
        )),
    }
}

/// One HTTP GET: (status, body). Plain http is what the health and task
/// metadata endpoints speak; reqwest does the protocol.
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?
        .get(url)
        .send()
        .await
        .map_err(|e| {
            // reqwest's own words are "error sending request"; the cause says what happened.
            let mut cause = String::new();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            let verb = if e.is_connect() {
                "cannot connect to"
            } else {
                "cannot reach"
            };
            format!("{verb} {url}: {cause}")
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_follows_the_store_and_the_leases_and_the_check_reads_it() {
        let health = Health::new(Duration::from_millis(50), Duration::from_secs(1));
        let metrics = Metrics::new();
        let (addr, _server) = serve(
            "127.0.0.1:0".parse().unwrap(),
            health.clone(),
            metrics,
            true,
            std::future::pending(),
        )
        .await
        .unwrap();
        let url = |p: &str| format!("http://{addr}{p}");
        let within = Duration::from_secs(2);
        assert!(healthcheck(&url("/healthz"), within).await.is_ok());
        let not_ready = healthcheck(&url("/readyz"), within).await.unwrap_err();
        assert!(
            not_ready.contains("503") && not_ready.contains("store"),
            "{not_ready}"
        );
        health.listed(Ok(()));
        assert!(healthcheck(&url("/readyz"), within).await.is_ok());
        health.lease(Err("the store could not be reached".into()));
        let not_ready = healthcheck(&url("/readyz"), within).await.unwrap_err();
        assert!(not_ready.contains("leases are not renewing"), "{not_ready}");
        health.lease(Ok(()));
        assert!(healthcheck(&url("/readyz"), within).await.is_ok());
        health.aws(vec!["ECS: ecs:ListTasks got no answer".into()]);
        let not_ready = healthcheck(&url("/readyz"), within).await.unwrap_err();
        assert!(
            not_ready.contains("AWS is not answering: ECS: ecs:ListTasks"),
            "{not_ready}"
        );
        health.aws(Vec::new());
        assert!(healthcheck(&url("/readyz"), within).await.is_ok());
        health.events(Some("ECS's events queue q cannot be read: denied".into()));
        let not_ready = healthcheck(&url("/readyz"), within).await.unwrap_err();
        assert!(
            not_ready.contains("events queue q cannot be read"),
            "{not_ready}"
        );
        health.events(None);
        assert!(healthcheck(&url("/readyz"), within).await.is_ok());
        let refused = healthcheck("http://127.0.0.1:1/healthz", within)
            .await
            .unwrap_err();
        assert!(refused.contains("cannot connect"), "{refused}");
    }
}
