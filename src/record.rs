//! The `RecycleRequest` record: its spec (what a person asks for), its status
//! (what the operator alone writes), and the validation that turns any JSON
//! or YAML value into a spec or into every problem it has, each with its
//! field path.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::{self, serde_duration};
use crate::notify::{NotifySpec, parse_notify};

pub const API_VERSION: &str = "ecs-recycler/v1";
pub const KIND_REQUEST: &str = "RecycleRequest";

/// The most events a status keeps; older ones are dropped first.
pub const MAX_EVENTS: usize = 50;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecycleSpec {
    pub cluster: String,
    pub service: String,
    pub maintain_capacity: bool,
    #[serde(with = "serde_duration")]
    pub wait: Duration,
    pub batch_size: u32,
    #[serde(with = "serde_duration")]
    pub stability_timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub cancel: bool,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,
}

/// Which of the service's tasks to recycle; all of them when absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Only tasks started before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_before: Option<DateTime<Utc>>,
    /// Only tasks that have run at least this long when the plan is made.
    #[serde(
        default,
        with = "crate::duration::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub older_than: Option<Duration>,
}

impl Selector {
    pub fn matches(&self, started_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        let Some(started) = started_at else {
            // A task that has not started yet is not an old task.
            return self.started_before.is_none() && self.older_than.is_none();
        };
        self.started_before.is_none_or(|before| started < before)
            && self.older_than.is_none_or(|age| {
                chrono::Duration::from_std(age).is_ok_and(|age| now - started >= age)
            })
    }
}

/// One thing wrong with a record: where, what was there, and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Every problem found in one record, so a person can fix them in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<Problem>);

/// Reads a spec from a JSON value (YAML is read into the same value first),
/// reporting every problem at once. `path` prefixes the field paths.
pub fn parse_spec(value: &Value, path: &str) -> Result<RecycleSpec, Invalid> {
    let mut r = Reader::new(value, path);
    let cluster = r.required_name("cluster");
    let service = r.required_name("service");
    let maintain_capacity = r.bool("maintainCapacity").unwrap_or(true);
    let wait = r.duration("wait").unwrap_or(Duration::from_secs(30));
    let batch_size = r.count("batchSize", 1, 100).unwrap_or(1);
    let stability_timeout = r
        .duration("stabilityTimeout")
        .unwrap_or(Duration::from_secs(600));
    if stability_timeout.is_zero() {
        r.problem("stabilityTimeout", "must be longer than 0s".into());
    }
    let selector = r.object("selector").map(|s| {
        let mut sr = Reader::new(s, &r.at("selector"));
        let selector = Selector {
            started_before: sr.timestamp("startedBefore"),
            older_than: sr.duration("olderThan"),
        };
        sr.finish();
        r.problems.append(&mut sr.problems);
        selector
    });
    let paused = r.bool("paused").unwrap_or(false);
    let cancel = r.bool("cancel").unwrap_or(false);
    let dry_run = r.bool("dryRun").unwrap_or(false);
    let not_after = r.timestamp("notAfter");
    let role_arn = r.string("roleArn");
    if let Some(arn) = &role_arn
        && !is_role_arn(arn)
    {
        r.problem(
            "roleArn",
            format!("{arn:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/name"),
        );
    }
    let external_id = r.string("externalId");
    if external_id.is_some() && role_arn.is_none() {
        r.problem(
            "externalId",
            "is only used with roleArn, which is missing".into(),
        );
    }
    let notify = r.get("notify").and_then(|v| {
        let path = r.at("notify");
        parse_notify(v, &path, &mut r.problems)
    });
    r.finish();
    if !r.problems.is_empty() {
        return Err(Invalid(r.problems));
    }
    Ok(RecycleSpec {
        cluster: cluster.unwrap_or_default(),
        service: service.unwrap_or_default(),
        maintain_capacity,
        wait,
        batch_size,
        stability_timeout,
        selector,
        paused,
        cancel,
        dry_run,
        not_after,
        role_arn,
        external_id,
        notify,
    })
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
        && resource.starts_with("role/") && resource.len() > 5)
}

