//! The policy's decision, without I/O: from the spec, the status, the
//! fleet as looked at and the requests as read, which requests to make and
//! the status to write. Oldest first, never more than the budget at once,
//! only when a window is open and the day is not a blackout date, never for
//! a service that has an active request (anyone's).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::spec::PolicySpec;
use super::{
    FINISHED_KEPT, FleetService, MAX_LISTED, MadeRequest, PolicyPhase, PolicyStatus, format_age,
};
use crate::duration;
use crate::request::status::{Phase, Reason};

pub(crate) struct Input<'a> {
    pub name: &'a str,
    pub spec: &'a PolicySpec,
    /// What identifies the spec as written: a new one is looked at at once.
    pub spec_seen: &'a str,
    pub status: &'a PolicyStatus,
    pub now: DateTime<Utc>,
    /// Every matching service as just looked at; `None`: the last look
    /// (in the status) stands.
    pub fleet: Option<Vec<FleetService>>,
    /// Each of the status's unfinished requests: its phase, or `None`
    /// when it no longer exists.
    pub requests: &'a HashMap<String, Option<Phase>>,
    /// (cluster, service) of every active request, anyone's.
    pub busy: &'a HashSet<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    /// The status to write; its `pending` holds the requests to create.
    pub status: PolicyStatus,
}

impl Decision {
    /// The requests to create, each with its spec: the status's `pending`.
    pub(crate) fn create(&self) -> &[MadeRequest] {
        &self.status.pending
    }
}

pub(crate) fn decide(input: &Input<'_>) -> Decision {
    let spec = input.spec;
    let now = input.now;
    let mut status = input.status.clone();
    let ended = follow_requests(&mut status, input.requests, now);
    if let Some(fleet) = &input.fleet {
        let mut services = fleet.clone();
        services.sort_by(|a, b| {
            (
                a.oldest_started.is_none(),
                a.oldest_started,
                &a.cluster,
                &a.service,
            )
                .cmp(&(
                    b.oldest_started.is_none(),
                    b.oldest_started,
                    &b.cluster,
                    &b.service,
                ))
        });
        status.matched = services.len() as u32;
        services.truncate(MAX_LISTED);
        status.services = services;
        status.last_look = Some(now);
        status.spec_seen = input.spec_seen.to_string();
    }
    // Marked after a fresh look too: it may have been taken while the
    // request still ran.
    for s in status.services.iter_mut() {
        if ended.contains(&(s.cluster.clone(), s.service.clone())) {
            s.recycled_since_look = true;
        }
    }
    status.next_window = spec.window.as_ref().and_then(|_| spec.next_window(now));
    let old: Vec<&FleetService> = status
        .services
        .iter()
        .filter(|s| is_old(spec, s, now))
        .collect();
    let mut create = Vec::new();
    if spec.suspend {
        status.phase = PolicyPhase::Suspended;
        status.message = "suspended: no new requests; those made go on".into();
        return Decision { status };
    }
    status.phase = PolicyPhase::Active;
    let active = status.active().count() + status.pending.len();
    let free = (spec.max_concurrent_services as usize).saturating_sub(active);
    let ours: HashSet<(&str, &str)> = status
        .active()
        .chain(&status.pending)
        .map(|r| (r.cluster.as_str(), r.service.as_str()))
        .collect();
    let waiting: Vec<&FleetService> = old
        .iter()
        .copied()
        .filter(|s| {
            !ours.contains(&(s.cluster.as_str(), s.service.as_str()))
                && !input.busy.contains(&(s.cluster.clone(), s.service.clone()))
        })
        .collect();
    let closed = closed_because(spec, now);
    if closed.is_none() {
        let multi_cluster = spec.services.clusters.len() > 1;
        for s in waiting.iter().take(free) {
            let name = request_name(input.name, &s.cluster, &s.service, now, multi_cluster);
            create.push(MadeRequest {
                name,
                cluster: s.cluster.clone(),
                service: s.service.clone(),
                made_at: now,
                phase: None,
                spec: Some(request_spec(spec, input.name, &s.cluster, &s.service, now)),
            });
        }
    }
    status.pending = create;
    status.message = summary(spec, &status, old.len(), waiting.len(), closed);
    Decision { status }
}

