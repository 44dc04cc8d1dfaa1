//! Tags on services, as ECS keeps them: given at CreateService, changed with
//! TagResource and UntagResource, read with ListTagsForResource or with
//! `include: ["TAGS"]` on DescribeServices. Only services can be tagged
//! here; an ARN of anything else is refused as ECS refuses an unknown one.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{ApiError, required};
use super::world::World;

type Result<T> = std::result::Result<T, ApiError>;

/// ECS's limit on tags per resource.
const MAX_TAGS: usize = 50;

#[derive(Clone, Debug, Deserialize)]
pub struct Tag {
    key: Option<String>,
    value: Option<String>,
}

/// Tags as given in a request, checked: keys 1 to 128 characters, values
/// up to 256, at most 50, and no `aws:` prefix (reserved for AWS).
pub fn read(given: Option<Vec<Tag>>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for tag in given.unwrap_or_default() {
        let key = tag.key.unwrap_or_default();
        let value = tag.value.unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 {
            return Err(ApiError::invalid_parameter(
                "tags: a tag key must be from 1 to 128 characters.",
            ));
        }
        if value.chars().count() > 256 {
            return Err(ApiError::invalid_parameter(
                "tags: a tag value must be at most 256 characters.",
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::invalid_parameter(
                "tags: keys beginning with aws: are reserved for AWS use.",
            ));
        }
        out.insert(key, value);
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::invalid_parameter(
            "tags: a resource can have at most 50 tags.",
        ));
    }
    Ok(out)
}

pub fn to_json(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagResourceRequest {
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagResourceRequest {
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTagsRequest {
    resource_arn: Option<String>,
}

pub fn handle(world: &mut World, op: &str, body: &Value) -> Option<Result<Value>> {
    use super::wire::parse;
    Some(match op {
        "TagResource" => parse(body).and_then(|r| tag_resource(world, r)),
        "UntagResource" => parse(body).and_then(|r| untag_resource(world, r)),
        "ListTagsForResource" => parse(body).and_then(|r| list_tags(world, r)),
        _ => return None,
    })
}

fn service_tags(world: &mut World, arn: Option<String>) -> Result<&mut BTreeMap<String, String>> {
    let arn = required(arn, || {
        ApiError::invalid_parameter("resourceArn is required.")
    })?;
    world
        .records
        .services
        .values_mut()
        .find(|s| s.arn == arn)
        .map(|s| &mut s.tags)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "resourceArn: {arn} is not the ARN of a service in this simulator."
            ))
        })
}

fn tag_resource(world: &mut World, req: TagResourceRequest) -> Result<Value> {
    let given = read(req.tags)?;
    let tags = service_tags(world, req.resource_arn)?;
    let mut merged = tags.clone();
    merged.extend(given);
    if merged.len() > MAX_TAGS {
        return Err(ApiError::invalid_parameter(
            "tags: a resource can have at most 50 tags.",
        ));
    }
    *tags = merged;
    Ok(json!({}))
}

fn untag_resource(world: &mut World, req: UntagResourceRequest) -> Result<Value> {
    let keys = req.tag_keys.unwrap_or_default();
    let tags = service_tags(world, req.resource_arn)?;
    for k in keys {
        tags.remove(&k);
    }
    Ok(json!({}))
}

fn list_tags(world: &mut World, req: ListTagsRequest) -> Result<Value> {
    let tags = service_tags(world, req.resource_arn)?;
    Ok(json!({"tags": to_json(tags)}))
}