/// Walks one JSON object, remembering which keys it read, and collects problems.
pub(crate) struct Reader<'a> {
    pub(crate) object: Option<&'a serde_json::Map<String, Value>>,
    pub(crate) path: String,
    pub(crate) seen: Vec<&'static str>,
    pub(crate) problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(value: &'a Value, path: &str) -> Self {
        let mut r = Self {
            object: value.as_object(),
            path: path.to_string(),
            seen: Vec::new(),
            problems: Vec::new(),
        };
        if r.object.is_none() {
            r.problems.push(Problem {
                path: path.to_string(),
                reason: format!("must be a mapping of fields, not {}", describe(value)),
            });
        }
        r
    }

    pub(crate) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn problem(&mut self, key: &str, reason: String) {
        let path = self.at(key);
        self.problems.push(Problem { path, reason });
    }

    /// A field written with no value (`wait:` in YAML) is refused rather
    /// than read as "use the default": it is more often a slip than a wish.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        let value = self.object?.get(key)?;
        if value.is_null() {
            self.problem(
                key,
                "has no value; give one, or remove the field to use the default".into(),
            );
            return None;
        }
        Some(value)
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            other => {
                let reason = format!("must be a non-empty string, not {}", describe(other));
                self.problem(key, reason);
                None
            }
        }
    }

    /// ECS cluster and service names: 1–255 letters, digits, `-` and `_`
    /// (an ARN is taken too, and reduced to its name).
    pub(crate) fn required_name(&mut self, key: &'static str) -> Option<String> {
        if self.object.is_some_and(|o| !o.contains_key(key)) {
            self.seen.push(key);
            self.problem(key, "is required".into());
            return None;
        }
        let given = self.string(key)?;
        let name = if given.starts_with("arn:") {
            given.rsplit('/').next().unwrap_or_default().to_string()
        } else {
            given.clone()
        };
        let ok = !name.is_empty()
            && name.len() <= 255
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            self.problem(
                key,
                format!("{given:?} is not an ECS name (1 to 255 letters, digits, - and _)"),
            );
            return None;
        }
        Some(name)
    }

    pub(crate) fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                let reason = format!("must be true or false, not {}", describe(other));
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn count(&mut self, key: &'static str, min: u64, max: u64) -> Option<u32> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n as u32),
            _ => {
                let reason = format!(
                    "{} is not allowed; use a whole number from {min} to {max}",
                    describe(value)
                );
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let value = self.get(key)?;
        match value.as_str().map(duration::parse) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                self.problem(key, e);
                None
            }
            None => {
                let reason = format!(
                    "{} is not a duration; write it like 30s, 10m or 1h30m",
                    describe(value)
                );
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn timestamp(&mut self, key: &'static str) -> Option<DateTime<Utc>> {
        let value = self.get(key)?;
        match value.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => Some(t.with_timezone(&Utc)),
            _ => {
                let reason = format!(
                    "{} is not a timestamp; write it in RFC 3339, like 2026-11-23T18:00:00Z",
                    describe(value)
                );
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn object(&mut self, key: &'static str) -> Option<&'a Value> {
        self.get(key)
    }

    /// Refuses keys nobody read: a typo must not silently change behaviour.
    pub(crate) fn finish(&mut self) {
        let Some(object) = self.object else {
            return;
        };
        for key in object.keys() {
            if !self.seen.contains(&key.as_str()) {
                let mut known: Vec<&str> = self.seen.clone();
                known.sort_unstable();
                let reason = unknown_field(key, &known);
                self.problem(key, reason);
            }
        }
    }
}

/// "is not a known field", with the nearest known name when the key looks
/// like a typo of it, then every known name.
pub(crate) fn unknown_field(key: &str, known: &[&str]) -> String {
    match nearest(key, known) {
        Some(k) => format!(
            "is not a known field; did you mean {k}? Known fields are {}",
            known.join(", ")
        ),
        None => format!(
            "is not a known field; known fields are {}",
            known.join(", ")
        ),
    }
}

/// The known word `word` looks like a slip of, for "did you mean": the
/// nearest by Levenshtein distance, case aside, when it is at most two edits
/// away (a quarter of the word for long words).
pub(crate) fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&word, &k.to_lowercase()), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .map(|(_, k)| k)
}

/// A value as a person would name it in an error message.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A stored request's spec as the operator reads it, or a sentence saying
/// what is wrong with it.
pub fn request_spec(record: &crate::store::StoredRecord) -> Result<RecycleSpec, String> {
    let value = record.spec.as_ref().map_err(|e| format!("spec: {e}"))?;
    parse_spec(value, "spec").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_the_seed() {
        let spec = parse_spec(&json!({"cluster": "prod", "service": "web"}), "spec").unwrap();
        assert!(spec.maintain_capacity);
        assert_eq!(spec.wait, Duration::from_secs(30));
        assert_eq!(spec.batch_size, 1);
        assert_eq!(spec.stability_timeout, Duration::from_secs(600));
        assert!(!spec.paused && !spec.dry_run && !spec.cancel);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = parse_spec(
            &json!({
                "service": "web app",
                "batchSize": 0,
                "wait": "30",
                "maintainCapacity": "yes",
                "selector": {"olderThan": 5, "startedAfter": "x"},
                "roleArn": "role/x",
                "notAfter": "tomorrow",
                "waitTime": "30s",
            }),
            "spec",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.cluster",
                "spec.service",
                "spec.maintainCapacity",
                "spec.wait",
                "spec.batchSize",
                "spec.selector.olderThan",
                "spec.selector.startedAfter",
                "spec.notAfter",
                "spec.roleArn",
                "spec.waitTime",
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("spec.cluster: is required"), "{text}");
        assert!(text.contains("from 1 to 100"), "{text}");
        assert!(text.contains("30s"), "{text}");
    }

    #[test]
    fn selector_matches_age_and_start_time() {
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let started: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let older = Selector {
            older_than: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        assert!(older.matches(Some(started), now));
        let younger = Selector {
            older_than: Some(Duration::from_secs(3 * 3600)),
            ..Default::default()
        };
        assert!(!younger.matches(Some(started), now));
        let before = Selector {
            started_before: Some("2026-11-23T09:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        assert!(!before.matches(Some(started), now));
        assert!(Selector::default().matches(None, now));
        assert!(!older.matches(None, now));
    }

    #[test]
    fn a_near_miss_gets_a_suggestion_and_a_far_one_none() {
        let known = ["RecycleRequest", "RecycleSchedule"];
        assert_eq!(nearest("RecycleRequests", &known), Some("RecycleRequest"));
        assert_eq!(nearest("recycleschedule", &known), Some("RecycleSchedule"));
        assert_eq!(nearest("RecyleRequest", &known), Some("RecycleRequest"));
        assert_eq!(nearest("Widget", &known), None);
        assert_eq!(nearest("wiat", &["wait", "batchSize"]), Some("wait"));
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/recycler"));
        assert!(is_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/recycler"
        ));
        assert!(!is_role_arn("arn:aws:iam::1234:role/recycler"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/bob"));
    }
}