/// Records the requests' phases as read; one that is gone (deleted by a
/// person) is dropped with an event. Only the last finished ones are kept.
/// Returns the (cluster, service) of each request that ended just now.
fn follow_requests(
    status: &mut PolicyStatus,
    read: &HashMap<String, Option<Phase>>,
    now: DateTime<Utc>,
) -> HashSet<(String, String)> {
    let mut gone = Vec::new();
    let mut ended = HashSet::new();
    status.requests.retain_mut(|r| {
        let was_finished = r.finished();
        let keep = match read.get(&r.name) {
            Some(Some(phase)) => {
                r.phase = Some(*phase);
                true
            }
            Some(None) => {
                gone.push(r.name.clone());
                false
            }
            None => true,
        };
        if !was_finished && (!keep || r.finished()) {
            ended.insert((r.cluster.clone(), r.service.clone()));
        }
        keep
    });
    for name in gone {
        status.event(now, Reason::Gone, format!("request {name} was deleted"));
    }
    // Active ones first, each group in the order made.
    status.requests.sort_by_key(|r| (r.finished(), r.made_at));
    let finished = status.requests.iter().filter(|r| r.finished()).count();
    if finished > FINISHED_KEPT {
        let first = status.requests.len() - finished;
        status
            .requests
            .drain(first..first + finished - FINISHED_KEPT);
    }
    ended
}

/// The status once the pending requests exist.
pub(crate) fn created(mut status: PolicyStatus, now: DateTime<Utc>) -> PolicyStatus {
    for mut made in std::mem::take(&mut status.pending) {
        made.spec = None;
        status.event(
            now,
            Reason::Created,
            format!(
                "request {} made for {}/{}",
                made.name, made.cluster, made.service
            ),
        );
        status.requests.push(made);
    }
    status
}

fn is_old(spec: &PolicySpec, s: &FleetService, now: DateTime<Utc>) -> bool {
    let max = chrono::Duration::from_std(spec.max_task_age).unwrap_or(chrono::Duration::MAX);
    !s.recycled_since_look && s.oldest_started.is_some_and(|t| now - t >= max)
}

/// Why no request may start now, if none may.
fn closed_because(spec: &PolicySpec, now: DateTime<Utc>) -> Option<String> {
    if spec.is_blackout(now) {
        return Some(format!(
            "{} is a blackout date",
            now.with_timezone(&spec.time_zone).format("%Y-%m-%d")
        ));
    }
    if spec.window.is_some() {
        let next = || {
            spec.next_window(now)
                .map_or("never".to_string(), |t| spec.local(t))
        };
        let Some((_, end)) = spec.open_window(now) else {
            return Some(format!("outside the window (next opens {})", next()));
        };
        // A request started now must have time for one batch before the
        // window closes (its notAfter), or it would stop tasks and then
        // only restore.
        let batch = spec.template.stability_timeout + spec.template.wait;
        if end - now < chrono::Duration::from_std(batch).unwrap_or_default() {
            return Some(format!(
                "less of the window is left than one batch may take ({}; next opens {})",
                duration::format(batch),
                next()
            ));
        }
    }
    None
}

/// The earliest instant at or after `t` when a request may start: inside a
/// window, not on a blackout date. `None` if none comes within a year.
pub(crate) fn next_start(spec: &PolicySpec, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut at = t;
    for _ in 0..400 {
        if spec.window.is_some() && spec.open_window(at).is_none() {
            at = spec.next_window(at)?;
            continue;
        }
        if spec.is_blackout(at) {
            // The next local midnight.
            let local = at.with_timezone(&spec.time_zone).date_naive().succ_opt()?;
            let midnight = local.and_hms_opt(0, 0, 0)?;
            at = midnight
                .and_local_timezone(spec.time_zone)
                .earliest()?
                .with_timezone(&Utc);
            continue;
        }
        return Some(at);
    }
    None
}

