//! Manifests: the examples in `manifests/` are valid for both the JSON Schema
//! and `apply`; a corpus of mistakes is refused by `apply` with exactly the
//! golden error text (and nothing written), and by the schema too wherever a
//! schema can say it; the schema's duration pattern agrees with the parser.
//!
//! `UPDATE_GOLDEN=1 cargo test --test manifests` rewrites the golden files;
//! review the diff before committing it.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ecs_recycler::cli::{Source, check};
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use jsonschema::{Registry, Validator};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// One validator per kind, with every schema file registered so `$ref`s
/// between them resolve offline.
fn validators() -> Vec<(String, Validator)> {
    let schemas: Vec<Value> = files(&root().join("manifests/schema"), "json")
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json"))
        .collect();
    let mut builder = Registry::new();
    for s in &schemas {
        let id = s["$id"].as_str().expect("every schema has an $id");
        builder = builder.add(id, s.clone()).expect("register schema");
    }
    let registry = builder.prepare().expect("registry");
    schemas
        .iter()
        .filter_map(|s| {
            let kind = s["properties"]["kind"]["const"].as_str()?.to_string();
            let v = jsonschema::options()
                .with_registry(&registry)
                .build(s)
                .unwrap_or_else(|e| panic!("schema for {kind} builds: {e}"));
            Some((kind, v))
        })
        .collect()
}

fn schema_errors(validators: &[(String, Validator)], doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap_or("RecycleRequest");
    let validator = validators
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .unwrap_or(&validators[0].1);
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn read_yaml(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    ecs_recycler::cli::read_documents(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

#[test]
fn every_example_is_valid_for_the_schema_and_for_apply() {
    let validators = validators();
    let examples = files(&root().join("manifests"), "yaml");
    assert!(examples.len() >= 4, "{examples:?}");
    for path in examples {
        let text = std::fs::read_to_string(&path).expect("read");
        let (good, bad) = check(&[Source {
            name: path.display().to_string(),
            text,
        }]);
        assert!(bad.is_empty(), "apply refuses {}: {bad:?}", path.display());
        assert!(!good.is_empty());
        for doc in read_yaml(&path).expect("yaml") {
            let errors = schema_errors(&validators, &doc);
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
    }
}

/// The mistakes a schema cannot see: YAML syntax (the editor's parser shows
/// those), a document with no mapping at all, and a rule across documents.
const BEYOND_A_SCHEMA: [&str; 6] = [
    "01-syntax-unclosed-bracket",
    "02-syntax-bad-indentation",
    "22-same-name-twice",
    "24-duplicate-key",
    "25-empty-file",
    "26-alias-bomb",
];

#[test]
fn the_schema_refuses_what_apply_refuses() {
    let validators = validators();
    let corpus = files(&root().join("tests/golden/apply"), "yaml");
    for path in &corpus {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let Ok(docs) = read_yaml(path) else {
            assert!(
                BEYOND_A_SCHEMA.contains(&stem.as_str()),
                "{stem} is unreadable"
            );
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        let (_, bad) = check(&[Source {
            name: stem.clone(),
            text,
        }]);
        for (i, doc) in docs.iter().enumerate() {
            let apply_refuses = bad.iter().any(|b| b.document == Some(i + 1));
            let schema_refuses = !schema_errors(&validators, doc).is_empty();
            if BEYOND_A_SCHEMA.contains(&stem.as_str()) {
                continue;
            }
            assert_eq!(
                schema_refuses,
                apply_refuses,
                "{stem} document {}: schema {:?}, apply {:?}",
                i + 1,
                schema_errors(&validators, doc),
                bad
            );
        }
    }
}

#[test]
fn the_schema_duration_pattern_agrees_with_the_parser() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("manifests/schema/recyclerequest.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let pattern = schema["$defs"]["duration"].clone();
    let v = jsonschema::validator_for(&pattern).expect("pattern compiles");
    for text in [
        "30s",
        "250ms",
        "1h30m",
        "1h 30m",
        "10m",
        "2d",
        "1w",
        "45 seconds",
        "3 mins",
        "5hrs",
        "1M",
        "30",
        "",
        "s",
        "5 parsecs",
        "1.5s",
        "-3s",
        "3 s 4",
        "soon",
        "100us",
        "7days",
    ] {
        let parses = ecs_recycler::duration::parse(text).is_ok();
        assert_eq!(
            v.is_valid(&Value::String(text.into())),
            parses,
            "{text:?}: the parser says {parses}"
        );
    }
}

/// Runs `apply` on each corpus file against an empty store; the exit code,
/// stdout and stderr must match the golden `.out` file, and nothing may be
/// written.
#[tokio::test]
async fn apply_refuses_each_mistake_with_the_golden_message_and_writes_nothing() {
    let dir = support::operator::temp_dir("golden");
    let store_path = dir.join("store.json");
    let corpus = files(&root().join("tests/golden/apply"), "yaml");
    assert!(corpus.len() >= 15, "at least 15 mistakes: {}", corpus.len());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for path in &corpus {
        let relative = path.strip_prefix(root()).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
            .current_dir(root())
            .args(["apply", "-f"])
            .arg(relative)
            .arg("--store")
            .arg(&store_path)
            .env_remove("ECS_RECYCLER_TABLE")
            .env("NO_COLOR", "1")
            .output()
            .expect("run apply");
        let got = format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let golden = path.with_extension("out");
        if update {
            std::fs::write(&golden, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!("{} is missing; run with UPDATE_GOLDEN=1", golden.display())
            });
            if want != got {
                mismatched.push(format!(
                    "{}:\n--- want\n{want}\n--- got\n{got}",
                    relative.display()
                ));
            }
        }
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}: {got}",
            relative.display()
        );
    }
    assert!(mismatched.is_empty(), "{}", mismatched.join("\n\n"));
    let store = EmbeddedStore::open(&store_path).unwrap();
    assert!(
        store
            .list_all(Kind::RecycleRequest)
            .await
            .unwrap()
            .is_empty(),
        "a refused apply wrote a record"
    );
}
