//! The replicas' heartbeats in DynamoDB: one item (`pk = "Replicas"`)
//! holding a map from replica to the millisecond its heartbeat runs out.
//! One item, so a heartbeat is one UpdateItem that also answers who else is
//! alive (`ALL_NEW`), whatever the size of the table; it has no `active`
//! attribute, so it is in no listing of records or strays.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::DynamoStore;
use super::Update;
use super::codec::{Item, millis};
use crate::store::StoreResult;

/// The key of the heartbeat item: no kind's prefix, so no record's.
pub(super) const REPLICAS_KEY: &str = "Replicas";
const REPLICAS: &str = "replicas";

impl DynamoStore {
    pub(super) async fn beat(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        // The map exists after the first heartbeat ever; until then the
        // nested SET has no parent, so the first one writes the whole map.
        let nested = self
            .client
            .update_item()
            .update_expression("SET #replicas.#me = :until")
            .condition_expression("attribute_exists(#replicas)")
            .expression_attribute_names("#replicas", REPLICAS)
            .expression_attribute_names("#me", replica)
            .expression_attribute_values(":until", millis(until))
            .return_values(ReturnValue::AllNew);
        let item = match self
            .update("UpdateItem (heartbeat)", REPLICAS_KEY, nested)
            .await?
        {
            Update::Done(item) => item,
            Update::Refused(_) => {
                let first = self
                    .client
                    .update_item()
                    .update_expression("SET #replicas = :map")
                    .condition_expression("attribute_not_exists(#replicas)")
                    .expression_attribute_names("#replicas", REPLICAS)
                    .expression_attribute_values(
                        ":map",
                        AttributeValue::M(HashMap::from([(replica.to_string(), millis(until))])),
                    )
                    .return_values(ReturnValue::AllNew);
                match self
                    .update("UpdateItem (heartbeat)", REPLICAS_KEY, first)
                    .await?
                {
                    Update::Done(item) => item,
                    // Another replica wrote the first map meanwhile: ours goes in it.
                    Update::Refused(_) => {
                        return Box::pin(self.beat(replica, now, until)).await;
                    }
                }
            }
        };
        let (alive, gone) = split(item.as_ref(), now);
        if !gone.is_empty() {
            self.forget(&gone, now).await?;
        }
        Ok(alive)
    }

    /// Removes replicas whose heartbeat ran out, each only if it has not
    /// beaten again since (its time still at or before `now`).
    async fn forget(&self, gone: &[String], now: DateTime<Utc>) -> StoreResult<()> {
        let mut request = self.client.update_item();
        let mut removes = Vec::new();
        let mut conditions = Vec::new();
        for (i, name) in gone.iter().enumerate() {
            request = request.expression_attribute_names(format!("#r{i}"), name);
            removes.push(format!("#replicas.#r{i}"));
            conditions.push(format!("#replicas.#r{i} <= :now"));
        }
        let request = request
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .expression_attribute_names("#replicas", REPLICAS)
            .expression_attribute_values(":now", millis(now));
        // Refused: one came back meanwhile; the next heartbeat tries again.
        self.update("UpdateItem (forget replicas)", REPLICAS_KEY, request)
            .await?;
        Ok(())
    }
}

/// The replicas alive at `now`, by name, and those whose time ran out.
fn split(item: Option<&Item>, now: DateTime<Utc>) -> (Vec<String>, Vec<String>) {
    let now = now.timestamp_millis();
    let mut alive = Vec::new();
    let mut gone = Vec::new();
    let map = item
        .and_then(|i| i.get(REPLICAS))
        .and_then(|m| m.as_m().ok());
    for (name, until) in map.into_iter().flatten() {
        let until = until.as_n().ok().and_then(|n| n.parse::<i64>().ok());
        match until {
            Some(until) if until > now => alive.push(name.clone()),
            // Unreadable or run out: not alive either way.
            _ => gone.push(name.clone()),
        }
    }
    alive.sort();
    gone.sort();
    (alive, gone)
}