/// What the policy will do next for one service, for people.
pub(crate) fn next_for(
    spec: &PolicySpec,
    s: &FleetService,
    request: Option<&MadeRequest>,
    busy: bool,
    now: DateTime<Utc>,
) -> String {
    if let Some(r) = request {
        return format!(
            "request {} {}",
            r.name,
            r.phase.map_or("made".to_string(), |p| format!("{p:?}"))
        );
    }
    if busy {
        return "another request is active on it; left alone until it ends".into();
    }
    if s.recycled_since_look {
        return "recycled since the last look; its age is known again at the next look".into();
    }
    let Some(started) = s.oldest_started else {
        return "no task running".into();
    };
    let max = chrono::Duration::from_std(spec.max_task_age).unwrap_or(chrono::Duration::MAX);
    let due = started + max;
    match next_start(spec, due.max(now)) {
        Some(t) if t <= now => "due: waits for a free slot in the budget".into(),
        Some(t) => format!("nothing to do until {}", spec.local(t)),
        None => "no start possible within a year (window and blackout dates)".into(),
    }
}

fn summary(
    spec: &PolicySpec,
    status: &PolicyStatus,
    old: usize,
    waiting: usize,
    closed: Option<String>,
) -> String {
    let active = status.active().count() + status.pending.len();
    let mut text = format!(
        "{} services match; {old} with tasks older than {}; {active} of {} requests active",
        status.matched,
        duration::format(spec.max_task_age),
        spec.max_concurrent_services
    );
    if waiting > 0 {
        match closed {
            Some(why) => text.push_str(&format!("; {waiting} waiting: {why}")),
            None => text.push_str(&format!("; {waiting} waiting for a slot")),
        }
    }
    if let Some(oldest) = status.services.first().and_then(|s| s.oldest_started) {
        let age = status.last_look.unwrap_or(oldest) - oldest;
        text.push_str(&format!(
            "; oldest task {} at the last look",
            format_age(age)
        ));
    }
    text
}

/// `<policy>-<service>-<yyyymmddhhmm>` (with the cluster before the
/// service when the policy spans several), in record-name letters; a
/// service name that had to be changed to fit (capitals, `_`, length) gets
/// a short hash of the real one, so two services never share a name.
pub(crate) fn request_name(
    policy: &str,
    cluster: &str,
    service: &str,
    at: DateTime<Utc>,
    multi_cluster: bool,
) -> String {
    let who = if multi_cluster {
        format!("{cluster}-{service}")
    } else {
        service.to_string()
    };
    let mut part: String = who
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let stamp = at.format("%Y%m%d%H%M").to_string();
    // policy (≤ 64) + '-' + part + '-' + stamp (12) ≤ 128
    let room = 128 - policy.len() - 2 - stamp.len();
    if part != who || part.len() > room {
        // Eight hex digits of the hash are enough to tell services apart.
        let hash = super::stable_hash(&format!("{cluster}/{service}")) as u32;
        part.truncate(room.saturating_sub(9));
        part = format!("{part}-{hash:08x}");
    }
    format!("{policy}-{part}-{stamp}")
}

/// The request's spec: the template, the service, `selector.olderThan`,
/// the window's end as `notAfter`, and who made it.
fn request_spec(
    spec: &PolicySpec,
    policy: &str,
    cluster: &str,
    service: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut value = match &spec.template_value {
        Value::Object(o) => o.clone(),
        _ => Default::default(),
    };
    value.insert("cluster".into(), json!(cluster));
    value.insert("service".into(), json!(service));
    value.insert(
        "selector".into(),
        json!({"olderThan": duration::format(spec.max_task_age)}),
    );
    if let Some((_, end)) = spec.open_window(now) {
        value.insert("notAfter".into(), json!(end.to_rfc3339()));
    }
    value.insert("createdBy".into(), json!(format!("RecyclePolicy/{policy}")));
    Value::Object(value)
}
