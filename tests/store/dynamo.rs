//! `DynamoStore` against moto's DynamoDB server: the item schema as a plain
//! client writes it, the conditional semantics of the `Store` trait, and the
//! sparse index that keeps `list_active` O(active records).
//!
//! Each test runs its own moto (about a second to start) so tests share
//! nothing and no server outlives them.

use crate::support;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, TimeToLiveStatus};
use chrono::{DateTime, Duration, TimeZone, Utc};
use ecs_recycler::store::dynamo::{ACTIVE_INDEX, DynamoStore};
use ecs_recycler::store::{Kind, Lease, StatusWrite, Store, StoreError};
use serde_json::{Value, json};
use support::moto::Moto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RR: Kind = Kind::RecycleRequest;

struct Bed {
    // Kept for its Drop: moto lives as long as the test's bed.
    _moto: Moto,
    store: DynamoStore,
    /// A raw client on the same table, for what other clients would write.
    raw: aws_sdk_dynamodb::Client,
    table: String,
    url: String,
}

async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// A table name no other test (or run) uses.
fn table_name(test: &str) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("recycler-{test}-{}-{nanos}", std::process::id())
}

/// moto started, a fresh table made by `create_table`, and the store on it.
async fn bed(test: &str) -> Bed {
    let moto = Moto::start();
    let config = sdk_config(&moto.url).await;
    let table = table_name(test);
    let store = DynamoStore::new(&config, &table);
    store.create_table().await.expect("create table");
    Bed {
        url: moto.url.clone(),
        _moto: moto,
        store,
        raw: aws_sdk_dynamodb::Client::new(&config),
        table,
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0)
        .single()
        .expect("a time")
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

fn spec(service: &str) -> Value {
    json!({"cluster": "prod", "service": service, "batchSize": 1})
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn names(records: &[ecs_recycler::store::StoredRecord]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

fn status_write(expected_version: u64, holder: &str, now: DateTime<Utc>) -> StatusWrite {
    StatusWrite {
        expected_version,
        status: json!({"phase": "Recycling"}),
        active: true,
        holder: holder.to_string(),
        now,
        expires_at: None,
    }
}

/// The item `pk` as a plain GetItem reads it.
async fn get_raw(
    raw: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> HashMap<String, AttributeValue> {
    raw.get_item()
        .table_name(table)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .expect("raw get item")
        .item
        .expect("the item exists")
}

impl Bed {
    async fn put_raw(&self, item: HashMap<String, AttributeValue>) {
        self.raw
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("raw put item");
    }

    async fn get_raw(&self, pk: &str) -> HashMap<String, AttributeValue> {
        get_raw(&self.raw, &self.table, pk).await
    }

    async fn version(&self, name: &str) -> u64 {
        self.store
            .get(RR, name)
            .await
            .expect("get")
            .expect("exists")
            .version
    }
}

#[tokio::test]
async fn create_table_is_idempotent_on_demand_with_index_and_ttl() {
    let bed = bed("table").await;
    // A second init on a ready table is fine and changes nothing.
    bed.store.create_table().await.expect("create table again");

    let table = bed
        .raw
        .describe_table()
        .table_name(&bed.table)
        .send()
        .await
        .expect("describe table")
        .table
        .expect("table");
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let index = table
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(ACTIVE_INDEX))
        .expect("the active index");
    let keys: Vec<_> = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("active", "HASH"), ("createdAt", "RANGE")]);

    let ttl = bed
        .raw
        .describe_time_to_live()
        .table_name(&bed.table)
        .send()
        .await
        .expect("describe ttl")
        .time_to_live_description
        .expect("ttl description");
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expiresAt"));
}

#[tokio::test]
async fn create_then_get_and_a_duplicate_is_refused() {
    let bed = bed("create").await;
    // Nanoseconds: createdAt must read back exactly as given.
    let now = t0() + Duration::nanoseconds(123_456_789);
    let created = bed
        .store
        .create(RR, "web-rotate", spec("web"), now)
        .await
        .expect("create");
    assert_eq!(created.version, 1);
    assert!(created.active);
    assert_eq!(created.created_at, Some(now));
    assert_eq!(created.status, None);
    assert_eq!(created.lease, None);
    assert_eq!(
        bed.store.get(RR, "web-rotate").await.expect("get"),
        Some(created)
    );

    let raw = bed.get_raw("RecycleRequest/web-rotate").await;
    assert_eq!(raw["kind"], s("RecycleRequest"));
    assert_eq!(raw["name"], s("web-rotate"));
    assert_eq!(raw["active"], s("1"));
    assert_eq!(raw["version"], AttributeValue::N("1".into()));
    let stored_spec: Value =
        serde_json::from_str(raw["spec"].as_s().expect("spec is S")).expect("spec is JSON");
    assert_eq!(stored_spec, spec("web"));

    let again = bed
        .store
        .create(RR, "web-rotate", spec("other"), at(5))
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { kind: "RecycleRequest", ref name }) if name == "web-rotate"),
        "{again:?}"
    );
    // The refused create left the record alone.
    let record = bed.store.get(RR, "web-rotate").await.expect("get");
    assert_eq!(record.expect("exists").spec, Ok(spec("web")));

    assert_eq!(bed.store.get(RR, "missing").await.expect("get"), None);
    // Same name, other kind: another record.
    assert_eq!(
        bed.store
            .get(Kind::RecycleSchedule, "web-rotate")
            .await
            .expect("get"),
        None
    );
}

