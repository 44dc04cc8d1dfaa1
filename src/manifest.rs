//! Manifests: YAML or JSON text read into documents (with serde-saphyr,
//! whose errors carry line and column and whose budget refuses alias bombs),
//! and each document's envelope — apiVersion, kind, metadata — checked
//! together with its spec.

use serde_json::Value;

use crate::record::{
    API_VERSION, Invalid, KIND_REQUEST, Problem, RecycleSpec, describe, parse_spec,
};

/// A whole `RecycleRequest` document as a person writes it (YAML or JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestDocument {
    pub name: String,
    pub spec: RecycleSpec,
    /// Present when a document carries a status (as `get -o yaml` prints it).
    pub status: Option<crate::status::RecycleStatus>,
}

/// Why a manifest could not be read: a syntax error with its place, or every
/// problem of its fields.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{source_name}: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {problems}")]
    Invalid {
        source_name: String,
        problems: Invalid,
    },
}

/// Reads every document of a YAML (or JSON: JSON is YAML) text into values.
/// serde-saphyr bounds aliases, depth and size, so an alias bomb is refused
/// rather than expanded; its errors carry line and column.
pub fn read_documents(text: &str, source_name: &str) -> Result<Vec<Value>, ManifestError> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| ManifestError::Syntax {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })
}

/// Checks one document's envelope and spec; every problem at once.
pub fn parse_request(doc: &Value, path: &str) -> Result<RequestDocument, Invalid> {
    let mut problems = Vec::new();
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let Some(object) = doc.as_object() else {
        return Err(Invalid(vec![Problem {
            path: if path.is_empty() {
                "document".into()
            } else {
                path.into()
            },
            reason: format!(
                "must be a mapping with apiVersion, kind, metadata and spec, not {}",
                describe(doc)
            ),
        }]));
    };
    if object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        problems.push(Problem {
            path: at("apiVersion"),
            reason: format!("must be {API_VERSION:?}"),
        });
    }
    if object.get("kind").and_then(Value::as_str) != Some(KIND_REQUEST) {
        problems.push(Problem {
            path: at("kind"),
            reason: format!("must be {KIND_REQUEST:?}"),
        });
    }
    let name = object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match &name {
        Some(n) if is_record_name(n) => {}
        Some(n) => problems.push(Problem {
            path: at("metadata.name"),
            reason: format!("{n:?} is not a name: 1 to 128 lowercase letters, digits and '-', starting with a letter or digit"),
        }),
        None => problems.push(Problem {
            path: at("metadata.name"),
            reason: "is required".into(),
        }),
    }
    for key in object.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            problems.push(Problem {
                path: at(key),
                reason: "is not a known field; known fields are apiVersion, kind, metadata, spec, status".into(),
            });
        }
    }
    let spec = match object.get("spec") {
        Some(spec) => parse_spec(spec, &at("spec"))
            .map_err(|e| problems.extend(e.0))
            .ok(),
        None => {
            problems.push(Problem {
                path: at("spec"),
                reason: "is required".into(),
            });
            None
        }
    };
    let status = match object.get("status") {
        None | Some(Value::Null) => None,
        Some(s) => serde_json::from_value(s.clone())
            .map_err(|e| {
                problems.push(Problem {
                    path: at("status"),
                    reason: format!("cannot be read: {e}"),
                })
            })
            .ok(),
    };
    match (problems.is_empty(), name, spec) {
        (true, Some(name), Some(spec)) => Ok(RequestDocument { name, spec, status }),
        _ => Err(Invalid(problems)),
    }
}

/// Record names: as Kubernetes names them, so they are safe in keys and URLs.
pub fn is_record_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const YAML: &str = "apiVersion: ecs-recycler/v1
kind: RecycleRequest
metadata:
  name: web-rotate-secrets
spec:
  cluster: prod
  service: web
  wait: 45s
  batchSize: 2
";

    #[test]
    fn yaml_and_json_read_alike() {
        let from_yaml = read_documents(YAML, "a.yaml").unwrap();
        let json = r#"{"apiVersion":"ecs-recycler/v1","kind":"RecycleRequest","metadata":{"name":"web-rotate-secrets"},"spec":{"cluster":"prod","service":"web","wait":"45s","batchSize":2}}"#;
        let from_json = read_documents(json, "a.json").unwrap();
        assert_eq!(from_yaml, from_json);
        let doc = parse_request(&from_yaml[0], "").unwrap();
        assert_eq!(doc.name, "web-rotate-secrets");
        assert_eq!(doc.spec.batch_size, 2);
        assert_eq!(doc.spec.wait, Duration::from_secs(45));
    }

    #[test]
    fn a_syntax_error_names_the_line_and_column() {
        let err = read_documents("spec:\n  cluster: [prod\n", "bad.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml: "), "{text}");
        assert!(text.contains("line 2") || text.contains(":2:"), "{text}");
    }

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + (i - 1) as u8) as char;
            let this = (b'a' + i as u8) as char;
            bomb.push_str(&format!(
                "{this}: &{this} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let result = read_documents(&bomb, "bomb.yaml");
        assert!(result.is_err(), "10^12 nodes must not be built");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_envelope_is_checked_with_the_spec() {
        let doc = read_documents(
            "apiVersion: v2\nkind: Recycle\nmetadata: {name: Web_1}\nspec: {cluster: prod}\nextra: 1\n",
            "x",
        )
        .unwrap();
        let err = parse_request(&doc[0], "").unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "apiVersion",
                "kind",
                "metadata.name",
                "extra",
                "spec.service"
            ],
            "{err}"
        );
    }
}
