//! The DynamoDB implementation of [`Store`]: one table, one item per record,
//! keyed `pk = "<Kind>/<name>"`, and a sparse global secondary index
//! (`active-index`) that holds only the records with work left, so the
//! reconciler's listing costs O(active records). This module owns the item
//! schema (documented in the README, "DynamoDB item schema"), the translation of
//! the trait's conditional semantics into condition expressions, the table's
//! creation for `ecs-recycler init`, and the mapping of AWS errors onto
//! [`StoreError`].
//!
//! Items may be written by any client with a plain `PutItem`, so reading is
//! lenient where a client's mistake can be reported on the record itself (a
//! missing or malformed spec, a bad `createdAt`: the record comes back with
//! `spec: Err(..)` and the operator marks it failed) and strict where only the
//! operator writes. A `status` that is not a JSON string comes back as a
//! string no status reader accepts, so the operator marks the record failed
//! with the reason, by the usual write conditional on version and lease. A
//! `version` or lease that cannot be read leaves no safe conditional write:
//! such an item is [`StoreError::Corrupt`] from [`Store::get`] and is left
//! out of listings, logged with backoff ([`Unreadable`]), so one unreadable
//! item never stops the others, is never overwritten blindly, and does not
//! fill the log. An active item of no known kind is listed by
//! [`Store::list_strays`] and failed by [`Store::fail_stray`].

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};

use super::unreadable::Unreadable;
use super::{Kind, Lease, STRAY, StatusWrite, Store, StoreError, StoreResult, StoredRecord, Stray};
use crate::aws::sdk::{self, Timeouts};

/// The sparse index of records with work left.
pub const ACTIVE_INDEX: &str = "active-index";

const PK: &str = "pk";
const KIND: &str = "kind";
const NAME: &str = "name";
const SPEC: &str = "spec";
const STATUS: &str = "status";
const VERSION: &str = "version";
const CREATED_AT: &str = "createdAt";
const ACTIVE: &str = "active";
const LEASE_HOLDER: &str = "leaseHolder";
const LEASE_EXPIRES: &str = "leaseExpires";
const EXPIRES_AT: &str = "expiresAt";
/// The value of `active` that puts an item in the index.
const ACTIVE_YES: &str = "1";

/// Table creation normally takes seconds; a GSI backfill on a big table can
/// take longer, but `init` should not hang forever on a stuck table.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
    /// Where the calls go and their deadlines, for the sentence of a call
    /// that got no answer.
    endpoint: String,
    timeouts: Timeouts,
    /// Items left out of listings, logged with backoff.
    unreadable: Unreadable,
}

/// How a conditional UpdateItem ended, when AWS answered.
enum Update {
    /// The item after the update (with `ReturnValues` ALL_NEW), if asked for.
    Done(Option<Item>),
    /// The condition failed; the item as it was, or None if it does not exist.
    Refused(Option<Item>),
}

