//! The simulator's HTTP face: AWS JSON 1.1 requests dispatched on
//! `X-Amz-Target` to ECS or Application Auto Scaling, AWS Query requests
//! (a form with `Action`) to Elastic Load Balancing v2, and the `/_sim/`
//! control API. Signatures are accepted unchecked.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::faults::Caller;
use super::wire::{ApiError, parse_body};
use super::world::World;
use super::{autoscaling, control, ecs, elb};
use api_limits::Service;

const ECS_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
const AAS_PREFIX: &str = "AnyScaleFrontendService";

#[derive(Clone)]
pub struct Shared(pub Arc<Mutex<World>>);

impl Shared {
    /// The world brought up to now. A handler that panicked must not take
    /// the simulator down with it, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        let mut world = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = world.now();
        world.advance(now);
        world
    }
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/_sim/health",
            get(|| async { axum::Json(json!({"ok": true})) }),
        )
        .route("/_sim/timeline", get(timeline))
        .route("/_sim/config", get(get_config).post(post_config))
        .route("/_sim/services/{cluster}/{service}", post(post_service))
        .route("/_sim/clusters/{cluster}", post(post_cluster))
        .route("/_sim/scale", post(post_scale))
        .route("/_sim/policies", post(post_policy))
        .route("/_sim/age", post(post_age))
        .route("/_sim/traffic", get(get_traffic).post(post_traffic))
        .route("/_sim/auto-scaling-groups", post(post_group))
        .route("/_sim/auto-scaling-groups/{name}", get(get_group))
        .route("/_sim/spot-interruptions", post(post_spot))
        .route(
            "/_sim/events",
            get(|State(shared): State<Shared>| async move {
                axum::Json(shared.lock().events_summary())
            }),
        )
        .fallback(aws_api)
        .with_state(shared)
}

async fn aws_api(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Who called: the access key of the request's signature, so tests can
    // tell replicas apart in the timeline.
    // Its scope (`AKID/date/region/service/aws4_request`) names the Region.
    let scope: Vec<&str> = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split([',', ' ']).next())
        .map(|v| v.split('/').collect())
        .unwrap_or_default();
    let caller = scope.first().map(|k| k.to_string());
    let region = scope.get(2).map(|r| r.to_string());
    if target.is_empty()
        && let Some((action, params)) = elb::wire::parse_form(&body)
    {
        let (result, request_id, latency) = answer_elb(&shared, &action, params, caller, region);
        if let Some(delay) = latency {
            tokio::time::sleep(delay).await;
        }
        return elb_response(&action, result, &request_id);
    }
    let (result, request_id, latency) = answer(&shared, &target, &body, caller, region);
    // The change is made at once; only the answer is late, as with a slow API.
    if let Some(delay) = latency {
        tokio::time::sleep(delay).await;
    }
    aws_response(result, &request_id)
}

/// Handles one AWS call under the lock: (the answer, a request id, its latency).
fn answer(
    shared: &Shared,
    target: &str,
    body: &[u8],
    caller: Option<String>,
    region: Option<String>,
) -> (Result<Value, ApiError>, String, Option<std::time::Duration>) {
    let mut world = shared.lock();
    let now = world.now();
    let (service, op) = target.split_once('.').unwrap_or(("", target));
    let op = op.to_string();
    let parsed = parse_body(body);
    let params = match &parsed {
        Ok(v) if op == "RegisterTaskDefinition" => json!({"family": v.get("family")}),
        Ok(v) => v.clone(),
        Err(_) => Value::Null,
    };
    let roll = world.rng.f64();
    let api = match service {
        ECS_PREFIX => Some(Service::Ecs),
        AAS_PREFIX => Some(Service::ApplicationAutoScaling),
        _ => None,
    };
    let own_region = world.arns.region.clone();
    let who = Caller {
        account: caller.as_deref(),
        region: region.as_deref().unwrap_or(&own_region),
    };
    let result = if api.is_none() {
        Err(ApiError::unknown_operation(target))
    } else if world.throttle.should_throttle(&op, api, &who, now, roll) {
        let category = api
            .and_then(|s| crate::buckets::category(s, &op))
            .map_or(op.as_str(), |c| c.name);
        world.timeline.count_throttled(category);
        Err(ApiError::throttling())
    } else if world.throttle.denies(&op) {
        let prefix = if service == ECS_PREFIX {
            "ecs"
        } else {
            "application-autoscaling"
        };
        Err(ApiError::new(
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::{}:assumed-role/ecs-recycler/operator is not authorized to perform: {prefix}:{op} because no identity-based policy allows the {prefix}:{op} action",
                super::model::ACCOUNT
            ),
        ))
    } else {
        parsed
    };
    let latency = world.throttle.latency(&op, &params);
    let call = world.timeline.call(now, &op, params, None);
    world.timeline.set_call_caller(call, caller);
    let result = result.and_then(|body| match service {
        ECS_PREFIX => ecs::handle(&mut world, &op, &body, call, now),
        _ => autoscaling::handle(&mut world, &op, &body, now),
    });
    if let Err(e) = &result {
        world.timeline.set_call_error(call, e.code.to_string());
    }
    let request_id = world.random_hex(32);
    (result, request_id, latency)
}

