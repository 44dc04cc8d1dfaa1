//! Pure tests of schedules: the spec's validation, and the decision driven
//! by a controllable clock across daylight-saving changes, missed slots,
//! deadlines, windows, concurrency policies and history limits.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde_json::{Value, json};

use super::decide::{Input, RequestView, ScheduleDecision, decide, due_slot};
use super::spec::ConcurrencyPolicy;
use super::*;
use crate::request::status::{Phase, Reason};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn spec(extra: Value) -> ScheduleSpec {
    let mut v = json!({
        "schedule": "30 2 * * *",
        "timeZone": "America/New_York",
        "template": {"cluster": "prod", "service": "web", "wait": "30s", "stabilityTimeout": "5m"},
    });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    parse_schedule_spec(&v, "spec").unwrap_or_else(|e| panic!("{e}"))
}

/// A request in the test's store: phase, when it finished, its spec, cancel asked.
type Stored = (Phase, Option<DateTime<Utc>>, Value, bool);

/// A schedule and the requests it made, advanced by a test clock. Requests
/// finish when the test says so; the store is a map.
struct World {
    spec: ScheduleSpec,
    status: ScheduleStatus,
    created_at: DateTime<Utc>,
    requests: BTreeMap<String, Stored>,
    created: Vec<(String, DateTime<Utc>)>,
}

impl World {
    fn new(spec: ScheduleSpec, created_at: DateTime<Utc>) -> Self {
        Self {
            spec,
            status: ScheduleStatus::default(),
            created_at,
            requests: BTreeMap::new(),
            created: Vec::new(),
        }
    }

    fn views(&self, now: DateTime<Utc>) -> Vec<RequestView> {
        let mut names: Vec<String> = self
            .status
            .requests
            .iter()
            .map(|r| r.name.clone())
            .collect();
        if let Some(due) = due_slot(&self.spec, &self.status, self.created_at, now) {
            names.push(request_name("nightly", due.slot));
        }
        names
            .into_iter()
            .map(|name| {
                let r = self.requests.get(&name);
                RequestView {
                    name,
                    phase: r.map(|r| r.0),
                    finished_at: r.and_then(|r| r.1),
                    notifying: false,
                }
            })
            .collect()
    }

    fn step(&mut self, now: DateTime<Utc>) -> ScheduleDecision {
        let views = self.views(now);
        let d = decide(&Input {
            name: "nightly",
            spec: &self.spec,
            status: &self.status,
            created_at: self.created_at,
            now,
            requests: &views,
        });
        for name in &d.cancel {
            self.requests.get_mut(name).unwrap().3 = true;
        }
        if let Some(new) = &d.create {
            assert!(
                !self.requests.contains_key(&new.name),
                "{} created twice",
                new.name
            );
            self.requests.insert(
                new.name.clone(),
                (Phase::Pending, None, new.spec.clone(), false),
            );
            self.created.push((new.name.clone(), new.slot));
        }
        for name in &d.delete {
            self.requests.remove(name);
        }
        self.status = d.status.clone();
        d
    }

    /// Every request not finished ends, as `phase`, at `now`.
    fn finish_all(&mut self, phase: Phase, now: DateTime<Utc>) {
        for r in self.requests.values_mut() {
            if !r.0.is_terminal() {
                *r = (phase, Some(now), r.2.clone(), r.3);
            }
        }
    }

    /// Ticks every `every` from `from` to `to`; each request finishes at the next tick.
    fn run(&mut self, from: &str, to: &str, every: Duration) {
        let mut now = t(from);
        while now <= t(to) {
            self.finish_all(Phase::Succeeded, now);
            self.step(now);
            now += every;
        }
    }

    fn slots(&self) -> Vec<DateTime<Utc>> {
        self.created.iter().map(|c| c.1).collect()
    }
}