#[tokio::test]
async fn list_active_is_oldest_first_of_one_kind_and_finished_records_leave_it() {
    let bed = bed("active").await;
    // Created out of order; two at the same instant are ordered by name.
    bed.store
        .create(RR, "c", spec("c"), at(30))
        .await
        .expect("c");
    bed.store
        .create(RR, "b", spec("b"), at(10))
        .await
        .expect("b");
    bed.store
        .create(RR, "a", spec("a"), at(20))
        .await
        .expect("a");
    bed.store
        .create(RR, "z", spec("z"), at(5))
        .await
        .expect("z");
    bed.store
        .create(RR, "y", spec("y"), at(5))
        .await
        .expect("y");
    bed.store
        .create(Kind::RecycleSchedule, "nightly", json!({}), at(1))
        .await
        .expect("schedule");

    let active = bed.store.list_active(RR).await.expect("list active");
    assert_eq!(names(&active), ["y", "z", "b", "a", "c"]);
    assert!(active.iter().all(|r| r.active));
    let schedules = bed
        .store
        .list_active(Kind::RecycleSchedule)
        .await
        .expect("list");
    assert_eq!(names(&schedules), ["nightly"]);

    // "b" finishes: it leaves the index, with a TTL; "a" writes a status but
    // has work left, so it stays.
    for name in ["a", "b"] {
        assert!(
            bed.store
                .acquire_lease(RR, name, "r1", at(40), at(100))
                .await
                .expect("lease")
        );
    }
    let expires = at(86_400);
    let finished = bed
        .store
        .write_status(
            RR,
            "b",
            StatusWrite {
                status: json!({"phase": "Succeeded"}),
                active: false,
                expires_at: Some(expires),
                ..status_write(1, "r1", at(41))
            },
        )
        .await
        .expect("finish b");
    assert_eq!(finished, 2);
    bed.store
        .write_status(RR, "a", status_write(1, "r1", at(41)))
        .await
        .expect("progress a");

    let active = bed.store.list_active(RR).await.expect("list active");
    assert_eq!(names(&active), ["y", "z", "a", "c"]);
    let a = &active[2];
    assert_eq!(a.version, 2);
    assert_eq!(a.status, Some(json!({"phase": "Recycling"})));

    let b = bed
        .store
        .get(RR, "b")
        .await
        .expect("get")
        .expect("b still exists");
    assert!(!b.active);
    assert_eq!(b.status, Some(json!({"phase": "Succeeded"})));
    let raw = bed.get_raw("RecycleRequest/b").await;
    assert!(!raw.contains_key("active"), "active is removed: {raw:?}");
    assert_eq!(
        raw["expiresAt"],
        AttributeValue::N(expires.timestamp().to_string())
    );

    // list_all still shows every record of the kind, by name.
    let all = bed.store.list_all(RR).await.expect("list all");
    assert_eq!(names(&all), ["a", "b", "c", "y", "z"]);
}

