//! The `RecycleSchedule` spec and its validation: a five-field cron
//! expression (croner), an IANA time zone (chrono-tz), the RecycleRequest
//! template, the window, and CronJob's suspend, startingDeadline,
//! concurrencyPolicy and history limits. Every problem is reported with its
//! field path, like the request's own spec.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde_json::Value;

use crate::cron::parse_cron;
use crate::duration;
use crate::request::spec::{RecycleSpec, parse_spec};
use crate::validate::{Invalid, Problem, Reader, describe};

/// What to do with a slot while the schedule's previous request is still
/// active, as Kubernetes CronJob does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ConcurrencyPolicy {
    /// Skip the slot.
    #[default]
    Forbid,
    /// Cancel the active request (it restores capacity) and make the new one.
    Replace,
    /// Make the new one too; it waits its turn on the service.
    Allow,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScheduleSpec {
    /// The expression as written.
    pub schedule: String,
    pub cron: Cron,
    pub time_zone: Tz,
    /// The template, checked as a RecycleRequest spec.
    pub template: RecycleSpec,
    /// The template as written: each request's spec is this, plus `notAfter`.
    pub template_value: Value,
    /// After `slot + window` no batch starts (the request's `notAfter`).
    pub window: Option<Duration>,
    pub suspend: bool,
    /// A slot found more than this late (no operator ran) is skipped.
    pub starting_deadline: Option<Duration>,
    pub concurrency_policy: ConcurrencyPolicy,
    pub successful_history_limit: u32,
    pub failed_history_limit: u32,
}

impl ScheduleSpec {
    /// The first slot strictly after `t`, in absolute time. Daylight saving
    /// time is croner's (as Vixie cron): a time the clock skips runs at the
    /// first instant after the jump, a time the clock repeats runs once — at
    /// its first occurrence — unless the expression is an interval (a
    /// wildcard or step in minute or hour), which runs on both.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.time_zone), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last slot at or before `t`.
    pub(crate) fn latest_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.time_zone), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// `t` on the schedule's wall clock, for messages.
    pub(crate) fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.time_zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The shortest window allowed: one batch's worst case before the
    /// request gives up on it (the template's stabilityTimeout) plus the
    /// pause after it (wait, or the strategy's bake). A shorter window could close before the first
    /// batch may finish.
    pub(crate) fn min_window(template: &RecycleSpec) -> Duration {
        template.stability_timeout + template.wait.max(template.strategy.longest_pause())
    }
}

/// Reads a schedule's spec from a JSON value, reporting every problem at
/// once; `path` prefixes the field paths (`spec.template.batchSize`).
pub(crate) fn parse_schedule_spec(value: &Value, path: &str) -> Result<ScheduleSpec, Invalid> {
    let mut r = Reader::new(value, path);
    let schedule = read_schedule(&mut r);
    let time_zone = read_time_zone(&mut r);
    let template = read_template(&mut r);
    let window = read_window(&mut r, template.as_ref().map(|(t, _)| t));
    let suspend = r.bool("suspend").unwrap_or(false);
    let starting_deadline = read_starting_deadline(&mut r);
    let concurrency_policy = read_concurrency_policy(&mut r);
    let successful_history_limit = r.count("successfulHistoryLimit", 0, 100).unwrap_or(3);
    let failed_history_limit = r.count("failedHistoryLimit", 0, 100).unwrap_or(1);
    r.finish();
    let problems: Vec<Problem> = r.problems;
    match (schedule, time_zone, template) {
        (Some((schedule, cron)), Some(time_zone), Some((template, template_value)))
            if problems.is_empty() =>
        {
            Ok(ScheduleSpec {
                schedule,
                cron,
                time_zone,
                template,
                template_value,
                window,
                suspend,
                starting_deadline,
                concurrency_policy,
                successful_history_limit,
                failed_history_limit,
            })
        }
        _ => Err(Invalid(problems)),
    }
}

