//! The `RecyclePolicy` spec and its validation: which services (clusters,
//! names, tags), the longest a task may run, an optional window and
//! blackout dates, how many services may be recycled at once, and the
//! RecycleRequest fields each request gets. Every problem is reported with
//! its field path, like the other kinds.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde_json::Value;

use crate::cron::parse_cron;
use crate::duration;
use crate::request::spec::{RecycleSpec, parse_spec};
use crate::validate::{Invalid, Reader, describe};

/// Which services a policy keeps young.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceSelector {
    pub clusters: Vec<String>,
    /// Only these names, when given.
    pub names: Vec<String>,
    /// Only services carrying every one of these tags, when given.
    pub tags: BTreeMap<String, String>,
}

impl ServiceSelector {
    /// Whether a service of one of the clusters is in: by name and by tags
    /// (`tags` is what DescribeServices answered; `None` when not asked for).
    pub(crate) fn matches(&self, name: &str, tags: Option<&BTreeMap<String, String>>) -> bool {
        let named = self.names.is_empty() || self.names.iter().any(|n| n == name);
        let tagged = self.tags.is_empty()
            || tags.is_some_and(|have| self.tags.iter().all(|(k, v)| have.get(k) == Some(v)));
        named && tagged
    }
}

/// When requests may start: from each cron slot, for `duration`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    pub schedule: String,
    pub cron: Cron,
    pub duration: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PolicySpec {
    pub services: ServiceSelector,
    pub max_task_age: Duration,
    pub window: Option<Window>,
    /// The window's time zone; blackout dates are read in it too (UTC
    /// without a window).
    pub time_zone: Tz,
    pub blackout: Vec<NaiveDate>,
    pub max_concurrent_services: u32,
    /// The template, checked as a RecycleRequest spec (with a stand-in
    /// cluster and service).
    pub template: RecycleSpec,
    /// The template as written: each request's spec is this, plus cluster,
    /// service, `selector.olderThan` and, inside a window, `notAfter`.
    pub template_value: Value,
    pub suspend: bool,
}

/// The fields a policy sets on each request itself.
const SET_BY_POLICY: [(&str, &str); 5] = [
    ("cluster", "comes from services.cluster"),
    ("service", "comes from the services the policy matches"),
    ("selector", "is set from maxTaskAge (selector.olderThan)"),
    ("notAfter", "is set from the window's end; use window here"),
    (
        "cancel",
        "cannot be set in a template; use suspend to stop making requests",
    ),
];

/// A stand-in cluster and service, so the template is checked as a whole spec.
const STAND_IN: &str = "policy-template";

impl PolicySpec {
    /// The window that is open at `now`: (its start, its end).
    pub(crate) fn open_window(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let w = self.window.as_ref()?;
        let start = w
            .cron
            .find_previous_occurrence(&now.with_timezone(&self.time_zone), true)
            .ok()?
            .with_timezone(&Utc);
        let end = start + chrono::Duration::from_std(w.duration).ok()?;
        (now < end).then_some((start, end))
    }

