//! The operator's metrics in CloudWatch's Embedded Metric Format, written
//! to its log: CloudWatch Logs turns each line into metrics, so an
//! operator on ECS with the awslogs driver has them in CloudWatch with no
//! collector beside it (`--metrics-format emf|both`).
//!
//! What a reader must know: it is read from the operator's own Prometheus
//! exposition ([`crate::metrics::Metrics::render`]), so every metric has
//! the name and labels `/metrics` gives it, and a metric added there is
//! here too. Each label becomes a dimension. A counter is written as what
//! it gained since the last flush (CloudWatch sums them, across replicas
//! too); a gauge as it stands (read it with Maximum); a histogram as its
//! `_count` and `_sum` gains and as up to [`MAX_VALUES`] values, each
//! bucket's observations at its upper bound (for percentiles). One line
//! per set of label values, since a line holds one value per dimension;
//! at most [`MAX_METRICS`] metrics a directive, [`MAX_DIMENSIONS`]
//! dimensions a set, as the specification allows.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

/// The specification's bounds.
pub const MAX_METRICS: usize = 100;
pub const MAX_DIMENSIONS: usize = 30;
pub const MAX_VALUES: usize = 100;

/// The namespace the metrics go to unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "ECSRecycler";

/// A label set, as sorted (name, value) pairs: one line of a flush.
type LabelSet = Vec<(String, String)>;

/// What a flush remembers of the last one: each counter's and bucket's total.
pub struct Writer {
    namespace: String,
    /// Members every line carries but that are no dimension (the replica:
    /// one dimension per task would make a metric per deployment).
    properties: Map<String, Value>,
    last: HashMap<(String, LabelSet), f64>,
}

/// One metric of one line.
enum Reading {
    One(f64),
    Values(Vec<f64>),
}

impl Writer {
    pub fn new(namespace: &str, properties: Map<String, Value>) -> Writer {
        Writer {
            namespace: namespace.to_string(),
            properties,
            last: HashMap::new(),
        }
    }

