//! The DynamoDB implementation of [`Store`]: one table, one item per record,
//! keyed `pk = "<Kind>/<name>"`, and a sparse global secondary index
//! (`active-index`) that holds only the records with work left, so the
//! reconciler's listing costs O(active records). This module owns the store:
//! the trait's conditional semantics as condition expressions, the listings,
//! the leases, and the mapping of AWS errors onto [`StoreError`]. The item
//! schema and how an item is read are the `codec`'s; the listings (the
//! sparse index, the scan, the strays) are `listing`'s; creating the table
//! for `ecs-recycler init` is `admin`'s.
//!
//! What a reader must know: every write is conditional, and a refused one
//! asks for the item as it was, so one round trip tells a missing record
//! from a changed one from a lost lease. A status write that lands but whose
//! answer is lost is sent again by the SDK and then fails its own version
//! condition; the item shows our version, status and lease, and the write is
//! answered as landed.
//!
//! An item whose `version` or lease cannot be read leaves no safe
//! conditional write: it is [`StoreError::Corrupt`] from [`Store::get`] and
//! is left out of listings, logged with backoff ([`Unreadable`]), so one
//! unreadable item never stops the others, is never overwritten blindly, and
//! does not fill the log. An active item of no known kind is listed by
//! [`Store::list_strays`] and failed by [`Store::fail_stray`].

mod admin;
mod codec;
mod listing;
mod replicas;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde_json::Value;

use self::codec::{
    ACTIVE, ACTIVE_YES, CREATED_AT, EXPIRES_AT, Item, KIND, LEASE_EXPIRES, LEASE_HOLDER, NAME,
    PHASE, PK, SPEC, STATUS, VERSION, key, millis, number, record_from_item, timestamp,
};
use super::unreadable::Unreadable;
use super::{
    Kind, ListedRecord, STRAY, StatusWrite, Store, StoreError, StoreResult, StoredRecord, Stray,
    status_phase,
};
use crate::aws::sdk::{self, Timeouts};

/// The sparse index of records with work left.
pub const ACTIVE_INDEX: &str = "active-index";

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
        self.active_records(kind).await
    }

    async fn list_active_lean(&self, kind: Kind) -> StoreResult<Vec<ListedRecord>> {
        self.active_lean(kind).await
    }

    async fn list_all(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        self.all_records(kind).await
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
        let phase = status_phase(&write.status);
        let mut set = vec!["#status = :status", "#version = :next"];
        let mut remove = Vec::new();
        if phase.is_some() {
            set.push("#phase = :phase");
        } else {
            remove.push("#phase");
        }
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
            .expression_attribute_names("#phase", PHASE)
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
        if let Some(phase) = phase {
            request =
                request.expression_attribute_values(":phase", AttributeValue::S(phase.into()));
        }
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
        self.active_strays().await
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

    async fn heartbeat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        self.beat(replica, now, until).await
    }
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
