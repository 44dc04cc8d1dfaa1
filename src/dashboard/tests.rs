//! The dashboard over an embedded store: every page answers with what the
//! store holds, words from outside are escaped, a run under way reloads,
//! and no method but GET is taken by any route — the store is the same
//! byte for byte after every other method was tried on every route.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use super::*;
use crate::store::StatusWrite;
use crate::store::embedded::EmbeddedStore;

struct World {
    store: Arc<EmbeddedStore>,
    path: std::path::PathBuf,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn world() -> World {
    let path = std::env::temp_dir().join(format!(
        "ecs-recycler-dashboard-{}-{}.json",
        std::process::id(),
        fastrand::u64(..)
    ));
    let store = Arc::new(EmbeddedStore::open(&path).unwrap());
    let now = Utc::now();
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "batchSize": 2}),
            now,
        )
        .await
        .unwrap();
    store
        .acquire_lease(
            Kind::RecycleRequest,
            "rotate",
            "test",
            now,
            now + chrono::TimeDelta::seconds(30),
        )
        .await
        .unwrap();
    let status = json!({
        "phase": "Recycling",
        "message": "stopped 2/4; <script>alert(1)</script> waiting",
        "startedAt": "2026-11-30T10:00:00Z",
        "plan": {"originalDesired": 4, "tasks": ["t1", "t2", "t3", "t4"], "plannedAt": "2026-11-30T10:00:00Z"},
        "stopped": ["t1", "t2"], "batch": ["t1", "t2"], "batches": 1,
        "events": [{"at": "2026-11-30T10:00:01Z", "reason": "Recycling", "message": "Recycling task 1/4: t1", "task": "t1"}],
        "timeline": {
            "start": "2026-11-30T10:00:00Z",
            "samples": [[0, 4, 4, 0, 4], [1000, 6, 4, 2, 4], [9000, 6, 6, 0, 5]],
            "marks": [{"at": 1000, "kind": "stopped", "batch": 1}]
        }
    });
    store
        .write_status(
            Kind::RecycleRequest,
            "rotate",
            StatusWrite {
                expected_version: 1,
                status,
                active: true,
                holder: "test".into(),
                now,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    store
        .create(
            Kind::RecycleSchedule,
            "nightly",
            json!({"schedule": "0 2 * * *", "template": {"cluster": "prod", "service": "web"}}),
            now,
        )
        .await
        .unwrap();
    store
        .create(
            Kind::RecyclePolicy,
            "weekly",
            json!({"maxTaskAge": "7d", "selector": {"clusters": ["prod"]}}),
            now,
        )
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let served = store.clone();
    tokio::spawn(async move {
        let _ = serve(
            served,
            "127.0.0.1:0".parse().unwrap(),
            move |addr| {
                let _ = tx.send(addr);
            },
            async move {
                let _ = stopped.await;
            },
        )
        .await;
    });
    let addr = rx.await.unwrap();
    World {
        store,
        path,
        url: format!("http://{addr}"),
        _stop: stop,
    }
}

async fn fetch(method: &str, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .body("cancel: true")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

const PAGES: [&str; 4] = [
    "/",
    "/requests/rotate",
    "/schedules/nightly",
    "/policies/weekly",
];

#[tokio::test]
async fn every_page_shows_what_the_store_holds_escaped_and_whole() {
    let w = world().await;
    let (status, headers, home) = fetch("GET", &format!("{}/", w.url)).await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"),
        "nothing from elsewhere"
    );
    for want in [
        r#"<tr data-name="rotate">"#,
        r#"<a href="/requests/rotate">rotate</a>"#,
        "prod/web",
        "2/4",
        r#"<span class="phase Recycling">Recycling</span>"#,
        r#"<a href="/schedules/nightly">nightly</a>"#,
        "0 2 * * *",
        r#"<a href="/policies/weekly">weekly</a>"#,
        r#"<meta http-equiv="refresh" content="2">"#,
    ] {
        assert!(home.contains(want), "{want} in:\n{home}");
    }
    assert!(!home.contains("<script>alert"), "escaped");
    assert!(home.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !home.contains("http://") && !home.contains("https://"),
        "no resource from elsewhere"
    );

    let (status, _, page) = fetch("GET", &format!("{}/requests/rotate", w.url)).await;
    assert_eq!(status, 200);
    for want in [
        r#"data-samples="3""#,
        r#"data-lowest-running="4""#,
        r#"data-highest-desired="6""#,
        r#"<g class="mark" data-kind="stopped" data-batch="1">"#,
        r#"data-series="healthy""#,
        "Recycling task 1/4: t1",
        "stopping, replacement starting",
        "No gate alarms.",
        "No hooks.",
    ] {
        assert!(page.contains(want), "{want} in:\n{page}");
    }
    for path in &PAGES[2..] {
        let (status, _, page) = fetch("GET", &format!("{}{path}", w.url)).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(
            !page.contains(r#"http-equiv="refresh""#),
            "{path}: nothing under way"
        );
    }
    let (status, _, page) = fetch("GET", &format!("{}/requests/nope", w.url)).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("not found"));
    let _ = std::fs::remove_file(&w.path);
}

#[tokio::test]
async fn no_route_takes_a_method_that_could_change_anything() {
    let w = world().await;
    let before = std::fs::read(&w.path).unwrap();
    let versions = |records: Vec<crate::store::StoredRecord>| -> Vec<(String, u64)> {
        records.into_iter().map(|r| (r.name, r.version)).collect()
    };
    let listed_before = versions(w.store.list_all(Kind::RecycleRequest).await.unwrap());
    let mut paths: Vec<&str> = PAGES.to_vec();
    paths.extend([
        "/requests",
        "/requests/rotate/cancel",
        "/requests/rotate?cancel=true",
    ]);
    for path in paths {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let (status, _, _) = fetch(method, &format!("{}{path}", w.url)).await;
            assert!(
                status == 405 || status == 404,
                "{method} {path} answered {status}"
            );
        }
    }
    assert_eq!(
        versions(w.store.list_all(Kind::RecycleRequest).await.unwrap()),
        listed_before
    );
    assert_eq!(
        std::fs::read(&w.path).unwrap(),
        before,
        "the store, byte for byte"
    );
    let _ = std::fs::remove_file(&w.path);
}
