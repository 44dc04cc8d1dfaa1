//! The item codec: a DynamoDB item ↔ a [`StoredRecord`] (or a [`Stray`]),
//! with the attribute names, the key `"<Kind>/<name>"`, and the spellings of
//! the values the store writes. The schema is documented in
//! docs/dynamodb-item-schema.md.
//!
//! What a reader must know: reading is lenient where a client writes and
//! strict where only the operator does. Any client may put an item with a
//! plain `PutItem`, so a missing or malformed spec, a bad `createdAt` or a
//! `kind`/`name` that contradicts the key comes back on the record as
//! `spec: Err(..)`, for the operator to mark it failed; a spec may be a native
//! map (M) or a JSON document in a string (S). A `status` that is not a JSON
//! string comes back as a string no status reader accepts. A `version` or a
//! lease that cannot be read is an `Err`: no conditional write can rest on it.
//!
//! A map spec is turned into JSON by hand rather than with `serde_dynamo`
//! (4.3, whose feature `aws-sdk-dynamodb+1` builds against the SDK in use).
//! It reads numbers as this codec does (i64, then u64, then f64, so neither
//! keeps more digits than those hold), but through serde_json's `Value` it
//! turns a number JSON cannot hold (`NaN`, `1e400`) into `null` without a
//! word, where this codec refuses it; its errors name no attribute path
//! without `serde_path_to_error` besides; and it panics on a value type the
//! SDK does not know, where this codec reports it on the record. What it
//! would replace is one short match.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};

use crate::store::{Kind, Lease, StoredRecord, Stray};

pub(super) const PK: &str = "pk";
pub(super) const KIND: &str = "kind";
pub(super) const NAME: &str = "name";
pub(super) const SPEC: &str = "spec";
pub(super) const STATUS: &str = "status";
pub(super) const VERSION: &str = "version";
pub(super) const CREATED_AT: &str = "createdAt";
pub(super) const ACTIVE: &str = "active";
pub(super) const LEASE_HOLDER: &str = "leaseHolder";
pub(super) const LEASE_EXPIRES: &str = "leaseExpires";
pub(super) const EXPIRES_AT: &str = "expiresAt";
/// The phase of `status`, written with it, so that the loop's listing reads
/// the phase without the status (a status grows with its run's events).
pub(super) const PHASE: &str = "phase";
/// What the loop's listing reads of an item: all it needs, not the status.
pub(super) const LISTED: [&str; 10] = [
    PK,
    KIND,
    NAME,
    SPEC,
    VERSION,
    CREATED_AT,
    ACTIVE,
    LEASE_HOLDER,
    LEASE_EXPIRES,
    PHASE,
];
/// The value of `active` that puts an item in the index.
pub(super) const ACTIVE_YES: &str = "1";

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn key(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

pub(super) fn prefix(kind: Kind) -> String {
    format!("{}/", kind.as_str())
}

/// The kind a key claims: what comes before the first `/` (all of it when
/// there is none).
fn kind_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(kind, _)| kind)
}

pub(super) fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(super) fn millis(t: DateTime<Utc>) -> AttributeValue {
    number(t.timestamp_millis())
}

