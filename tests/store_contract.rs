//! The one contract every store passes: the same calls, the same answers,
//! for the embedded store and for DynamoDB (on moto's server).

mod support;

use chrono::{DateTime, Duration, Utc};
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, StatusWrite, Store, StoreError};
use serde_json::json;

const K: Kind = Kind::RecycleRequest;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
}

fn status_write(version: u64, holder: &str, now: DateTime<Utc>, active: bool) -> StatusWrite {
    StatusWrite {
        expected_version: version,
        status: json!({"phase": if active { "Recycling" } else { "Succeeded" }}),
        active,
        holder: holder.into(),
        now,
        expires_at: (!active).then(|| now + Duration::days(7)),
    }
}

/// Runs every clause of the contract against `store`, which must be empty.
pub async fn contract<S: Store>(store: &S) {
    // create, get, duplicate
    let spec = json!({"cluster": "prod", "service": "web"});
    let a = store.create(K, "a", spec.clone(), t(1)).await.unwrap();
    assert_eq!((a.version, a.active, a.status.clone()), (1, true, None));
    assert_eq!(a.spec.as_ref().unwrap(), &spec);
    assert!(matches!(
        store.create(K, "a", spec.clone(), t(2)).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(store.get(K, "a").await.unwrap().unwrap().version, 1);
    assert_eq!(store.get(K, "zzz").await.unwrap(), None);
    assert_eq!(store.get(Kind::RecycleSchedule, "a").await.unwrap(), None);

    // active listing in creation order, by kind
    store.create(K, "c", spec.clone(), t(2)).await.unwrap();
    store.create(K, "b", spec.clone(), t(3)).await.unwrap();
    store
        .create(Kind::RecycleSchedule, "s", json!({}), t(0))
        .await
        .unwrap();
    let names = |v: Vec<ecs_recycler::store::StoredRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.name).collect()
    };
    assert_eq!(names(store.list_active(K).await.unwrap()), ["a", "c", "b"]);
    assert_eq!(names(store.list_all(K).await.unwrap()), ["a", "b", "c"]);

    // spec updates are conditional on the version
    let updated = store
        .update_spec(
            K,
            "a",
            1,
            json!({"cluster": "prod", "service": "web", "paused": true}),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(matches!(
        store.update_spec(K, "a", 1, spec.clone()).await,
        Err(StoreError::Conflict { expected: 1, .. })
    ));
    assert!(matches!(
        store.update_spec(K, "nope", 1, spec.clone()).await,
        Err(StoreError::NotFound { .. })
    ));

    // leases: take, renew, refuse to others, take over once expired; versions untouched
    assert!(
        store
            .acquire_lease(K, "a", "r1", t(10), t(20))
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_lease(K, "a", "r1", t(15), t(25))
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease(K, "a", "r2", t(20), t(30))
            .await
            .unwrap()
    );
    let held = store.get(K, "a").await.unwrap().unwrap();
    assert_eq!(held.version, 2, "leases do not change the version");
    assert_eq!(held.lease.as_ref().unwrap().holder, "r1");
    assert_eq!(held.lease.unwrap().expires_at, t(25));

    // status writes: need the version and the lease
    let v = store
        .write_status(K, "a", status_write(2, "r1", t(16), true))
        .await
        .unwrap();
    assert_eq!(v, 3);
    // The same write sent again (its answer was lost, the SDK tried again)
    // finds itself landed: done once, answered as done.
    assert_eq!(
        store
            .write_status(K, "a", status_write(2, "r1", t(17), true))
            .await
            .unwrap(),
        3,
        "a write that landed is answered as landed"
    );
    assert_eq!(store.get(K, "a").await.unwrap().unwrap().version, 3);
    let mut other = status_write(2, "r1", t(17), true);
    other.status = json!({"phase": "Restoring"});
    assert!(
        matches!(
            store.write_status(K, "a", other).await,
            Err(StoreError::Conflict { .. })
        ),
        "another write on a stale version is a conflict"
    );
    assert!(matches!(
        store
            .write_status(K, "a", status_write(3, "r2", t(17), true))
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(
        matches!(
            store
                .write_status(K, "a", status_write(3, "r1", t(26), true))
                .await,
            Err(StoreError::LeaseLost { .. })
        ),
        "an expired lease is lost even to its holder"
    );
    assert!(
        store
            .acquire_lease(K, "a", "r2", t(26), t(36))
            .await
            .unwrap(),
        "takeover after expiry"
    );
    assert!(
        !store
            .acquire_lease(K, "a", "r1", t(27), t(37))
            .await
            .unwrap()
    );
    let a = store.get(K, "a").await.unwrap().unwrap();
    assert_eq!(a.status.unwrap()["phase"], "Recycling");

    // finishing leaves the active index
    store
        .write_status(K, "a", status_write(3, "r2", t(27), false))
        .await
        .unwrap();
    assert_eq!(names(store.list_active(K).await.unwrap()), ["c", "b"]);
    let a = store.get(K, "a").await.unwrap().unwrap();
    assert_eq!((a.version, a.active), (4, false));

    // release: only by the holder
    store.release_lease(K, "a", "r1").await.unwrap();
    assert_eq!(
        store
            .get(K, "a")
            .await
            .unwrap()
            .unwrap()
            .lease
            .unwrap()
            .holder,
        "r2"
    );
    store.release_lease(K, "a", "r2").await.unwrap();
    assert_eq!(store.get(K, "a").await.unwrap().unwrap().lease, None);
    assert!(
        store
            .acquire_lease(K, "a", "r1", t(28), t(38))
            .await
            .unwrap()
    );

    // delete
    store.delete(K, "c").await.unwrap();
    store.delete(K, "c").await.unwrap();
    assert_eq!(store.get(K, "c").await.unwrap(), None);
    assert_eq!(names(store.list_active(K).await.unwrap()), ["b"]);
    assert!(matches!(
        store.acquire_lease(K, "c", "r1", t(30), t(40)).await,
        Err(StoreError::NotFound { .. })
    ));
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
async fn the_in_memory_embedded_store_keeps_the_contract() {
    contract(&EmbeddedStore::in_memory()).await;
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
}
