//! Every line a flush writes checked against CloudWatch's Embedded Metric
//! Format specification: its JSON Schema as published (with today's
//! limits: 30 dimensions a set, 100 metrics a directive), and the rules a
//! schema cannot say — every dimension and metric a directive names is a
//! member of the root, dimensions with a string, metrics with a number or
//! at most 100 numbers. Then that it says what /metrics says, with the
//! same names and labels, counters as what they gained.

use serde_json::{Value, json};

use super::*;
use crate::metrics::Metrics;

/// The specification's schema (CloudWatch_Embedded_Metric_Format_Specification,
/// "Embedded metric format example and JSON schema"), with the current
/// limits and no member it does not define in the objects it defines.
fn specification() -> Value {
    let name = json!({"type": "string", "minLength": 1, "maxLength": 255});
    json!({
        "type": "object",
        "required": ["_aws"],
        "properties": {
            "_aws": {
                "type": "object",
                "required": ["Timestamp", "CloudWatchMetrics"],
                "additionalProperties": false,
                "properties": {
                    "Timestamp": {"type": "integer", "minimum": 0},
                    "CloudWatchMetrics": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["Namespace", "Dimensions", "Metrics"],
                            "additionalProperties": false,
                            "properties": {
                                "Namespace": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": ".*[^:].*"},
                                "Dimensions": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"type": "array", "maxItems": 30, "items": name}
                                },
                                "Metrics": {
                                    "type": "array",
                                    "maxItems": 100,
                                    "items": {
                                        "type": "object",
                                        "required": ["Name"],
                                        "additionalProperties": false,
                                        "properties": {
                                            "Name": name,
                                            "Unit": {"type": "string", "pattern": "^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes/Second|Kilobytes/Second|Megabytes/Second|Gigabytes/Second|Terabytes/Second|Bits/Second|Kilobits/Second|Megabits/Second|Gigabits/Second|Terabits/Second|Count/Second|None)$"},
                                            "StorageResolution": {"enum": [1, 60]}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Every rule of the specification, for one line: `Err` says which it breaks.
fn check(line: &str) -> Result<Value, String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not one JSON object: {e}"))?;
    let validator = jsonschema::validator_for(&specification()).unwrap();
    let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if line.contains('\n') {
        return Err("more than one line".into());
    }
    if line.len() > 256 * 1024 {
        return Err(format!("{} bytes: past a log event's limit", line.len()));
    }
    for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                let d = d.as_str().unwrap();
                match doc.get(d) {
                    Some(Value::String(v)) if !v.trim().is_empty() => {}
                    other => return Err(format!("dimension {d} is {other:?} on the root")),
                }
            }
        }
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            match doc.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                other => return Err(format!("metric {name} is {other:?} on the root")),
            }
        }
    }
    Ok(doc)
}

fn busy_metrics() -> std::sync::Arc<Metrics> {
    let m = Metrics::new();
    m.reconciled("requeued");
    m.reconciled("requeued");
    m.reconciled("lease_lost");
    m.aws_call("ecs:StopTask", "ok");
    m.aws_call("ecs:DescribeServices", "throttled");
    m.tasks_recycled.inc();
    m.lease_takeovers.inc();
    m.set_active(&[("Pending", 1), ("Recycling", 2)]);
    m.request_finished("Failed");
    m.token_wait_seconds
        .get_or_create(&crate::metrics::CategoryLabel {
            category: "service-modify",
        })
        .inc_by(1.5);
    for s in [0.002, 0.004, 0.3, 40.0] {
        m.step_seconds.observe(s);
    }
    m.events
        .received
        .get_or_create(&crate::metrics::DetailTypeLabel {
            detail_type: "task_state_change",
        })
        .inc();
    m.events.lag_seconds.observe(0.4);
    m.events.feed_healthy.set(1);
    m
}

#[test]
fn every_line_is_a_document_the_specification_accepts() {
    let m = busy_metrics();
    let mut w = Writer::new(
        DEFAULT_NAMESPACE,
        json!({"replica": "ip-10-0-0-1"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let lines = w.flush(&m.render(), 1_764_000_000_000);
    assert!(lines.len() >= 8, "a line per label set: {lines:#?}");
    for line in &lines {
        let doc = check(line).unwrap_or_else(|why| panic!("{why}:\n{line}"));
        assert_eq!(doc["_aws"]["Timestamp"], 1_764_000_000_000_i64);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "ECSRecycler"
        );
        assert_eq!(doc["replica"], "ip-10-0-0-1", "a property, not a dimension");
    }
    // The checks themselves catch what they are for.
    let bad = [
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["outcome"]], "Metrics": [{"Name": "x"}]}]}, "x": 1}"#,
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "x"}]}]}, "x": "1"}"#,
        r#"{"_aws": {"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "x"}]}]}, "x": 1}"#,
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "x", "Unit": "Things"}]}]}, "x": 1}"#,
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [], "Metrics": [{"Name": "x"}]}]}, "x": 1}"#,
    ];
    for line in bad {
        assert!(check(line).is_err(), "refused: {line}");
    }
}

/// A metric as a line says it: its name, its dimensions with their values, its value.
type Reading = (String, Vec<(String, String)>, Value);

