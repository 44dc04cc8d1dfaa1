//! How a RecyclePolicy looks to a person: its row in `get policies` and its
//! `describe` page — each matching service with its oldest task's age and
//! what the policy will do next for it. Pure but for [`requests_of`], which
//! reads the policy's active requests for their progress.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::present;
use crate::duration::{self, age};
use crate::policy::decide::next_for;
use crate::policy::spec::PolicySpec;
use crate::policy::{PolicyStatus, format_age, parse_policy_spec, policy_status};
use crate::request::status::request_status;
use crate::store::{Kind, Store, StoredRecord};

pub(crate) fn headers() -> Vec<&'static str> {
    vec![
        "NAME",
        "MAX AGE",
        "MATCHED",
        "OLDEST",
        "ACTIVE",
        "NEXT WINDOW",
        "SUSPEND",
        "AGE",
        "MESSAGE",
    ]
}

pub(crate) fn row(record: &StoredRecord, now: DateTime<Utc>) -> Vec<String> {
    let spec = record
        .spec
        .as_ref()
        .ok()
        .and_then(|v| parse_policy_spec(v, "spec").ok());
    let status = policy_status(record);
    let st = status.as_ref().ok();
    let oldest = st
        .and_then(|s| s.services.first())
        .and_then(|s| s.oldest_started)
        .map_or("-".to_string(), |t| format_age(now - t));
    let active = match (st, &spec) {
        (Some(s), Some(p)) => format!(
            "{}/{}",
            s.active().count() + s.pending.len(),
            p.max_concurrent_services
        ),
        _ => "-".into(),
    };
    let window = spec
        .as_ref()
        .map_or("?".to_string(), |p| window_text(p, now));
    vec![
        record.name.clone(),
        spec.as_ref()
            .map_or("?".into(), |p| duration::format(p.max_task_age)),
        st.map_or("-".into(), |s| s.matched.to_string()),
        oldest,
        active,
        window,
        spec.as_ref().map_or("?".into(), |p| p.suspend.to_string()),
        record.created_at.map_or("?".into(), |at| age(at, now)),
        match (&record.spec, &status, &spec) {
            (Err(e), _, _) => format!("invalid: {e}"),
            (_, Err(e), _) => e.clone(),
            (Ok(_), _, None) => "invalid spec; describe it for the reasons".into(),
            (_, Ok(s), _) => s.message.clone(),
        },
    ]
}

fn window_text(spec: &PolicySpec, now: DateTime<Utc>) -> String {
    if spec.window.is_none() {
        return "always".into();
    }
    match spec.open_window(now) {
        Some((_, end)) => format!("open until {}", spec.local(end)),
        None => spec
            .next_window(now)
            .map_or("never".into(), |t| spec.local(t)),
    }
}

/// Each active request of the policy → "Recycling 3/10", read from the store.
pub(crate) async fn requests_of<S: Store>(
    store: &S,
    record: &StoredRecord,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(status) = policy_status(record) else {
        return out;
    };
    for r in status.active() {
        let text = match store.get(Kind::RecycleRequest, &r.name).await {
            Ok(Some(req)) => match request_status(req.status.as_ref()) {
                Ok(s) => {
                    let (done, total) = s.progress();
                    if total == 0 {
                        format!("{:?}", s.phase)
                    } else {
                        format!("{:?} {done}/{total}", s.phase)
                    }
                }
                Err(e) => e,
            },
            Ok(None) => "deleted".into(),
            Err(e) => format!("could not be read ({e})"),
        };
        out.insert(r.name.clone(), text);
    }
    out
}

/// `describe policy NAME`: what it selects, each service and what comes next for it, the events.
pub(crate) fn describe(
    record: &StoredRecord,
    requests: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> String {
    let mut out = present::describe_header(record, now);
    let spec = match record.spec.as_ref().map(|v| parse_policy_spec(v, "spec")) {
        Ok(Ok(spec)) => spec,
        Ok(Err(e)) => {
            out.push_str(&format!("Spec:               invalid: {e}\n"));
            return out;
        }
        Err(e) => {
            out.push_str(&format!("Spec:               invalid: {e}\n"));
            return out;
        }
    };
    let sel = &spec.services;
    out.push_str(&format!(
        "Clusters:           {}\n",
        sel.clusters.join(", ")
    ));
    if !sel.names.is_empty() {
        out.push_str(&format!("Names:              {}\n", sel.names.join(", ")));
    }
    if !sel.tags.is_empty() {
        let tags: Vec<String> = sel.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("Tags:               {}\n", tags.join(", ")));
    }
    out.push_str(&format!(
        "Max task age:       {}\nAt once:            {} services\n",
        duration::format(spec.max_task_age),
        spec.max_concurrent_services
    ));
    if let Some(w) = &spec.window {
        out.push_str(&format!(
            "Window:             {:?} for {} ({}); {}\n",
            w.schedule,
            duration::format(w.duration),
            spec.time_zone.name(),
            window_text(&spec, now)
        ));
    }
    if !spec.blackout.is_empty() {
        let days: Vec<String> = spec.blackout.iter().map(|d| d.to_string()).collect();
        out.push_str(&format!("Blackout:           {}\n", days.join(", ")));
    }
    if spec.suspend {
        out.push_str("Suspended:          yes (no new requests)\n");
    }
    let status = match policy_status(record) {
        Ok(s) => s,
        Err(e) => {
            out.push_str(&format!("Status:             {e}\n"));
            return out;
        }
    };
    if record.status.is_none() {
        out.push_str("Status:             not yet seen by an operator\n");
        return out;
    }
    out.push_str(&format!(
        "Phase:              {:?}\nMessage:            {}\n",
        status.phase, status.message
    ));
    if let Some(t) = status.last_look {
        out.push_str(&format!("Last look:          {} ago\n", age(t, now)));
    }
    describe_services(&mut out, &spec, &status, requests, now);
    if !status.events.is_empty() {
        out.push_str("Events:\n");
        for e in &status.events {
            out.push_str(&format!(
                "  {}  {:<10} {}\n",
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.reason.to_string(),
                e.message
            ));
        }
    }
    out
}

