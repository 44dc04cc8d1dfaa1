//! The one contract every store passes: the same calls, the same answers,
//! for the embedded store and for DynamoDB (on moto's server) — the
//! clauses of `clauses.rs`, which the benchmark's in-memory store keeps
//! too — and what other clients may leave in a store: a plain PutItem into
//! the table, or a hand edit of the embedded store's file.

use crate::clauses::{K, contract, status_write, t};
use crate::support;

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use ecs_recycler::request_status;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store, StoreError, Stray};
use serde_json::{Value, json};

/// An item as another client writes it: the attributes of the item schema,
/// some of them wrong.
struct Foreign {
    key: &'static str,
    kind: &'static str,
    spec: Value,
    active: bool,
    created_at: DateTime<Utc>,
    /// Text where a number belongs, when set; no version otherwise.
    version_text: Option<&'static str>,
    /// What the client wrote for the status: text that should be JSON.
    status_text: Option<&'static str>,
}

impl Foreign {
    fn new(key: &'static str, at: i64) -> Self {
        Self {
            key,
            kind: key.split('/').next().unwrap(),
            spec: json!({"cluster": "prod", "service": "web"}),
            active: true,
            created_at: t(at),
            version_text: None,
            status_text: None,
        }
    }

    fn name(&self) -> &str {
        self.key.split_once('/').unwrap().1
    }
}

/// Another client of the same store.
trait Outsider {
    async fn put(&self, item: Foreign);
    /// The item as the store holds it: `spec`, `status`, `version` and
    /// `active`, as JSON.
    async fn read(&self, key: &str) -> Value;
}

/// Edits of the embedded store's file by hand.
struct HandEdits(PathBuf);

impl Outsider for HandEdits {
    async fn put(&self, item: Foreign) {
        let mut file: Value = std::fs::read(&self.0)
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
            .unwrap_or_else(|_| json!({"records": {}}));
        let mut entry = json!({
            "kind": item.kind,
            "name": item.name(),
            "spec": item.spec,
            "active": item.active,
            "createdAt": item.created_at,
        });
        if let Some(v) = item.version_text {
            entry["version"] = json!(v);
        }
        if let Some(text) = item.status_text {
            // The file is JSON: a status that is not a document is a string in it.
            entry["status"] = serde_json::from_str(text).unwrap_or(json!(text));
        }
        file["records"][item.key] = entry;
        std::fs::write(&self.0, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    }

    async fn read(&self, key: &str) -> Value {
        let file: Value = serde_json::from_slice(&std::fs::read(&self.0).unwrap()).unwrap();
        let entry = &file["records"][key];
        json!({
            "spec": entry["spec"],
            "status": entry["status"],
            "version": entry.get("version").cloned().unwrap_or(json!(0)),
            "active": entry["active"] == true,
        })
    }
}

/// Plain PutItem and GetItem calls on the table.
struct PutItems {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Outsider for PutItems {
    async fn put(&self, item: Foreign) {
        let s = |text: &str| AttributeValue::S(text.to_string());
        let mut attributes = HashMap::from([
            ("pk".to_string(), s(item.key)),
            ("kind".to_string(), s(item.kind)),
            ("name".to_string(), s(item.name())),
            ("spec".to_string(), s(&item.spec.to_string())),
            ("createdAt".to_string(), s(&item.created_at.to_rfc3339())),
        ]);
        if item.active {
            attributes.insert("active".into(), s("1"));
        }
        if let Some(v) = item.version_text {
            attributes.insert("version".into(), s(v));
        }
        if let Some(text) = item.status_text {
            attributes.insert("status".into(), s(text));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes))
            .send()
            .await
            .unwrap();
    }

