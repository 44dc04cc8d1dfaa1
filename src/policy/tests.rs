//! The policy's decision, table by table: which services get a request,
//! in which order, within the budget, the window and the blackout dates.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::decide::{Input, created, decide, next_for, request_name};
use super::spec::{PolicySpec, parse_policy_spec};
use super::{FleetService, MadeRequest, PolicyPhase, PolicyStatus};
use crate::request::spec::parse_spec;
use crate::request::status::Phase;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn spec(extra: Value) -> PolicySpec {
    let mut v = json!({
        "services": {"cluster": "prod"},
        "maxTaskAge": "7d",
        "budget": {"maxConcurrentServices": 2},
        "template": {"batchSize": 1, "wait": "30s"},
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    parse_policy_spec(&v, "spec").unwrap()
}

fn fleet(ages_in_days: &[(&str, Option<i64>)], now: DateTime<Utc>) -> Vec<FleetService> {
    ages_in_days
        .iter()
        .map(|(name, days)| FleetService {
            cluster: "prod".into(),
            service: name.to_string(),
            oldest_started: days.map(|d| now - chrono::Duration::days(d)),
            recycled_since_look: false,
        })
        .collect()
}

struct Run {
    spec: PolicySpec,
    status: PolicyStatus,
    requests: HashMap<String, Option<Phase>>,
    busy: HashSet<(String, String)>,
}

impl Run {
    fn new(spec: PolicySpec) -> Self {
        Self {
            spec,
            status: PolicyStatus::default(),
            requests: HashMap::new(),
            busy: HashSet::new(),
        }
    }

    fn decide(
        &self,
        now: DateTime<Utc>,
        look: Option<Vec<FleetService>>,
    ) -> super::decide::Decision {
        decide(&Input {
            name: "prod-max-age",
            spec: &self.spec,
            spec_seen: "v1",
            status: &self.status,
            now,
            fleet: look,
            requests: &self.requests,
            busy: &self.busy,
        })
    }
}

fn names(d: &super::decide::Decision) -> Vec<String> {
    d.create().iter().map(|c| c.service.clone()).collect()
}

#[test]
fn the_oldest_services_go_first_within_the_budget() {
    let now = t("2026-12-03T10:00:00Z");
    let run = Run::new(spec(json!({})));
    let look = fleet(
        &[
            ("web", Some(8)),
            ("api", Some(10)),
            ("db", Some(2)),
            ("cache", Some(9)),
            ("idle", None),
        ],
        now,
    );
    let d = run.decide(now, Some(look));
    assert_eq!(names(&d), ["api", "cache"], "oldest first, two at most");
    assert_eq!(d.status.matched, 5);
    assert_eq!(d.status.pending.len(), 2, "written before they are created");
    assert_eq!(d.status.services[0].service, "api");
    assert!(
        d.status.message.contains("3 with tasks older than 7days"),
        "{}",
        d.status.message
    );
    // Each request's spec is a valid RecycleRequest that only takes old tasks.
    let req = d.create()[0].spec.as_ref().unwrap();
    let parsed = parse_spec(req, "spec").unwrap();
    assert_eq!(
        (parsed.cluster.as_str(), parsed.service.as_str()),
        ("prod", "api")
    );
    assert_eq!(
        parsed.selector.unwrap().older_than,
        Some(std::time::Duration::from_secs(7 * 86_400))
    );
    assert_eq!(
        parsed.created_by.as_deref(),
        Some("RecyclePolicy/prod-max-age")
    );
    assert_eq!(d.create()[0].name, "prod-max-age-api-202612031000");
}

#[test]
fn a_service_with_any_active_request_is_left_alone_and_the_budget_counts_the_policys_own() {
    let now = t("2026-12-03T10:00:00Z");
    let mut run = Run::new(spec(json!({})));
    run.busy.insert(("prod".into(), "api".into()));
    run.status.requests.push(MadeRequest {
        name: "prod-max-age-cache-202612020900".into(),
        cluster: "prod".into(),
        service: "cache".into(),
        made_at: t("2026-12-02T09:00:00Z"),
        phase: None,
        spec: None,
    });
    run.requests.insert(
        "prod-max-age-cache-202612020900".into(),
        Some(Phase::Recycling),
    );
    let look = fleet(
        &[
            ("web", Some(9)),
            ("api", Some(10)),
            ("cache", Some(9)),
            ("db", Some(8)),
        ],
        now,
    );
    let d = run.decide(now, Some(look.clone()));
    assert_eq!(
        names(&d),
        ["web"],
        "api is busy, cache is ours and counts, one slot left"
    );
    // Once cache's request finishes its slot frees, and cache itself is due again only if still old.
    run.requests.insert(
        "prod-max-age-cache-202612020900".into(),
        Some(Phase::Succeeded),
    );
    let d = run.decide(
        now,
        Some(fleet(
            &[("web", Some(9)), ("cache", Some(0)), ("db", Some(8))],
            now,
        )),
    );
    assert_eq!(names(&d), ["web", "db"]);
    assert_eq!(d.status.requests[0].phase, Some(Phase::Succeeded));
}

#[test]
fn a_service_whose_request_ended_since_the_look_is_not_due_again_until_the_next_look() {
    // The look was taken while the request ran, so it still shows the old
    // tasks; without a fresh look the freed slot must not recycle it again.
    let now = t("2026-12-03T10:00:00Z");
    let mut run = Run::new(spec(json!({"budget": {"maxConcurrentServices": 1}})));
    let d = run.decide(now, Some(fleet(&[("api", Some(9)), ("web", Some(8))], now)));
    assert_eq!(names(&d), ["api"]);
    run.status = created(d.status, now);
    let made = run.status.requests[0].name.clone();
    run.requests.insert(made.clone(), Some(Phase::Recycling));
    let later = now + chrono::Duration::minutes(1);
    let d = run.decide(later, None);
    assert!(names(&d).is_empty(), "the one slot is taken");
    run.status = d.status;
    run.requests.insert(made, Some(Phase::Succeeded));
    let d = run.decide(later + chrono::Duration::minutes(1), None);
    assert_eq!(names(&d), ["web"], "api's look is stale; web is next");
    let api = d
        .status
        .services
        .iter()
        .find(|s| s.service == "api")
        .unwrap();
    assert!(api.recycled_since_look);
    assert!(
        next_for(&run.spec, api, None, false, later).contains("recycled since the last look"),
        "{}",
        next_for(&run.spec, api, None, false, later)
    );
    // A look taken in the same pass as the end is marked too.
    run.status = created(d.status, later);
    let web = run.status.requests.last().unwrap().name.clone();
    run.requests.insert(web, Some(Phase::Succeeded));
    let fresh = fleet(&[("api", Some(0)), ("web", Some(8))], later);
    let d = run.decide(later + chrono::Duration::minutes(2), Some(fresh));
    assert!(names(&d).is_empty(), "{:?}", d.status.services);
    // The next look sees the ages as they are again.
    run.status = d.status;
    let fresh = fleet(&[("api", Some(0)), ("web", Some(8))], later);
    let d = run.decide(later + chrono::Duration::minutes(3), Some(fresh));
    assert_eq!(names(&d), ["web"], "still old at a look after its end");
}

#[test]
fn a_request_deleted_by_a_person_is_dropped_with_an_event() {
    let now = t("2026-12-03T10:00:00Z");
    let mut run = Run::new(spec(json!({})));
    run.status.requests.push(MadeRequest {
        name: "gone".into(),
        cluster: "prod".into(),
        service: "web".into(),
        made_at: now,
        phase: Some(Phase::Recycling),
        spec: None,
    });
    run.requests.insert("gone".into(), None);
    let d = run.decide(now, None);
    assert!(d.status.requests.is_empty());
    assert_eq!(
        d.status.events.last().unwrap().message,
        "request gone was deleted"
    );
}

#[test]
fn pending_requests_become_made_once_created() {
    let now = t("2026-12-03T10:00:00Z");
    let run = Run::new(spec(json!({})));
    let d = run.decide(now, Some(fleet(&[("web", Some(8))], now)));
    let status = created(d.status, now);
    assert!(status.pending.is_empty());
    assert_eq!(status.requests.len(), 1);
    assert_eq!(
        status.requests[0].spec, None,
        "the spec is kept only while pending"
    );
    // The next decision sees it as active: nothing more for web.
    let mut again = Run::new(spec(json!({})));
    again.status = status;
    again
        .requests
        .insert("prod-max-age-web-202612031000".into(), Some(Phase::Pending));
    let d = again.decide(now, Some(fleet(&[("web", Some(8))], now)));
    assert!(d.create().is_empty());
}

#[test]
fn nothing_starts_outside_the_window_or_on_a_blackout_date_on_the_policys_clock() {
    let policy = spec(json!({
        "window": {"schedule": "0 2 * * *", "duration": "3h", "timeZone": "Europe/Berlin"},
        "blackout": ["2026-12-24"],
    }));
    let run = Run::new(policy.clone());
    let old = |now| fleet(&[("web", Some(8))], now);
    // 00:59 UTC is 01:59 in Berlin: one minute before the window.
    let before = t("2026-12-03T00:59:00Z");
    let d = run.decide(before, Some(old(before)));
    assert!(d.create().is_empty());
    assert!(
        d.status
            .message
            .contains("outside the window (next opens 2026-12-03 02:00 CET)"),
        "{}",
        d.status.message
    );
    assert_eq!(d.status.next_window, Some(t("2026-12-03T01:00:00Z")));
    // 01:00 UTC: the window opens; the request may not start a batch after 04:00 UTC.
    let open = t("2026-12-03T01:00:00Z");
    let d = run.decide(open, Some(old(open)));
    assert_eq!(names(&d), ["web"]);
    assert_eq!(
        d.create()[0].spec.as_ref().unwrap()["notAfter"],
        "2026-12-03T04:00:00+00:00"
    );
    // 03:49:30 UTC: one batch (stabilityTimeout 10m + wait 30s) still fits
    // before 04:00; a second later it does not, and at 04:00 it is closed.
    assert_eq!(
        names(&run.decide(t("2026-12-03T03:49:30Z"), Some(old(open)))),
        ["web"]
    );
    let late = run.decide(t("2026-12-03T03:49:31Z"), Some(old(open)));
    assert!(late.create().is_empty());
    assert!(
        late.status
            .message
            .contains("less of the window is left than one batch may take (10m30s"),
        "{}",
        late.status.message
    );
    assert!(
        run.decide(t("2026-12-03T04:00:00Z"), Some(old(open)))
            .create()
            .is_empty()
    );
    // The 24th in Berlin: the window opens at 02:00 local but it is a blackout date.
    let xmas = t("2026-12-24T01:30:00Z");
    let d = run.decide(xmas, Some(old(xmas)));
    assert!(d.create().is_empty());
    assert!(
        d.status.message.contains("2026-12-24 is a blackout date"),
        "{}",
        d.status.message
    );
    // 23:30 UTC on the 24th is 00:30 on the 25th in Berlin: no longer a
    // blackout, but outside the window until 02:00 local.
    assert!(!policy.is_blackout(t("2026-12-24T23:30:00Z")));
    let d = run.decide(t("2026-12-25T01:00:00Z"), Some(old(xmas)));
    assert_eq!(names(&d), ["web"]);
}

#[test]
fn what_comes_next_for_a_young_service_skips_blackouts_and_waits_for_the_window() {
    let policy = spec(json!({
        "window": {"schedule": "0 2 * * MON-FRI", "duration": "3h", "timeZone": "Europe/Berlin"},
        "blackout": ["2026-12-07"],
    }));
    let now = t("2026-12-01T10:00:00Z");
    let young = FleetService {
        cluster: "prod".into(),
        service: "api".into(),
        // Turns 7 days old on Saturday the 5th at 10:00 UTC: the next
        // weekday window is Monday the 7th, a blackout; so Tuesday the 8th.
        oldest_started: Some(t("2026-11-28T10:00:00Z")),
        recycled_since_look: false,
    };
    assert_eq!(
        next_for(&policy, &young, None, false, now),
        "nothing to do until 2026-12-08 02:00 CET"
    );
    assert_eq!(
        next_for(&policy, &young, None, true, now),
        "another request is active on it; left alone until it ends"
    );
}

#[test]
fn a_suspended_policy_makes_nothing() {
    let now = t("2026-12-03T10:00:00Z");
    let run = Run::new(spec(json!({"suspend": true})));
    let d = run.decide(now, Some(fleet(&[("web", Some(8))], now)));
    assert!(d.create().is_empty());
    assert_eq!(d.status.phase, PolicyPhase::Suspended);
}

#[test]
fn request_names_fit_and_never_collide() {
    let at = t("2026-12-03T10:00:00Z");
    assert_eq!(
        request_name("p", "prod", "web", at, false),
        "p-web-202612031000"
    );
    assert_eq!(
        request_name("p", "prod", "web", at, true),
        "p-prod-web-202612031000"
    );
    let upper = request_name("p", "prod", "Web_API", at, false);
    let lower = request_name("p", "prod", "web-api", at, false);
    assert_ne!(upper, lower, "a changed name gets a hash of the real one");
    assert!(
        upper.starts_with("p-web-api-") && upper.ends_with("-202612031000"),
        "{upper}"
    );
    let long = request_name(&"p".repeat(64), "prod", &"s".repeat(255), at, false);
    assert!(long.len() <= 128, "{}", long.len());
    assert!(crate::validate::is_record_name(&long), "{long}");
    assert!(crate::validate::is_record_name(&upper), "{upper}");
}
