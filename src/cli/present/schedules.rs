//! How a RecycleSchedule looks to a person: its `get` row, its `describe`
//! page and when it runs next, read from the record's JSON so that a
//! schedule the operator marked invalid still shows what the table holds.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::duration::age;
use crate::schedule::{
    NextRun, ScheduleSpec, ScheduleStatus, next_run, parse_schedule_spec, schedule_status,
};
use crate::store::StoredRecord;

/// When a schedule runs next, with its spec for the time zone; `None` when
/// the spec is invalid (the operator marks it Failed; no run is coming).
fn upcoming(
    name: &str,
    spec: &Value,
    status: Option<&Value>,
    created_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<(ScheduleSpec, NextRun)> {
    let spec = parse_schedule_spec(spec, "spec").ok()?;
    // An unreadable status is the operator's to fail; the spec alone still
    // says when the schedule would run.
    let status: ScheduleStatus = status
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let next = next_run(name, &spec, &status, created_at.unwrap_or(now), now);
    Some((spec, next))
}

/// When a schedule runs next, for `describe` and `apply`: "2026-11-29 02:00
/// EST (in 3d2h)", computed from the cron expression and time zone of `spec`
/// and what `status` records, so it is known before any operator has seen
/// the schedule. `None` when the spec is invalid.
pub(crate) fn schedule_next_run(
    name: &str,
    spec: &Value,
    status: Option<&Value>,
    created_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<String> {
    let (spec, next) = upcoming(name, spec, status, created_at, now)?;
    Some(match next {
        NextRun::At(t) => format!("{} (in {})", spec.local(t), age(now, t)),
        NextRun::Due(t) => format!("{} (due now)", spec.local(t)),
        NextRun::Suspended => "none while suspended".into(),
        NextRun::Never => "none, no slot is left on this schedule".into(),
    })
}

/// `get schedules`: read from the record's JSON, so the table shows what the
/// table holds even for a schedule the operator marked invalid.
pub(crate) fn schedule_headers() -> Vec<&'static str> {
    vec![
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "LAST RUN", "NEXT RUN", "AGE", "MESSAGE",
    ]
}

pub(crate) fn schedule_row(record: &StoredRecord, now: DateTime<Utc>) -> Vec<String> {
    let spec = record.spec.as_ref().ok();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let status = record.status.as_ref();
    let when = |key: &str| -> Option<DateTime<Utc>> {
        status?
            .get(key)?
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
    };
    let last = match (
        when("lastScheduleTime"),
        text(status.and_then(|s| s.get("lastRequest"))),
    ) {
        (Some(t), Some(r)) => format!("{} ago ({r})", age(t, now)),
        (Some(t), None) => format!("{} ago", age(t, now)),
        _ => "-".into(),
    };
    let next = match record
        .spec
        .as_ref()
        .ok()
        .and_then(|s| upcoming(&record.name, s, status, record.created_at, now))
    {
        Some((_, NextRun::At(t))) if t > now => format!("in {}", age(now, t)),
        Some((_, NextRun::At(_) | NextRun::Due(_))) => "due".into(),
        _ => "-".into(),
    };
    vec![
        record.name.clone(),
        text(spec.and_then(|s| s.get("schedule"))).unwrap_or_else(|| "?".into()),
        text(spec.and_then(|s| s.get("timeZone"))).unwrap_or_else(|| "UTC".into()),
        spec.and_then(|s| s.get("suspend"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        last,
        next,
        record.created_at.map_or("?".into(), |at| age(at, now)),
        match (&record.spec, schedule_status(record)) {
            (Err(e), _) => format!("invalid: {e}"),
            (_, Err(e)) => e,
            (_, Ok(s)) => s.message,
        },
    ]
}

/// `describe schedule NAME`: the spec and status as YAML, then the schedule's events.
pub(crate) fn describe_schedule(record: &StoredRecord, now: DateTime<Utc>) -> String {
    let mut out = super::describe_header(record, now);
    if let Some(next) = record.spec.as_ref().ok().and_then(|spec| {
        schedule_next_run(
            &record.name,
            spec,
            record.status.as_ref(),
            record.created_at,
            now,
        )
    }) {
        out.push_str(&format!("Next run:           {next}\n"));
    }
    let yaml = |v: &Value| {
        serde_saphyr::to_string(v)
            .unwrap_or_default()
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    };
    match &record.spec {
        Ok(spec) => out.push_str(&format!("Spec:\n{}", yaml(spec))),
        Err(e) => out.push_str(&format!("Spec:                 invalid: {e}\n")),
    }
    match &record.status {
        Some(status) => out.push_str(&format!("Status:\n{}", yaml(status))),
        None => out.push_str("Status:             not yet seen by an operator\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schedule(spec: Value, status: Option<Value>, created: &str) -> StoredRecord {
        StoredRecord {
            kind: crate::store::Kind::RecycleSchedule,
            name: "nightly".into(),
            spec: Ok(spec),
            status,
            version: 1,
            created_at: Some(created.parse().unwrap()),
            active: true,
            lease: None,
        }
    }

    #[test]
    fn a_schedule_shows_its_next_run_before_any_operator_has_seen_it() {
        let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let spec = json!({"schedule": "0 2 * * SUN", "timeZone": "America/New_York",
                          "template": {"cluster": "prod", "service": "web"}});
        let record = schedule(spec.clone(), None, "2026-11-27T11:00:00Z");
        let row = schedule_row(&record, now);
        assert_eq!(row[5], "in 43h", "Sunday 29 November 02:00 EST: {row:?}");
        let page = describe_schedule(&record, now);
        assert!(
            page.contains("Next run:           2026-11-29 02:00 EST (in 43h)\n"),
            "{page}"
        );
        assert_eq!(
            schedule_next_run("nightly", &spec, None, record.created_at, now).as_deref(),
            Some("2026-11-29 02:00 EST (in 43h)")
        );
        // Its slot came with no operator to see it: due.
        let sunday = "2026-11-29T07:01:00Z".parse().unwrap();
        assert_eq!(schedule_row(&record, sunday)[5], "due");
        assert_eq!(
            schedule_next_run("nightly", &spec, None, record.created_at, sunday).as_deref(),
            Some("2026-11-29 02:00 EST (due now)")
        );
    }

    #[test]
    fn a_suspended_invalid_or_unreadable_schedule_says_so() {
        let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let spec = json!({"schedule": "0 2 * * SUN", "suspend": true,
                          "template": {"cluster": "prod", "service": "web"}});
        let suspended = schedule(spec.clone(), None, "2026-11-27T11:00:00Z");
        assert_eq!(schedule_row(&suspended, now)[5], "-");
        assert_eq!(
            schedule_next_run("nightly", &spec, None, None, now).as_deref(),
            Some("none while suspended")
        );
        let invalid = schedule(
            json!({"schedule": "0 25 * * *"}),
            None,
            "2026-11-27T11:00:00Z",
        );
        assert_eq!(schedule_row(&invalid, now)[5], "-");
        assert!(!describe_schedule(&invalid, now).contains("Next run"));
        let unreadable = schedule(spec, Some(json!("{phase")), "2026-11-27T11:00:00Z");
        let message = &schedule_row(&unreadable, now)[7];
        assert!(message.starts_with("status: cannot be read"), "{message}");
    }
}