#[tokio::test]
async fn update_spec_checks_the_version_and_keeps_status_lease_and_active() {
    let bed = bed("spec").await;
    bed.store
        .create(RR, "r", spec("web"), at(0))
        .await
        .expect("create");
    assert!(
        bed.store
            .acquire_lease(RR, "r", "r1", at(1), at(60))
            .await
            .expect("lease")
    );
    bed.store
        .write_status(RR, "r", status_write(1, "r1", at(2)))
        .await
        .expect("status");

    let stale = bed.store.update_spec(RR, "r", 1, spec("api")).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { expected: 1, .. })),
        "{stale:?}"
    );
    let zero = bed.store.update_spec(RR, "r", 0, spec("api")).await;
    assert!(
        matches!(zero, Err(StoreError::Conflict { expected: 0, .. })),
        "{zero:?}"
    );

    let updated = bed
        .store
        .update_spec(RR, "r", 2, spec("api"))
        .await
        .expect("update");
    assert_eq!(updated.version, 3);
    assert_eq!(updated.spec, Ok(spec("api")));
    assert_eq!(updated.status, Some(json!({"phase": "Recycling"})));
    assert!(updated.active);
    assert_eq!(
        updated.lease,
        Some(Lease {
            holder: "r1".into(),
            expires_at: at(60)
        })
    );
    assert_eq!(updated.created_at, Some(at(0)));
    assert_eq!(bed.store.get(RR, "r").await.expect("get"), Some(updated));

    let missing = bed.store.update_spec(RR, "nope", 1, spec("x")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    // Expected version 0 must not create the record either.
    let missing = bed.store.update_spec(RR, "nope", 0, spec("x")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(bed.store.get(RR, "nope").await.expect("get"), None);
}

#[tokio::test]
async fn write_status_tells_a_conflict_from_a_lost_lease() {
    let bed = bed("status").await;
    bed.store
        .create(RR, "r", spec("web"), at(0))
        .await
        .expect("create");

    let unleased = bed
        .store
        .write_status(RR, "r", status_write(1, "r1", at(1)))
        .await;
    assert!(
        matches!(unleased, Err(StoreError::LeaseLost { ref holder, .. }) if holder == "r1"),
        "no lease at all: {unleased:?}"
    );

    assert!(
        bed.store
            .acquire_lease(RR, "r", "r1", at(1), at(30))
            .await
            .expect("lease")
    );
    let other = bed
        .store
        .write_status(RR, "r", status_write(1, "r2", at(2)))
        .await;
    assert!(
        matches!(other, Err(StoreError::LeaseLost { ref holder, .. }) if holder == "r2"),
        "another replica's lease: {other:?}"
    );

    let stale = bed
        .store
        .write_status(RR, "r", status_write(7, "r1", at(2)))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { expected: 7, .. })),
        "stale version under our lease: {stale:?}"
    );

    let version = bed
        .store
        .write_status(RR, "r", status_write(1, "r1", at(2)))
        .await
        .expect("write");
    assert_eq!(version, 2);
    let version = bed
        .store
        .write_status(RR, "r", status_write(2, "r1", at(3)))
        .await
        .expect("write again");
    assert_eq!(version, 3);

    // At the instant the lease ends it no longer protects a write.
    let expired = bed
        .store
        .write_status(RR, "r", status_write(3, "r1", at(30)))
        .await;
    assert!(
        matches!(expired, Err(StoreError::LeaseLost { .. })),
        "our expired lease: {expired:?}"
    );
    // Expired and stale at once: the lost lease is what matters.
    let both = bed
        .store
        .write_status(RR, "r", status_write(1, "r1", at(31)))
        .await;
    assert!(
        matches!(both, Err(StoreError::LeaseLost { .. })),
        "{both:?}"
    );
    assert_eq!(bed.version("r").await, 3);

    let missing = bed
        .store
        .write_status(RR, "nope", status_write(0, "r1", at(2)))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(bed.store.get(RR, "nope").await.expect("get"), None);
}

#[tokio::test]
async fn leases_are_taken_renewed_taken_over_and_released_without_changing_the_version() {
    let bed = bed("lease").await;
    bed.store
        .create(RR, "r", spec("web"), at(0))
        .await
        .expect("create");
    let lease = |holder: &str, until: DateTime<Utc>| {
        Some(Lease {
            holder: holder.into(),
            expires_at: until,
        })
    };
    async fn held(bed: &Bed) -> Option<Lease> {
        let record = bed.store.get(RR, "r").await.expect("get").expect("exists");
        assert_eq!(record.version, 1, "lease operations keep the version");
        record.lease
    }

    assert!(
        bed.store
            .acquire_lease(RR, "r", "r1", at(1), at(10))
            .await
            .expect("take")
    );
    assert_eq!(held(&bed).await, lease("r1", at(10)));

    assert!(
        !bed.store
            .acquire_lease(RR, "r", "r2", at(5), at(15))
            .await
            .expect("held by r1")
    );
    assert_eq!(held(&bed).await, lease("r1", at(10)));

    assert!(
        bed.store
            .acquire_lease(RR, "r", "r1", at(6), at(20))
            .await
            .expect("renew")
    );
    assert_eq!(held(&bed).await, lease("r1", at(20)));

    assert!(
        !bed.store
            .acquire_lease(RR, "r", "r2", at(19), at(40))
            .await
            .expect("still held")
    );
    // Expired at its end instant: taking over is allowed from then on.
    assert!(
        bed.store
            .acquire_lease(RR, "r", "r2", at(20), at(40))
            .await
            .expect("take over")
    );
    assert_eq!(held(&bed).await, lease("r2", at(40)));

    // The old holder cannot release someone else's lease, nor write.
    bed.store
        .release_lease(RR, "r", "r1")
        .await
        .expect("release of a lease not ours is nothing");
    assert_eq!(held(&bed).await, lease("r2", at(40)));

    bed.store
        .release_lease(RR, "r", "r2")
        .await
        .expect("release");
    assert_eq!(held(&bed).await, None);
    let raw = bed.get_raw("RecycleRequest/r").await;
    assert!(!raw.contains_key("leaseHolder") && !raw.contains_key("leaseExpires"));
    // Released twice: still fine.
    bed.store
        .release_lease(RR, "r", "r2")
        .await
        .expect("release again");

    // Free again: anyone takes it.
    assert!(
        bed.store
            .acquire_lease(RR, "r", "r3", at(21), at(50))
            .await
            .expect("take free")
    );
    assert_eq!(held(&bed).await, lease("r3", at(50)));

    let missing = bed
        .store
        .acquire_lease(RR, "nope", "r1", at(1), at(10))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(bed.store.get(RR, "nope").await.expect("get"), None);
    bed.store
        .release_lease(RR, "nope", "r1")
        .await
        .expect("releasing on a missing record is nothing");
    assert_eq!(bed.store.get(RR, "nope").await.expect("get"), None);
}

