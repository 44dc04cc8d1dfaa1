//! `ecs-recycler dashboard`: read-only pages over the store, served by the
//! binary itself on loopback by default — the requests, schedules and
//! policies with their phases and next runs ([`pages::overview`]), and a
//! page per record: a request's run drawn as an SVG ([`svg`]), its events,
//! plan, gates and hooks, reloading while the run is under way.
//!
//! What a reader must know: it changes nothing. Every route is a GET that
//! reads the store the way `get` and `describe` do (any other method is
//! refused with 405 by the router), and every page is whole: styles and
//! the one small script are inline and the Content-Security-Policy allows
//! nothing from elsewhere, so it works with no network beyond the store.

mod pages;
mod svg;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use maud::Markup;

use crate::cli::CliError;
use crate::cli::policies;
use crate::cli::present;
use crate::cli::records::read;
use crate::store::{Kind, Store};

/// Inline styles and scripts of the page itself; nothing from elsewhere.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes over `store`: GET only.
pub fn router<S: Store>(store: Arc<S>) -> Router {
    Router::new()
        .route("/", get(overview::<S>))
        .route("/requests/{name}", get(request::<S>))
        .route("/schedules/{name}", get(described::<S>))
        .route("/policies/{name}", get(described::<S>))
        .with_state(store)
}

/// Serves the dashboard on `addr` until `stop` resolves; says where on
/// `ready` once listening (port 0 picks one).
pub async fn serve<S: Store>(
    store: Arc<S>,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Unreachable(format!("cannot listen on {addr}: {e}")))?;
    ready(bound);
    axum::serve(listener, router(store))
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| CliError::Unreachable(format!("the dashboard stopped: {e}")))
}

/// A page, with the headers every page carries.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// What a store that could not be read, or a record not there, shows.
fn trouble(title: &str, e: CliError) -> Response {
    let status = match e {
        CliError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    page(status, pages::problem(title, &e.to_string()))
}

async fn overview<S: Store>(State(store): State<Arc<S>>) -> Response {
    let listed = async {
        Ok::<_, CliError>((
            read(store.as_ref(), Kind::RecycleRequest, None).await?,
            read(store.as_ref(), Kind::RecycleSchedule, None).await?,
            read(store.as_ref(), Kind::RecyclePolicy, None).await?,
        ))
    };
    match listed.await {
        Ok((requests, schedules, policies)) => page(
            StatusCode::OK,
            pages::overview(&requests, &schedules, &policies, Utc::now()),
        ),
        Err(e) => trouble("Recycles", e),
    }
}

async fn request<S: Store>(State(store): State<Arc<S>>, Path(name): Path<String>) -> Response {
    match read(store.as_ref(), Kind::RecycleRequest, Some(&name)).await {
        Ok(found) => match found.first() {
            Some(record) => page(StatusCode::OK, pages::request(record, Utc::now())),
            None => trouble(&name, CliError::NotFound(format!("{name} not found"))),
        },
        Err(e) => trouble(&name, e),
    }
}

/// A schedule's or a policy's page, by the path it was asked under.
async fn described<S: Store>(
    State(store): State<Arc<S>>,
    uri: axum::http::Uri,
    Path(name): Path<String>,
) -> Response {
    let kind = if uri.path().starts_with("/policies/") {
        Kind::RecyclePolicy
    } else {
        Kind::RecycleSchedule
    };
    let record = match read(store.as_ref(), kind, Some(&name)).await {
        Ok(mut found) if !found.is_empty() => found.remove(0),
        Ok(_) => return trouble(&name, CliError::NotFound(format!("{name} not found"))),
        Err(e) => return trouble(&name, e),
    };
    let now = Utc::now();
    let text = match kind {
        Kind::RecyclePolicy => {
            let requests = policies::requests_of(store.as_ref(), &record).await;
            policies::describe(&record, &requests, now)
        }
        _ => present::describe_schedule(&record, now),
    };
    page(StatusCode::OK, pages::described(kind, &record, &text))
}

#[cfg(test)]
mod tests;
