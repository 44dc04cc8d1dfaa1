//! Notifications of a request's events — started, each batch (optional),
//! succeeded, failed, cancelled, window closed — by email (SMTP with
//! STARTTLS), Amazon SNS and a webhook (JSON, or a Slack-compatible payload).
//! This module owns the `notify` field of a RecycleRequest spec and its
//! validation; [`outbox`] the notices kept in the request's status;
//! [`render`] what each channel carries; [`deliver`] the I/O; [`config`] the
//! operator's flags (the relay and its credentials, which never enter a
//! record or a log).
//!
//! # Delivery: an outbox in the status
//!
//! A failing channel must never block, delay or fail a recycle, and a
//! notice must survive a crash. So a notice is never sent from the step
//! that causes it:
//!
//! 1. When a step changes the status, the request's notices
//!    (`request::notices`) compare the status before and after and queue
//!    a notice per event and channel in `status.notify.outbox`
//!    ([`outbox::queue`]). The notice is part of the same conditional
//!    write as the transition: a status that says Succeeded always carries
//!    its notices, and a crash before that write loses both together.
//! 2. After the write lands, the leaseholder hands the outbox to the
//!    [`deliver::Notifier`], which delivers in background tasks (retrying with
//!    `backon`'s jittered exponential backoff) and never makes the
//!    reconciler wait.
//! 3. Each attempt comes back as a receipt. The reconciler folds receipts
//!    into the status ([`outbox::apply`]) the next time it writes the record,
//!    so attempts are recorded (bounded) without a writer of their own
//!    racing the reconciler's version checks. A delivered or given-up notice
//!    leaves the outbox then.
//! 4. A finished request leaves the active index only once its outbox is
//!    empty: until then the store keeps it active, the loop keeps its lease
//!    and only drains the outbox (no AWS call is made for it), and it never
//!    holds up the next request on its service.
//!
//! A replica that dies mid-delivery leaves the notice in the outbox; whoever
//! takes the lease next delivers it again. Delivery is therefore at least
//! once: a notice sent just before a crash may be sent twice.

pub(crate) mod config;
pub(crate) mod deliver;
pub(crate) mod outbox;
pub(crate) mod render;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use outbox::NotifyState;

use crate::validate::{Problem, Reader, check_webhook_url, describe};

/// What a request asks to be told about, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotifySpec {
    pub events: Vec<NotifyEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns: Option<SnsChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
}

