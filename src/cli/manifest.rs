//! Manifests: YAML or JSON text read into documents (with serde-saphyr,
//! whose errors carry line and column and whose budget refuses alias bombs),
//! and each document's envelope — apiVersion, kind, metadata — checked
//! together with its spec, every problem at once.

use serde_json::Value;

use crate::request::spec::{API_VERSION, parse_spec};
use crate::store::Kind;
use crate::validate::{Invalid, Problem, describe, is_record_name, unknown_field};

/// One document that passed every check: what `apply` writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub kind: Kind,
    pub name: String,
    /// The spec exactly as written (YAML read into JSON); it is what the
    /// table keeps, so a person finds their own words in it.
    pub spec: Value,
}

/// Why a manifest could not be read: a syntax error with its place, or every
/// problem of its fields.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{source_name}{}: {message}", place(*.line, *.column))]
    Syntax {
        source_name: String,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
}

fn place(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Reads every document of a YAML (or JSON: JSON is YAML) text into values.
/// serde-saphyr bounds aliases, depth and size, so an alias bomb is refused
/// rather than expanded; its errors carry line and column. Duplicate keys
/// are refused.
pub fn read_documents(text: &str, source_name: &str) -> Result<Vec<Value>, ManifestError> {
    // YAML 1.2 booleans only: `yes`, `no`, `on` and `off` stay strings, so
    // `service: no` is a service name, not false (the "Norway problem").
    let options = serde_saphyr::options! { strict_booleans: true };
    let docs = serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(|e| {
        let location = e.location();
        ManifestError::Syntax {
            source_name: source_name.to_string(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: first_line(&e.to_string()),
        }
    })?;
    // An empty document (a stray `---`, a file of comments) holds nothing to apply.
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// serde-saphyr follows its message with a snippet of the text; the place
/// is given separately, so one line says it, in the words of a manifest's
/// author rather than of the parser's options.
fn first_line(message: &str) -> String {
    let line = parser_line(message);
    if let Some(rest) = line.strip_prefix("budget breached") {
        return format!(
            "refused: the text expands to too much once its aliases are replayed{rest} — write it out, or with fewer aliases"
        );
    }
    match line.split_once(", set DuplicateKeyPolicy") {
        Some((head, _)) => format!("{head} (each key once per mapping)"),
        None => line,
    }
}

fn parser_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // "line 2 column 12: unclosed bracket" → "unclosed bracket".
    let line = match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((place, rest)) if place.contains("column") => rest,
        _ => line,
    };
    let line = match line.rfind(" at line ") {
        Some(i) => &line[..i],
        None => line,
    };
    line.trim_end_matches(':').to_string()
}

/// Metadata fields `get -o yaml` prints and `apply` takes back without
/// reading: they belong to the table, not to the person.
const READ_ONLY_METADATA: [&str; 6] = [
    "createdAt",
    "createdBy",
    "version",
    "active",
    "lease",
    "specError",
];

/// Checks one document's envelope and spec; every problem at once. `path`
/// prefixes the field paths (empty for a document of its own).
pub(crate) fn parse_document(doc: &Value, path: &str) -> Result<Document, Invalid> {
    let mut problems = Vec::new();
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
    check_api_version(object.get("apiVersion"), path, &mut problems);
    let kind = read_kind(object.get("kind"), path, &mut problems);
    let name = read_metadata(
        object.get("metadata"),
        &field(path, "metadata"),
        &mut problems,
    );
    let name = name_fits(kind, name, path, &mut problems);
    for key in object.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            problems.push(Problem {
                path: field(path, key),
                reason: unknown_field(key, &["apiVersion", "kind", "metadata", "spec", "status"]),
            });
        }
    }
    let spec = object.get("spec").cloned();
    match (&spec, kind) {
        (None, _) => problems.push(Problem {
            path: field(path, "spec"),
            reason: "is required".into(),
        }),
        (Some(spec), Some(kind)) => {
            if let Err(e) = validate_spec(kind, spec, &field(path, "spec")) {
                problems.extend(e.0);
            }
        }
        (Some(_), None) => {}
    }
    match (problems.is_empty(), kind, name, spec) {
        (true, Some(kind), Some(name), Some(spec)) => Ok(Document { kind, name, spec }),
        _ => Err(Invalid(problems)),
    }
}