#[tokio::test]
async fn a_client_put_item_with_a_native_map_spec_and_no_version_is_worked_on() {
    let bed = bed("raw").await;
    // What `aws dynamodb put-item` with the documented schema writes.
    let spec_map = AttributeValue::M(HashMap::from([
        ("cluster".to_string(), s("prod")),
        ("service".to_string(), s("web")),
        ("batchSize".to_string(), AttributeValue::N("2".into())),
        ("maintainCapacity".to_string(), AttributeValue::Bool(true)),
        ("wait".to_string(), AttributeValue::Null(true)),
        (
            "selector".to_string(),
            AttributeValue::M(HashMap::from([(
                "tags".to_string(),
                AttributeValue::L(vec![s("a"), AttributeValue::N("1.5".into())]),
            )])),
        ),
    ]));
    bed.put_raw(HashMap::from([
        ("pk".to_string(), s("RecycleRequest/by-hand")),
        ("kind".to_string(), s("RecycleRequest")),
        ("name".to_string(), s("by-hand")),
        ("spec".to_string(), spec_map),
        ("active".to_string(), s("1")),
        ("createdAt".to_string(), s("2030-01-01T12:00:00Z")),
    ]))
    .await;

    let expected_spec = json!({
        "cluster": "prod", "service": "web", "batchSize": 2, "maintainCapacity": true,
        "wait": null, "selector": {"tags": ["a", 1.5]}
    });
    let record = bed
        .store
        .get(RR, "by-hand")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.version, 0);
    assert_eq!(record.spec, Ok(expected_spec.clone()));
    assert_eq!(record.created_at, Some(t0()));
    assert!(record.active);

    let active = bed.store.list_active(RR).await.expect("list active");
    assert_eq!(active, [record]);

    assert!(
        bed.store
            .acquire_lease(RR, "by-hand", "r1", at(1), at(60))
            .await
            .expect("lease")
    );
    assert_eq!(bed.version("by-hand").await, 0);
    let stale = bed
        .store
        .write_status(RR, "by-hand", status_write(1, "r1", at(2)))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let version = bed
        .store
        .write_status(RR, "by-hand", status_write(0, "r1", at(2)))
        .await
        .expect("write status at version 0");
    assert_eq!(version, 1);
    let record = bed
        .store
        .get(RR, "by-hand")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.version, 1);
    assert_eq!(record.spec, Ok(expected_spec));
    assert_eq!(record.status, Some(json!({"phase": "Recycling"})));

    // A second client record, never written by the operator: update_spec at
    // version 0 works too, and stores the spec as a JSON string.
    bed.put_raw(HashMap::from([
        ("pk".to_string(), s("RecycleRequest/by-hand-2")),
        ("kind".to_string(), s("RecycleRequest")),
        ("name".to_string(), s("by-hand-2")),
        (
            "spec".to_string(),
            s(r#"{"cluster":"prod","service":"api"}"#),
        ),
    ]))
    .await;
    let updated = bed
        .store
        .update_spec(RR, "by-hand-2", 0, spec("api"))
        .await
        .expect("update at version 0");
    assert_eq!(updated.version, 1);
    assert_eq!(updated.created_at, None);
    assert!(!updated.active);
    assert!(bed.get_raw("RecycleRequest/by-hand-2").await["spec"].is_s());
}