/// Every metric of every line of a flush.
fn readings(lines: &[String]) -> Vec<Reading> {
    let mut out = Vec::new();
    for line in lines {
        let doc: Value = serde_json::from_str(line).unwrap();
        for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            let dims: Vec<(String, String)> = directive["Dimensions"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let d = d.as_str().unwrap().to_string();
                    let v = doc[&d].as_str().unwrap().to_string();
                    (d, v)
                })
                .collect();
            for m in directive["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap().to_string();
                out.push((name.clone(), dims.clone(), doc[&name].clone()));
            }
        }
    }
    out
}

fn reading(lines: &[String], name: &str, labels: &[(&str, &str)]) -> Option<Value> {
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    readings(lines)
        .into_iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .map(|(_, _, v)| v)
}

#[test]
fn the_names_and_labels_are_those_of_metrics_and_counters_say_what_they_gained() {
    let m = busy_metrics();
    let text = m.render();
    let mut w = Writer::new(DEFAULT_NAMESPACE, Map::new());
    let first = w.flush(&text, 1);
    // Every sample /metrics exposes, by its name and labels (a histogram's
    // buckets as its own name, with its observations).
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let emitted = readings(&first);
    for s in &scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        assert!(
            emitted
                .iter()
                .any(|(n, l, _)| *n == s.metric && *l == labels),
            "{} {labels:?} is written",
            s.metric
        );
    }
    assert_eq!(
        reading(
            &first,
            "ecs_recycler_reconciles_total",
            &[("outcome", "requeued")]
        ),
        Some(json!(2.0))
    );
    assert_eq!(
        reading(
            &first,
            "ecs_recycler_reconciles_total",
            &[("outcome", "lease_lost")]
        ),
        Some(json!(1.0)),
        "leases lost"
    );
    assert_eq!(
        reading(&first, "ecs_recycler_lease_takeovers_total", &[]),
        Some(json!(1.0))
    );
    assert_eq!(
        reading(
            &first,
            "ecs_recycler_requests_finished_total",
            &[("phase", "Failed")]
        ),
        Some(json!(1.0))
    );
    assert_eq!(
        reading(
            &first,
            "ecs_recycler_active_requests",
            &[("phase", "Recycling")]
        ),
        Some(json!(2.0))
    );
    assert_eq!(
        reading(
            &first,
            "ecs_recycler_api_token_wait_seconds_total",
            &[("category", "service-modify")]
        ),
        Some(json!(1.5))
    );
    assert_eq!(
        reading(&first, "ecs_recycler_step_duration_seconds_count", &[]),
        Some(json!(4.0))
    );
    let steps = reading(&first, "ecs_recycler_step_duration_seconds", &[]).unwrap();
    assert_eq!(steps.as_array().unwrap().len(), 4, "{steps}");

    // A minute on: counters say what they gained, gauges what they are,
    // and a histogram with nothing new says nothing.
    m.reconciled("requeued");
    m.set_active(&[("Recycling", 1)]);
    let second = w.flush(&m.render(), 2);
    assert_eq!(
        reading(
            &second,
            "ecs_recycler_reconciles_total",
            &[("outcome", "requeued")]
        ),
        Some(json!(1.0))
    );
    assert_eq!(
        reading(
            &second,
            "ecs_recycler_reconciles_total",
            &[("outcome", "lease_lost")]
        ),
        Some(json!(0.0)),
        "a zero is said, so an alarm on it has data"
    );
    assert_eq!(
        reading(
            &second,
            "ecs_recycler_active_requests",
            &[("phase", "Recycling")]
        ),
        Some(json!(1.0))
    );
    assert_eq!(
        reading(&second, "ecs_recycler_step_duration_seconds_count", &[]),
        Some(json!(0.0))
    );
    assert_eq!(
        reading(&second, "ecs_recycler_step_duration_seconds", &[]),
        None
    );
    for line in second {
        check(&line).unwrap();
    }
}

#[test]
fn the_bounds_hold_however_much_there_is() {
    // A thousand steps in one flush: at most 100 values, at their buckets.
    let m = Metrics::new();
    for i in 0..1000 {
        m.step_seconds.observe(if i % 10 == 0 { 2.0 } else { 0.01 });
    }
    let mut w = Writer::new(DEFAULT_NAMESPACE, Map::new());
    let lines = w.flush(&m.render(), 1);
    let values = reading(&lines, "ecs_recycler_step_duration_seconds", &[]).unwrap();
    let values: Vec<f64> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        values.len() <= MAX_VALUES && values.len() >= 90,
        "{}",
        values.len()
    );
    let slow = values.iter().filter(|v| **v >= 2.0).count();
    assert!((8..=12).contains(&slow), "one in ten slow: {values:?}");
    assert_eq!(
        reading(&lines, "ecs_recycler_step_duration_seconds_count", &[]),
        Some(json!(1000.0))
    );
    // A hundred and fifty metrics of one label set: two directives.
    let text: String = (0..150)
        .map(|i| format!("# TYPE g{i} gauge\ng{i} {i}\n"))
        .collect::<String>()
        + "# EOF\n";
    let lines = w.flush(&text, 1);
    assert_eq!(lines.len(), 1);
    let doc = check(&lines[0]).unwrap();
    let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(
        directives
            .iter()
            .map(|d| d["Metrics"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        [100, 50]
    );
}
