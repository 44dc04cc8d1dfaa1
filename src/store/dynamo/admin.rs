//! Table administration, what `ecs-recycler init` runs: create the table and
//! its index, wait until both are ACTIVE, and turn TTL on `expiresAt` on.
//!
//! What a reader must know: it is safe to run again on a ready table, and it
//! never reshapes a table. A table that exists is checked, not recreated: one
//! with another key, without the index, or with TTL on another attribute is
//! refused with what is wrong. The only change made to an existing table is
//! turning TTL on when it is off, looked at first since AWS refuses to enable
//! it twice.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use super::codec::{ACTIVE, CREATED_AT, EXPIRES_AT, PK};
use super::{ACTIVE_INDEX, DynamoStore};
use crate::store::{StoreError, StoreResult};

/// Table creation normally takes seconds; a GSI backfill on a big table can
/// take longer, but `init` should not hang forever on a stuck table.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

impl DynamoStore {
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
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("could not build a DynamoDB request: {e}"))
}
