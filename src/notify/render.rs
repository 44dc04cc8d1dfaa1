//! What each channel carries, rendered from a [`Report`]: the original Lambda's email
//! (cluster, service, tasks recycled, timestamp) plus the outcome, the
//! duration and, on failure, the reason. Pure, so it is tested as text.

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::NotifyEvent;
use super::outbox::Report;
use crate::duration;

/// The headline: the original Lambda's subject ("ECS Service Task Recycle Completed")
/// with the event in place of "Completed" when it is another.
pub(crate) fn headline(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::Started => "ECS Service Task Recycle Started",
        NotifyEvent::Batch => "ECS Service Task Recycle Batch Done",
        NotifyEvent::Succeeded => "ECS Service Task Recycle Completed",
        NotifyEvent::Failed => "ECS Service Task Recycle Failed",
        NotifyEvent::Cancelled => "ECS Service Task Recycle Cancelled",
        NotifyEvent::WindowClosed => "ECS Service Task Recycle Window Closed",
        NotifyEvent::Paused => "ECS Service Task Recycle Paused by an Alarm",
        NotifyEvent::Resumed => "ECS Service Task Recycle Resumed",
    }
}

pub(crate) fn email_subject(prefix: &str, r: &Report) -> String {
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("[{prefix}] ")
    };
    format!("{prefix}{}: {}/{}", headline(r.event), r.cluster, r.service)
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The plain-text body of the email and of the SNS message.
pub(crate) fn text_body(r: &Report) -> String {
    let mut lines = vec![headline(r.event).to_string(), String::new()];
    let mut field = |name: &str, value: String| lines.push(format!("{name:<16}{value}"));
    field("Cluster:", r.cluster.clone());
    field("Service:", r.service.clone());
    field("Request:", r.request.clone());
    field("Outcome:", r.phase.clone());
    if let Some(strategy) = &r.strategy {
        field("Strategy:", strategy.clone());
    }
    if let Some(batch) = &r.batch {
        field("Batch:", batch.clone());
    }
    field(
        "Tasks recycled:",
        format!(
            "{} of {} planned{}",
            r.recycled,
            r.planned,
            if r.skipped > 0 {
                format!(" ({} already gone)", r.skipped)
            } else {
                String::new()
            }
        ),
    );
    if let Some(d) = r.original_desired {
        field("Desired count:", d.to_string());
    }
    if let Some(t) = r.started_at {
        field("Started:", time(t));
    }
    if let Some(t) = r.finished_at {
        field("Finished:", time(t));
    }
    if let Some(d) = r.duration() {
        field("Duration:", duration::format(round_secs(d)));
    }
    field("Timestamp:", time(r.at));
    if let Some(reason) = &r.reason {
        field("Reason:", reason.clone());
    }
    field("Message:", r.message.clone());
    if !r.tasks.is_empty() {
        lines.push(String::new());
        lines.push("Tasks recycled:".into());
        lines.extend(r.tasks.iter().map(|t| format!("  - {t}")));
        if r.recycled > r.tasks.len() {
            lines.push(format!("  ... and {} more", r.recycled - r.tasks.len()));
        }
    }
    lines.push(String::new());
    lines.push("-- ecs-recycler".into());
    lines.join("\n")
}

fn round_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

/// SNS subjects are at most 100 printable ASCII characters on one line.
pub(crate) fn sns_subject(r: &Report) -> String {
    let subject: String = format!("{}: {}/{}", headline(r.event), r.cluster, r.service)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    subject.chars().take(100).collect()
}

/// The webhook's JSON document: the report itself, camelCase, with the
/// duration in seconds and the headline for display.
pub(crate) fn webhook_json(r: &Report) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("title".into(), json!(headline(r.event)));
        o.insert(
            "durationSeconds".into(),
            json!(r.duration().map(|d| d.as_secs())),
        );
    }
    v
}