/// Fixed width (nanoseconds, `Z`), so the index's string order is time order
/// for the operator's own writes and the value reads back exactly.
pub(super) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Reads an item. `Err` is for what only the operator writes (the item is
/// corrupt); a client's mistake becomes `spec: Err(..)` on the record.
pub(super) fn record_from_item(item: &Item) -> Result<StoredRecord, String> {
    let pk = match item.get(PK) {
        Some(AttributeValue::S(pk)) => pk,
        _ => return Err(format!("no string {PK}")),
    };
    let (kind, name) = pk
        .split_once('/')
        .and_then(|(kind, name)| Some((Kind::parse(kind)?, name)))
        .ok_or_else(|| format!("{PK} {pk:?} is not \"<Kind>/<name>\" with a known kind"))?;

    // Client-written attributes: problems are reported on the record.
    let mut problems = key_problems(item, pk, kind, name);
    let created_at = read_created_at(item, &mut problems);
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
    let lease = read_lease(item)?;
    Ok(StoredRecord {
        kind,
        name: name.to_string(),
        spec,
        status: read_status(item),
        version,
        created_at,
        active: matches!(item.get(ACTIVE), Some(AttributeValue::S(a)) if a == ACTIVE_YES),
        lease,
    })
}

/// The kind and name attributes, where they disagree with the key.
fn key_problems(item: &Item, pk: &str, kind: Kind, name: &str) -> Vec<String> {
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
    problems
}

/// When a client created the record, if it said; a problem if unreadable.
fn read_created_at(item: &Item, problems: &mut Vec<String>) -> Option<DateTime<Utc>> {
    match item.get(CREATED_AT) {
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
    }
}

/// The status. An unreadable one still leaves a safe write (conditional on
/// version and lease), so the record is listed and failed with the reason:
/// as a JSON string, which neither a request's nor a schedule's status reads.
fn read_status(item: &Item) -> Option<Value> {
    match item.get(STATUS) {
        None => None,
        Some(AttributeValue::S(text)) => {
            Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())))
        }
        Some(other) => Some(Value::String(format!(
            "{} (not the JSON string the operator writes)",
            describe(other)
        ))),
    }
}

/// The lease: holder and expiry together, or neither.
fn read_lease(item: &Item) -> Result<Option<Lease>, String> {
    match (item.get(LEASE_HOLDER), item.get(LEASE_EXPIRES)) {
        (None, None) => Ok(None),
        (Some(AttributeValue::S(holder)), Some(AttributeValue::N(expires))) => {
            let expires_at = expires
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(|| format!("{LEASE_EXPIRES} {expires:?} is not epoch milliseconds"))?;
            Ok(Some(Lease {
                holder: holder.clone(),
                expires_at,
            }))
        }
        _ => Err(format!(
            "{LEASE_HOLDER} (S) and {LEASE_EXPIRES} (N) must be present together"
        )),
    }
}

/// The phase an item's `phase` attribute holds. An item written before the
/// attribute was (or by hand without it) lists with no phase until its
/// next status write; its step reads the status whole all the same.
pub(super) fn read_phase(item: &Item) -> Option<Box<str>> {
    match item.get(PHASE) {
        Some(AttributeValue::S(phase)) => Some(phase.as_str().into()),
        _ => None,
    }
}

/// The version every conditional write rests on; a client's item has none (0).
pub(super) fn read_version(item: &Item) -> Result<u64, String> {
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
pub(super) fn stray_from_item(item: &Item) -> Result<Stray, String> {
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
pub(super) fn describe(value: &AttributeValue) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(value: AttributeValue) -> Result<Value, String> {
        read_spec(&Item::from([(SPEC.to_string(), value)]))
    }

    fn map(entries: Vec<(&str, AttributeValue)>) -> AttributeValue {
        AttributeValue::M(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn sets_are_lists_and_whole_numbers_are_kept_to_the_digit() {
        let spec = map(vec![
            ("names", AttributeValue::Ss(vec!["a".into()])),
            ("sizes", AttributeValue::Ns(vec!["2".into(), "0.5".into()])),
            ("big", AttributeValue::N("18446744073709551615".into())),
            ("low", AttributeValue::N("-9223372036854775808".into())),
        ]);
        assert_eq!(
            spec_of(spec),
            Ok(serde_json::json!({
                "names": ["a"], "sizes": [2, 0.5],
                "big": u64::MAX, "low": i64::MIN,
            }))
        );
    }

    #[test]
    fn a_value_with_no_json_form_is_refused_by_its_path() {
        // serde_json would read these numbers as null; they are refused.
        for n in ["NaN", "1e400"] {
            let spec = map(vec![(
                "a",
                AttributeValue::L(vec![
                    AttributeValue::Null(true),
                    AttributeValue::N(n.into()),
                ]),
            )]);
            let refused = spec_of(spec).expect_err(n);
            assert!(refused.contains("spec.a[1]"), "{refused}");
        }
        let spec = map(vec![("blobs", AttributeValue::Bs(vec![vec![1u8].into()]))]);
        let refused = spec_of(spec).expect_err("a binary set");
        assert!(
            refused.contains("spec.blobs is a binary set (BS)"),
            "{refused}"
        );
    }
}
