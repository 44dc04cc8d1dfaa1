//! The clauses of the store contract that any store keeps through its own
//! calls: the same calls, the same answers. The product's suite
//! (`contract.rs`) runs them against the embedded store and DynamoDB, then
//! adds what other clients may leave in a store; the benchmark's in-memory
//! store, which no other client can reach, runs them from its own crate
//! (`crates/bench/tests/store_contract.rs`), which includes this file by
//! path. So there is one suite, and this file reaches nothing but the
//! store's trait: no AWS client, no file, no helper of this test binary.

use chrono::{DateTime, Duration, Utc};
use ecs_recycler::store::{Kind, StatusWrite, Store, StoreError, StoredRecord};
use serde_json::{Value, json};

/// The kind the clauses use; a second appears only to show listings keep
/// kinds apart.
pub const K: Kind = Kind::RecycleRequest;

/// A fixed instant `secs` after a base in 2030, later than the clock the
/// tests run under, so no record the clauses finish is past its retention.
pub fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
}

/// A status write by `holder` on `version`: a finished one when not
/// `active`, kept for seven days.
pub fn status_write(version: u64, holder: &str, now: DateTime<Utc>, active: bool) -> StatusWrite {
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
    let names = |v: Vec<StoredRecord>| -> Vec<String> { v.into_iter().map(|r| r.name).collect() };
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

    // heartbeats: who is alive, a replica that leaves, one that goes silent
    assert_eq!(store.heartbeat("r1", t(40), t(55)).await.unwrap(), ["r1"]);
    assert_eq!(
        store.heartbeat("r2", t(41), t(56)).await.unwrap(),
        ["r1", "r2"]
    );
    assert_eq!(
        store.heartbeat("r3", t(42), t(57)).await.unwrap(),
        ["r1", "r2", "r3"]
    );
    // r3 leaves: its heartbeat ends now, and it is not counted.
    assert_eq!(
        store.heartbeat("r3", t(43), t(43)).await.unwrap(),
        ["r1", "r2"]
    );
    // r2 goes silent: at its expiry it is no longer alive, and forgotten.
    assert_eq!(store.heartbeat("r1", t(56), t(71)).await.unwrap(), ["r1"]);
    // ... and comes back as any replica would.
    assert_eq!(
        store.heartbeat("r2", t(57), t(72)).await.unwrap(),
        ["r1", "r2"]
    );
    // the lean listing: everything the full one says but the status, of
    // which only its phase
    store.create(K, "lean", spec.clone(), t(60)).await.unwrap();
    assert!(
        store
            .acquire_lease(K, "lean", "r1", t(60), t(90))
            .await
            .unwrap()
    );
    let mut write = status_write(1, "r1", t(61), true);
    write.status = json!({"phase": "Recycling", "events": ["a", "b"], "message": "x".repeat(500)});
    store.write_status(K, "lean", write).await.unwrap();
    let full = store.list_active(K).await.unwrap();
    let lean = store.list_active_lean(K).await.unwrap();
    assert_eq!(full.len(), lean.len());
    for (f, l) in full.iter().zip(&lean) {
        assert_eq!(
            (&f.name, f.version, &f.lease, f.created_at),
            (&l.name, l.version, &l.lease, l.created_at)
        );
        let spec: Result<Value, String> = l
            .spec
            .as_deref()
            .map(|text| serde_json::from_str(text).unwrap())
            .map_err(Clone::clone);
        assert_eq!(spec, f.spec);
        let phase = f.status.as_ref().and_then(|s| s["phase"].as_str());
        assert_eq!(l.phase.as_deref(), phase);
    }
    assert_eq!(lean.last().unwrap().phase.as_deref(), Some("Recycling"));
    // A status that names no phase lists with none.
    let mut write = status_write(2, "r1", t(62), true);
    write.status = json!({"events": []});
    store.write_status(K, "lean", write).await.unwrap();
    let lean = store.list_active_lean(K).await.unwrap();
    assert_eq!(lean.last().unwrap().phase, None);
    store.delete(K, "lean").await.unwrap();

    // Heartbeats are no records: no listing shows them.
    assert_eq!(names(store.list_active(K).await.unwrap()), ["b"]);
    assert_eq!(store.list_strays().await.unwrap(), vec![]);
    assert_eq!(names(store.list_all(K).await.unwrap()).len(), 2);
}
