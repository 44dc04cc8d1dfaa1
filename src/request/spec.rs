//! A `RecycleRequest`'s spec: what a person asks for, and the validation
//! that turns any JSON or YAML value into a spec or into every problem it
//! has, each with its field path (read with [`crate::validate::Reader`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::serde_duration;
use crate::gates::spec::{AlarmGate, Gates, parse_gates};
use crate::hooks::spec::{Hook, parse_hooks};
use crate::notify::{NotifySpec, parse_notify};
use crate::request::strategy::{Strategy, parse_strategy};
use crate::validate::{Invalid, Reader};

pub(crate) const API_VERSION: &str = "ecs-recycler/v1";

/// The most events a status keeps; older ones are dropped first.
pub(crate) const MAX_EVENTS: usize = 50;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecycleSpec {
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
    /// The record that made this request (`RecyclePolicy/prod-max-age`),
    /// when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Gates>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// The shape of the run: batches (the default), a canary, linear
    /// steps, or all at once (see [`super::strategy`]).
    #[serde(default, skip_serializing_if = "Strategy::is_batches")]
    pub strategy: Strategy,
    /// What to do with a task protected from scale-in when its turn comes.
    #[serde(default)]
    pub protected_tasks: ProtectedTasks,
    /// With `protectedTasks: wait`, how long the run waits for the last
    /// protected tasks before it leaves them running.
    #[serde(with = "serde_duration", default = "default_protection_wait")]
    pub protection_wait: Duration,
    /// How long a step may wait for capacity (a task PROVISIONING while a
    /// capacity provider launches an instance), apart from `stabilityTimeout`.
    #[serde(with = "serde_duration", default = "default_capacity_timeout")]
    pub capacity_timeout: Duration,
}

/// What the run does with a task protected from scale-in (ECS task
/// scale-in protection) when its turn comes: it never stops one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ProtectedTasks {
    /// Recycle it last, once its protection ends, waiting up to `protectionWait`.
    #[default]
    Wait,
    /// Leave it running, and say so.
    Skip,
}

/// ECS protects a task from scale-in for at most 48 hours (2,880 minutes).
const LONGEST_PROTECTION: Duration = Duration::from_secs(48 * 3600);

fn default_protection_wait() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_capacity_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

impl RecycleSpec {
    /// The size of batch `number` (1 for the first) of `planned` tasks.
    pub(crate) fn batch(&self, number: u32, planned: usize) -> usize {
        self.strategy.batch(number, planned, self.batch_size)
    }

    /// The largest batch of `planned` tasks: what the surge adds.
    pub(crate) fn largest_batch(&self, planned: usize) -> usize {
        self.strategy.largest(planned, self.batch_size)
    }

    /// Where batch `number` of `planned` tasks stands: "canary 1/1", "step 4 of 10".
    pub(crate) fn where_in(&self, number: u32, planned: usize) -> String {
        self.strategy.where_in(number, planned, self.batch_size)
    }

    /// The alarm gate, if the spec has one.
    pub(crate) fn alarm_gate(&self) -> Option<&AlarmGate> {
        self.gates.as_ref().and_then(|g| g.alarms.as_ref())
    }
}