fn describe_services(
    out: &mut String,
    spec: &PolicySpec,
    status: &PolicyStatus,
    requests: &HashMap<String, String>,
    now: DateTime<Utc>,
) {
    out.push_str(&format!("Services ({} matched):\n", status.matched));
    let multi = spec.services.clusters.len() > 1;
    for s in &status.services {
        let label = if multi {
            format!("{}/{}", s.cluster, s.service)
        } else {
            s.service.clone()
        };
        let oldest = s.oldest_started.map_or("no task running".to_string(), |t| {
            format!("oldest task {}", format_age(now - t))
        });
        let mine = status
            .active()
            .chain(&status.pending)
            .find(|r| r.cluster == s.cluster && r.service == s.service);
        let next = match mine {
            Some(r) => format!(
                "request {} {}",
                r.name,
                requests.get(&r.name).map_or("made", String::as_str)
            ),
            None => next_for(spec, s, None, false, now),
        };
        out.push_str(&format!("  {label}: {oldest}, {next}\n"));
    }
    let listed = status.services.len() as u32;
    if status.matched > listed {
        out.push_str(&format!("  ... and {} more\n", status.matched - listed));
    }
    let finished: Vec<_> = status.requests.iter().filter(|r| r.finished()).collect();
    if !finished.is_empty() {
        out.push_str("Finished requests:\n");
        for r in finished {
            out.push_str(&format!(
                "  {} ({}/{}): {}\n",
                r.name,
                r.cluster,
                r.service,
                r.phase.map_or("?".to_string(), |p| format!("{p:?}"))
            ));
        }
    }
}

/// `apply --dry-run` of a policy: the fleet looked at now (read-only ECS
/// calls), and what the policy would do for each service.
pub(crate) async fn preview<S: Store>(
    store: &S,
    name: &str,
    spec_value: &serde_json::Value,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<String, super::CliError> {
    use super::CliError;
    let spec =
        parse_policy_spec(spec_value, "spec").map_err(|e| CliError::Invalid(e.to_string()))?;
    let Some(sdk) = aws else {
        return Err(CliError::Unreachable("no AWS configuration".into()));
    };
    let pool = crate::aws::ClientPool::new(
        sdk.clone(),
        crate::aws::limit::ApiShare::default(),
        crate::metrics::Metrics::new(),
    );
    let clients = pool
        .for_role(
            spec.template.role_arn.as_deref(),
            spec.template.external_id.as_deref(),
        )
        .await;
    let fleet = crate::policy::fleet::look(&clients, &spec.services)
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot look at the fleet: {e}")))?;
    let busy = crate::policy::runner::busy_services(store).await?;
    let now = Utc::now();
    let d = crate::policy::decide::decide(&crate::policy::decide::Input {
        name,
        spec: &spec,
        spec_seen: "",
        status: &PolicyStatus::default(),
        now,
        fleet: Some(fleet),
        requests: &HashMap::new(),
        busy: &busy,
    });
    let mut out = format!("  Now: {}\n", d.status.message);
    for s in d.status.services.iter().take(PREVIEW_LISTED) {
        let oldest = s.oldest_started.map_or("no task running".to_string(), |t| {
            format!("oldest task {}", format_age(now - t))
        });
        let next = match d
            .create()
            .iter()
            .find(|c| c.cluster == s.cluster && c.service == s.service)
        {
            Some(c) => format!("would be recycled now (request {})", c.name),
            None => next_for(
                &spec,
                s,
                None,
                busy.contains(&(s.cluster.clone(), s.service.clone())),
                now,
            ),
        };
        out.push_str(&format!(
            "  {}/{}: {oldest}, {next}\n",
            s.cluster, s.service
        ));
    }
    if d.status.services.len() > PREVIEW_LISTED {
        out.push_str(&format!(
            "  ... and {} more\n",
            d.status.services.len() - PREVIEW_LISTED
        ));
    }
    Ok(out)
}

/// Services a dry run lists, oldest first.
const PREVIEW_LISTED: usize = 20;