impl DynamoStore {
    /// A store on `table`, with the SDK configuration from the standard chain
    /// (`crate::aws::sdk::load` honours `AWS_ENDPOINT_URL_DYNAMODB`,
    /// `AWS_REGION`, `AWS_PROFILE`, ... and sets the deadlines).
    pub fn new(sdk_config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(sdk_config),
            table: table.into(),
            endpoint: sdk::DYNAMODB.endpoint(sdk_config),
            timeouts: Timeouts::of(sdk_config),
            unreadable: Unreadable::default(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its index (on-demand billing) if it does not
    /// exist, waits until table and index are ACTIVE, and enables TTL on
    /// `expiresAt`. Running it again on a ready table changes nothing; a table
    /// of that name with another key schema or without the index is refused.
    pub async fn create_table(&self) -> StoreResult<()> {
        let string_attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(ACTIVE_INDEX)
            .key_schema(key(ACTIVE, KeyType::Hash)?)
            .key_schema(key(CREATED_AT, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(PK)?)
            .attribute_definitions(string_attribute(ACTIVE)?)
            .attribute_definitions(string_attribute(CREATED_AT)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Idempotence: the table exists (or is being made); it is checked below.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateTableError::ResourceInUseException(_))
                ) => {}
            Err(e) => return Err(self.unavailable("CreateTable", None, e)),
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    async fn wait_until_active(&self) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        let mut delay = Duration::from_millis(250);
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.unavailable("DescribeTable", None, e))?;
            let Some(table) = described.table() else {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB DescribeTable on table {} answered without a table description",
                    self.table
                )));
            };
            let hash_key = |schema: &[KeySchemaElement]| {
                schema
                    .iter()
                    .find(|k| k.key_type() == &KeyType::Hash)
                    .map(|k| k.attribute_name().to_string())
            };
            let range_key = |schema: &[KeySchemaElement]| {
                schema
                    .iter()
                    .find(|k| k.key_type() == &KeyType::Range)
                    .map(|k| k.attribute_name().to_string())
            };
            if hash_key(table.key_schema()).as_deref() != Some(PK)
                || range_key(table.key_schema()).is_some()
            {
                return Err(StoreError::Unavailable(format!(
                    "table {} exists but its key is not the partition key {PK} alone; \
                     it is not an ecs-recycler table",
                    self.table
                )));
            }
            let index = table
                .global_secondary_indexes()
                .iter()
                .find(|i| i.index_name() == Some(ACTIVE_INDEX));
            let Some(index) = index else {
                return Err(StoreError::Unavailable(format!(
                    "table {} exists but has no global secondary index {ACTIVE_INDEX}; \
                     add it (partition key {ACTIVE} S, sort key {CREATED_AT} S, projection ALL) \
                     or use a new table",
                    self.table
                )));
            };
            if hash_key(index.key_schema()).as_deref() != Some(ACTIVE)
                || range_key(index.key_schema()).as_deref() != Some(CREATED_AT)
            {
                return Err(StoreError::Unavailable(format!(
                    "table {}: index {ACTIVE_INDEX} must have partition key {ACTIVE} and sort key {CREATED_AT}",
                    self.table
                )));
            }
            let status = table.table_status();
            if matches!(
                status,
                Some(TableStatus::Deleting) | Some(TableStatus::Archived)
            ) {
                return Err(StoreError::Unavailable(format!(
                    "table {} is {}; it cannot be used",
                    self.table,
                    status.map(|s| s.as_str()).unwrap_or_default()
                )));
            }
            // Reads through the index fail while it is still CREATING, so it
            // must be ready too, not only the table.
            if status == Some(&TableStatus::Active)
                && index.index_status() == Some(&IndexStatus::Active)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(StoreError::Unavailable(format!(
                    "table {} (status {:?}, index {ACTIVE_INDEX} status {:?}) did not become ACTIVE within {:?}",
                    self.table,
                    status.map(|s| s.as_str()),
                    index.index_status().map(|s| s.as_str()),
                    TABLE_ACTIVE_TIMEOUT
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn enable_ttl(&self) -> StoreResult<()> {
        // AWS refuses UpdateTimeToLive on a table where it is already enabled
        // (ValidationException), so look first. moto 5.2.5 accepts the repeat,
        // so the test bed cannot catch a missing look-first.
        let described = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.unavailable("DescribeTimeToLive", None, e))?;
        let ttl = described.time_to_live_description();
        let status = ttl.and_then(|t| t.time_to_live_status());
        let attribute = ttl.and_then(|t| t.attribute_name());
        match status {
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                if attribute == Some(EXPIRES_AT) =>
            {
                Ok(())
            }
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
                Err(StoreError::Unavailable(format!(
                    "table {} has TTL on attribute {} already; ecs-recycler needs it on {EXPIRES_AT}",
                    self.table,
                    attribute.unwrap_or("(unnamed)")
                )))
            }
            Some(TimeToLiveStatus::Disabling) => Err(StoreError::Unavailable(format!(
                "TTL on table {} is being disabled; DynamoDB refuses to enable it until that ends, \
                 run init again later",
                self.table
            ))),
            _ => {
                let spec = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(EXPIRES_AT)
                    .build()
                    .map_err(build_error)?;
                self.client
                    .update_time_to_live()
                    .table_name(&self.table)
                    .time_to_live_specification(spec)
                    .send()
                    .await
                    .map_err(|e| self.unavailable("UpdateTimeToLive", None, e))?;
                Ok(())
            }
        }
    }

    /// An error AWS (or the way to it) gave, as a sentence naming the
    /// operation, the table, the record if any, and AWS's code and message.
    fn unavailable<E, R>(
        &self,
        operation: &str,
        key: Option<&str>,
        error: SdkError<E, R>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let on = match key {
            Some(key) => format!("{operation} of {key} on table {}", self.table),
            None => format!("{operation} on table {}", self.table),
        };
        if let Some(why) =
            sdk::unanswered(sdk::DYNAMODB, &on, &self.endpoint, &self.timeouts, &error)
        {
            return StoreError::Unavailable(why);
        }
        match (error.code(), error.message()) {
            (Some(code), Some(message)) => {
                StoreError::Unavailable(format!("DynamoDB refused {on}: {code}: {message}"))
            }
            (Some(code), None) => StoreError::Unavailable(format!("DynamoDB refused {on}: {code}")),
            _ => StoreError::Unavailable(format!(
                "DynamoDB {on} failed: {}",
                DisplayErrorContext(&error)
            )),
        }
    }

    /// Sends a conditional update, asking for the old item when the condition
    /// fails, so one round trip tells "missing" from "changed" from "leased".
    async fn update(
        &self,
        operation: &str,
        key: &str,
        request: UpdateItemFluentBuilder,
    ) -> StoreResult<Update> {
        let sent = request
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(output) => Ok(Update::Done(output.attributes)),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Update::Refused(refused.item().cloned()))
                }
                _ => Err(self.unavailable(operation, Some(key), e)),
            },
        }
    }

    /// Records of `kind` among `items`; unreadable ones are left out, logged
    /// with backoff, and their keys added to `left_out`.
    fn records_of(
        &self,
        kind: Kind,
        items: Vec<Item>,
        into: &mut Vec<StoredRecord>,
        left_out: &mut HashSet<String>,
    ) {
        for item in items {
            match record_from_item(&item) {
                Ok(record) if record.kind == kind => into.push(record),
                Ok(_) => {}
                Err(reason) => self.leave_out(&item, &reason, left_out),
            }
        }
    }

    fn leave_out(&self, item: &Item, reason: &str, left_out: &mut HashSet<String>) {
        let key = item
            .get(PK)
            .and_then(|v| v.as_s().ok())
            .map_or("?", String::as_str);
        self.unreadable.left_out(&self.table, key, reason);
        left_out.insert(key.to_string());
    }
}

