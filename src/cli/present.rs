//! How records look to a person: the `get` table, the `describe` page, a
//! record as the whole document the table holds (`-o json|yaml`), and
//! progress bars (ages are [`crate::duration::age`]). Pure: text in, text
//! out, the time passed in.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::duration::{self, age};
use crate::request::decide::until_words;
use crate::request::spec::{API_VERSION, ProtectedTasks, RecycleSpec, request_spec};
use crate::request::status::{Phase, RecycleStatus, request_status};
use crate::store::StoredRecord;

mod schedules;
pub(crate) use schedules::{describe_schedule, schedule_headers, schedule_next_run, schedule_row};

/// A record as one document: apiVersion, kind, metadata, spec and status,
/// exactly as the table holds them (what `get -o json|yaml` prints, and what
/// `apply` takes back).
pub(crate) fn as_document(record: &StoredRecord) -> Value {
    let mut metadata = json!({
        "name": record.name,
        "version": record.version,
        "active": record.active,
    });
    if let Some(at) = record.created_at {
        metadata["createdAt"] = json!(at);
    }
    if let Some(lease) = &record.lease {
        metadata["lease"] = json!({"holder": lease.holder, "expiresAt": lease.expires_at});
    }
    // Who made a request is in its spec (it travels with it); shown here too.
    if let Some(by) = record.spec.as_ref().ok().and_then(|s| s.get("createdBy")) {
        metadata["createdBy"] = by.clone();
    }
    let mut doc = json!({
        "apiVersion": API_VERSION,
        "kind": record.kind.as_str(),
        "metadata": metadata,
    });
    match &record.spec {
        Ok(spec) => doc["spec"] = spec.clone(),
        Err(reason) => doc["metadata"]["specError"] = json!(reason),
    }
    if let Some(status) = &record.status {
        doc["status"] = status.clone();
    }
    doc
}

/// `[#####-----]`: done out of total in `width` cells.
pub(crate) fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done.min(total) * width).checked_div(total).unwrap_or(0);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// Columns aligned on the widest cell, separated by three spaces, with the
/// last column left ragged (kubectl's layout).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 3));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// One request's row of `get requests`: NAME, SERVICE, PHASE, PROGRESS, AGE,
/// MESSAGE; `wide` adds BATCH, SURGE and the replica holding the lease.
pub(crate) fn request_row(record: &StoredRecord, now: DateTime<Utc>, wide: bool) -> Vec<String> {
    let spec = request_spec(&record.spec);
    let status = request_status(record.status.as_ref());
    let target = match &spec {
        Ok(s) => format!("{}/{}", s.cluster, s.service),
        Err(_) => "?".into(),
    };
    let (phase, progress, message) = match (&status, &spec) {
        (Err(e), _) => ("?".to_string(), String::new(), e.clone()),
        (Ok(s), Err(e)) if !s.phase.is_terminal() => (
            format!("{:?}", s.phase),
            String::new(),
            format!("invalid: {e}"),
        ),
        (Ok(s), _) => {
            let (done, total) = s.progress();
            let progress = if total == 0 {
                "-".to_string()
            } else {
                format!("{done}/{total} {}", bar(done, total, 10))
            };
            (format!("{:?}", s.phase), progress, s.message.clone())
        }
    };
    let age = record.created_at.map_or("?".into(), |at| age(at, now));
    let mut row = vec![record.name.clone(), target, phase, progress, age];
    if wide {
        let (batch, surge) = match &spec {
            Ok(s) if !s.strategy.is_batches() => (
                s.strategy.short().to_string(),
                if s.maintain_capacity { "yes" } else { "no" }.to_string(),
            ),
            Ok(s) => (
                s.batch_size.to_string(),
                if s.maintain_capacity { "yes" } else { "no" }.to_string(),
            ),
            Err(_) => ("?".into(), "?".into()),
        };
        let holder = record
            .lease
            .as_ref()
            .filter(|l| l.expires_at > now)
            .map_or("-".to_string(), |l| l.holder.clone());
        row.extend([batch, surge, holder]);
    }
    row.push(message);
    row
}

pub(crate) fn request_headers(wide: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME", "SERVICE", "PHASE", "PROGRESS", "AGE"];
    if wide {
        h.extend(["BATCH", "SURGE", "REPLICA"]);
    }
    h.push("MESSAGE");
    h
}