#[tokio::test]
async fn a_malformed_item_fails_alone() {
    let bed = bed("malformed").await;
    bed.store
        .create(RR, "good", spec("web"), at(0))
        .await
        .expect("good");
    let client_item = |name: &str, created: &str| {
        HashMap::from([
            ("pk".to_string(), s(&format!("RecycleRequest/{name}"))),
            ("kind".to_string(), s("RecycleRequest")),
            ("name".to_string(), s(name)),
            ("active".to_string(), s("1")),
            ("createdAt".to_string(), s(created)),
        ])
    };
    let mut not_json = client_item("not-json", "2030-01-01T12:00:01Z");
    not_json.insert("spec".into(), s("{cluster: prod"));
    bed.put_raw(not_json).await;
    bed.put_raw(client_item("no-spec", "2030-01-01T12:00:02Z"))
        .await;
    let mut bad_time = client_item("bad-time", "yesterday");
    bad_time.insert("spec".into(), s("{}"));
    bed.put_raw(bad_time).await;
    let mut binary = client_item("binary", "2030-01-01T12:00:03Z");
    binary.insert(
        "spec".into(),
        AttributeValue::M(HashMap::from([(
            "blob".to_string(),
            AttributeValue::B(vec![1u8, 2].into()),
        )])),
    );
    bed.put_raw(binary).await;
    let mut wrong_name = client_item("wrong-name", "2030-01-01T12:00:04Z");
    wrong_name.insert("name".into(), s("other"));
    wrong_name.insert("spec".into(), s("{}"));
    bed.put_raw(wrong_name).await;
    // A status that cannot be read still allows a safe write: listed, with
    // what the item holds as a string no status reader accepts.
    let mut bad_status = client_item("bad-status", "2030-01-01T12:00:05Z");
    bad_status.insert("spec".into(), s("{}"));
    bad_status.insert("status".into(), s("{phase"));
    bed.put_raw(bad_status).await;
    let mut map_status = client_item("map-status", "2030-01-01T12:00:06Z");
    map_status.insert("spec".into(), s("{}"));
    map_status.insert(
        "status".into(),
        AttributeValue::M(HashMap::from([("phase".to_string(), s("Succeeded"))])),
    );
    bed.put_raw(map_status).await;
    // A version or a lease that cannot be read leaves no safe conditional
    // write: corrupt, left out.
    let mut bad_version = client_item("bad-version", "2030-01-01T12:00:07Z");
    bad_version.insert("spec".into(), s("{}"));
    bad_version.insert("version".into(), AttributeValue::N("1.5".into()));
    bed.put_raw(bad_version).await;
    let mut bad_lease = client_item("bad-lease", "2030-01-01T12:00:08Z");
    bad_lease.insert("spec".into(), s("{}"));
    bad_lease.insert("leaseHolder".into(), s("r9"));
    bad_lease.insert("leaseExpires".into(), s("tomorrow"));
    bed.put_raw(bad_lease).await;

    let active = bed
        .store
        .list_active(RR)
        .await
        .expect("one bad item never fails a listing");
    assert_eq!(
        names(&active),
        [
            "bad-time",
            "good",
            "not-json",
            "no-spec",
            "binary",
            "wrong-name",
            "bad-status",
            "map-status",
        ]
    );
    let by_name: HashMap<_, _> = active.iter().map(|r| (r.name.as_str(), r)).collect();
    assert_eq!(by_name["good"].spec, Ok(spec("web")));
    let reason = |name: &str| by_name[name].spec.clone().expect_err("a malformed spec");
    assert!(
        reason("not-json").contains("not a JSON document"),
        "{}",
        reason("not-json")
    );
    assert!(
        reason("no-spec").contains("no spec"),
        "{}",
        reason("no-spec")
    );
    assert!(
        reason("bad-time").contains("RFC 3339"),
        "{}",
        reason("bad-time")
    );
    assert!(
        reason("binary").contains("spec.blob"),
        "{}",
        reason("binary")
    );
    assert!(
        reason("wrong-name").contains("\"other\""),
        "{}",
        reason("wrong-name")
    );
    assert_eq!(by_name["bad-time"].created_at, None);

    assert_eq!(by_name["bad-status"].status, Some(json!("{phase")));
    assert_eq!(by_name["bad-status"].spec, Ok(json!({})));
    let unread = |name: &str| {
        ecs_recycler::request_status(by_name[name].status.as_ref())
            .expect_err("an unreadable status")
    };
    assert!(
        unread("bad-status").contains("{phase"),
        "{}",
        unread("bad-status")
    );
    assert!(
        unread("map-status").contains("a map (M)"),
        "{}",
        unread("map-status")
    );

    let all = bed.store.list_all(RR).await.expect("list all");
    assert_eq!(all.len(), 8);

    for (name, attribute) in [("bad-version", "version"), ("bad-lease", "leaseExpires")] {
        let corrupt = bed.store.get(RR, name).await;
        assert!(
            matches!(corrupt, Err(StoreError::Corrupt(ref m)) if m.contains(attribute)),
            "{name}: {corrupt:?}"
        );
    }
    assert_eq!(
        bed.store.get(RR, "bad-status").await.expect("get").as_ref(),
        Some(by_name["bad-status"]),
        "get reads it as the listing does"
    );

    // The operator can still mark a malformed record failed.
    assert!(
        bed.store
            .acquire_lease(RR, "not-json", "r1", at(10), at(60))
            .await
            .expect("lease")
    );
    bed.store
        .write_status(
            RR,
            "not-json",
            StatusWrite {
                status: json!({"phase": "Failed"}),
                active: false,
                ..status_write(0, "r1", at(11))
            },
        )
        .await
        .expect("mark failed");
    let active = bed.store.list_active(RR).await.expect("list active");
    assert!(!names(&active).contains(&"not-json"));
}