impl Store for DynamoStore {
    async fn create(
        &self,
        kind: Kind,
        name: &str,
        spec: Value,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredRecord> {
        let key = key(kind, name);
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(key.clone()))
            .item(KIND, AttributeValue::S(kind.as_str().to_string()))
            .item(NAME, AttributeValue::S(name.to_string()))
            .item(SPEC, AttributeValue::S(spec.to_string()))
            .item(VERSION, number(1))
            .item(CREATED_AT, AttributeValue::S(timestamp(now)))
            .item(ACTIVE, AttributeValue::S(ACTIVE_YES.to_string()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(StoredRecord {
                kind,
                name: name.to_string(),
                spec: Ok(spec),
                status: None,
                version: 1,
                created_at: Some(now),
                active: true,
                lease: None,
            }),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    Err(StoreError::AlreadyExists {
                        kind: kind.as_str(),
                        name: name.to_string(),
                    })
                }
                _ => Err(self.unavailable("PutItem", Some(&key), e)),
            },
        }
    }

    async fn get(&self, kind: Kind, name: &str) -> StoreResult<Option<StoredRecord>> {
        let key = key(kind, name);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", Some(&key), e))?;
        match output.item {
            None => Ok(None),
            Some(item) => record_from_item(&item).map(Some).map_err(|reason| {
                StoreError::Corrupt(format!("{key} in table {}: {reason}", self.table))
            }),
        }
    }

    async fn list_active(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        // Only a Query on the sparse index keeps this O(active records); the
        // index holds every kind, so the kind is a filter, not a key.
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACTIVE_INDEX)
            .key_condition_expression("#active = :yes")
            .filter_expression("begins_with(#pk, :prefix)")
            .expression_attribute_names("#active", ACTIVE)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":yes", AttributeValue::S(ACTIVE_YES.to_string()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix(kind)))
            .into_paginator()
            .send();
        let (mut records, mut left_out) = (Vec::new(), HashSet::new());
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.unavailable("Query", None, e))?;
            self.records_of(
                kind,
                page.items.unwrap_or_default(),
                &mut records,
                &mut left_out,
            );
        }
        self.unreadable
            .settle(|key| key.starts_with(&prefix(kind)), &left_out);
        // The index orders by the createdAt string; clients may write other
        // RFC 3339 spellings, and ties need the name, so order by value here.
        records.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(records)
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        // The key, not the `kind` attribute, says what a record is (it is how
        // `get` finds it), so an item a client wrote without `kind` is listed too.
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#pk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":prefix", AttributeValue::S(prefix(kind)))
            .consistent_read(true)
            .into_paginator()
            .send();
        let (mut records, mut left_out) = (Vec::new(), HashSet::new());
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.unavailable("Scan", None, e))?;
            self.records_of(
                kind,
                page.items.unwrap_or_default(),
                &mut records,
                &mut left_out,
            );
        }
        self.unreadable
            .settle(|key| key.starts_with(&prefix(kind)), &left_out);
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    async fn update_spec(
        &self,
        kind: Kind,
        name: &str,
        expected_version: u64,
        spec: Value,
    ) -> StoreResult<StoredRecord> {
        let key = key(kind, name);
        let request = self
            .client
            .update_item()
            .update_expression("SET #spec = :spec, #version = :next")
            .condition_expression(format!(
                "attribute_exists(#pk) AND {}",
                version_is(expected_version)
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#spec", SPEC)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":spec", AttributeValue::S(spec.to_string()))
            .expression_attribute_values(":expected", number(expected_version))
            .expression_attribute_values(":next", number(expected_version + 1))
            .return_values(ReturnValue::AllNew);
        match self.update("UpdateItem (spec)", &key, request).await? {
            Update::Done(Some(item)) => record_from_item(&item).map_err(|reason| {
                StoreError::Corrupt(format!("{key} in table {}: {reason}", self.table))
            }),
            Update::Done(None) => Err(StoreError::Unavailable(format!(
                "DynamoDB UpdateItem of {key} on table {} returned no attributes though ALL_NEW was asked",
                self.table
            ))),
            Update::Refused(None) => Err(not_found(kind, name)),
            Update::Refused(Some(_)) => Err(StoreError::Conflict {
                kind: kind.as_str(),
                name: name.to_string(),
                expected: expected_version,
            }),
        }
    }

    async fn write_status(&self, kind: Kind, name: &str, write: StatusWrite) -> StoreResult<u64> {
        let key = key(kind, name);
        let status = write.status.to_string();
        let next = write.expected_version + 1;
        let mut set = vec!["#status = :status", "#version = :next"];
        let mut remove = Vec::new();
        if write.active {
            set.push("#active = :yes");
        } else {
            remove.push("#active");
        }
        if write.expires_at.is_some() {
            set.push("#expiresAt = :expiresAt");
        } else {
            remove.push("#expiresAt");
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut request = self
            .client
            .update_item()
            .update_expression(expression)
            .condition_expression(format!(
                "attribute_exists(#pk) AND {} AND #holder = :me AND #expires > :now",
                version_is(write.expected_version)
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#active", ACTIVE)
            .expression_attribute_names("#expiresAt", EXPIRES_AT)
            .expression_attribute_names("#holder", LEASE_HOLDER)
            .expression_attribute_names("#expires", LEASE_EXPIRES)
            .expression_attribute_values(":status", AttributeValue::S(status.clone()))
            .expression_attribute_values(":expected", number(write.expected_version))
            .expression_attribute_values(":next", number(next))
            .expression_attribute_values(":me", AttributeValue::S(write.holder.clone()))
            .expression_attribute_values(":now", millis(write.now));
        if write.active {
            request = request
                .expression_attribute_values(":yes", AttributeValue::S(ACTIVE_YES.to_string()));
        }
        if let Some(expires_at) = write.expires_at {
            request =
                request.expression_attribute_values(":expiresAt", number(expires_at.timestamp()));
        }
        match self.update("UpdateItem (status)", &key, request).await? {
            Update::Done(_) => Ok(next),
            Update::Refused(None) => Err(not_found(kind, name)),
            // An attempt that timed out may have landed before the SDK sent
            // it again: the retry then fails its version condition on our
            // own write. The item tells: our version, our status, our lease.
            Update::Refused(Some(old))
                if old.get(VERSION).and_then(|v| v.as_n().ok()) == Some(&next.to_string())
                    && old.get(STATUS).and_then(|v| v.as_s().ok()) == Some(&status)
                    && old.get(LEASE_HOLDER).and_then(|v| v.as_s().ok()) == Some(&write.holder) =>
            {
                Ok(next)
            }
            Update::Refused(Some(old)) => {
                // A lost lease says more than a stale version: with it gone,
                // re-reading and deciding again is not this replica's job.
                let held = old.get(LEASE_HOLDER).and_then(|v| v.as_s().ok()) == Some(&write.holder)
                    && old
                        .get(LEASE_EXPIRES)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok())
                        .is_some_and(|expires| expires > write.now.timestamp_millis());
                if held {
                    Err(StoreError::Conflict {
                        kind: kind.as_str(),
                        name: name.to_string(),
                        expected: write.expected_version,
                    })
                } else {
                    Err(StoreError::LeaseLost {
                        kind: kind.as_str(),
                        name: name.to_string(),
                        holder: write.holder,
                    })
                }
            }
        }
    }

    async fn acquire_lease(
        &self,
        kind: Kind,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let key = key(kind, name);
        // Expired means `leaseExpires <= now`, the exact complement of the
        // `> now` that status writes require: no instant where nobody can act.
        let request = self
            .client
            .update_item()
            .update_expression("SET #holder = :me, #expires = :until")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#holder) OR #holder = :me OR #expires <= :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#holder", LEASE_HOLDER)
            .expression_attribute_names("#expires", LEASE_EXPIRES)
            .expression_attribute_values(":me", AttributeValue::S(holder.to_string()))
            .expression_attribute_values(":until", millis(until))
            .expression_attribute_values(":now", millis(now));
        match self.update("UpdateItem (lease)", &key, request).await? {
            Update::Done(_) => Ok(true),
            Update::Refused(None) => Err(not_found(kind, name)),
            Update::Refused(Some(_)) => Ok(false),
        }
    }

    async fn release_lease(&self, kind: Kind, name: &str, holder: &str) -> StoreResult<()> {
        let key = key(kind, name);
        let request = self
            .client
            .update_item()
            .update_expression("REMOVE #holder, #expires")
            .condition_expression("#holder = :me")
            .expression_attribute_names("#holder", LEASE_HOLDER)
            .expression_attribute_names("#expires", LEASE_EXPIRES)
            .expression_attribute_values(":me", AttributeValue::S(holder.to_string()));
        // Not ours (or no record): there is nothing to give up.
        self.update("UpdateItem (release lease)", &key, request)
            .await?;
        Ok(())
    }

    async fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        let key = key(kind, name);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.clone()))
            .send()
            .await
            .map_err(|e| self.unavailable("DeleteItem", Some(&key), e))?;
        Ok(())
    }

    async fn list_strays(&self) -> StoreResult<Vec<Stray>> {
        // The same read of the sparse index as `list_active`, keeping what
        // no kind's listing keeps.
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACTIVE_INDEX)
            .key_condition_expression("#active = :yes")
            .expression_attribute_names("#active", ACTIVE)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":yes", AttributeValue::S(ACTIVE_YES.to_string()));
        let mut unknown = Vec::new();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            unknown.push(format!("NOT begins_with(#pk, :kind{i})"));
            query = query
                .expression_attribute_values(format!(":kind{i}"), AttributeValue::S(prefix(kind)));
        }
        let mut pages = query
            .filter_expression(unknown.join(" AND "))
            .into_paginator()
            .send();
        let (mut strays, mut left_out) = (Vec::new(), HashSet::new());
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.unavailable("Query", None, e))?;
            for item in page.items.unwrap_or_default() {
                match stray_from_item(&item) {
                    Ok(stray) => strays.push(stray),
                    Err(reason) => self.leave_out(&item, &reason, &mut left_out),
                }
            }
        }
        self.unreadable.settle(
            |key| Kind::ALL.iter().all(|k| !key.starts_with(&prefix(*k))),
            &left_out,
        );
        strays.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
        Ok(strays)
    }

    async fn fail_stray(&self, stray: &Stray, status: Value) -> StoreResult<u64> {
        let next = stray.version + 1;
        let request = self
            .client
            .update_item()
            .update_expression("SET #status = :status, #version = :next REMOVE #active")
            .condition_expression(format!(
                "attribute_exists(#pk) AND {} AND #active = :yes",
                version_is(stray.version)
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#active", ACTIVE)
            .expression_attribute_values(":status", AttributeValue::S(status.to_string()))
            .expression_attribute_values(":expected", number(stray.version))
            .expression_attribute_values(":next", number(next))
            .expression_attribute_values(":yes", AttributeValue::S(ACTIVE_YES.to_string()));
        match self
            .update("UpdateItem (stray)", &stray.key, request)
            .await?
        {
            Update::Done(_) => Ok(next),
            Update::Refused(None) => Err(StoreError::NotFound {
                kind: STRAY,
                name: stray.key.clone(),
            }),
            Update::Refused(Some(_)) => Err(StoreError::Conflict {
                kind: STRAY,
                name: stray.key.clone(),
                expected: stray.version,
            }),
        }
    }
}

fn key(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

fn prefix(kind: Kind) -> String {
    format!("{}/", kind.as_str())
}

/// The kind a key claims: what comes before the first `/` (all of it when
/// there is none).
fn kind_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(kind, _)| kind)
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        kind: kind.as_str(),
        name: name.to_string(),
    }
}