/// `describe request NAME`: spec, plan, status and events, oldest first.
pub fn describe_request(record: &StoredRecord, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{:<22}{v}\n", format!("{k}:")));
    field("Name", record.name.clone());
    field("Kind", record.kind.as_str().into());
    if let Some(at) = record.created_at {
        field(
            "Created",
            format!(
                "{} ({} ago)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                age(at, now)
            ),
        );
    }
    field("Version", record.version.to_string());
    field(
        "Lease",
        match &record.lease {
            Some(l) if l.expires_at > now => format!(
                "held by {} until {}",
                l.holder,
                l.expires_at.format("%H:%M:%S")
            ),
            _ => "free".into(),
        },
    );
    match request_spec(&record.spec) {
        Ok(spec) => describe_spec(&mut out, &spec),
        Err(e) => out.push_str(&format!("Spec:                 invalid: {e}\n")),
    }
    match request_status(record.status.as_ref()) {
        Ok(status) => describe_status(&mut out, &status, now),
        Err(e) => out.push_str(&format!("Status:               {e}\n")),
    }
    out
}

fn describe_spec(out: &mut String, spec: &RecycleSpec) {
    out.push_str("Spec:\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("  {:<20}{v}\n", format!("{k}:")));
    line("Service", format!("{}/{}", spec.cluster, spec.service));
    line(
        "Strategy",
        spec.strategy.describe(spec.batch_size, spec.wait),
    );
    let batch = if spec.strategy.is_batches() {
        spec.batch_size.to_string()
    } else {
        "the largest batch".to_string()
    };
    line(
        "Maintain capacity",
        if spec.maintain_capacity {
            format!("yes (desired +{batch} during the run)")
        } else {
            format!("no (up to {batch} below desired)")
        },
    );
    line("Wait", duration::format(spec.wait));
    line(
        "Stability timeout",
        duration::format(spec.stability_timeout),
    );
    line("Capacity timeout", duration::format(spec.capacity_timeout));
    line(
        "Protected tasks",
        match spec.protected_tasks {
            ProtectedTasks::Wait => format!(
                "wait (recycled last, once unprotected; up to {})",
                duration::format(spec.protection_wait)
            ),
            ProtectedTasks::Skip => "skip (left running)".into(),
        },
    );
    if let Some(sel) = &spec.selector {
        let mut parts = Vec::new();
        if let Some(t) = sel.started_before {
            parts.push(format!(
                "started before {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if let Some(d) = sel.older_than {
            parts.push(format!("older than {}", duration::format(d)));
        }
        line("Selector", parts.join(", "));
    }
    if let Some(t) = spec.not_after {
        line(
            "Not after",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    if let Some(arn) = &spec.role_arn {
        line("Role", arn.clone());
    }
    let flags: Vec<&str> = [
        (spec.paused, "paused"),
        (spec.cancel, "cancel"),
        (spec.dry_run, "dry run"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !flags.is_empty() {
        line("Flags", flags.join(", "));
    }
}

fn describe_status(out: &mut String, s: &RecycleStatus, now: DateTime<Utc>) {
    let (done, total) = s.progress();
    out.push_str("Status:\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("  {:<20}{v}\n", format!("{k}:")));
    line("Phase", format!("{:?}", s.phase));
    if total > 0 {
        let unreplaced = if s.unreplaced.is_empty() {
            String::new()
        } else {
            format!(
                " ({} recycled; {} stopped, replacement not serving)",
                s.recycled().count(),
                s.unreplaced.len()
            )
        };
        line(
            "Progress",
            format!("{done}/{total} {}{unreplaced}", bar(done, total, 20)),
        );
    }
    line("Message", s.message.clone());
    if let Some(u) = &s.unseen {
        line(
            "Cannot see",
            format!("since {} ago: {}", age(u.since, now), u.call),
        );
    }
    if let Some(w) = s.capacity_wait.as_ref().filter(|w| w.ended.is_none()) {
        line(
            "Capacity",
            format!(
                "waiting {} for capacity provider {} to launch an instance",
                age(w.since, now),
                w.on
            ),
        );
    }
    if !s.interrupted.is_empty() {
        line(
            "Fargate Spot",
            format!(
                "{} task(s) taken during the run (not its own stops)",
                s.interrupted.len()
            ),
        );
    }
    if let (Some(start), end) = (s.started_at, s.finished_at) {
        let end = end.unwrap_or(now);
        let took = (end - start).to_std().unwrap_or_default();
        let verb = if s.finished_at.is_some() {
            "took"
        } else {
            "running for"
        };
        line(
            "Started",
            format!(
                "{} ({verb} {})",
                start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                duration::format(round_secs(took))
            ),
        );
    }
    if let Some(surge) = s.surge {
        line("Surge", format!("desired {} → {}", surge.from, surge.to));
    }
    if let Some(restore) = s.restore {
        line(
            "Restore",
            format!("desired {} → {}", restore.from, restore.to),
        );
    }
    describe_plan(out, s, now);
    describe_events(out, s, now);
}

/// The plan, a line a task, each with where it is in the run.
fn describe_plan(out: &mut String, s: &RecycleStatus, now: DateTime<Utc>) {
    let Some(plan) = &s.plan else {
        return;
    };
    out.push_str(&format!(
        "Plan:                 original desired {}, {} task(s), made {}\n",
        plan.original_desired,
        plan.tasks.len(),
        plan.planned_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    if let Some(sc) = plan.original_scaling {
        out.push_str(&format!(
            "  Autoscaling:        min {}, max {}, scale-in suspended {}\n",
            sc.min, sc.max, sc.dynamic_scaling_in_suspended
        ));
    }
    for (i, task) in plan.tasks.iter().enumerate() {
        let state = task_state(s, task, now);
        out.push_str(&format!("  {:>3}. {task}  {state}\n", i + 1));
    }
}

/// The run's events, newest last.
fn describe_events(out: &mut String, s: &RecycleStatus, now: DateTime<Utc>) {
    out.push_str("Events:\n");
    if s.events.is_empty() {
        out.push_str("  <none>\n");
        return;
    }
    let rows: Vec<Vec<String>> = s
        .events
        .iter()
        .map(|e| {
            vec![
                format!("{} ago", age(e.at, now)),
                e.reason.to_string(),
                e.message.clone(),
            ]
        })
        .collect();
    for l in table(&["  AGE", "REASON", "MESSAGE"], &indent(rows)).lines() {
        out.push_str(l);
        out.push('\n');
    }
}

/// The first lines of a schedule's or a policy's `describe` page: its
/// name, kind and when it was made.
pub(crate) fn describe_header(record: &StoredRecord, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "Name:               {}\nKind:               {}\n",
        record.name,
        record.kind.as_str()
    );
    if let Some(at) = record.created_at {
        out.push_str(&format!(
            "Created:            {} ({} ago)\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            age(at, now)
        ));
    }
    out
}

/// Where a planned task is in the run, in words.
pub(crate) fn task_state(s: &RecycleStatus, task: &String, now: DateTime<Utc>) -> String {
    let protected = s.protected.iter().find(|p| &p.task == task);
    let until = protected
        .map(|p| until_words(p.until, now))
        .unwrap_or_default();
    if s.batch.contains(task) {
        "stopping, replacement starting".to_string()
    } else if protected.is_some() && s.skipped.contains(task) {
        format!("left running: protected from scale-in{until}")
    } else if s.interrupted.contains(task) && s.skipped.contains(task) {
        "skipped (taken by Fargate Spot)".to_string()
    } else if s.skipped.contains(task) {
        "skipped (already gone)".to_string()
    } else if protected.is_some() && !s.stopped.contains(task) {
        format!("protected from scale-in{until}: goes last")
    } else if s.unreplaced.contains(task) {
        "stopped, replacement not serving".to_string()
    } else if s.stopped.contains(task) {
        "recycled".to_string()
    } else if s.phase == Phase::Pending || !s.phase.is_terminal() {
        "waiting".to_string()
    } else {
        "not recycled".to_string()
    }
}

fn indent(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    for r in &mut rows {
        r[0] = format!("  {}", r[0]);
    }
    rows
}

fn round_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_proportion() {
        assert_eq!(bar(0, 4, 8), "[--------]");
        assert_eq!(bar(2, 4, 8), "[####----]");
        assert_eq!(bar(5, 4, 8), "[########]");
        assert_eq!(bar(0, 0, 4), "[----]");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "PHASE", "MESSAGE"],
            &[vec!["a".into(), "Pending".into(), "waiting".into()]],
        );
        assert_eq!(t, "NAME   PHASE     MESSAGE\na      Pending   waiting\n");
    }
}