/// `schedule`: the expression as written, and as parsed.
fn read_schedule(r: &mut Reader) -> Option<(String, Cron)> {
    match r.get("schedule") {
        None if r.object.is_some() => {
            r.problem("schedule", "is required, like \"0 3 * * SUN\"".into());
            None
        }
        None => None,
        Some(Value::String(text)) => match parse_cron(text) {
            Ok(cron) => Some((text.clone(), cron)),
            Err(reason) => {
                r.problem("schedule", reason);
                None
            }
        },
        Some(other) => {
            r.problem(
                "schedule",
                format!(
                    "must be a cron expression in a string, not {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

/// `timeZone`, UTC when not given.
fn read_time_zone(r: &mut Reader) -> Option<Tz> {
    match r.string("timeZone") {
        None => Some(Tz::UTC),
        Some(name) => match Tz::from_str(&name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                r.problem(
                    "timeZone",
                    format!("{name:?} is not an IANA time zone; use a name like America/New_York, Europe/Paris or UTC"),
                );
                None
            }
        },
    }
}

/// `template`: a RecycleRequest spec, checked as one, and as written; the
/// fields each request gets from its slot (`notAfter`) or that would make
/// it pointless (`cancel`) are refused.
fn read_template(r: &mut Reader) -> Option<(RecycleSpec, Value)> {
    let template_path = r.at("template");
    match r.get("template") {
        None if r.object.is_some() => {
            r.problem(
                "template",
                "is required: the fields of a RecycleRequest spec (cluster, service, ...)".into(),
            );
            None
        }
        None => None,
        Some(t) => {
            let parsed = parse_spec(t, &template_path).map_err(|e| r.problems.extend(e.0));
            if let Some(o) = t.as_object() {
                if o.get("notAfter").is_some_and(|v| !v.is_null()) {
                    r.problem(
                        "template.notAfter",
                        "is set on each request from its slot and the window; use window here"
                            .into(),
                    );
                }
                if o.get("cancel") == Some(&Value::Bool(true)) {
                    r.problem(
                        "template.cancel",
                        "cannot be true in a template; use suspend to stop making requests".into(),
                    );
                }
            }
            parsed.ok().map(|spec| (spec, t.clone()))
        }
    }
}

/// `window`: longer than one batch of the template could take.
fn read_window(r: &mut Reader, template: Option<&RecycleSpec>) -> Option<Duration> {
    let window = r.duration("window");
    if window.is_some_and(|w| w.is_zero()) {
        r.problem("window", "must be longer than 0s".into());
    } else if let (Some(w), Some(t)) = (window, template)
        && w < ScheduleSpec::min_window(t)
    {
        r.problem(
            "window",
            format!(
                "{} is shorter than one batch could take: the template's stabilityTimeout ({}) plus its {} ({}) makes {}; make the window at least that",
                duration::format(w),
                duration::format(t.stability_timeout),
                if t.strategy.longest_pause() > t.wait { "strategy's bake" } else { "wait" },
                duration::format(t.wait.max(t.strategy.longest_pause())),
                duration::format(ScheduleSpec::min_window(t)),
            ),
        );
    }
    window
}

fn read_starting_deadline(r: &mut Reader) -> Option<Duration> {
    let starting_deadline = r.duration("startingDeadline");
    if starting_deadline.is_some_and(|d| d < Duration::from_secs(10)) {
        r.problem(
            "startingDeadline",
            "must be at least 10s: the operator may look at a schedule only every few seconds"
                .into(),
        );
    }
    starting_deadline
}

fn read_concurrency_policy(r: &mut Reader) -> ConcurrencyPolicy {
    match r.get("concurrencyPolicy") {
        None => ConcurrencyPolicy::Forbid,
        Some(v) if v == "Forbid" => ConcurrencyPolicy::Forbid,
        Some(v) if v == "Replace" => ConcurrencyPolicy::Replace,
        Some(v) if v == "Allow" => ConcurrencyPolicy::Allow,
        Some(other) => {
            r.problem(
                "concurrencyPolicy",
                format!(
                    "{} is not a policy; use Forbid, Replace or Allow",
                    describe(other)
                ),
            );
            ConcurrencyPolicy::Forbid
        }
    }
}