/// Which of the service's tasks to recycle; all of them when absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Selector {
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
    pub(crate) fn matches(&self, started_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
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

/// Reads a spec from a JSON value (YAML is read into the same value first),
/// reporting every problem at once. `path` prefixes the field paths.
pub(crate) fn parse_spec(value: &Value, path: &str) -> Result<RecycleSpec, Invalid> {
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
    let (role_arn, external_id) = parse_role(&mut r);
    let notify = r.get("notify").and_then(|v| {
        let path = r.at("notify");
        parse_notify(v, &path, &mut r.problems)
    });
    let created_by = parse_created_by(&mut r);
    let gates = r.get("gates").and_then(|v| {
        let path = r.at("gates");
        parse_gates(v, &path, &mut r.problems)
    });
    let hooks = r.get("hooks").and_then(|v| {
        let path = r.at("hooks");
        parse_hooks(v, &path, &mut r.problems)
    });
    let strategy = r
        .get("strategy")
        .and_then(|v| {
            let path = r.at("strategy");
            parse_strategy(v, &path, &mut r.problems)
        })
        .unwrap_or_default();
    refuse_conflicts(&mut r, strategy);
    let (protected_tasks, protection_wait) = parse_protection(&mut r);
    let capacity_timeout = r
        .duration("capacityTimeout")
        .unwrap_or_else(default_capacity_timeout);
    if capacity_timeout.is_zero() {
        r.problem("capacityTimeout", "must be longer than 0s".into());
    }
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
        created_by,
        gates,
        hooks: hooks.unwrap_or_default(),
        strategy,
        protected_tasks,
        protection_wait,
        capacity_timeout,
    })
}

/// `roleArn` (an IAM role's ARN) and `externalId` (only with a role).
fn parse_role(r: &mut Reader<'_>) -> (Option<String>, Option<String>) {
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
    (role_arn, external_id)
}

/// `createdBy`: set by the operator, naming the policy or schedule that
/// made the request.
fn parse_created_by(r: &mut Reader<'_>) -> Option<String> {
    let created_by = r.string("createdBy");
    if let Some(by) = &created_by
        && !is_maker(by)
    {
        r.problem(
            "createdBy",
            format!("{by:?} is not a maker of requests; it reads RecyclePolicy/<name> or RecycleSchedule/<name>, and is set by the operator"),
        );
    }
    created_by
}

/// A strategy that sizes or paces every batch itself leaves no room for
/// `batchSize` or `wait` beside it: both written is a contradiction.
fn refuse_conflicts(r: &mut Reader<'_>, strategy: Strategy) {
    let given = |key: &str| r.object.is_some_and(|o| o.contains_key(key));
    let (batch_size, wait) = (given("batchSize"), given("wait"));
    match strategy {
        Strategy::Linear { .. } if batch_size => r.problem(
            "batchSize",
            "conflicts with strategy.linear, whose step sizes every batch; remove one".into(),
        ),
        Strategy::AllAtOnce if batch_size => r.problem(
            "batchSize",
            "conflicts with strategy allAtOnce, which stops every planned task in one batch; remove one".into(),
        ),
        _ => {}
    }
    if matches!(strategy, Strategy::Linear { .. }) && wait {
        r.problem(
            "wait",
            "conflicts with strategy.linear, whose every paces the steps; remove one".into(),
        );
    }
}

/// `protectedTasks` (wait or skip) and `protectionWait` (only with wait,
/// longer than 0s, at most ECS's 48 hours of protection).
fn parse_protection(r: &mut Reader) -> (ProtectedTasks, Duration) {
    const WORDS: [&str; 2] = ["wait", "skip"];
    let policy = match r.get("protectedTasks") {
        None => ProtectedTasks::Wait,
        Some(Value::String(s)) if s == "wait" => ProtectedTasks::Wait,
        Some(Value::String(s)) if s == "skip" => ProtectedTasks::Skip,
        Some(other) => {
            let hint = other
                .as_str()
                .and_then(|s| crate::validate::nearest(s, &WORDS))
                .map(|n| format!(" (did you mean {n}?)"))
                .unwrap_or_default();
            r.problem(
                "protectedTasks",
                format!(
                    "{} is not allowed{hint}; use wait (recycle protected tasks last, once their protection ends) or skip (leave them running)",
                    crate::validate::describe(other)
                ),
            );
            ProtectedTasks::Wait
        }
    };
    let given = r.duration("protectionWait");
    if let Some(wait) = given {
        if policy == ProtectedTasks::Skip {
            r.problem(
                "protectionWait",
                "is only used with protectedTasks: wait; remove it, or set protectedTasks: wait"
                    .into(),
            );
        } else if wait.is_zero() {
            r.problem(
                "protectionWait",
                "must be longer than 0s; to leave protected tasks running at once, set protectedTasks: skip".into(),
            );
        } else if wait > LONGEST_PROTECTION {
            r.problem(
                "protectionWait",
                "is longer than ECS protects a task (48h); use at most 48h".into(),
            );
        }
    }
    (policy, given.unwrap_or_else(default_protection_wait))
}