impl NotifySpec {
    /// Every channel configured, in a fixed order.
    pub(crate) fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if let Some(c) = &self.email {
            out.push(Channel::Email(c.clone()));
        }
        if let Some(c) = &self.sns {
            out.push(Channel::Sns(c.clone()));
        }
        if let Some(c) = &self.webhook {
            out.push(Channel::Webhook(c.clone()));
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NotifyEvent {
    Started,
    /// A batch's replacements are running, healthy and stable.
    Batch,
    Succeeded,
    Failed,
    Cancelled,
    WindowClosed,
    /// A gate alarm held the run before its next stop.
    Paused,
    /// Every gate alarm is OK again: the run goes on.
    Resumed,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 8] = [
        Self::Started,
        Self::Batch,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::WindowClosed,
        Self::Paused,
        Self::Resumed,
    ];

    /// Every event but `batch`, which is asked for by name.
    pub const DEFAULT: [NotifyEvent; 7] = [
        Self::Started,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::WindowClosed,
        Self::Paused,
        Self::Resumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Batch => "batch",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::WindowClosed => "windowClosed",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailChannel {
    /// Recipients, as `ops@example.com` or `Ops <ops@example.com>`.
    pub to: Vec<String>,
    /// Put before the subject (the original Lambda's `subject_prefix`).
    pub subject_prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnsChannel {
    pub topic_arn: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookChannel {
    pub url: String,
    pub format: WebhookFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFormat {
    /// The report as a JSON document of its own.
    #[default]
    Json,
    /// `{"text": ...}`, which Slack's incoming webhooks (and Mattermost,
    /// Rocket.Chat, Teams' Slack-compatible connectors) accept.
    Slack,
}

/// One destination, as a notice carries it (so a later edit of the spec
/// does not redirect a notice already queued).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Channel {
    Email(EmailChannel),
    Sns(SnsChannel),
    Webhook(WebhookChannel),
}

impl Channel {
    /// The channel as an attempt record names it; never a secret (a
    /// webhook's path often holds its token, so only its host is named).
    pub fn label(&self) -> String {
        match self {
            Self::Email(e) => format!("email to {}", e.to.join(", ")),
            Self::Sns(s) => format!("sns {}", s.topic_arn),
            Self::Webhook(w) => match reqwest::Url::parse(&w.url) {
                Ok(u) => format!("webhook {}", u.host_str().unwrap_or("?")),
                Err(_) => "webhook".into(),
            },
        }
    }
}

/// Reads `notify` at `path`, adding every problem to `problems`.
pub(crate) fn parse_notify(
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<NotifySpec> {
    let mut r = Reader::new(value, path);
    let events = match r.get("events") {
        None => NotifyEvent::DEFAULT.to_vec(),
        Some(Value::Array(items)) => {
            let mut events = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match NotifyEvent::ALL
                    .iter()
                    .find(|e| Some(e.as_str()) == item.as_str())
                {
                    Some(e) if !events.contains(e) => events.push(*e),
                    Some(_) => {}
                    None => r.problem(
                        &format!("events[{i}]"),
                        format!(
                            "{} is not an event; use {}",
                            describe(item),
                            NotifyEvent::ALL.map(NotifyEvent::as_str).join(", ")
                        ),
                    ),
                }
            }
            events
        }
        Some(other) => {
            r.problem(
                "events",
                format!("must be a list of events, not {}", describe(other)),
            );
            Vec::new()
        }
    };
    let email = r
        .get("email")
        .and_then(|v| parse_email(v, &r.at("email"), &mut r.problems));
    let sns = r
        .get("sns")
        .and_then(|v| parse_sns(v, &r.at("sns"), &mut r.problems));
    let webhook = r
        .get("webhook")
        .and_then(|v| parse_webhook(v, &r.at("webhook"), &mut r.problems));
    if r.object.is_some()
        && !["email", "sns", "webhook"].iter().any(|k| {
            r.object
                .is_some_and(|o| o.get(*k).is_some_and(|v| !v.is_null()))
        })
    {
        r.problems.push(Problem {
            path: path.to_string(),
            reason: "names no channel; give at least one of email, sns and webhook".into(),
        });
    }
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    ok.then_some(NotifySpec {
        events,
        email,
        sns,
        webhook,
    })
}

fn parse_email(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<EmailChannel> {
    let mut r = Reader::new(value, path);
    let mut to = Vec::new();
    match r.get("to") {
        None if r.object.is_some() => r.problem("to", "is required: a list of addresses".into()),
        None => {}
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(lettre::message::Mailbox::from_str) {
                    Some(Ok(_)) => to.push(item.as_str().unwrap_or_default().to_string()),
                    Some(Err(e)) => r.problem(
                        &format!("to[{i}]"),
                        format!(
                            "{} is not an email address ({e}); write it like ops@example.com or \"Ops <ops@example.com>\"",
                            describe(item)
                        ),
                    ),
                    None => r.problem(
                        &format!("to[{i}]"),
                        format!("must be an email address, not {}", describe(item)),
                    ),
                }
            }
        }
        Some(other) => r.problem(
            "to",
            format!(
                "must be a non-empty list of addresses, not {}",
                describe(other)
            ),
        ),
    }
    let subject_prefix = r
        .string("subjectPrefix")
        .unwrap_or_else(|| "AWS ECS".to_string());
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    ok.then_some(EmailChannel { to, subject_prefix })
}

fn parse_sns(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<SnsChannel> {
    let mut r = Reader::new(value, path);
    let topic_arn = r.string("topicArn");
    match &topic_arn {
        None if r.object.is_some() && r.problems.is_empty() => {
            r.problem("topicArn", "is required".into())
        }
        Some(arn) if !is_topic_arn(arn) => r.problem(
            "topicArn",
            format!(
                "{arn:?} is not an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:recycles"
            ),
        ),
        _ => {}
    }
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    ok.then(|| SnsChannel {
        topic_arn: topic_arn.unwrap_or_default(),
    })
}

fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "sns", region, account, name]
        if partition.starts_with("aws")
        && !region.is_empty()
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
        && (1..=256).contains(&name.len())
        && name.trim_end_matches(".fifo").chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

fn parse_webhook(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<WebhookChannel> {
    let mut r = Reader::new(value, path);
    let url = r.string("url");
    match &url {
        None if r.object.is_some() && r.problems.is_empty() => {
            r.problem("url", "is required".into())
        }
        Some(url) => {
            if let Err(reason) = check_webhook_url(url) {
                r.problem("url", reason);
            }
        }
        None => {}
    }
    let format = match r.get("format") {
        None => WebhookFormat::Json,
        Some(v) if v == "json" => WebhookFormat::Json,
        Some(v) if v == "slack" => WebhookFormat::Slack,
        Some(other) => {
            r.problem(
                "format",
                format!("{} is not a format; use json or slack", describe(other)),
            );
            WebhookFormat::Json
        }
    };
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    ok.then(|| WebhookChannel {
        url: url.unwrap_or_default(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NotifySpec, Vec<String>> {
        let mut problems = Vec::new();
        let spec = parse_notify(&v, "spec.notify", &mut problems);
        if problems.is_empty() {
            Ok(spec.expect("a spec without problems"))
        } else {
            Err(problems.iter().map(Problem::to_string).collect())
        }
    }

    #[test]
    fn every_channel_and_the_default_events() {
        let spec = parse(json!({
            "email": {"to": ["ops@example.com", "On Call <oncall@example.com>"]},
            "sns": {"topicArn": "arn:aws:sns:us-east-1:123456789012:recycles"},
            "webhook": {"url": "https://hooks.slack.com/services/T0/B0/x", "format": "slack"},
        }))
        .unwrap();
        assert_eq!(spec.events, NotifyEvent::DEFAULT);
        assert_eq!(spec.channels().len(), 3);
        assert_eq!(spec.email.unwrap().subject_prefix, "AWS ECS");
        assert_eq!(spec.webhook.unwrap().format, WebhookFormat::Slack);
        let spec = parse(
            json!({"events": ["batch", "failed"], "webhook": {"url": "http://127.0.0.1:9/x"}}),
        )
        .unwrap();
        assert_eq!(spec.events, [NotifyEvent::Batch, NotifyEvent::Failed]);
    }

    #[test]
    fn bad_input_is_refused_with_the_field_and_the_reason() {
        let problems = parse(json!({
            "events": ["started", "finished"],
            "email": {"to": ["not an address"], "subject": "x"},
            "sns": {"topicArn": "arn:aws:sqs:us-east-1:123456789012:q"},
            "webhook": {"url": "http://hooks.example.com/x"},
            "slack": true,
        }))
        .unwrap_err();
        let text = problems.join("\n");
        for expected in [
            "spec.notify.events[1]: \"finished\" is not an event",
            "spec.notify.email.to[0]: \"not an address\" is not an email address",
            "spec.notify.email.subject: is not a known field",
            "spec.notify.sns.topicArn: \"arn:aws:sqs:us-east-1:123456789012:q\" is not an SNS topic ARN",
            "spec.notify.webhook.url: \"hooks.example.com\" is not https",
            "spec.notify.slack: is not a known field",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let problems = parse(json!({"events": []})).unwrap_err();
        assert!(problems[0].contains("names no channel"), "{problems:?}");
        let problems = parse(json!({"webhook": {"url": "ftp://x/y"}})).unwrap_err();
        assert!(
            problems[0].contains("\"ftp\" is not allowed"),
            "{problems:?}"
        );
        let problems = parse(json!({"email": {"to": []}})).unwrap_err();
        assert!(problems[0].contains("non-empty list"), "{problems:?}");
    }

    #[test]
    fn loopback_webhooks_may_be_plain_http() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]:9/x",
            "https://example.com/x",
        ] {
            assert!(check_webhook_url(url).is_ok(), "{url}");
        }
        for url in ["http://10.0.0.1/x", "http://example.com/x", "https://"] {
            assert!(check_webhook_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn labels_never_carry_a_webhook_token() {
        let c = Channel::Webhook(WebhookChannel {
            url: "https://hooks.slack.com/services/T0/B0/secret-token".into(),
            format: WebhookFormat::Slack,
        });
        assert_eq!(c.label(), "webhook hooks.slack.com");
    }
}
