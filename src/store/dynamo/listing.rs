//! The listings: the active records of a kind from the sparse index (whole,
//! or lean: the phase without the status), every record of a kind by a
//! scan, and the strays — active items of no known kind. An item that
//! cannot be read is left out of a listing and logged with backoff
//! ([`Unreadable`]), so one bad item never stops the others.
//!
//! [`Unreadable`]: crate::store::unreadable::Unreadable

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{
    ACTIVE, ACTIVE_YES, Item, LISTED, PK, prefix, read_phase, record_from_item, stray_from_item,
};
use super::{ACTIVE_INDEX, DynamoStore};
use crate::store::{Kind, ListedRecord, StoreResult, StoredRecord, Stray};

impl DynamoStore {
    pub(super) async fn active_records(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
        let mut records = self.active(kind, None, |r, _| r).await?;
        records.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(records)
    }

    pub(super) async fn active_lean(&self, kind: Kind) -> StoreResult<Vec<ListedRecord>> {
        // Statuses stay on DynamoDB's side: the phase is an attribute of its own.
        let mut records = self
            .active(kind, Some(&LISTED), |r, item| ListedRecord {
                phase: read_phase(item),
                ..ListedRecord::of(r)
            })
            .await?;
        records.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(records)
    }

    pub(super) async fn all_records(&self, kind: Kind) -> StoreResult<Vec<StoredRecord>> {
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
                |r, _| r,
            );
        }
        self.unreadable
            .settle(|key| key.starts_with(&prefix(kind)), &left_out);
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    pub(super) async fn active_strays(&self) -> StoreResult<Vec<Stray>> {
        // The same read of the sparse index as `active_records`, keeping what
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

    /// The active records of `kind`, each read by `read` from the record and
    /// its item, with only the `attributes` named (all when `None`). Not in
    /// order: the index orders by the createdAt string, but clients may
    /// write other RFC 3339 spellings, and ties need the name, so the
    /// callers order by value.
    async fn active<T>(
        &self,
        kind: Kind,
        attributes: Option<&[&str]>,
        read: impl Fn(StoredRecord, &Item) -> T,
    ) -> StoreResult<Vec<T>> {
        // Only a Query on the sparse index keeps this O(active records); the
        // index holds every kind, so the kind is a filter, not a key.
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACTIVE_INDEX)
            .key_condition_expression("#active = :yes")
            .filter_expression("begins_with(#pk, :prefix)")
            .expression_attribute_names("#active", ACTIVE)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":yes", AttributeValue::S(ACTIVE_YES.to_string()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix(kind)));
        if let Some(attributes) = attributes {
            // Every name through a placeholder (`name` is a reserved word),
            // one placeholder for each.
            let mut projection = Vec::new();
            for (i, attribute) in attributes.iter().enumerate() {
                let placeholder = match *attribute {
                    PK => "#pk".to_string(),
                    ACTIVE => "#active".to_string(),
                    other => {
                        let placeholder = format!("#a{i}");
                        query = query.expression_attribute_names(&placeholder, other);
                        placeholder
                    }
                };
                projection.push(placeholder);
            }
            query = query.projection_expression(projection.join(", "));
        }
        let mut pages = query.into_paginator().send();
        let (mut records, mut left_out) = (Vec::new(), HashSet::new());
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.unavailable("Query", None, e))?;
            // Read page by page, so no more than a page of items is held.
            self.records_of(
                kind,
                page.items.unwrap_or_default(),
                &mut records,
                &mut left_out,
                &read,
            );
        }
        self.unreadable
            .settle(|key| key.starts_with(&prefix(kind)), &left_out);
        Ok(records)
    }

    /// Reads the records of `kind` among `items` into `into`, each as
    /// `read` makes it of the record and its item; unreadable ones are left
    /// out, logged with backoff, and their keys added to `left_out`.
    fn records_of<T>(
        &self,
        kind: Kind,
        items: Vec<Item>,
        into: &mut Vec<T>,
        left_out: &mut HashSet<String>,
        read: impl Fn(StoredRecord, &Item) -> T,
    ) {
        for item in items {
            match record_from_item(&item) {
                Ok(record) if record.kind == kind => into.push(read(record, &item)),
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