/// A record a client put without a version is at version 0.
fn version_is(expected: u64) -> &'static str {
    if expected == 0 {
        "(attribute_not_exists(#version) OR #version = :expected)"
    } else {
        "#version = :expected"
    }
}

fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn millis(t: DateTime<Utc>) -> AttributeValue {
    number(t.timestamp_millis())
}

/// Fixed width (nanoseconds, `Z`), so the index's string order is time order
/// for the operator's own writes and the value reads back exactly.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("could not build a DynamoDB request: {e}"))
}

/// Reads an item. `Err` is for what only the operator writes (the item is
/// corrupt); a client's mistake becomes `spec: Err(..)` on the record.
fn record_from_item(item: &Item) -> Result<StoredRecord, String> {
    let pk = match item.get(PK) {
        Some(AttributeValue::S(pk)) => pk,
        _ => return Err(format!("no string {PK}")),
    };
    let (kind, name) = pk
        .split_once('/')
        .and_then(|(kind, name)| Some((Kind::parse(kind)?, name)))
        .ok_or_else(|| format!("{PK} {pk:?} is not \"<Kind>/<name>\" with a known kind"))?;

    // Client-written attributes: problems are reported on the record.
    let mut problems = Vec::new();
    match item.get(KIND) {
        None => {}
        Some(AttributeValue::S(k)) if k == kind.as_str() => {}
        Some(other) => problems.push(format!(
            "attribute {KIND} is {} but the key {pk:?} says {}",
            describe(other),
            kind.as_str()
        )),
    }
    match item.get(NAME) {
        None => {}
        Some(AttributeValue::S(n)) if n == name => {}
        Some(other) => problems.push(format!(
            "attribute {NAME} is {} but the key {pk:?} says {name:?}",
            describe(other)
        )),
    }
    let created_at = match item.get(CREATED_AT) {
        None => None,
        Some(AttributeValue::S(text)) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                problems.push(format!(
                    "{CREATED_AT} {text:?} is not an RFC 3339 time: {e}"
                ));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "{CREATED_AT} is {}, expected an RFC 3339 string",
                describe(other)
            ));
            None
        }
    };
    let spec = match read_spec(item) {
        Ok(spec) if problems.is_empty() => Ok(spec),
        Ok(_) => Err(problems.join("; ")),
        Err(e) => {
            problems.push(e);
            Err(problems.join("; "))
        }
    };

    // Operator-written attributes: unreadable means corrupt.
    let version = read_version(item)?;
    // An unreadable status still leaves a safe write (conditional on version
    // and lease), so the record is listed and failed with the reason: as a
    // JSON string, which neither a request's nor a schedule's status reads.
    let status = match item.get(STATUS) {
        None => None,
        Some(AttributeValue::S(text)) => {
            Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())))
        }
        Some(other) => Some(Value::String(format!(
            "{} (not the JSON string the operator writes)",
            describe(other)
        ))),
    };
    let lease = match (item.get(LEASE_HOLDER), item.get(LEASE_EXPIRES)) {
        (None, None) => None,
        (Some(AttributeValue::S(holder)), Some(AttributeValue::N(expires))) => {
            let expires_at = expires
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(|| format!("{LEASE_EXPIRES} {expires:?} is not epoch milliseconds"))?;
            Some(Lease {
                holder: holder.clone(),
                expires_at,
            })
        }
        _ => {
            return Err(format!(
                "{LEASE_HOLDER} (S) and {LEASE_EXPIRES} (N) must be present together"
            ));
        }
    };
    Ok(StoredRecord {
        kind,
        name: name.to_string(),
        spec,
        status,
        version,
        created_at,
        active: matches!(item.get(ACTIVE), Some(AttributeValue::S(a)) if a == ACTIVE_YES),
        lease,
    })
}