#[test]
fn a_full_spec_and_the_defaults() {
    let s = spec(json!({}));
    assert_eq!(s.time_zone, chrono_tz::America::New_York);
    assert_eq!(s.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!((s.successful_history_limit, s.failed_history_limit), (3, 1));
    assert!(!s.suspend && s.window.is_none() && s.starting_deadline.is_none());
    let s = spec(json!({
        "schedule": "@daily", "window": "2h", "suspend": true, "startingDeadline": "15m",
        "concurrencyPolicy": "Replace", "successfulHistoryLimit": 0, "failedHistoryLimit": 5,
    }));
    assert_eq!(s.window, Some(std::time::Duration::from_secs(7200)));
    assert_eq!(s.concurrency_policy, ConcurrencyPolicy::Replace);
    let utc = parse_schedule_spec(
        &json!({"schedule": "0 3 * * SUN", "template": {"cluster": "c", "service": "s"}}),
        "spec",
    )
    .unwrap();
    assert_eq!(utc.time_zone, chrono_tz::UTC);
}

#[test]
fn bad_input_is_refused_with_the_field_and_the_reason() {
    let err = parse_schedule_spec(
        &json!({
            "schedule": "61 * * * *",
            "timeZone": "America/Gotham",
            "template": {"cluster": "prod", "batchSize": 0, "notAfter": "2030-01-01T00:00:00Z"},
            "window": "5m",
            "concurrencyPolicy": "Sometimes",
            "successfulHistoryLimit": -1,
            "startingDeadline": "1s",
            "suspended": true,
        }),
        "spec",
    )
    .unwrap_err();
    let text = err.to_string();
    for expected in [
        "spec.schedule: \"61 * * * *\" is not a cron expression",
        "spec.timeZone: \"America/Gotham\" is not an IANA time zone",
        "spec.template.service: is required",
        "spec.template.batchSize: 0 is not allowed",
        "spec.template.notAfter: is set on each request from its slot and the window",
        "spec.concurrencyPolicy: \"Sometimes\" is not a policy; use Forbid, Replace or Allow",
        "spec.successfulHistoryLimit: -1 is not allowed",
        "spec.startingDeadline: must be at least 10s",
        "spec.suspended: is not a known field",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let cases = [
        (
            json!({"schedule": "* * * *"}),
            "spec.schedule: \"* * * *\" is not a cron expression",
        ),
        (
            json!({"schedule": "0 0 3 * * *"}),
            "is not a cron expression",
        ),
        (json!({"schedule": "0 0 30 2 *"}), "never matches a date"),
        (
            json!({"schedule": 5}),
            "must be a cron expression in a string",
        ),
        (
            json!({"window": "10m"}),
            "spec.window: 10m is shorter than one batch could take: the template's stabilityTimeout (10m) plus its wait (30s) makes 10m30s",
        ),
        (
            json!({"window": "12m", "template": {"cluster": "c", "service": "s",
                   "strategy": {"canary": {"first": 1, "bake": "5m"}}}}),
            "spec.window: 12m is shorter than one batch could take: the template's stabilityTimeout (10m) plus its strategy's bake (5m) makes 15m",
        ),
        (
            json!({"template": {"cluster": "c", "service": "s", "cancel": true}}),
            "spec.template.cancel: cannot be true",
        ),
        (
            json!({"template": {"cluster": "c", "service": "s", "notify": {"webhook": {"url": "http://example.com/x"}}}}),
            "spec.template.notify.webhook.url: \"example.com\" is not https",
        ),
    ];
    for (extra, expected) in cases {
        let mut v = json!({"schedule": "0 3 * * *", "template": {"cluster": "c", "service": "s"}});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let text = parse_schedule_spec(&v, "spec").unwrap_err().to_string();
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    let text = parse_schedule_spec(&json!({}), "spec")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("spec.schedule: is required") && text.contains("spec.template: is required"),
        "{text}"
    );
}

#[test]
fn spring_forward_runs_a_skipped_time_once_right_after_the_jump() {
    // 2026-03-08 in New York: 02:00 EST becomes 03:00 EDT; 02:30 never happens.
    let mut w = World::new(spec(json!({})), t("2026-03-06T12:00:00Z"));
    w.run(
        "2026-03-06T12:00:00Z",
        "2026-03-09T12:00:00Z",
        Duration::minutes(5),
    );
    assert_eq!(
        w.slots(),
        [
            t("2026-03-07T07:30:00Z"), // 02:30 EST
            t("2026-03-08T07:00:00Z"), // 03:00 EDT, the first instant after the gap
            t("2026-03-09T06:30:00Z"), // 02:30 EDT
        ]
    );
    assert_eq!(w.created[1].0, "nightly-202603080700");
}

#[test]
fn fall_back_runs_a_repeated_time_once_and_an_interval_on_both() {
    // 2026-11-01 in New York: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
    let mut w = World::new(
        spec(json!({"schedule": "30 1 * * *"})),
        t("2026-10-30T12:00:00Z"),
    );
    w.run(
        "2026-10-30T12:00:00Z",
        "2026-11-02T12:00:00Z",
        Duration::minutes(5),
    );
    assert_eq!(
        w.slots(),
        [
            t("2026-10-31T05:30:00Z"), // 01:30 EDT
            t("2026-11-01T05:30:00Z"), // 01:30 EDT, not again at 01:30 EST
            t("2026-11-02T06:30:00Z"), // 01:30 EST
        ]
    );
    let mut w = World::new(
        spec(json!({"schedule": "*/30 1 * * *", "concurrencyPolicy": "Allow"})),
        t("2026-11-01T04:00:00Z"),
    );
    w.run(
        "2026-11-01T04:00:00Z",
        "2026-11-01T08:00:00Z",
        Duration::minutes(5),
    );
    assert_eq!(
        w.slots(),
        [
            t("2026-11-01T05:00:00Z"), // 01:00 EDT
            t("2026-11-01T05:30:00Z"), // 01:30 EDT
            t("2026-11-01T06:00:00Z"), // 01:00 EST
            t("2026-11-01T06:30:00Z"), // 01:30 EST
        ]
    );
    let names: std::collections::HashSet<&String> = w.created.iter().map(|c| &c.0).collect();
    assert_eq!(
        names.len(),
        4,
        "names are made from UTC, so both 01:30s have their own"
    );
}

#[test]
fn the_next_run_is_shown_in_the_status() {
    let mut w = World::new(spec(json!({})), t("2026-03-07T12:00:00Z"));
    w.step(t("2026-03-07T12:00:00Z"));
    assert_eq!(w.status.next_schedule_time, Some(t("2026-03-08T07:00:00Z")));
    assert_eq!(w.status.message, "next run 2026-03-08 03:00 EDT");
    assert_eq!(w.status.phase, SchedulePhase::Active);
    assert!(
        w.created.is_empty(),
        "no slot before the schedule was created is run"
    );
}

#[test]
fn the_next_run_is_known_before_any_operator_has_seen_the_schedule() {
    let s = spec(json!({}));
    let none = ScheduleStatus::default();
    let created = t("2026-03-07T12:00:00Z");
    // 02:30 New York does not exist on 8 March 2026: 03:00 EDT, as the status says.
    assert_eq!(
        next_run("nightly", &s, &none, created, created),
        NextRun::At(t("2026-03-08T07:00:00Z"))
    );
    let mut w = World::new(s.clone(), created);
    w.step(created);
    assert_eq!(
        next_run("nightly", &s, &w.status, created, created),
        NextRun::At(w.status.next_schedule_time.unwrap()),
        "the same as the decision writes"
    );
    // Its slot has come and no operator has looked: due.
    let late = t("2026-03-08T07:05:00Z");
    assert_eq!(
        next_run("nightly", &s, &none, created, late),
        NextRun::Due(t("2026-03-08T07:00:00Z"))
    );
    // Too late to run (the deadline passed): the slot after it.
    let strict = spec(json!({"startingDeadline": "1m"}));
    assert_eq!(
        next_run("nightly", &strict, &none, created, late),
        NextRun::At(t("2026-03-09T06:30:00Z"))
    );
    let suspended = spec(json!({"suspend": true}));
    assert_eq!(
        next_run("nightly", &suspended, &none, created, late),
        NextRun::Suspended
    );
}

#[test]
fn a_missed_slot_runs_late_within_the_deadline_only() {
    let s = spec(json!({"schedule": "0 3 * * *", "timeZone": "UTC", "startingDeadline": "1h"}));
    // No operator ran from before 03:00 until 03:40: within the deadline.
    let mut w = World::new(s.clone(), t("2026-05-01T00:00:00Z"));
    w.step(t("2026-05-01T00:00:00Z"));
    let d = w.step(t("2026-05-01T03:40:00Z"));
    assert_eq!(
        d.create.as_ref().map(|c| c.slot),
        Some(t("2026-05-01T03:00:00Z"))
    );
    assert_eq!(w.status.last_schedule_time, Some(t("2026-05-01T03:00:00Z")));
    assert_eq!(
        w.status.last_request.as_deref(),
        Some("nightly-202605010300")
    );
    // Found at 04:10: past the deadline, skipped, never run later.
    let mut w = World::new(s, t("2026-05-01T00:00:00Z"));
    w.step(t("2026-05-01T00:00:00Z"));
    let d = w.step(t("2026-05-01T04:10:00Z"));
    assert!(d.create.is_none());
    assert_eq!(w.status.evaluated_through, Some(t("2026-05-01T03:00:00Z")));
    let last = w.status.events.last().unwrap();
    assert_eq!(last.reason, Reason::Skipped);
    assert!(
        last.message
            .contains("found 1h10m late, past startingDeadline 1h"),
        "{}",
        last.message
    );
    assert!(w.step(t("2026-05-01T04:11:00Z")).create.is_none());
    assert!(w.status.last_schedule_time.is_none());
}

#[test]
fn several_missed_slots_run_only_the_latest() {
    let s = spec(json!({"schedule": "0 3 * * *", "timeZone": "UTC"}));
    let mut w = World::new(s, t("2026-05-01T00:00:00Z"));
    w.step(t("2026-05-01T00:00:00Z"));
    let d = w.step(t("2026-05-04T05:00:00Z"));
    assert_eq!(d.create.unwrap().slot, t("2026-05-04T03:00:00Z"));
    assert!(
        w.status
            .events
            .iter()
            .any(|e| e.reason == Reason::MissedSlots
                && e.message.starts_with("3 earlier slot(s) passed"))
    );
    // An every-minute schedule missed for a week is not walked minute by minute.
    let s = spec(json!({"schedule": "* * * * *", "timeZone": "UTC"}));
    let mut w = World::new(s, t("2026-05-01T00:00:00Z"));
    let d = w.step(t("2026-05-08T00:00:30Z"));
    assert_eq!(d.create.unwrap().slot, t("2026-05-08T00:00:00Z"));
    assert!(
        w.status
            .events
            .iter()
            .any(|e| e.message.starts_with("1000 or more"))
    );
}

#[test]
fn the_window_becomes_the_requests_not_after_and_a_late_slot_needs_room_for_a_batch() {
    // One batch here may take 5m30s (stabilityTimeout 5m + wait 30s).
    let s = spec(json!({"schedule": "0 3 * * *", "timeZone": "UTC", "window": "1h"}));
    let mut w = World::new(s.clone(), t("2026-05-01T00:00:00Z"));
    let d = w.step(t("2026-05-01T03:00:05Z"));
    let new = d.create.unwrap();
    assert_eq!(new.spec["notAfter"], "2026-05-01T04:00:00Z");
    assert_eq!(new.spec["cluster"], "prod");
    assert!(crate::request::spec::parse_spec(&new.spec, "spec").is_ok());
    let mut w = World::new(s, t("2026-05-01T00:00:00Z"));
    let d = w.step(t("2026-05-01T03:55:00Z"));
    assert!(d.create.is_none());
    assert!(
        w.status
            .events
            .last()
            .unwrap()
            .message
            .contains("too little of its 1h window was left")
    );
}

#[test]
fn forbid_skips_replace_cancels_allow_makes_both() {
    let base = json!({"schedule": "0 * * * *", "timeZone": "UTC"});
    let run = |policy: &str| {
        let mut v = base.clone();
        v["concurrencyPolicy"] = json!(policy);
        let mut w = World::new(spec(v), t("2026-05-01T00:30:00Z"));
        w.step(t("2026-05-01T01:00:00Z"));
        let d = w.step(t("2026-05-01T02:00:00Z"));
        (w, d)
    };
    let (w, d) = run("Forbid");
    assert!(d.create.is_none() && d.cancel.is_empty());
    assert!(w.status.events.last().unwrap().message.contains(
        "skipped: request nightly-202605010100 is still Pending (concurrencyPolicy Forbid)"
    ));
    assert_eq!(w.status.evaluated_through, Some(t("2026-05-01T02:00:00Z")));
    let (w, d) = run("Replace");
    assert_eq!(d.cancel, ["nightly-202605010100"]);
    assert_eq!(d.create.unwrap().name, "nightly-202605010200");
    assert!(
        w.requests["nightly-202605010100"].3,
        "the old one is asked to cancel"
    );
    let (w, d) = run("Allow");
    assert!(d.cancel.is_empty() && d.create.is_some());
    assert_eq!(w.status.active().count(), 2);
}

#[test]
fn history_limits_delete_the_oldest_finished_but_not_while_notifying() {
    let s = spec(json!({"schedule": "0 * * * *", "timeZone": "UTC",
        "successfulHistoryLimit": 2, "failedHistoryLimit": 1}));
    let mut w = World::new(s, t("2026-05-01T00:30:00Z"));
    for h in 1..=6 {
        let now = t("2026-05-01T00:00:00Z") + Duration::hours(h);
        w.step(now);
        let phase = if h % 3 == 0 {
            Phase::Failed
        } else {
            Phase::Succeeded
        };
        w.finish_all(phase, now + Duration::minutes(10));
    }
    w.step(t("2026-05-01T06:20:00Z"));
    let kept: Vec<&str> = w.status.requests.iter().map(|r| r.name.as_str()).collect();
    // Succeeded: 1, 2, 4, 5 → 4 and 5 kept; failed: 3, 6 → 6 kept.
    assert_eq!(
        kept,
        [
            "nightly-202605010400",
            "nightly-202605010500",
            "nightly-202605010600"
        ]
    );
    assert_eq!(w.requests.len(), 3);
    assert_eq!(
        w.status.last_successful_time,
        Some(t("2026-05-01T05:10:00Z"))
    );

    // A finished request whose notices are not out yet is kept until they are.
    let mut s = w.status.clone();
    s.requests[0].notifying = true;
    s.requests.insert(
        0,
        ScheduledRequest {
            name: "nightly-202605010300".into(),
            slot: t("2026-05-01T03:00:00Z"),
            phase: Phase::Succeeded,
            finished_at: Some(t("2026-05-01T03:10:00Z")),
            notifying: true,
        },
    );
    let d = decide(&Input {
        name: "nightly",
        spec: &w.spec,
        status: &s,
        created_at: w.created_at,
        now: t("2026-05-01T06:21:00Z"),
        requests: &[],
    });
    assert!(d.delete.is_empty(), "{:?}", d.delete);
}

#[test]
fn a_slots_request_made_before_a_lost_write_is_adopted_not_made_again() {
    let s = spec(json!({"schedule": "0 3 * * *", "timeZone": "UTC"}));
    let mut w = World::new(s, t("2026-05-01T00:00:00Z"));
    let before = w.status.clone();
    let d = w.step(t("2026-05-01T03:00:10Z"));
    assert!(d.create.is_some());
    // The status write was lost: decide again from the old status.
    w.status = before;
    let d = w.step(t("2026-05-01T03:00:20Z"));
    assert!(d.create.is_none(), "made once");
    assert_eq!(w.status.requests.len(), 1);
    assert_eq!(
        w.status.last_request.as_deref(),
        Some("nightly-202605010300")
    );
    assert!(w.status.events.iter().any(|e| e.reason == Reason::Adopted));
}

#[test]
fn suspended_slots_pass_and_are_not_made_up() {
    let mut w = World::new(
        spec(json!({"schedule": "0 3 * * *", "timeZone": "UTC", "suspend": true})),
        t("2026-05-01T00:00:00Z"),
    );
    w.run(
        "2026-05-01T00:00:00Z",
        "2026-05-03T00:00:00Z",
        Duration::minutes(30),
    );
    assert!(w.created.is_empty());
    assert_eq!(w.status.phase, SchedulePhase::Suspended);
    assert_eq!(w.status.next_schedule_time, None);
    w.spec.suspend = false;
    w.step(t("2026-05-03T00:00:00Z"));
    assert!(
        w.created.is_empty(),
        "the slots missed while suspended are not run"
    );
    assert_eq!(w.status.next_schedule_time, Some(t("2026-05-03T03:00:00Z")));
}

#[test]
fn a_decided_status_is_stable_so_idle_looks_cost_nothing() {
    let mut w = World::new(spec(json!({})), t("2026-03-06T12:00:00Z"));
    w.step(t("2026-03-06T12:00:00Z"));
    let settled = w.status.clone();
    for minute in 1..60 {
        let d = w.step(t("2026-03-06T12:00:00Z") + Duration::minutes(minute));
        assert_eq!(d.status, settled, "nothing changes between slots");
    }
}

#[test]
fn a_request_gone_from_the_store_is_forgotten() {
    let s = spec(json!({"schedule": "0 3 * * *", "timeZone": "UTC"}));
    let mut w = World::new(s, t("2026-05-01T00:00:00Z"));
    w.step(t("2026-05-01T03:00:00Z"));
    w.requests.clear();
    w.step(t("2026-05-01T03:01:00Z"));
    assert!(w.status.requests.is_empty());
    assert!(w.status.events.iter().any(|e| e.reason == Reason::Gone));
}

/// The example manifest, one YAML document (`apply` reads it in
/// tests/cli/manifests.rs).
fn example() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join("schedule-window.yaml");
    let text = std::fs::read_to_string(&path).expect("manifests/schedule-window.yaml");
    serde_saphyr::from_str(&text).expect("one YAML document")
}

#[test]
fn the_example_schedule_is_valid_and_realistic() {
    let doc = example();
    assert_eq!(doc["apiVersion"], "ecs-recycler/v1");
    assert_eq!(doc["kind"], "RecycleSchedule");
    let name = doc["metadata"]["name"].as_str().unwrap();
    assert!(crate::validate::is_record_name(name) && name.len() <= MAX_NAME_LEN);
    let spec = parse_schedule_spec(&doc["spec"], "spec").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.time_zone, chrono_tz::America::New_York);
    assert_eq!(spec.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!(spec.window, Some(std::time::Duration::from_secs(7200)));
    let notify = spec.template.notify.expect("notify");
    assert_eq!(notify.channels().len(), 3);
}

/// What the example's comment promises, from its own cron expression and
/// time zone, whatever today is: the coming Sunday at 02:00 New York time.
#[test]
fn the_example_runs_next_on_the_coming_sunday_night_in_new_york() {
    let doc = example();
    let spec = parse_schedule_spec(&doc["spec"], "spec").unwrap();
    let now = Utc::now();
    let NextRun::At(next) = next_run(
        "web-sunday-night",
        &spec,
        &ScheduleStatus::default(),
        now,
        now,
    ) else {
        panic!("a next run");
    };
    assert!(
        next > now && next - now <= chrono::Duration::days(7),
        "{next}"
    );
    let local = next.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(local.weekday(), chrono::Weekday::Sun, "{local}");
    // 02:00, or 03:00 on the night the clock skips 02:00.
    assert!(
        [2, 3].contains(&local.hour()) && local.minute() == 0,
        "{local}"
    );
}
