//! The one CloudWatch call a gate makes: DescribeAlarms, through
//! [`Clients::call`] like every read (rate limit, deadline, backoff on
//! throttling). Named alarms take one call (a gate names at most 100, the
//! most one call takes); a prefix takes one call per page of 100, up to
//! [`MAX_PREFIX_PAGES`]. Metric and composite alarms alike: without
//! `AlarmTypes`, CloudWatch answers metric alarms only.

use aws_sdk_cloudwatch::types::AlarmType;

use super::decide::{AlarmState, AlarmView, AlarmsSeen, AlarmsUnseen};
use super::spec::AlarmGate;
use crate::aws::{AwsError, Clients, classify};

pub(crate) const ACTION: &str = "cloudwatch:DescribeAlarms";

/// Pages of a prefix read at one look: 1,000 alarms, far more than a
/// gate means; beyond it the gate is refused rather than read in part.
const MAX_PREFIX_PAGES: usize = 10;

/// The gate's alarms now, or why they cannot be seen.
pub(crate) async fn describe(clients: &Clients, gate: &AlarmGate) -> AlarmsSeen {
    let mut alarms = Vec::new();
    // A denied read holds the run like one that got no answer: a person
    // fixes the role, and the run goes on by itself.
    let unseen = |e: AwsError| AlarmsUnseen {
        retryable: e.is_retryable() || e.is_denied(),
        message: e.why_unseen(),
    };
    if !gate.names.is_empty() {
        let (page, _) = page(clients, Some(&gate.names), None, None)
            .await
            .map_err(unseen)?;
        alarms.extend(page);
    }
    if let Some(prefix) = &gate.prefix {
        let mut token = None;
        for _ in 0..MAX_PREFIX_PAGES {
            let (page, next) = page(clients, None, Some(prefix), token.take())
                .await
                .map_err(unseen)?;
            alarms.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if token.is_some() {
            return Err(AlarmsUnseen {
                retryable: false,
                message: format!(
                    "the prefix {prefix:?} matches more than {} alarms; name the alarms, or use a longer prefix",
                    MAX_PREFIX_PAGES * 100
                ),
            });
        }
    }
    alarms.sort_by(|a: &AlarmView, b| a.name.cmp(&b.name));
    alarms.dedup_by(|a, b| a.name == b.name);
    Ok(alarms)
}

async fn page(
    clients: &Clients,
    names: Option<&[String]>,
    prefix: Option<&str>,
    token: Option<String>,
) -> Result<(Vec<AlarmView>, Option<String>), AwsError> {
    let out = clients
        .call(ACTION, || async {
            clients
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(names.map(<[String]>::to_vec))
                .set_alarm_name_prefix(prefix.map(str::to_string))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .max_records(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(ACTION, e))
        })
        .await?;
    let metric = out.metric_alarms().iter().map(|a| {
        view(
            a.alarm_name(),
            a.state_value().map(|s| s.as_str()),
            a.state_reason(),
        )
    });
    let composite = out.composite_alarms().iter().map(|a| {
        view(
            a.alarm_name(),
            a.state_value().map(|s| s.as_str()),
            a.state_reason(),
        )
    });
    let alarms = metric.chain(composite).flatten().collect();
    Ok((alarms, out.next_token().map(str::to_string)))
}

/// An alarm in a state this release does not know is read as in ALARM:
/// a gate fails closed.
fn view(name: Option<&str>, state: Option<&str>, reason: Option<&str>) -> Option<AlarmView> {
    let name = name?.to_string();
    let word = state.unwrap_or_default();
    let (state, reason) = match AlarmState::parse(word) {
        Some(s) => (s, reason.unwrap_or_default().to_string()),
        None => (
            AlarmState::Alarm,
            format!("CloudWatch reports the state {word:?}, which this release does not know"),
        ),
    };
    Some(AlarmView {
        name,
        state,
        reason,
    })
}
