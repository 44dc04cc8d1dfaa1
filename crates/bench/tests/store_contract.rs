//! The benchmark's in-memory store keeps the store contract: the product's
//! own clauses, included by path from `tests/store/clauses.rs` (one suite,
//! not a copy of it), and what the scale scenario reads of the store
//! besides — the status text it holds, which the scenario takes off the
//! process's memory to tell the operator's part from the store's.

#[path = "../../../tests/store/clauses.rs"]
mod clauses;

use chrono::{Duration, Utc};
use clauses::{K, status_write, t};
use ecs_recycler_bench::memory_store::MemoryStore;
use ecs_recycler_bench::product::{StatusWrite, Store};
use serde_json::json;

#[tokio::test]
async fn the_in_memory_store_keeps_the_contract() {
    clauses::contract(&MemoryStore::new()).await;
}

/// The bytes of a status as the store keeps it: its JSON text.
fn text_of(write: &StatusWrite) -> usize {
    write.status.to_string().len()
}

/// Off by a write, a delete or a record forgotten, the scale scenario's
/// "peak RSS less the store's contents" would be off by as much.
#[tokio::test]
async fn the_status_text_held_is_counted_until_its_record_is_gone() {
    let store = MemoryStore::new();
    for name in ["a", "b"] {
        store.create(K, name, json!({}), t(0)).await.unwrap();
        assert!(
            store
                .acquire_lease(K, name, "r1", t(0), t(60))
                .await
                .unwrap()
        );
    }
    assert_eq!(store.status_bytes(), 0, "no status yet");

    let first = status_write(1, "r1", t(1), true);
    let first_len = text_of(&first);
    store.write_status(K, "a", first.clone()).await.unwrap();
    assert_eq!(store.status_bytes(), first_len);
    store.write_status(K, "a", first).await.unwrap();
    assert_eq!(store.status_bytes(), first_len, "sent again: nothing added");

    let mut longer = status_write(2, "r1", t(2), true);
    longer.status = json!({"phase": "Recycling", "message": "x".repeat(100)});
    let longer_len = text_of(&longer);
    store.write_status(K, "a", longer).await.unwrap();
    assert_eq!(
        store.status_bytes(),
        longer_len,
        "a status replaces the last"
    );

    // Finished and already past its retention, by the clock the store's
    // forgetting reads.
    let finished = StatusWrite {
        expires_at: Some(Utc::now() - Duration::seconds(1)),
        ..status_write(1, "r1", t(3), false)
    };
    let finished_len = text_of(&finished);
    store.write_status(K, "b", finished).await.unwrap();
    assert_eq!(store.status_bytes(), longer_len + finished_len);
    assert_eq!(store.get(K, "b").await.unwrap(), None, "past its retention");
    let all = store.list_all(K).await.unwrap();
    assert_eq!(all.len(), 1, "forgotten: {all:?}");
    assert_eq!(
        store.status_bytes(),
        longer_len,
        "its text is no longer held"
    );

    store.delete(K, "a").await.unwrap();
    assert_eq!(store.status_bytes(), 0);
}