/// Slack's incoming-webhook shape: one `text` in Slack's markup.
pub(crate) fn slack_json(r: &Report) -> Value {
    let mut text = format!(
        "*{}* `{}/{}` (request `{}`)\n{}: {}\nTasks recycled: {} of {}",
        headline(r.event),
        r.cluster,
        r.service,
        r.request,
        r.phase,
        r.message,
        r.recycled,
        r.planned
    );
    if let Some(d) = r.duration() {
        text.push_str(&format!(" in {}", duration::format(round_secs(d))));
    }
    if let Some(batch) = &r.batch {
        text.push_str(&format!(" ({batch})"));
    }
    if let Some(reason) = &r.reason {
        text.push_str(&format!("\nReason: {reason}"));
    }
    text.push_str(&format!("\nAt {}", time(r.at)));
    json!({ "text": text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn report(event: NotifyEvent, phase: &str) -> Report {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        Report {
            request: "web-nightly-202611230700".into(),
            cluster: "prod".into(),
            service: "web".into(),
            event,
            phase: phase.into(),
            message:
                "recycled 3 of 3 planned tasks (0 already gone). Desired count restored: 4 → 3."
                    .into(),
            planned: 3,
            recycled: 3,
            skipped: 0,
            tasks: vec!["a1".into(), "b2".into(), "c3".into()],
            original_desired: Some(3),
            started_at: Some(t("2026-11-23T07:00:05Z")),
            finished_at: Some(t("2026-11-23T07:04:17Z")),
            at: t("2026-11-23T07:04:17Z"),
            reason: None,
            strategy: None,
            batch: None,
        }
    }

    #[test]
    fn the_email_carries_what_the_original_lambdas_did_and_more() {
        let r = report(NotifyEvent::Succeeded, "Succeeded");
        assert_eq!(
            email_subject("AWS ECS", &r),
            "[AWS ECS] ECS Service Task Recycle Completed: prod/web"
        );
        let body = text_body(&r);
        for expected in [
            "Cluster:        prod",
            "Service:        web",
            "Tasks recycled: 3 of 3 planned",
            "Timestamp:      2026-11-23T07:04:17Z",
            "Outcome:        Succeeded",
            "Duration:       4m12s",
            "  - b2",
        ] {
            assert!(body.contains(expected), "{expected:?} not in:\n{body}");
        }
        assert!(!body.contains("Reason:"));
    }

    #[test]
    fn a_failure_says_why() {
        let mut r = report(NotifyEvent::Failed, "Failed");
        r.reason = Some("AccessDeniedException: not authorized to perform ecs:StopTask".into());
        let body = text_body(&r);
        assert!(
            body.starts_with("ECS Service Task Recycle Failed"),
            "{body}"
        );
        assert!(
            body.contains("Reason:         AccessDeniedException"),
            "{body}"
        );
        let slack = slack_json(&r);
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .contains("Reason: AccessDenied")
        );
    }

    #[test]
    fn every_channel_names_the_cause_of_a_failed_step() {
        let mut r = report(NotifyEvent::Failed, "Failed");
        let why = "replacements for arn:aws:ecs:us-east-1:1:task/prod/b2 were not running, healthy and stable within 5m (desired 4, running 3, pending 1, healthy 3): 8 replacement tasks stopped: Essential container in task exited; 2/3 tasks stopped, 1 recycled. Desired count restored: 4 → 3.";
        r.message = why.into();
        r.reason = Some(why.into());
        r.recycled = 1;
        r.tasks = vec!["a1".into()];
        let cause = "8 replacement tasks stopped: Essential container in task exited";
        let body = text_body(&r);
        assert!(body.contains(&format!("Reason:         {why}")), "{body}");
        assert!(body.contains("Tasks recycled: 1 of 3 planned"), "{body}");
        assert!(!body.contains("  - b2"), "{body}");
        assert!(slack_json(&r)["text"].as_str().unwrap().contains(cause));
        let hook = webhook_json(&r);
        assert!(hook["reason"].as_str().unwrap().contains(cause));
        assert_eq!(hook["recycled"], 1);
    }

    #[test]
    fn sns_subjects_are_short_ascii() {
        let mut r = report(NotifyEvent::WindowClosed, "WindowClosed");
        r.service = "ü".repeat(200);
        let s = sns_subject(&r);
        assert!(s.len() <= 100 && s.is_ascii(), "{s}");
    }

    #[test]
    fn the_webhook_document_is_the_report() {
        let v = webhook_json(&report(NotifyEvent::Succeeded, "Succeeded"));
        assert_eq!(v["event"], "succeeded");
        assert_eq!(v["cluster"], "prod");
        assert_eq!(v["recycled"], 3);
        assert_eq!(v["durationSeconds"], 252);
        assert_eq!(v["title"], "ECS Service Task Recycle Completed");
    }
}
