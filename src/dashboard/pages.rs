//! The dashboard's pages as HTML, from records as the store holds them:
//! the overview (requests, schedules and policies, in the columns `get`
//! prints), a request's page (its chart, events, plan, gates and hooks),
//! and a schedule's or a policy's page (what `describe` prints). Pure:
//! records and the time in, markup out; escaped by construction (maud),
//! since messages carry ECS's and hooks' words.

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::cli::apply::resource;
use crate::cli::policies;
use crate::cli::present::{self, bar};
use crate::duration::{self, age};
use crate::request::spec::{RecycleSpec, request_spec};
use crate::request::status::{RecycleStatus, request_status};
use crate::store::{Kind, StoredRecord};

/// Seconds between reloads of a page whose run is under way.
pub(super) const REFRESH_SECONDS: u32 = 2;

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 24px; display: flex; gap: 16px; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .note { color: #aab; font-size: 12px; }
main { padding: 16px 24px; max-width: 1200px; }
h1 { font-size: 20px; margin: 8px 0; } h2 { font-size: 16px; margin: 22px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e5ea; vertical-align: top; }
th { font-size: 12px; color: #5b6270; font-weight: 600; }
td.message { color: #3b4250; max-width: 520px; }
.phase { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #e3e5ea; }
.phase.Succeeded { background: #d6f1de; color: #1d6b35; } .phase.Failed { background: #f8d9d9; color: #8b1d1d; }
.phase.Recycling, .phase.Surging, .phase.Restoring { background: #dbe7fb; color: #1f4ea3; }
.phase.Cancelled, .phase.WindowClosed { background: #f3ead2; color: #7a5a12; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; background: #fff; padding: 10px 12px; margin: 0; }
dt { color: #5b6270; } dd { margin: 0; }
pre { background: #fff; padding: 10px 12px; overflow-x: auto; }
.empty { color: #5b6270; font-style: italic; }
svg#timeline { width: 100%; height: auto; background: #fff; }
svg .grid { stroke: #eceef2; } svg .axis { stroke: #9aa0ab; }
svg text { font-size: 11px; fill: #5b6270; } svg .legend text { font-size: 12px; fill: #1d2330; }
svg .mark line { stroke: #c2c6cf; stroke-dasharray: 3 3; } svg .mark text { font-size: 12px; fill: #1d2330; }
svg .mark[data-kind="stopped"] line { stroke: #d9822b; } svg .mark[data-kind="gateHeld"] line { stroke: #c23030; }
"#;

/// Shows each `<time>` in the reader's own zone too; marks the page as rendered.
const SCRIPT: &str = r#"
for (const t of document.querySelectorAll("time[datetime]")) {
  const d = new Date(t.getAttribute("datetime"));
  if (!isNaN(d)) { t.title = d.toLocaleString(); }
}
document.body.dataset.rendered = "yes";
"#;

/// The frame of every page: no resource from anywhere else, so it works offline.
pub(super) fn layout(title: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh {
                    meta http-equiv="refresh" content=(REFRESH_SECONDS);
                }
                title { (title) " · ecs-recycler" }
                style { (PreEscaped(STYLE)) }
            }
            body data-refresh=(if refresh { "on" } else { "off" }) {
                header {
                    a href="/" { "ecs-recycler" }
                    span.note { "read-only: this page changes nothing" }
                    @if refresh { span.note { "refreshing every " (REFRESH_SECONDS) "s while a run is under way" } }
                }
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

fn time(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(SecondsFormat::Secs, true)) {
            (t.format("%Y-%m-%d %H:%M:%S UTC")) " (" (age(t, now)) " ago)"
        }
    }
}

fn phase_badge(phase: &str) -> Markup {
    html! { span class=(format!("phase {phase}")) { (phase) } }
}

/// A table of `get`'s columns, the first linking to the record's page and
/// the phase (when there is one) as a badge.
fn table(kind: Kind, headers: &[&str], rows: &[Vec<String>]) -> Markup {
    let link = |name: &str| format!("/{}/{name}", path_of(kind));
    html! {
        table data-kind=(kind.as_str()) {
            thead { tr { @for h in headers { th { (h) } } } }
            tbody {
                @for row in rows {
                    tr data-name=(row[0]) {
                        @for (i, cell) in row.iter().enumerate() {
                            @if i == 0 {
                                td { a href=(link(cell)) { (cell) } }
                            } @else if headers[i] == "PHASE" {
                                td.phase-cell { (phase_badge(cell)) }
                            } @else if headers[i] == "MESSAGE" {
                                td.message { (cell) }
                            } @else {
                                td { (cell) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `requests`, `schedules`, `policies`: the path a kind's pages live under.
pub(super) fn path_of(kind: Kind) -> &'static str {
    match kind {
        Kind::RecycleRequest => "requests",
        Kind::RecycleSchedule => "schedules",
        Kind::RecyclePolicy => "policies",
    }
}

/// Whether any request in the list is still under way (the page refreshes).
pub(super) fn any_active(requests: &[StoredRecord]) -> bool {
    requests
        .iter()
        .any(|r| request_status(r.status.as_ref()).is_ok_and(|s| !s.phase.is_terminal()))
}

/// The overview: every request, schedule and policy, as `get` lists them.
pub(super) fn overview(
    requests: &[StoredRecord],
    schedules: &[StoredRecord],
    policies_: &[StoredRecord],
    now: DateTime<Utc>,
) -> Markup {
    let requests_rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| present::request_row(r, now, true))
        .collect();
    let schedule_rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|r| present::schedule_row(r, now))
        .collect();
    let policy_rows: Vec<Vec<String>> = policies_.iter().map(|r| policies::row(r, now)).collect();
    let section = |title: &str, kind: Kind, headers: Vec<&str>, rows: &[Vec<String>]| {
        html! {
            h2 { (title) " (" (rows.len()) ")" }
            @if rows.is_empty() {
                p.empty { "None." }
            } @else {
                (table(kind, &headers, rows))
            }
        }
    };
    let body = html! {
        h1 { "Recycles" }
        (section("Requests", Kind::RecycleRequest, present::request_headers(true), &requests_rows))
        (section("Schedules", Kind::RecycleSchedule, present::schedule_headers(), &schedule_rows))
        (section("Policies", Kind::RecyclePolicy, policies::headers(), &policy_rows))
    };
    layout("Recycles", any_active(requests), body)
}

/// A request's page: what it is, where it is, its run drawn, its events,
/// its plan, its gates and its hooks.
pub(super) fn request(record: &StoredRecord, now: DateTime<Utc>) -> Markup {
    let spec = request_spec(&record.spec);
    let status = request_status(record.status.as_ref());
    let active = status.as_ref().is_ok_and(|s| !s.phase.is_terminal());
    let title = resource(Kind::RecycleRequest, &record.name);
    let body = html! {
        h1 { (title) " " @if let Ok(s) = &status { (phase_badge(s.phase.as_str())) } }
        @match &spec {
            Ok(spec) => (spec_summary(spec)),
            Err(e) => p.message { "The spec cannot be read: " (e) },
        }
        @match &status {
            Ok(s) => (status_sections(spec.as_ref().ok(), s, now)),
            Err(e) => p.message { (e) },
        }
    };
    layout(&title, active, body)
}

fn spec_summary(spec: &RecycleSpec) -> Markup {
    let surge = if spec.strategy.is_batches() {
        spec.batch_size.to_string()
    } else {
        "the largest batch".to_string()
    };
    html! {
        dl #spec {
            dt { "Service" } dd { (spec.cluster) "/" (spec.service) }
            dt { "Strategy" } dd { (spec.strategy.describe(spec.batch_size, spec.wait)) }
            dt { "Maintain capacity" } dd { @if spec.maintain_capacity { "yes (desired + " (surge) " during the run)" } @else { "no (up to " (surge) " below desired)" } }
            dt { "Wait" } dd { (duration::format(spec.wait)) }
            dt { "Stability timeout" } dd { (duration::format(spec.stability_timeout)) }
        }
    }
}

fn status_sections(spec: Option<&RecycleSpec>, s: &RecycleStatus, now: DateTime<Utc>) -> Markup {
    let (done, total) = s.progress();
    html! {
        h2 { "Status" }
        dl #status data-phase=(s.phase.as_str()) data-done=(done) data-total=(total) {
            dt { "Phase" } dd { (s.phase.as_str()) }
            @if total > 0 { dt { "Progress" } dd.progress { (done) "/" (total) " " (bar(done, total, 20)) } }
            dt { "Message" } dd.message { (s.message) }
            @if let Some(t) = s.started_at { dt { "Started" } dd { (time(t, now)) } }
            @if let Some(t) = s.finished_at { dt { "Finished" } dd { (time(t, now)) } }
            @if let Some(c) = s.surge { dt { "Surge" } dd { "desired " (c.from) " → " (c.to) } }
            @if let Some(c) = s.restore { dt { "Restore" } dd { "desired " (c.from) " → " (c.to) } }
        }
        h2 { "Timeline" }
        (super::svg::timeline(s, now))
        h2 { "Events" }
        @if s.events.is_empty() { p.empty { "None yet." } } @else {
            table #events {
                thead { tr { th { "AGE" } th { "REASON" } th { "MESSAGE" } } }
                tbody { @for e in &s.events {
                    tr { td { (age(e.at, now)) } td { (e.reason) } td.message { (e.message) } }
                } }
            }
        }
        h2 { "Plan" }
        @match &s.plan {
            None => p.empty { "Not made yet." },
            Some(plan) => {
                p { "Original desired " (plan.original_desired) ", " (plan.tasks.len()) " task(s), made " (time(plan.planned_at, now)) }
                table #plan {
                    thead { tr { th { "#" } th { "TASK" } th { "STATE" } } }
                    tbody { @for (i, task) in plan.tasks.iter().enumerate() {
                        tr { td { (i + 1) } td { code { (task) } } td { (present::task_state(s, task, now)) } }
                    } }
                }
            }
        }
        (gates(spec, s, now))
        (hooks(spec, s))
    }
}

fn gates(spec: Option<&RecycleSpec>, s: &RecycleStatus, now: DateTime<Utc>) -> Markup {
    let gate = spec.and_then(RecycleSpec::alarm_gate);
    html! {
        h2 { "Gates" }
        @match gate {
            None => p.empty { "No gate alarms." },
            Some(g) => dl #gates {
                @if !g.names.is_empty() { dt { "Alarms" } dd { (g.names.join(", ")) } }
                @if let Some(p) = &g.prefix { dt { "Prefix" } dd { (p) } }
                dt { "On alarm" } dd { (format!("{:?}", g.on_alarm).to_lowercase()) }
                dt { "Now" } dd {
                    @match &s.alarm_hold {
                        Some(h) => { "holding since " (time(h.since, now)) ": " (h.message) },
                        None => "not holding",
                    }
                }
            },
        }
    }
}

fn hooks(spec: Option<&RecycleSpec>, s: &RecycleStatus) -> Markup {
    let hooks = spec.map(|s| s.hooks.as_slice()).unwrap_or_default();
    html! {
        h2 { "Hooks" }
        @if hooks.is_empty() { p.empty { "No hooks." } } @else {
            table #hooks {
                thead { tr { th { "HOOK" } th { "AT" } th { "CALL UNDER WAY" } } }
                tbody { @for (i, h) in hooks.iter().enumerate() {
                    tr {
                        td { code { (h.url) } }
                        td { (h.at.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { @match s.hook.as_ref().filter(|c| c.hook == i) {
                            Some(c) => { (c.point.as_str()) @if c.batch > 0 { " of batch " (c.batch) } ", "
                                (c.attempts) " call(s)" @if let Some(a) = &c.answer { "; last: " (a.describe()) } },
                            None => "-",
                        } }
                    }
                } }
            }
            @if !s.hooks_passed.is_empty() {
                p { "Passed: " (s.hooks_passed.join(", ")) }
            }
        }
    }
}

/// A schedule's or a policy's page: what `describe` prints.
pub(super) fn described(kind: Kind, record: &StoredRecord, text: &str) -> Markup {
    let title = resource(kind, &record.name);
    layout(&title, false, html! { h1 { (title) } pre { (text) } })
}

/// A page that says why there is nothing to show.
pub(super) fn problem(title: &str, why: &str) -> Markup {
    layout(title, false, html! { h1 { (title) } p.message { (why) } })
}