fn is_maker(text: &str) -> bool {
    matches!(text.split_once('/'), Some(("RecyclePolicy" | "RecycleSchedule", name))
        if crate::validate::is_record_name(name))
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
        && resource.starts_with("role/") && resource.len() > 5)
}

/// The service a listed request's spec names, or `None` when the spec
/// cannot be read (its step, which reads the record whole, says why).
pub(crate) fn listed_service(spec: &Result<Box<str>, String>) -> Option<(String, String)> {
    let value: Value = serde_json::from_str(spec.as_deref().ok()?).ok()?;
    let spec = parse_spec(&value, "spec").ok()?;
    Some((spec.cluster, spec.service))
}

/// A stored request's spec (as the store read it: a JSON value, or why it
/// could not be read) as the operator reads it, or a sentence saying what
/// is wrong with it.
pub(crate) fn request_spec(stored: &Result<Value, String>) -> Result<RecycleSpec, String> {
    let value = stored.as_ref().map_err(|e| format!("spec: {e}"))?;
    parse_spec(value, "spec").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_the_original_lambda() {
        let spec = parse_spec(&json!({"cluster": "prod", "service": "web"}), "spec").unwrap();
        assert!(spec.maintain_capacity);
        assert_eq!(spec.wait, Duration::from_secs(30));
        assert_eq!(spec.batch_size, 1);
        assert_eq!(spec.stability_timeout, Duration::from_secs(600));
        assert!(!spec.paused && !spec.dry_run && !spec.cancel);
        assert_eq!(spec.protected_tasks, ProtectedTasks::Wait);
        assert_eq!(spec.protection_wait, Duration::from_secs(1800));
        assert_eq!(spec.capacity_timeout, Duration::from_secs(900));
    }

    #[test]
    fn protection_and_capacity_fields_are_checked_with_their_paths() {
        let spec = parse_spec(
            &json!({"cluster": "prod", "service": "web", "protectedTasks": "skip", "capacityTimeout": "20m"}),
            "spec",
        )
        .unwrap();
        assert_eq!(spec.protected_tasks, ProtectedTasks::Skip);
        assert_eq!(spec.capacity_timeout, Duration::from_secs(1200));
        let cases = [
            (
                json!({"protectedTasks": "skpi"}),
                "spec.protectedTasks: \"skpi\" is not allowed (did you mean skip?); use wait",
            ),
            (
                json!({"protectedTasks": "skip", "protectionWait": "10m"}),
                "spec.protectionWait: is only used with protectedTasks: wait",
            ),
            (
                json!({"protectionWait": "0s"}),
                "spec.protectionWait: must be longer than 0s; to leave protected tasks running at once, set protectedTasks: skip",
            ),
            (
                json!({"protectionWait": "49h"}),
                "spec.protectionWait: is longer than ECS protects a task (48h)",
            ),
            (
                json!({"capacityTimeout": "0s"}),
                "spec.capacityTimeout: must be longer than 0s",
            ),
            (
                json!({"capacityTimeout": 5}),
                "spec.capacityTimeout: 5 is not a duration",
            ),
        ];
        for (extra, wanted) in cases {
            let mut v = json!({"cluster": "prod", "service": "web"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let err = parse_spec(&v, "spec").unwrap_err().to_string();
            assert!(err.contains(wanted), "{extra}: {err}");
        }
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
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/recycler"));
        assert!(is_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/recycler"
        ));
        assert!(!is_role_arn("arn:aws:iam::1234:role/recycler"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/bob"));
    }
}