    async fn read(&self, key: &str) -> Value {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let json_text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(text)) => serde_json::from_str(text).unwrap_or(json!(text)),
            _ => Value::Null,
        };
        json!({
            "spec": json_text("spec"),
            "status": json_text("status"),
            "version": match item.get("version") {
                Some(AttributeValue::N(n)) => json!(n.parse::<u64>().unwrap()),
                Some(AttributeValue::S(text)) => json!(text),
                _ => json!(0),
            },
            "active": item.contains_key("active"),
        })
    }
}

/// What every store does with what other clients leave in it, on an empty
/// store: a malformed record fails alone while every other carries on, and
/// nothing is lost.
async fn contract_with_outsiders<S: Store, O: Outsider>(store: &S, outside: &O) {
    let spec = json!({"cluster": "prod", "service": "web"});
    store.create(K, "good", spec.clone(), t(1)).await.unwrap();
    outside
        .put(Foreign {
            spec: json!({"size": 3}),
            ..Foreign::new("Widget/w", 5)
        })
        .await;
    outside.put(Foreign::new("RecycleRequests/web", 4)).await;
    outside
        .put(Foreign {
            active: false,
            ..Foreign::new("Gadget/idle", 3)
        })
        .await;
    outside
        .put(Foreign {
            status_text: Some("{phase"),
            ..Foreign::new("RecycleRequest/broken-status", 6)
        })
        .await;
    for key in ["RecycleRequest/bad-version", "Widget/bad-version"] {
        outside
            .put(Foreign {
                version_text: Some("seven"),
                ..Foreign::new(key, 7)
            })
            .await;
    }

    // A status that cannot be read: listed, with what the store holds, so
    // the operator can mark it failed with the reason.
    let names = |v: &[ecs_recycler::store::StoredRecord]| -> Vec<String> {
        v.iter().map(|r| r.name.clone()).collect()
    };
    let active = store.list_active(K).await.unwrap();
    assert_eq!(names(&active), ["good", "broken-status"]);
    let broken = &active[1];
    assert_eq!(broken.status, Some(json!("{phase")));
    assert_eq!(broken.version, 0);
    let reason = request_status(broken.status.as_ref()).unwrap_err();
    assert!(reason.contains("cannot be read"), "{reason}");
    assert_eq!(
        store.get(K, "broken-status").await.unwrap().as_ref(),
        Some(broken)
    );
    // A version that cannot be read: no conditional write is possible, so
    // it is in no listing, and `get` says why.
    assert_eq!(
        names(&store.list_all(K).await.unwrap()),
        ["broken-status", "good"]
    );
    let corrupt = store.get(K, "bad-version").await;
    assert!(
        matches!(corrupt, Err(StoreError::Corrupt(ref m)) if m.contains("version")),
        "{corrupt:?}"
    );
    assert!(
        store
            .list_active(Kind::RecycleSchedule)
            .await
            .unwrap()
            .is_empty()
    );

    // Active items of no known kind are listed apart, oldest first.
    let strays = store.list_strays().await.unwrap();
    let web = Stray {
        key: "RecycleRequests/web".into(),
        kind: "RecycleRequests".into(),
        version: 0,
        created_at: Some(t(4)),
    };
    let widget = Stray {
        key: "Widget/w".into(),
        kind: "Widget".into(),
        version: 0,
        created_at: Some(t(5)),
    };
    assert_eq!(strays, [web.clone(), widget.clone()]);

    // Failing one is conditional on the version listed; it keeps the spec.
    let failed = json!({"phase": "Failed", "message": "unknown kind \"RecycleRequests\""});
    let stale = Stray {
        version: 1,
        ..web.clone()
    };
    assert!(matches!(
        store.fail_stray(&stale, failed.clone()).await,
        Err(StoreError::Conflict { expected: 1, .. })
    ));
    let before = outside.read(&web.key).await;
    assert_eq!(
        (&before["status"], &before["active"]),
        (&Value::Null, &json!(true))
    );
    assert_eq!(store.fail_stray(&web, failed.clone()).await.unwrap(), 1);
    let after = outside.read(&web.key).await;
    assert_eq!(after["spec"], spec, "the spec is kept as written");
    assert_eq!(after["status"], failed);
    assert_eq!(
        (&after["version"], &after["active"]),
        (&json!(1), &json!(false))
    );
    assert_eq!(
        store.list_strays().await.unwrap(),
        std::slice::from_ref(&widget)
    );
    assert!(
        matches!(
            store
                .fail_stray(&web, json!({"phase": "Failed", "message": "again"}))
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "a changed item is never overwritten"
    );
    assert_eq!(outside.read(&web.key).await["status"], failed);
    let gone = Stray {
        key: "Widget/gone".into(),
        ..widget.clone()
    };
    assert!(matches!(
        store.fail_stray(&gone, failed.clone()).await,
        Err(StoreError::NotFound { .. })
    ));

    // The broken status is replaced by the operator's usual write.
    assert!(
        store
            .acquire_lease(K, "broken-status", "r1", t(10), t(20))
            .await
            .unwrap()
    );
    store
        .write_status(K, "broken-status", status_write(0, "r1", t(11), false))
        .await
        .unwrap();
    assert_eq!(names(&store.list_active(K).await.unwrap()), ["good"]);

    // After all these writes, what could not be read is still as written.
    for key in ["RecycleRequest/bad-version", "Widget/bad-version"] {
        let kept = outside.read(key).await;
        assert_eq!(kept["version"], "seven", "{key}: {kept}");
        assert_eq!(kept["spec"], spec, "{key}: {kept}");
    }
    assert_eq!(names(&store.list_active(K).await.unwrap()), ["good"]);
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempdir();
    let store = EmbeddedStore::open(dir.join("store.json")).unwrap();
    contract(&store).await;
    // It survives a restart: a new handle on the same file sees everything.
    let again = EmbeddedStore::open(dir.join("store.json")).unwrap();
    assert_eq!(again.list_all(K).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract_with_hand_edits() {
    let path = tempdir().join("store.json");
    let store = EmbeddedStore::open(&path).unwrap();
    contract_with_outsiders(&store, &HandEdits(path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_store_is_safe_across_handles_at_once() {
    let dir = tempdir();
    let path = dir.join("store.json");
    let store = EmbeddedStore::open(&path).unwrap();
    store.create(K, "n", json!({}), t(0)).await.unwrap();
    // Many writers, each re-reading and retrying on conflict, as the CLI and
    // the operator do: no update is lost.
    let mut handles = Vec::new();
    for i in 0..8 {
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let store = EmbeddedStore::open(path).unwrap();
            for _ in 0..10 {
                loop {
                    let r = store.get(K, "n").await.unwrap().unwrap();
                    let mut spec = r.spec.unwrap();
                    let n = spec.get("count").and_then(|c| c.as_u64()).unwrap_or(0);
                    spec["count"] = json!(n + 1);
                    spec[format!("w{i}")] = json!(true);
                    match store.update_spec(K, "n", r.version, spec).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let r = store.get(K, "n").await.unwrap().unwrap();
    assert_eq!(r.spec.unwrap()["count"], 80);
    assert_eq!(r.version, 81);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecs-recycler-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_keeps_the_contract_on_moto() {
    let moto = tokio::task::spawn_blocking(support::moto::Moto::start)
        .await
        .unwrap();
    let config = support::sdk_config(&moto.url, true).await;
    let store = ecs_recycler::store::dynamo::DynamoStore::new(&config, "contract");
    store.create_table().await.unwrap();
    contract(&store).await;
    let table = "outsiders";
    let store = ecs_recycler::store::dynamo::DynamoStore::new(&config, table);
    store.create_table().await.unwrap();
    let outside = PutItems {
        client: aws_sdk_dynamodb::Client::new(&config),
        table: table.into(),
    };
    contract_with_outsiders(&store, &outside).await;
}