    /// The lines of one flush of `exposition` (the text `/metrics`
    /// answers), timestamped `now_ms`; each a whole EMF document.
    pub fn flush(&mut self, exposition: &str, now_ms: i64) -> Vec<String> {
        let types = types(exposition);
        let lines = exposition.lines().map(|l| Ok(l.to_string()));
        let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
            return Vec::new();
        };
        let mut by_labels: BTreeMap<LabelSet, BTreeMap<String, Reading>> = BTreeMap::new();
        for sample in scrape.samples {
            let mut labels: LabelSet = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), non_empty(v)))
                .collect();
            labels.sort();
            labels.truncate(MAX_DIMENSIONS);
            let name = sample.metric;
            if name.ends_with("_created") {
                continue;
            }
            let reading = match sample.value {
                prometheus_parse::Value::Histogram(buckets) => {
                    let counts: Vec<(f64, f64)> =
                        buckets.iter().map(|b| (b.less_than, b.count)).collect();
                    Reading::Values(self.observed(&name, &labels, &counts))
                }
                prometheus_parse::Value::Gauge(v) => Reading::One(v),
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => {
                    match kind_of(&types, &name) {
                        Some("gauge") => Reading::One(v),
                        _ => Reading::One(self.gained(&name, &labels, v)),
                    }
                }
                prometheus_parse::Value::Summary(_) => continue,
            };
            by_labels.entry(labels).or_default().insert(name, reading);
        }
        by_labels
            .into_iter()
            .map(|(labels, metrics)| self.document(&labels, metrics, now_ms))
            .collect()
    }

    /// What a counter gained since the last flush (all of it at the first;
    /// all of it again after a restart of the process, whose totals start over).
    fn gained(&mut self, name: &str, labels: &LabelSet, total: f64) -> f64 {
        let before = self
            .last
            .insert((name.to_string(), labels.clone()), total)
            .unwrap_or(0.0);
        if total >= before {
            total - before
        } else {
            total
        }
    }

    /// The observations of a histogram since the last flush, each at its
    /// bucket's upper bound, at most [`MAX_VALUES`] (scaled down evenly
    /// when there were more: `_count` has the exact number).
    fn observed(&mut self, name: &str, labels: &LabelSet, buckets: &[(f64, f64)]) -> Vec<f64> {
        let mut sorted = buckets.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut per_bucket = Vec::new();
        let mut below = 0.0;
        let mut last_finite = 0.0;
        for (le, cumulative) in sorted {
            let key = format!("{name}{{le={le}}}");
            let new = self.gained(&key, labels, cumulative);
            let here = (new - below).max(0.0);
            below = new;
            // +Inf: the last finite bound is the best word for "more than it".
            let at = if le.is_finite() { le } else { last_finite };
            if le.is_finite() {
                last_finite = le;
            }
            per_bucket.push((at, here));
        }
        let total: f64 = per_bucket.iter().map(|b| b.1).sum();
        let scale = if total > MAX_VALUES as f64 {
            MAX_VALUES as f64 / total
        } else {
            1.0
        };
        let mut values = Vec::new();
        for (at, n) in per_bucket {
            let times = (n * scale).round() as usize;
            values.extend(std::iter::repeat_n(at, times));
        }
        values.truncate(MAX_VALUES);
        values
    }

    fn document(
        &self,
        labels: &LabelSet,
        metrics: BTreeMap<String, Reading>,
        now_ms: i64,
    ) -> String {
        let mut root = self.properties.clone();
        let dimensions: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        for (k, v) in labels {
            root.insert(k.clone(), json!(v));
        }
        let mut definitions = Vec::new();
        for (name, reading) in metrics {
            let value = match reading {
                // No observation since the last flush: nothing to say.
                Reading::Values(v) if v.is_empty() => continue,
                Reading::Values(v) => json!(v),
                Reading::One(v) => json!(v),
            };
            definitions.push(json!({"Name": name, "Unit": unit(&name)}));
            root.insert(name, value);
        }
        let directives: Vec<Value> = definitions
            .chunks(MAX_METRICS)
            .map(|chunk| {
                json!({
                    "Namespace": self.namespace,
                    "Dimensions": [dimensions],
                    "Metrics": chunk,
                })
            })
            .collect();
        root.insert(
            "_aws".into(),
            json!({"Timestamp": now_ms, "CloudWatchMetrics": directives}),
        );
        Value::Object(root).to_string()
    }
}

/// Each family's type, from the `# TYPE` lines (the parser reads an
/// OpenMetrics counter's `_total` sample as untyped).
fn types(exposition: &str) -> HashMap<&str, &str> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect()
}

/// The type of the family a sample belongs to: `x_total` of counter `x`,
/// `x_count` and `x_sum` of histogram `x` (gains, as counters are).
fn kind_of<'a>(types: &HashMap<&str, &'a str>, sample: &str) -> Option<&'a str> {
    if let Some(kind) = types.get(sample) {
        return Some(kind);
    }
    ["_total", "_count", "_sum", "_created"]
        .iter()
        .find_map(|suffix| types.get(sample.strip_suffix(suffix)?).copied())
}

/// CloudWatch's unit for a metric, from its name.
fn unit(name: &str) -> &'static str {
    if name.contains("_seconds") && !name.ends_with("_count") {
        "Seconds"
    } else {
        "Count"
    }
}

/// A dimension's value must have a character that is not a space.
fn non_empty(v: &str) -> String {
    if v.trim().is_empty() {
        "none".into()
    } else {
        v.to_string()
    }
}

/// Writes a flush of `metrics` to stdout every `every`, and a last one when
/// `stop` resolves; each line whole, so the operator's own log lines never
/// fall in between.
pub async fn write_every(
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut writer: Writer,
    every: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    use std::io::Write;
    let flush = |writer: &mut Writer| {
        let now = chrono::Utc::now().timestamp_millis();
        let lines = writer.flush(&metrics.render(), now);
        let mut out = std::io::stdout().lock();
        for line in lines {
            let _ = out.write_all(format!("{line}\n").as_bytes());
        }
        let _ = out.flush();
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => flush(&mut writer),
            _ = &mut stop => {
                flush(&mut writer);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