    /// The next window's start strictly after `t`.
    pub(crate) fn next_window(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let w = self.window.as_ref()?;
        w.cron
            .find_next_occurrence(&t.with_timezone(&self.time_zone), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    pub(crate) fn is_blackout(&self, t: DateTime<Utc>) -> bool {
        let day = t.with_timezone(&self.time_zone).date_naive();
        self.blackout.contains(&day)
    }

    /// `t` on the policy's wall clock, for messages.
    pub(crate) fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.time_zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

/// Reads a policy's spec from a JSON value, reporting every problem at
/// once; `path` prefixes the field paths (`spec.template.batchSize`).
pub(crate) fn parse_policy_spec(value: &Value, path: &str) -> Result<PolicySpec, Invalid> {
    let mut r = Reader::new(value, path);
    let services = read_services(&mut r);
    let max_task_age = match r.get("maxTaskAge") {
        None if r.object.is_some() => {
            r.problem("maxTaskAge", "is required, like 7d".into());
            None
        }
        None => None,
        Some(_) => r.duration("maxTaskAge"),
    };
    if max_task_age.is_some_and(|a| a < Duration::from_secs(60)) {
        r.problem(
            "maxTaskAge",
            "must be at least 1m: tasks need time to start before they count as old".into(),
        );
    }
    let template = read_template(&mut r);
    let (window, window_zone) = read_window(&mut r, template.as_ref().map(|(t, _)| t));
    let blackout = read_blackout(&mut r);
    let max_concurrent_services = r
        .object("budget")
        .map(|b| {
            let mut br = Reader::new(b, &r.at("budget"));
            let n = br.count("maxConcurrentServices", 1, 100).unwrap_or(1);
            br.finish();
            r.problems.append(&mut br.problems);
            n
        })
        .unwrap_or(1);
    let suspend = r.bool("suspend").unwrap_or(false);
    r.finish();
    match (services, max_task_age, template, window_zone) {
        (Some(services), Some(max_task_age), Some((template, template_value)), Some(time_zone))
            if r.problems.is_empty() =>
        {
            Ok(PolicySpec {
                services,
                max_task_age,
                window,
                time_zone,
                blackout,
                max_concurrent_services,
                template,
                template_value,
                suspend,
            })
        }
        _ => Err(Invalid(r.problems)),
    }
}

fn read_services(r: &mut Reader<'_>) -> Option<ServiceSelector> {
    let Some(value) = r.get("services") else {
        if r.object.is_some() {
            r.problem(
                "services",
                "is required: the cluster (or clusters) and, optionally, names and tags".into(),
            );
        }
        return None;
    };
    let mut sr = Reader::new(value, &r.at("services"));
    let clusters = match sr.get("cluster") {
        None => {
            if sr.object.is_some() {
                sr.problem(
                    "cluster",
                    "is required: a cluster name, or a list of them".into(),
                );
            }
            None
        }
        Some(Value::Array(items)) if items.is_empty() => {
            sr.problem("cluster", "must name at least one cluster".into());
            None
        }
        Some(Value::Array(items)) => names_in(&mut sr, "cluster", items),
        Some(Value::String(name)) => names_in(&mut sr, "cluster", &[Value::String(name.clone())]),
        Some(other) => {
            let reason = format!(
                "must be a cluster name or a list of them, not {}",
                describe(other)
            );
            sr.problem("cluster", reason);
            None
        }
    };
    let names = match sr.get("names") {
        None => Some(Vec::new()),
        Some(Value::Array(items)) if !items.is_empty() => names_in(&mut sr, "names", items),
        Some(other) => {
            let reason = format!(
                "must be a non-empty list of service names, not {}",
                describe(other)
            );
            sr.problem("names", reason);
            None
        }
    };
    let tags = match sr.get("tags") {
        None => Some(BTreeMap::new()),
        Some(Value::Object(map)) if !map.is_empty() => {
            let mut tags = BTreeMap::new();
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        tags.insert(k.clone(), s.clone());
                    }
                    other => {
                        let reason = format!(
                            "must be a string (a tag's value; quote numbers and booleans), not {}",
                            describe(other)
                        );
                        sr.problem(&format!("tags.{k}"), reason);
                    }
                }
            }
            Some(tags)
        }
        Some(other) => {
            let reason = format!(
                "must be a mapping of tag keys to values, not {}",
                describe(other)
            );
            sr.problem("tags", reason);
            None
        }
    };
    sr.finish();
    r.problems.append(&mut sr.problems);
    Some(ServiceSelector {
        clusters: clusters?,
        names: names?,
        tags: tags?,
    })
}