/// The version every conditional write rests on; a client's item has none (0).
fn read_version(item: &Item) -> Result<u64, String> {
    match item.get(VERSION) {
        None => Ok(0),
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|e| format!("{VERSION} {n:?} is not a whole number: {e}")),
        Some(other) => Err(format!(
            "{VERSION} is {}, expected a number",
            describe(other)
        )),
    }
}

/// Reads a stray: what reporting it needs, and the version its write rests on.
fn stray_from_item(item: &Item) -> Result<Stray, String> {
    let Some(AttributeValue::S(key)) = item.get(PK) else {
        return Err(format!("no string {PK}"));
    };
    let created_at = match item.get(CREATED_AT) {
        Some(AttributeValue::S(text)) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    };
    Ok(Stray {
        key: key.clone(),
        kind: kind_of(key).to_string(),
        version: read_version(item)?,
        created_at,
    })
}

/// The spec as a client may write it: a native map, or a JSON document in a string.
fn read_spec(item: &Item) -> Result<Value, String> {
    match item.get(SPEC) {
        None => Err(format!("the item has no {SPEC} attribute")),
        Some(AttributeValue::S(text)) => serde_json::from_str(text)
            .map_err(|e| format!("{SPEC} is a string but not a JSON document: {e}")),
        Some(AttributeValue::M(map)) => map_to_json(map, SPEC),
        Some(other) => Err(format!(
            "{SPEC} is {}, expected a map (M) or a JSON document in a string (S)",
            describe(other)
        )),
    }
}

