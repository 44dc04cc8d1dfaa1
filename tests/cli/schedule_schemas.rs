//! The JSON Schemas of what schedules and notifications add: they are valid
//! draft 2020-12 (checked by Python's jsonschema from the pinned venv), the
//! example passes them and bad documents do not. (That the example reads
//! with the product's own parser is a unit test of `schedule`.)

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use ecs_recycler::cli::read_documents;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example() -> Value {
    let path = root().join("manifests").join("schedule-window.yaml");
    let text = std::fs::read_to_string(&path).expect("manifests/schedule-window.yaml");
    let mut docs = read_documents(&text, "schedule-window.yaml").expect("YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

/// Runs tests/py/check_schemas.py over `cases`; answers each case's errors.
fn check(cases: &[(&str, Value)]) -> Vec<Vec<String>> {
    let dir = support::operator::temp_dir("schemas");
    let schemas = root().join("manifests").join("schema");
    for entry in std::fs::read_dir(&schemas).expect("manifests/schema") {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let request = dir.join("recyclerequest.schema.json");
    if !request.exists() {
        // The RecycleRequest schema is written on the CLI's branch; until it
        // is merged, a stand-in with the same $defs/spec shape (required
        // cluster and service, notify by reference) lets the refs resolve.
        let stand_in = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "recyclerequest.schema.json",
            "$defs": {"spec": {
                "type": "object",
                "required": ["cluster", "service"],
                "properties": {"notify": {"$ref": "notify.schema.json"}}
            }}
        });
        std::fs::write(&request, stand_in.to_string()).unwrap();
    }
    let cases_file = dir.join("cases.json");
    let cases: Vec<Value> = cases
        .iter()
        .map(|(schema, instance)| json!({"schema": schema, "instance": instance}))
        .collect();
    std::fs::write(&cases_file, Value::Array(cases).to_string()).unwrap();
    let out = Command::new(support::python())
        .arg(support::script("check_schemas.py"))
        .arg(&dir)
        .arg(&cases_file)
        .output()
        .expect("run check_schemas.py");
    assert!(
        out.status.success(),
        "check_schemas.py failed (a schema is not valid draft 2020-12?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON results")
}

#[test]
fn the_schemas_accept_the_example_and_refuse_bad_documents() {
    let good = example();
    let with = |pointer: &str, value: Value| {
        let mut doc = good.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        doc
    };
    let mut not_after = good.clone();
    not_after["spec"]["template"]["notAfter"] = json!("2030-01-01T00:00:00Z");
    let mut unknown = good.clone();
    unknown["spec"]["suspended"] = json!(true);
    let notify = good["spec"]["template"]["notify"].clone();
    let cases = [
        ("recycleschedule.schema.json", good.clone()),
        ("notify.schema.json", notify.clone()),
        (
            "recycleschedule.schema.json",
            with("/spec/concurrencyPolicy", json!("Sometimes")),
        ),
        (
            "recycleschedule.schema.json",
            with("/spec/window", json!("two hours")),
        ),
        (
            "recycleschedule.schema.json",
            with("/kind", json!("RecycleRequest")),
        ),
        ("recycleschedule.schema.json", not_after),
        ("recycleschedule.schema.json", unknown),
        (
            "notify.schema.json",
            json!({"webhook": {"url": "http://hooks.example.com/x"}}),
        ),
        (
            "notify.schema.json",
            json!({"email": {"to": ["not an address"]}}),
        ),
        (
            "notify.schema.json",
            json!({"events": ["finished"], "sns": {"topicArn": "arn:aws:sqs:us-east-1:123456789012:q"}}),
        ),
        ("notify.schema.json", json!({"events": ["started"]})),
        (
            "notify.schema.json",
            json!({"webhook": {"url": "http://127.0.0.1:8080/hook", "format": "slack"}}),
        ),
    ];
    let results = check(&cases);
    assert_eq!(results[0], Vec::<String>::new(), "the example");
    assert_eq!(results[1], Vec::<String>::new(), "the example's notify");
    for (i, errors) in results.iter().enumerate().skip(2).take(9) {
        assert!(
            !errors.is_empty(),
            "case {i} should be refused: {}",
            cases[i].1
        );
    }
    assert_eq!(results[11], Vec::<String>::new(), "plain http to loopback");
}