/// ECS names in a list, each checked; `None` if any is not one.
fn names_in(r: &mut Reader<'_>, key: &'static str, items: &[Value]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        // An ARN names the same thing as its last part.
        let name = item.as_str().map(|s| s.rsplit('/').next().unwrap_or(s));
        let at = if items.len() == 1 && key == "cluster" {
            key.to_string()
        } else {
            format!("{key}[{i}]")
        };
        match name.filter(|s| is_ecs_name(s)) {
            Some(name) if !out.iter().any(|n| n == name) => out.push(name.to_string()),
            Some(name) => {
                r.problem(&at, format!("{name:?} is listed twice"));
                ok = false;
            }
            None => {
                r.problem(
                    &at,
                    format!(
                        "{} is not an ECS name (1 to 255 letters, digits, - and _)",
                        describe(item)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn is_ecs_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn read_template(r: &mut Reader<'_>) -> Option<(RecycleSpec, Value)> {
    let path = r.at("template");
    let given = match r.get("template") {
        None => Value::Object(Default::default()),
        Some(t) => t.clone(),
    };
    let Some(fields) = given.as_object() else {
        r.problem(
            "template",
            format!(
                "must be a mapping of RecycleRequest fields, not {}",
                describe(&given)
            ),
        );
        return None;
    };
    let mut set_here = false;
    for (field, reason) in SET_BY_POLICY {
        if fields.contains_key(field) {
            r.problem(&format!("template.{field}"), reason.into());
            set_here = true;
        }
    }
    let mut whole = fields.clone();
    whole.insert("cluster".into(), STAND_IN.into());
    whole.insert("service".into(), STAND_IN.into());
    let parsed = parse_spec(&Value::Object(whole), &path).map_err(|e| r.problems.extend(e.0));
    if set_here {
        return None;
    }
    parsed.ok().map(|spec| (spec, given))
}

/// The window, and the time zone (UTC without a window; `None` if the
/// zone given is not one).
fn read_window(r: &mut Reader<'_>, template: Option<&RecycleSpec>) -> (Option<Window>, Option<Tz>) {
    let Some(value) = r.object("window") else {
        return (None, Some(Tz::UTC));
    };
    let mut wr = Reader::new(value, &r.at("window"));
    let schedule = match wr.get("schedule") {
        None => {
            if wr.object.is_some() {
                wr.problem("schedule", "is required, like \"0 2 * * MON-FRI\"".into());
            }
            None
        }
        Some(Value::String(text)) => match parse_cron(text) {
            Ok(cron) => Some((text.clone(), cron)),
            Err(reason) => {
                wr.problem("schedule", reason);
                None
            }
        },
        Some(other) => {
            let reason = format!(
                "must be a cron expression in a string, not {}",
                describe(other)
            );
            wr.problem("schedule", reason);
            None
        }
    };
    let length = match wr.get("duration") {
        None => {
            if wr.object.is_some() {
                wr.problem("duration", "is required, like 3h".into());
            }
            None
        }
        Some(_) => wr.duration("duration"),
    };
    if let (Some(d), Some(t)) = (length, template) {
        let least = t.stability_timeout + t.wait;
        if d < least {
            wr.problem(
                "duration",
                format!(
                    "{} is shorter than one batch could take: the template's stabilityTimeout ({}) plus its wait ({}) makes {}; make the window at least that",
                    duration::format(d),
                    duration::format(t.stability_timeout),
                    duration::format(t.wait),
                    duration::format(least),
                ),
            );
        }
    }
    let zone = match wr.string("timeZone") {
        None => Some(Tz::UTC),
        Some(name) => Tz::from_str(&name).ok().or_else(|| {
            wr.problem(
                "timeZone",
                format!("{name:?} is not an IANA time zone; use a name like America/New_York, Europe/Berlin or UTC"),
            );
            None
        }),
    };
    wr.finish();
    r.problems.append(&mut wr.problems);
    let window = match (schedule, length) {
        (Some((schedule, cron)), Some(duration)) => Some(Window {
            schedule,
            cron,
            duration,
        }),
        _ => None,
    };
    (window, zone)
}

fn read_blackout(r: &mut Reader<'_>) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    match r.get("blackout") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item
                    .as_str()
                    .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
                {
                    Some(Ok(day)) => out.push(day),
                    _ => r.problem(
                        &format!("blackout[{i}]"),
                        format!("{} is not a date; write it like 2026-12-24", describe(item)),
                    ),
                }
            }
        }
        Some(other) => {
            let reason = format!(
                "must be a list of dates like 2026-12-24, not {}",
                describe(other)
            );
            r.problem("blackout", reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> Value {
        json!({
            "services": {"cluster": "prod", "names": ["web", "api"], "tags": {"team": "payments"}},
            "maxTaskAge": "7d",
            "window": {"schedule": "0 2 * * MON-FRI", "duration": "3h", "timeZone": "Europe/Berlin"},
            "blackout": ["2026-12-24", "2026-12-31"],
            "budget": {"maxConcurrentServices": 2},
            "template": {"batchSize": 1, "wait": "30s", "maintainCapacity": true},
        })
    }

    #[test]
    fn the_documented_example_reads() {
        let spec = parse_policy_spec(&example(), "spec").unwrap();
        assert_eq!(spec.services.clusters, ["prod"]);
        assert_eq!(spec.max_task_age, Duration::from_secs(7 * 86_400));
        assert_eq!(spec.max_concurrent_services, 2);
        assert_eq!(spec.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(spec.blackout.len(), 2);
        assert!(spec.services.matches(
            "web",
            Some(&BTreeMap::from([("team".into(), "payments".into())]))
        ));
        assert!(!spec.services.matches("web", Some(&BTreeMap::new())));
        assert!(!spec.services.matches(
            "db",
            Some(&BTreeMap::from([("team".into(), "payments".into())]))
        ));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = parse_policy_spec(
            &json!({
                "services": {"cluster": [], "names": ["web app"], "tag": {}},
                "maxTaskAge": "30s",
                "window": {"schedule": "0 2 * *", "duration": "1m", "timeZone": "Berlin"},
                "blackout": ["24.12.2026"],
                "budget": {"maxConcurrentServices": 0},
                "template": {"cluster": "prod", "selector": {"olderThan": "1d"}, "batchSize": 0},
            }),
            "spec",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.services.cluster",
                "spec.services.names[0]",
                "spec.services.tag",
                "spec.maxTaskAge",
                "spec.template.cluster",
                "spec.template.selector",
                "spec.template.batchSize",
                "spec.window.schedule",
                "spec.window.timeZone",
                "spec.blackout[0]",
                "spec.budget.maxConcurrentServices",
            ],
            "{err}"
        );
    }

    #[test]
    fn a_window_shorter_than_a_batch_is_refused() {
        let mut v = example();
        v["window"]["duration"] = json!("5m");
        let err = parse_policy_spec(&v, "spec").unwrap_err().to_string();
        assert!(
            err.contains("spec.window.duration: 5m is shorter than one batch"),
            "{err}"
        );
    }

    #[test]
    fn windows_and_blackouts_are_on_the_policy_clock() {
        let spec = parse_policy_spec(&example(), "spec").unwrap();
        // Monday 2026-12-07 02:30 in Berlin is 01:30 UTC: inside.
        let inside: DateTime<Utc> = "2026-12-07T01:30:00Z".parse().unwrap();
        assert_eq!(
            spec.open_window(inside).map(|(s, _)| s),
            Some("2026-12-07T01:00:00Z".parse().unwrap())
        );
        // 04:00 UTC is 05:00 in Berlin: the 3h window closed at 04:00 UTC.
        let after: DateTime<Utc> = "2026-12-07T04:00:00Z".parse().unwrap();
        assert_eq!(spec.open_window(after), None);
        assert_eq!(
            spec.next_window(after),
            Some("2026-12-08T01:00:00Z".parse().unwrap())
        );
        // 23:30 UTC on the 23rd is already the 24th in Berlin.
        let eve: DateTime<Utc> = "2026-12-23T23:30:00Z".parse().unwrap();
        assert!(spec.is_blackout(eve));
        assert!(!spec.is_blackout("2026-12-23T22:30:00Z".parse().unwrap()));
    }
}