/// Handles one Elastic Load Balancing call under the lock, as `answer` does
/// for the JSON protocols: the same throttling, denials, latency and timeline.
fn answer_elb(
    shared: &Shared,
    op: &str,
    params: Value,
    caller: Option<String>,
    region: Option<String>,
) -> (
    Result<String, ApiError>,
    String,
    Option<std::time::Duration>,
) {
    let mut world = shared.lock();
    let now = world.now();
    let roll = world.rng.f64();
    let own_region = world.arns.region.clone();
    let who = Caller {
        account: caller.as_deref(),
        region: region.as_deref().unwrap_or(&own_region),
    };
    let api = Some(Service::ElasticLoadBalancing);
    let refused = if world.throttle.should_throttle(op, api, &who, now, roll) {
        let category =
            crate::buckets::category(Service::ElasticLoadBalancing, op).map_or(op, |c| c.name);
        world.timeline.count_throttled(category);
        Some(ApiError::new("Throttling", "Rate exceeded"))
    } else if world.throttle.denies(op) {
        let mut e = ApiError::new(
            "AccessDenied",
            format!(
                "User: arn:aws:sts::{}:assumed-role/ecs-recycler/operator is not authorized to perform: elasticloadbalancing:{op} because no identity-based policy allows the elasticloadbalancing:{op} action",
                super::model::ACCOUNT
            ),
        );
        e.status = 403;
        Some(e)
    } else {
        None
    };
    let latency = world.throttle.latency(op, &params);
    let call = world.timeline.call(now, op, params.clone(), None);
    world.timeline.set_call_caller(call, caller);
    let result = match refused {
        Some(e) => Err(e),
        None => elb::handle(&mut world, op, &params, now),
    };
    if let Err(e) = &result {
        world.timeline.set_call_error(call, e.code.to_string());
    }
    let id = world.random_hex(32);
    let request_id = format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    );
    (result, request_id, latency)
}

fn elb_response(action: &str, result: Result<String, ApiError>, request_id: &str) -> Response {
    let (status, body) = match result {
        Ok(inner) => (
            StatusCode::OK,
            elb::wire::response(action, &inner, request_id),
        ),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            elb::wire::error_response(&e, request_id),
        ),
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    response
}

fn aws_response(result: Result<Value, ApiError>, request_id: &str) -> Response {
    let (status, body, error_type) = match result {
        Ok(v) => (StatusCode::OK, v, None),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body(),
            Some(e.code),
        ),
    };
    let mut response = (status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Some(code) = error_type {
        h.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    response
}

fn control_response(result: Result<Value, String>) -> Response {
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(message) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": message})),
        )
            .into_response(),
    }
}

fn json_body(body: &Bytes) -> Result<Value, String> {
    parse_body(body).map_err(|e| e.message)
}

async fn timeline(State(shared): State<Shared>) -> Response {
    axum::Json(shared.lock().timeline_json()).into_response()
}

async fn get_config(State(shared): State<Shared>) -> Response {
    axum::Json(control::config(&shared.lock())).into_response()
}

async fn post_config(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| control::set_config(&mut shared.lock(), b)))
}

async fn post_service(
    State(shared): State<Shared>,
    Path((cluster, service)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    control_response(
        json_body(&body)
            .and_then(|b| control::set_service(&mut shared.lock(), &cluster, &service, b)),
    )
}

async fn post_cluster(
    State(shared): State<Shared>,
    Path(cluster): Path<String>,
    body: Bytes,
) -> Response {
    control_response(
        json_body(&body).and_then(|b| control::set_cluster(&mut shared.lock(), &cluster, b)),
    )
}

async fn post_age(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| control::age(&mut shared.lock(), b)))
}

async fn post_scale(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| {
        let mut world = shared.lock();
        let now = world.now();
        control::scale(&mut world, b, now)
    }))
}

async fn post_policy(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| {
        let mut world = shared.lock();
        let now = world.now();
        control::set_policy(&mut world, b, now)
    }))
}

async fn post_traffic(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| {
        let mut world = shared.lock();
        let now = world.now();
        control::set_traffic(&mut world, b, now)
    }))
}

async fn get_traffic(
    State(shared): State<Shared>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    control_response(control::traffic(&shared.lock(), &query))
}

async fn post_group(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| {
        let mut world = shared.lock();
        let now = world.now();
        super::capacity::scaling::set_group(&mut world, b, now)
    }))
}

async fn get_group(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    let group = super::capacity::scaling::group_json(&shared.lock(), &name);
    if group.is_null() {
        return control_response(Err(format!("auto scaling group {name} does not exist")));
    }
    axum::Json(group).into_response()
}

async fn post_spot(State(shared): State<Shared>, body: Bytes) -> Response {
    control_response(json_body(&body).and_then(|b| {
        let mut world = shared.lock();
        let now = world.now();
        super::spot::interrupt(&mut world, b, now)
    }))
}