/// The path of a top-level field of the document at `path`.
fn field(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn check_api_version(value: Option<&Value>, path: &str, problems: &mut Vec<Problem>) {
    match value {
        Some(Value::String(v)) if v == API_VERSION => {}
        None => problems.push(Problem {
            path: field(path, "apiVersion"),
            reason: format!("is required; write apiVersion: {API_VERSION}"),
        }),
        Some(other) => problems.push(Problem {
            path: field(path, "apiVersion"),
            reason: format!("{} is not supported; use {API_VERSION}", describe(other)),
        }),
    }
}

fn read_kind(value: Option<&Value>, path: &str, problems: &mut Vec<Problem>) -> Option<Kind> {
    match value {
        Some(Value::String(k)) => match Kind::parse(k) {
            Some(kind) => Some(kind),
            None => {
                let hint = crate::validate::nearest(k, &Kind::ALL.map(Kind::as_str))
                    .map(|n| format!(" (did you mean {n}?)"))
                    .unwrap_or_default();
                problems.push(Problem {
                    path: field(path, "kind"),
                    reason: format!(
                        "{k:?} is not a kind{hint}; use RecycleRequest, RecycleSchedule or RecyclePolicy"
                    ),
                });
                None
            }
        },
        None => {
            problems.push(Problem {
                path: field(path, "kind"),
                reason: "is required; use RecycleRequest, RecycleSchedule or RecyclePolicy".into(),
            });
            None
        }
        Some(other) => {
            problems.push(Problem {
                path: field(path, "kind"),
                reason: format!(
                    "{} is not a kind; use RecycleRequest, RecycleSchedule or RecyclePolicy",
                    describe(other)
                ),
            });
            None
        }
    }
}

/// The name, if the names of the requests a schedule or a policy makes
/// from it (the name plus the slot, or the service and the time) fit in 128.
fn name_fits(
    kind: Option<Kind>,
    name: Option<String>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match (kind, name) {
        (Some(Kind::RecyclePolicy), Some(n)) if n.len() > crate::policy::MAX_NAME_LEN => {
            problems.push(Problem {
                path: field(path, "metadata.name"),
                reason: format!(
                    "is {} characters; a policy's name has at most {}, so the names of its requests (the name, the service and the time) fit in 128",
                    n.len(),
                    crate::policy::MAX_NAME_LEN
                ),
            });
            None
        }
        (Some(Kind::RecycleSchedule), Some(n)) if n.len() > crate::schedule::MAX_NAME_LEN => {
            problems.push(Problem {
                path: field(path, "metadata.name"),
                reason: format!(
                    "is {} characters; a schedule's name has at most {}, so the names of its requests (the name, '-' and the slot) fit in 128",
                    n.len(),
                    crate::schedule::MAX_NAME_LEN
                ),
            });
            None
        }
        (_, name) => name,
    }
}

fn read_metadata(
    metadata: Option<&Value>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let at = |k: &str| format!("{path}.{k}");
    let Some(metadata) = metadata else {
        problems.push(Problem {
            path: at("name"),
            reason: "is required".into(),
        });
        return None;
    };
    let Some(fields) = metadata.as_object() else {
        problems.push(Problem {
            path: path.to_string(),
            reason: format!("must be a mapping with a name, not {}", describe(metadata)),
        });
        return None;
    };
    for key in fields.keys() {
        if key != "name" && !READ_ONLY_METADATA.contains(&key.as_str()) {
            problems.push(Problem {
                path: at(key),
                reason: "is not a known field; metadata has a name (and the read-only fields get prints)".into(),
            });
        }
    }
    match fields.get("name") {
        Some(Value::String(n)) if is_record_name(n) => Some(n.clone()),
        Some(Value::String(n)) => {
            problems.push(Problem {
                path: at("name"),
                reason: format!("{n:?} is not a name: 1 to 128 lowercase letters, digits and '-', starting with a letter or digit"),
            });
            None
        }
        None => {
            problems.push(Problem {
                path: at("name"),
                reason: "is required".into(),
            });
            None
        }
        Some(other) => {
            problems.push(Problem {
                path: at("name"),
                reason: format!("must be a string, not {}", describe(other)),
            });
            None
        }
    }
}

/// The spec rules of each kind: the same functions the operator reads records with.
pub(crate) fn validate_spec(kind: Kind, spec: &Value, path: &str) -> Result<(), Invalid> {
    match kind {
        Kind::RecycleRequest => parse_spec(spec, path).map(|_| ()),
        Kind::RecycleSchedule => crate::schedule::parse_schedule_spec(spec, path).map(|_| ()),
        Kind::RecyclePolicy => crate::policy::parse_policy_spec(spec, path).map(|_| ()),
    }
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
        let doc = parse_document(&from_yaml[0], "").unwrap();
        assert_eq!(doc.name, "web-rotate-secrets");
        assert_eq!(doc.kind, Kind::RecycleRequest);
        let spec = parse_spec(&doc.spec, "spec").unwrap();
        assert_eq!(spec.batch_size, 2);
        assert_eq!(spec.wait, Duration::from_secs(45));
    }

    #[test]
    fn a_syntax_error_names_the_line_and_column() {
        let err = read_documents("spec:\n  cluster: [prod\n", "bad.yaml").unwrap_err();
        let text = err.to_string();
        assert_eq!(text, "bad.yaml:2:12: unclosed bracket '['");
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
        // Expanding it would take all memory and hours; being refused at
        // all is the proof (a bound of seconds flaked on a loaded machine).
        let started = std::time::Instant::now();
        let result = read_documents(&bomb, "bomb.yaml");
        assert!(result.is_err(), "10^12 nodes must not be built");
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
    }

    #[test]
    fn the_envelope_is_checked_with_the_spec() {
        let doc = read_documents(
            "apiVersion: v2\nkind: RecycleRequest\nmetadata: {name: Web_1, labels: {}}\nspec: {cluster: prod}\nextra: 1\n",
            "x",
        )
        .unwrap();
        let err = parse_document(&doc[0], "").unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "apiVersion",
                "metadata.labels",
                "metadata.name",
                "extra",
                "spec.service"
            ],
            "{err}"
        );
    }
}
