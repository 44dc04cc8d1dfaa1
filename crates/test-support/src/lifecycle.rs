//! A lifecycle hook receiver on loopback: answers each call as the test's
//! script says (a verdict, an HTTP status, or never), checks the
//! signature of every call with the secret it was given, and records each
//! call (idempotency key, body, whether the signature matched).

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One call as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub key: String,
    pub body: Value,
    /// The signature header matched HMAC-SHA256 of the body with the secret.
    pub signed: bool,
    pub at: tokio::time::Instant,
}

/// How the receiver answers one call.
pub enum Reply {
    Verdict(Value),
    Status(u16),
    /// Holds the call open and never answers.
    Never,
}

type Script = dyn Fn(&[Call], &Call) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    secret: String,
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Script>,
}

pub struct HookReceiver {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Whether `header` (`sha256=<hex>`) is HMAC-SHA256 of `body` with `secret`.
pub fn signature_matches(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let call = Call {
        key: header("x-ecs-recycler-idempotency-key"),
        signed: signature_matches(
            &s.secret,
            body.as_bytes(),
            &header("x-ecs-recycler-signature"),
        ),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        at: tokio::time::Instant::now(),
    };
    let reply = {
        let mut calls = s.calls.lock();
        let before = calls.clone();
        calls.push(call.clone());
        (s.script)(&before, &call)
    };
    match reply {
        Reply::Verdict(v) if call.signed => axum::Json(v).into_response(),
        // A receiver that checks signatures refuses an unsigned or tampered call.
        Reply::Verdict(_) => StatusCode::UNAUTHORIZED.into_response(),
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Never => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

impl HookReceiver {
    /// Starts a receiver checking signatures with `secret` and answering by `script`
    /// (given the calls before this one, and this one).
    pub async fn start(
        secret: &str,
        script: impl Fn(&[Call], &Call) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            secret: secret.to_string(),
            calls: calls.clone(),
            script: Arc::new(script),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hook receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { url, calls, task }
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_body_does_not_match_its_signature() {
        let body = br#"{"batch":3}"#;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let header = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_matches("s3cret", body, &header));
        assert!(!signature_matches("s3cret", br#"{"batch":4}"#, &header));
        assert!(!signature_matches("other", body, &header));
    }
}
