//! Pagination as ECS does it: `maxResults` within 1..100, and a
//! `nextToken` that carries the last ARN returned, so pages stay right
//! while records come and go.

use serde_json::{Value, json};

use super::Result;
use crate::wire::ApiError;

pub(crate) fn page_size(given: Option<i64>, default: usize) -> Result<usize> {
    match given {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid_parameter(format!(
            "maxResults: {n} is outside 1..100."
        ))),
    }
}

/// Tokens carry the last ARN returned, so pages stay right while tasks come and go.
pub(crate) fn page_token(given: Option<&str>) -> Result<Option<String>> {
    match given {
        None | Some("") => Ok(None),
        Some(t) => t
            .strip_prefix("sim1:")
            .map(|arn| Some(arn.to_string()))
            .ok_or_else(|| ApiError::invalid_parameter("nextToken: the token is not valid.")),
    }
}

pub(crate) fn page(
    field: &str,
    items: impl Iterator<Item = String>,
    after: Option<String>,
    max: usize,
) -> Value {
    let mut rest = items.filter(|a| after.as_ref().is_none_or(|after| a > after));
    let items: Vec<String> = rest.by_ref().take(max).collect();
    let mut v = json!({ field: items });
    if rest.next().is_some()
        && let Some(last) = items.last()
    {
        v["nextToken"] = json!(format!("sim1:{last}"));
    }
    v
}
