//! infra/monitoring.yaml on moto, and against the code: the stack deploys
//! (the dashboard and the alarms' topic made; moto's CloudFormation makes
//! no AWS::CloudWatch::Alarm, so the alarms are checked as written), and
//! every metric the dashboard draws and the alarms watch is
//! one the operator writes, with its dimensions and their values — the
//! phases, the throttling categories, the outcomes the code names — so a
//! renamed metric or label breaks this test, not a night's alarm.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{moto::Moto, python, script};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every sample name the operator writes, with the label names it carries.
fn written() -> BTreeMap<String, BTreeSet<String>> {
    let m = ecs_recycler::Metrics::new();
    // Touch each family that has labels, so its samples show them.
    m.reconciled("requeued");
    m.aws_call("ecs:StopTask", "throttled");
    m.set_active(&[("Pending", 0)]);
    m.request_finished("Failed");
    m.token_wait_seconds
        .get_or_create(&ecs_recycler::CategoryLabel {
            category: "service-read",
        })
        .inc();
    m.hook_calls
        .get_or_create(&ecs_recycler::OutcomeLabel { outcome: "failed" })
        .inc();
    m.policy_looks
        .get_or_create(&ecs_recycler::OutcomeLabel { outcome: "ok" })
        .inc();
    let text = m.render();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let names = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => vec![name.into(), format!("{name}_count"), format!("{name}_sum")],
                _ => vec![name.to_string()],
            };
            for n in names {
                out.entry(n).or_default();
            }
        }
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    for s in scrape.samples {
        let labels = out.entry(s.metric).or_default();
        labels.extend(s.labels.keys().cloned());
    }
    out
}

/// Whether `value` is one the code can write for dimension `name`.
fn known_value(name: &str, value: &str, source: &str) -> bool {
    match name {
        "phase" => [
            "Pending",
            "Surging",
            "Recycling",
            "Restoring",
            "Succeeded",
            "Failed",
            "Cancelled",
            "WindowClosed",
        ]
        .contains(&value),
        "category" => api_limits::named(value).is_some(),
        // Outcomes are words the code writes as literals.
        "outcome" => source.contains(&format!("\"{value}\"")),
        _ => false,
    }
}

fn all_source() -> String {
    let mut text = String::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    text
}

/// A metric as a dashboard row or an alarm names it.
#[derive(Debug)]
struct Named {
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
}

fn check(named: &Named, written: &BTreeMap<String, BTreeSet<String>>, source: &str) {
    let labels = written.get(&named.metric).unwrap_or_else(|| {
        panic!(
            "{} is not a metric the operator writes: {named:?}",
            named.metric
        )
    });
    for (name, value) in &named.dimensions {
        assert!(
            labels.contains(name),
            "{} has no label {name} (it has {labels:?})",
            named.metric
        );
        assert!(
            known_value(name, value, source),
            "{}: {name}={value} is not a value the code writes",
            named.metric
        );
    }
}

/// The dashboard's metric rows, with CloudWatch's "..." shorthand expanded,
/// and the metric names its SEARCH expressions look for.
fn dashboard_metrics(body: &Value) -> (Vec<Named>, Vec<(String, String)>) {
    let mut rows = Vec::new();
    let mut searches = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let Some(metrics) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        let mut previous: Vec<String> = Vec::new();
        for row in metrics {
            let parts: Vec<&Value> = row.as_array().unwrap().iter().collect();
            if let Some(expr) = parts.first().and_then(|p| p["expression"].as_str()) {
                let metric = expr
                    .split("MetricName=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                let dims = expr.split('{').nth(1).unwrap().split('}').next().unwrap();
                searches.push((metric.to_string(), dims.to_string()));
                continue;
            }
            let mut words: Vec<String> = parts
                .iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            if words.first().is_some_and(|w| w == "...") {
                // "..." repeats the row before but for the values after it.
                let tail = words.split_off(1);
                words = previous[..previous.len() - tail.len()].to_vec();
                words.extend(tail);
            }
            previous = words.clone();
            rows.push(Named {
                namespace: words[0].clone(),
                metric: words[1].clone(),
                dimensions: words[2..]
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            });
        }
    }
    (rows, searches)
}

