//! A webhook receiver on loopback: records every POST (path and JSON body)
//! and answers 200, except `/down` (always 500) and `/flaky` (500 for the
//! first two calls).

use std::sync::Arc;

use parking_lot::Mutex;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

#[derive(Clone, Default)]
struct Seen {
    posts: Arc<Mutex<Vec<(String, Value)>>>,
}

pub struct Receiver {
    pub base: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(State(seen): State<Seen>, Path(path): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let mut posts = seen.posts.lock();
    posts.push((path.clone(), value));
    let calls = posts.iter().filter(|p| p.0 == path).count();
    match path.as_str() {
        "down" => StatusCode::INTERNAL_SERVER_ERROR,
        "flaky" if calls <= 2 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let seen = Seen::default();
        let app = Router::new()
            .route("/{path}", post(receive))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { base, seen, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The bodies posted to `path` so far.
    pub fn posts(&self, path: &str) -> Vec<Value> {
        self.seen
            .posts
            .lock()
            .iter()
            .filter(|p| p.0 == path)
            .map(|p| p.1.clone())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