fn map_to_json(map: &HashMap<String, AttributeValue>, path: &str) -> Result<Value, String> {
    let mut object = Map::new();
    for (k, v) in map {
        object.insert(k.clone(), to_json(v, &format!("{path}.{k}"))?);
    }
    Ok(Value::Object(object))
}

/// A DynamoDB value as JSON; `path` names it in errors.
fn to_json(value: &AttributeValue, path: &str) -> Result<Value, String> {
    Ok(match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(json_number(n, path)?),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(map) => map_to_json(map, path)?,
        AttributeValue::L(list) => Value::Array(
            list.iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::Ss(strings) => strings.iter().cloned().map(Value::String).collect(),
        AttributeValue::Ns(numbers) => numbers
            .iter()
            .map(|n| json_number(n, path).map(Value::Number))
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "{path} is {}, which has no JSON form",
                describe(other)
            ));
        }
    })
}

fn json_number(n: &str, path: &str) -> Result<Number, String> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(i.into());
    }
    if let Ok(u) = n.parse::<u64>() {
        return Ok(u.into());
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| format!("{path} is the number {n}, which JSON cannot hold"))
}

/// A value's DynamoDB type, for messages.
fn describe(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => format!("the string {s:?}"),
        AttributeValue::N(n) => format!("the number {n}"),
        AttributeValue::B(_) => "binary (B)".into(),
        AttributeValue::Bool(b) => format!("the boolean {b}"),
        AttributeValue::Null(_) => "null (NULL)".into(),
        AttributeValue::M(_) => "a map (M)".into(),
        AttributeValue::L(_) => "a list (L)".into(),
        AttributeValue::Ss(_) => "a string set (SS)".into(),
        AttributeValue::Ns(_) => "a number set (NS)".into(),
        AttributeValue::Bs(_) => "a binary set (BS)".into(),
        _ => "a value of an unknown type".into(),
    }
}