#[tokio::test]
async fn strays_are_told_by_their_key_and_failed_keeping_every_other_attribute() {
    let bed = bed("strays").await;
    let item = |pk: &str, kind: &str| {
        HashMap::from([
            ("pk".to_string(), s(pk)),
            ("kind".to_string(), s(kind)),
            ("spec".to_string(), s(r#"{"cluster":"prod"}"#)),
            ("active".to_string(), s("1")),
            ("createdAt".to_string(), s("2030-01-01T12:00:00Z")),
        ])
    };
    // The key says what a record is: a known key with a wrong `kind` is a
    // request (failed for the mismatch), an unknown key with a known `kind`
    // is a stray, and so is a key without a kind at all.
    bed.put_raw(item("RecycleRequest/mixed", "Widget")).await;
    bed.put_raw(item("Widget/claims-request", "RecycleRequest"))
        .await;
    let mut no_kind = item("web-rotate", "RecycleRequest");
    no_kind.insert("createdAt".into(), s("2029-12-31T00:00:00Z"));
    no_kind.insert("owner".into(), s("team-a"));
    bed.put_raw(no_kind).await;
    let mut unreadable = item("Widget/bad-version", "Widget");
    unreadable.insert("version".into(), s("seven"));
    bed.put_raw(unreadable).await;

    let strays = bed.store.list_strays().await.expect("list strays");
    let keys: Vec<(&str, &str)> = strays
        .iter()
        .map(|s| (s.key.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("web-rotate", "web-rotate"),
            ("Widget/claims-request", "Widget")
        ]
    );
    let mixed = bed
        .store
        .get(RR, "mixed")
        .await
        .expect("get")
        .expect("exists");
    assert!(mixed.spec.unwrap_err().contains("Widget"));

    let version = bed
        .store
        .fail_stray(&strays[0], json!({"phase": "Failed", "message": "bad key"}))
        .await
        .expect("fail stray");
    assert_eq!(version, 1);
    let raw = bed.get_raw("web-rotate").await;
    assert_eq!(raw["spec"], s(r#"{"cluster":"prod"}"#), "spec as written");
    assert_eq!(raw["owner"], s("team-a"), "every other attribute kept");
    assert_eq!(raw["version"], AttributeValue::N("1".into()));
    assert!(!raw.contains_key("active"), "out of the index: {raw:?}");
    assert!(
        !raw.contains_key("expiresAt"),
        "kept until a person deletes it"
    );
    let status: Value = serde_json::from_str(raw["status"].as_s().unwrap()).unwrap();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(bed.store.list_strays().await.expect("list").len(), 1);
}

#[tokio::test]
async fn list_active_queries_the_sparse_index_across_pages_and_never_scans() {
    let bed = recorded_bed("index").await;
    let (proxy, config, table, store) = (&bed.proxy, &bed.config, bed.table.clone(), &bed.store);

    // Big specs so the index and the table answer in several 1 MB pages.
    let blob = "x".repeat(200_000);
    for i in 0..12 {
        store
            .create(RR, &format!("r{i:02}"), json!({"blob": blob}), at(i))
            .await
            .expect("create");
    }
    // Finished records are not in the index at all.
    for i in 0..3 {
        let name = format!("r{i:02}");
        assert!(
            store
                .acquire_lease(RR, &name, "r1", at(20), at(60))
                .await
                .expect("lease")
        );
        store
            .write_status(
                RR,
                &name,
                StatusWrite {
                    active: false,
                    ..status_write(1, "r1", at(21))
                },
            )
            .await
            .expect("finish");
    }
    // Active but without createdAt: a sparse index leaves it out, a Scan would not.
    let raw = aws_sdk_dynamodb::Client::new(config);
    raw.put_item()
        .table_name(&table)
        .item("pk", s("RecycleRequest/no-created-at"))
        .item("kind", s("RecycleRequest"))
        .item("name", s("no-created-at"))
        .item("spec", s("{}"))
        .item("active", s("1"))
        .send()
        .await
        .expect("raw put");

    proxy.clear();
    let active = store.list_active(RR).await.expect("list active");
    let expected: Vec<String> = (3..12).map(|i| format!("r{i:02}")).collect();
    assert_eq!(names(&active), expected);
    let requests = proxy.requests();
    let queries = requests
        .iter()
        .filter(|r| r.contains("dynamodb_20120810.query"))
        .count();
    assert!(
        queries >= 2,
        "9 items of 200 KB take several pages; saw {queries} Query calls"
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.contains("dynamodb_20120810.scan"))
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.contains("dynamodb_20120810.query"))
            .all(|r| r.contains(ACTIVE_INDEX)),
        "every Query names the index"
    );

    // Strays come from the same index, never from a scan.
    raw.put_item()
        .table_name(&table)
        .item("pk", s("RecycleRequests/typo"))
        .item("spec", s("{}"))
        .item("active", s("1"))
        .item("createdAt", s("2030-01-01T12:00:00Z"))
        .send()
        .await
        .expect("raw put");
    proxy.clear();
    let strays = store.list_strays().await.expect("list strays");
    assert_eq!(
        strays.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
        ["RecycleRequests/typo"]
    );
    let requests = proxy.requests();
    assert!(
        !requests.is_empty()
            && requests
                .iter()
                .all(|r| r.contains("dynamodb_20120810.query") && r.contains(ACTIVE_INDEX)),
        "one Query of the index per page, nothing else"
    );

    proxy.clear();
    let all = store.list_all(RR).await.expect("list all");
    assert_eq!(all.len(), 13);
    let scans = proxy
        .requests()
        .iter()
        .filter(|r| r.contains("dynamodb_20120810.scan"))
        .count();
    assert!(
        scans >= 2,
        "list_all follows every page; saw {scans} Scan calls"
    );
}

#[tokio::test]
async fn the_lean_listing_leaves_statuses_in_the_table_and_reads_the_phase_beside_them() {
    let bed = recorded_bed("lean").await;
    let (proxy, config, table, store) = (&bed.proxy, &bed.config, bed.table.clone(), &bed.store);
    let raw = aws_sdk_dynamodb::Client::new(config);

    store
        .create(RR, "a", spec("web"), at(1))
        .await
        .expect("create");
    assert!(
        store
            .acquire_lease(RR, "a", "r1", at(2), at(60))
            .await
            .expect("lease")
    );
    let long = json!({"phase": "Recycling", "message": "x".repeat(100_000)});
    store
        .write_status(
            RR,
            "a",
            StatusWrite {
                status: long,
                ..status_write(1, "r1", at(3))
            },
        )
        .await
        .expect("write status");
    // The phase is written beside the status, and goes with the next one.
    assert_eq!(
        get_raw(&raw, &table, "RecycleRequest/a").await.get("phase"),
        Some(&s("Recycling"))
    );
    store
        .write_status(
            RR,
            "a",
            StatusWrite {
                status: json!({"events": []}),
                ..status_write(2, "r1", at(4))
            },
        )
        .await
        .expect("write a status with no phase");
    assert_eq!(
        get_raw(&raw, &table, "RecycleRequest/a").await.get("phase"),
        None
    );
    store
        .write_status(RR, "a", status_write(3, "r1", at(5)))
        .await
        .expect("write status");
    // An item an older operator wrote: a status, and no phase beside it.
    raw.put_item()
        .table_name(&table)
        .item("pk", s("RecycleRequest/older"))
        .item("kind", s("RecycleRequest"))
        .item("name", s("older"))
        .item("spec", s(&spec("api").to_string()))
        .item("status", s(r#"{"phase":"Recycling"}"#))
        .item("version", AttributeValue::N("4".into()))
        .item("active", s("1"))
        .item("createdAt", s(&at(6).to_rfc3339()))
        .send()
        .await
        .expect("raw put");

    proxy.clear();
    let lean = store.list_active_lean(RR).await.expect("lean listing");
    let listed: Vec<(&str, Option<&str>, u64)> = lean
        .iter()
        .map(|r| (r.name.as_str(), r.phase.as_deref(), r.version))
        .collect();
    assert_eq!(
        listed,
        [("a", Some("Recycling"), 4), ("older", None, 4)],
        "the phase is read from its attribute; an item without one lists with none until its next write"
    );
    let spec_a: Value = serde_json::from_str(lean[0].spec.as_deref().expect("spec")).expect("JSON");
    assert_eq!(spec_a, spec("web"));
    assert_eq!(
        lean[0].lease.as_ref().map(|l| l.holder.as_str()),
        Some("r1")
    );
    let queries: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains("dynamodb_20120810.query"))
        .collect();
    assert!(!queries.is_empty());
    for query in &queries {
        assert!(query.contains("projectionexpression"), "{query}");
        assert!(
            !query.contains("\"status\""),
            "the status is not asked for: {query}"
        );
    }
    // The whole listing still reads statuses whole.
    let full = store.list_active(RR).await.expect("full listing");
    assert_eq!(
        full[0].status.as_ref().map(|s| s["phase"].clone()),
        Some(json!("Recycling"))
    );
}

#[tokio::test]
async fn list_all_is_by_name_and_delete_is_forgiving() {
    let bed = bed("all").await;
    for (name, t) in [("b", 1), ("c", 0), ("a", 2)] {
        bed.store
            .create(RR, name, spec(name), at(t))
            .await
            .expect("create");
    }
    bed.store
        .create(Kind::RecycleSchedule, "a", json!({}), at(0))
        .await
        .expect("schedule");
    assert_eq!(
        names(&bed.store.list_all(RR).await.expect("list")),
        ["a", "b", "c"]
    );

    bed.store.delete(RR, "b").await.expect("delete");
    assert_eq!(bed.store.get(RR, "b").await.expect("get"), None);
    bed.store
        .delete(RR, "b")
        .await
        .expect("delete a missing record");
    assert_eq!(
        names(&bed.store.list_all(RR).await.expect("list")),
        ["a", "c"]
    );
    assert_eq!(
        names(&bed.store.list_active(RR).await.expect("list")),
        ["c", "a"]
    );
    assert_eq!(
        names(
            &bed.store
                .list_all(Kind::RecycleSchedule)
                .await
                .expect("list")
        ),
        ["a"]
    );
}

#[tokio::test]
async fn aws_errors_name_the_operation_the_table_and_the_code() {
    let bed = bed("errors").await;
    let config = sdk_config(&bed.url).await;
    let store = DynamoStore::new(&config, "no-such-table");
    let message = |result: Result<_, StoreError>| match result {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    };

    let get = message(store.get(RR, "r").await.map(|_| ()));
    for part in [
        "GetItem",
        "no-such-table",
        "RecycleRequest/r",
        "ResourceNotFoundException",
    ] {
        assert!(get.contains(part), "{part:?} missing from {get:?}");
    }
    let list = message(store.list_active(RR).await.map(|_| ()));
    for part in ["Query", "no-such-table", "ResourceNotFoundException"] {
        assert!(list.contains(part), "{part:?} missing from {list:?}");
    }
    let lease = message(
        store
            .acquire_lease(RR, "r", "r1", at(0), at(1))
            .await
            .map(|_| ()),
    );
    for part in ["UpdateItem", "no-such-table", "ResourceNotFoundException"] {
        assert!(lease.contains(part), "{part:?} missing from {lease:?}");
    }

    // Nothing listening: the transport failure is named, not hidden.
    let dead = DynamoStore::new(&sdk_config("http://127.0.0.1:9").await, &bed.table);
    let unreachable = message(dead.delete(RR, "r").await);
    assert!(unreachable.contains("DeleteItem"), "{unreachable}");
    assert!(unreachable.contains(&bed.table), "{unreachable}");
}

/// moto behind a [`RecordingProxy`], a fresh table made by `create_table`,
/// and the store on it, to see which calls the store sends.
struct RecordedBed {
    // Kept for its Drop: moto lives as long as the test's bed.
    _moto: Moto,
    proxy: RecordingProxy,
    config: aws_config::SdkConfig,
    table: String,
    store: DynamoStore,
}

async fn recorded_bed(test: &str) -> RecordedBed {
    let moto = Moto::start();
    let proxy = RecordingProxy::start(&moto.url).await;
    let config = sdk_config(&proxy.url).await;
    let table = table_name(test);
    let store = DynamoStore::new(&config, &table);
    store.create_table().await.expect("create table");
    RecordedBed {
        _moto: moto,
        proxy,
        config,
        table,
        store,
    }
}

/// The bytes one client connection sent.
type Sent = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy in front of moto that keeps every request's bytes, to see
/// which operations the store really sends.
struct RecordingProxy {
    url: String,
    connections: Arc<Mutex<Vec<Sent>>>,
}

impl RecordingProxy {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let connections: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let all = connections.clone();
        // Runs on the test's runtime, so it ends with the test.
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let seen: Sent = Arc::default();
                all.lock().push(seen.clone());
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        seen.lock().extend_from_slice(&buffer[..n]);
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                });
            }
        });
        Self { url, connections }
    }

    fn clear(&self) {
        for seen in self.connections.lock().iter() {
            seen.lock().clear();
        }
    }

    /// What each connection sent since the last `clear`, lowercased, split
    /// into requests at their request lines.
    fn requests(&self) -> Vec<String> {
        self.connections
            .lock()
            .iter()
            .flat_map(|seen| {
                let text = String::from_utf8_lossy(&seen.lock()).to_lowercase();
                text.split("post / http/1.1")
                    .filter(|r| !r.trim().is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