/// The alarms' metrics, as the template writes them.
fn alarm_metrics(alarm: &Value) -> Vec<Named> {
    let named = |metric: &Value| Named {
        namespace: match &metric["Namespace"] {
            Value::Object(r) => format!("Ref:{}", r["Ref"].as_str().unwrap()),
            other => other.to_string(),
        },
        metric: metric["MetricName"].as_str().unwrap().to_string(),
        dimensions: metric["Dimensions"]
            .as_array()
            .map(|ds| {
                ds.iter()
                    .map(|d| {
                        (
                            d["Name"].as_str().unwrap().to_string(),
                            d["Value"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let p = &alarm["Properties"];
    match p["Metrics"].as_array() {
        None => vec![named(p)],
        Some(queries) => {
            let ids: Vec<&str> = queries.iter().map(|q| q["Id"].as_str().unwrap()).collect();
            let expression = queries
                .iter()
                .find(|q| q["ReturnData"] == true)
                .and_then(|q| q["Expression"].as_str())
                .expect("one expression is what the alarm watches");
            for id in ids.iter().filter(|id| {
                expression
                    .split(|c: char| !c.is_alphanumeric())
                    .all(|w| w != **id)
            }) {
                let q = queries.iter().find(|q| q["Id"] == *id).unwrap();
                assert!(
                    q["ReturnData"] == true,
                    "{id} is fetched but not used in {expression}"
                );
            }
            queries
                .iter()
                .filter(|q| q.get("MetricStat").is_some())
                .map(|q| named(&q["MetricStat"]["Metric"]))
                .collect()
        }
    }
}

#[test]
fn the_monitoring_stack_deploys_and_watches_what_the_operator_writes() {
    let moto = Moto::start();
    let params = json!({"AlarmTopic": "create", "AlarmEmail": "ops@example.com"});
    let out = Command::new(python())
        .arg(script("cfn_monitoring.py"))
        .args([
            &moto.url,
            root().join("infra").to_str().unwrap(),
            &params.to_string(),
        ])
        .output()
        .expect("cfn_monitoring.py runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deployed["status"], "CREATE_COMPLETE");

    // Everything made but what moto's CloudFormation cannot make (the
    // alarms, the topic's policy and subscription): those are checked as
    // the template writes them, below.
    const SKIPPED: [&str; 3] = [
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription",
    ];
    let declared = deployed["declared"].as_object().unwrap();
    let of_type = |t: &str| -> BTreeSet<&str> {
        declared
            .iter()
            .filter(|(_, ty)| *ty == t)
            .map(|(k, _)| k.as_str())
            .collect()
    };
    let alarms = of_type("AWS::CloudWatch::Alarm");
    assert_eq!(alarms.len(), 3, "{alarms:?}");
    let made: BTreeSet<&str> = deployed["resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = declared
        .iter()
        .filter(|(_, t)| !SKIPPED.contains(&t.as_str().unwrap()))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(made, expected);
    assert!(made.contains("Dashboard") && made.contains("AlarmNotifications"));
    assert!(
        deployed["outputs"]["AlarmTopicArn"]
            .as_str()
            .unwrap()
            .ends_with(":ecs-recycler-monitoring-alarms")
    );

    // The topic's policy, as written: CloudWatch alone may publish, for
    // this account's alarms.
    let template = &deployed["template"]["Resources"];
    let statement =
        &template["AlarmNotificationsPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        statement["Principal"]["Service"],
        "cloudwatch.amazonaws.com"
    );
    assert_eq!(statement["Action"], "sns:Publish");
    assert_eq!(
        statement["Condition"]["StringEquals"]["aws:SourceAccount"]["Ref"],
        "AWS::AccountId"
    );

    let written = written();
    let source = all_source();
    let (rows, searches) = dashboard_metrics(&deployed["dashboard"]);
    assert!(rows.len() >= 15, "{rows:?}");
    for row in &rows {
        assert_eq!(row.namespace, "ECSRecycler", "{row:?}");
        check(row, &written, &source);
    }
    for (metric, dims) in &searches {
        let named = Named {
            namespace: "ECSRecycler".into(),
            metric: metric.clone(),
            dimensions: Vec::new(),
        };
        check(&named, &written, &source);
        let label = dims.split(',').nth(1).unwrap();
        assert!(written[metric].contains(label), "{metric} by {label}");
    }
    // What the issue asks the dashboard for.
    for metric in [
        "ecs_recycler_active_requests",
        "ecs_recycler_requests_finished_total",
        "ecs_recycler_tasks_recycled_total",
        "ecs_recycler_lease_takeovers_total",
        "ecs_recycler_reconciles_total",
    ] {
        assert!(rows.iter().any(|r| r.metric == metric), "{metric} drawn");
    }
    assert!(
        searches
            .iter()
            .any(|(m, _)| m == "ecs_recycler_api_token_wait_seconds_total")
    );
    let alarm_widget = &deployed["dashboard"]["widgets"][0]["properties"]["alarms"];
    for (i, id) in [
        "RequestFailedAlarm",
        "NoProgressAlarm",
        "BudgetExhaustedAlarm",
    ]
    .iter()
    .enumerate()
    {
        let name = template[id]["Properties"]["AlarmName"]["Fn::Sub"]
            .as_str()
            .unwrap();
        let suffix = name.trim_start_matches("${AWS::StackName}");
        assert!(
            alarm_widget[i]
                .as_str()
                .unwrap()
                .ends_with(&format!("alarm:ecs-recycler-monitoring{suffix}")),
            "{id} on the dashboard: {alarm_widget}"
        );
    }

    // The alarms watch what the operator writes.
    let mut categories = BTreeSet::new();
    for id in &alarms {
        for named in alarm_metrics(&template[*id]) {
            assert_eq!(named.namespace, "Ref:MetricsNamespace", "{id}");
            check(&named, &written, &source);
            categories.extend(
                named
                    .dimensions
                    .iter()
                    .filter(|(k, _)| k == "category")
                    .map(|(_, v)| v.clone()),
            );
        }
    }
    // The budget alarm covers every throttling category the operator's
    // role lets it call.
    let role = std::fs::read_to_string(root().join("infra/operator.yaml")).unwrap();
    for word in role.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        if let Some(category) = api_limits::category_of_iam(word) {
            assert!(
                categories.contains(category.name),
                "the budget alarm watches {} ({word})",
                category.name
            );
        }
    }
}
