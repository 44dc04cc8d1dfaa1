//! The verdict of an alarm gate over the alarms seen at one look: clear,
//! hold, abort, or fail because the gate itself is wrong. Pure.

use super::spec::{AlarmGate, OnAlarm};

/// An alarm's state, in CloudWatch's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub(crate) fn parse(word: &str) -> Option<Self> {
        match word {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One alarm as DescribeAlarms answered it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AlarmView {
    pub name: String,
    pub state: AlarmState,
    /// CloudWatch's `StateReason`, e.g. "Threshold Crossed: 1 datapoint [7.0] was greater than 5.0".
    pub reason: String,
}

/// Why the gate alarms could not be seen.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AlarmsUnseen {
    /// Throttled, timed out, unreachable: worth another look.
    pub retryable: bool,
    pub message: String,
}

/// The gate alarms at one look.
pub(crate) type AlarmsSeen = Result<Vec<AlarmView>, AlarmsUnseen>;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Every gate alarm is OK (or without data, where the spec allows it).
    Clear,
    /// No task may be stopped now; the sentence says why.
    Hold(String),
    /// An alarm fired and the gate says abort: end through Restoring as Failed.
    Abort(String),
    /// The gate cannot work (an alarm that does not exist, a denied call).
    Fail(String),
}

pub(crate) fn verdict(gate: &AlarmGate, seen: Option<&AlarmsSeen>) -> Verdict {
    let alarms = match seen {
        None => return Verdict::Hold("the gate alarms have not been read yet".into()),
        Some(Err(e)) if e.retryable => {
            return Verdict::Hold(format!(
                "cannot see the gate alarms: {}; no task is stopped until they can be read",
                e.message
            ));
        }
        Some(Err(e)) => {
            return Verdict::Fail(format!("the gate alarms cannot be read: {}", e.message));
        }
        Some(Ok(alarms)) => alarms,
    };
    let missing: Vec<&str> = gate
        .names
        .iter()
        .filter(|n| !alarms.iter().any(|a| &a.name == *n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Verdict::Fail(format!(
            "gate alarm(s) {} do not exist in CloudWatch (names are exact and case-sensitive; a composite alarm is answered only to a role granted cloudwatch:DescribeAlarms on \"*\")",
            quoted(&missing)
        ));
    }
    if let Some(prefix) = &gate.prefix
        && !alarms.iter().any(|a| a.name.starts_with(prefix.as_str()))
    {
        return Verdict::Fail(format!(
            "no CloudWatch alarm's name starts with the gate prefix {prefix:?}"
        ));
    }
    let firing: Vec<&AlarmView> = alarms
        .iter()
        .filter(|a| a.state == AlarmState::Alarm)
        .collect();
    if let Some(first) = firing.first() {
        let names: Vec<&str> = firing.iter().map(|a| a.name.as_str()).collect();
        let what = format!("alarm {} in ALARM: {}", quoted(&names), reason_of(first));
        return match gate.on_alarm {
            OnAlarm::Pause => Verdict::Hold(format!("held by {what}")),
            OnAlarm::Abort => Verdict::Abort(format!("aborted by {what}")),
        };
    }
    let silent: Vec<&AlarmView> = alarms
        .iter()
        .filter(|a| a.state == AlarmState::InsufficientData)
        .collect();
    if let Some(first) = silent.first()
        && !gate.insufficient_data_is_ok
    {
        let names: Vec<&str> = silent.iter().map(|a| a.name.as_str()).collect();
        return Verdict::Hold(format!(
            "held by alarm {} in {}: {}; set insufficientDataIsOk to go on without data",
            quoted(&names),
            first.state.as_str(),
            reason_of(first)
        ));
    }
    Verdict::Clear
}

fn reason_of(alarm: &AlarmView) -> &str {
    if alarm.reason.is_empty() {
        "CloudWatch gives no reason"
    } else {
        &alarm.reason
    }
}

/// The first few names quoted, then how many more.
fn quoted(names: &[&str]) -> String {
    const NAMED: usize = 3;
    let mut out = names
        .iter()
        .take(NAMED)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMED {
        out.push_str(&format!(" and {} more", names.len() - NAMED));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(on_alarm: OnAlarm) -> AlarmGate {
        AlarmGate {
            names: vec!["web-5xx".into()],
            prefix: None,
            on_alarm,
            insufficient_data_is_ok: false,
        }
    }

    fn alarm(name: &str, state: AlarmState) -> AlarmView {
        AlarmView {
            name: name.into(),
            state,
            reason: format!("{name} reason"),
        }
    }

    #[test]
    fn the_verdict_table() {
        let ok = Ok(vec![alarm("web-5xx", AlarmState::Ok)]);
        let firing = Ok(vec![alarm("web-5xx", AlarmState::Alarm)]);
        let silent = Ok(vec![alarm("web-5xx", AlarmState::InsufficientData)]);
        let pause = gate(OnAlarm::Pause);
        let abort = gate(OnAlarm::Abort);
        assert_eq!(verdict(&pause, Some(&ok)), Verdict::Clear);
        assert_eq!(
            verdict(&pause, Some(&firing)),
            Verdict::Hold("held by alarm \"web-5xx\" in ALARM: web-5xx reason".into())
        );
        assert_eq!(
            verdict(&abort, Some(&firing)),
            Verdict::Abort("aborted by alarm \"web-5xx\" in ALARM: web-5xx reason".into())
        );
        // No data holds in both modes, unless the spec says it is OK.
        assert!(
            matches!(verdict(&abort, Some(&silent)), Verdict::Hold(m) if m.contains("INSUFFICIENT_DATA"))
        );
        let lenient = AlarmGate {
            insufficient_data_is_ok: true,
            ..pause.clone()
        };
        assert_eq!(verdict(&lenient, Some(&silent)), Verdict::Clear);
    }

    #[test]
    fn a_gate_fails_closed() {
        let pause = gate(OnAlarm::Pause);
        assert!(matches!(verdict(&pause, None), Verdict::Hold(_)));
        let throttled = Err(AlarmsUnseen {
            retryable: true,
            message: "throttled".into(),
        });
        assert!(
            matches!(verdict(&pause, Some(&throttled)), Verdict::Hold(m) if m.contains("throttled"))
        );
        let denied = Err(AlarmsUnseen {
            retryable: false,
            message: "AccessDenied".into(),
        });
        assert!(
            matches!(verdict(&pause, Some(&denied)), Verdict::Fail(m) if m.contains("AccessDenied"))
        );
        assert!(
            matches!(verdict(&pause, Some(&Ok(vec![]))), Verdict::Fail(m) if m.contains("\"web-5xx\" do not exist"))
        );
        let by_prefix = AlarmGate {
            names: vec![],
            prefix: Some("web-".into()),
            ..pause
        };
        assert!(
            matches!(verdict(&by_prefix, Some(&Ok(vec![alarm("db-cpu", AlarmState::Ok)]))), Verdict::Fail(m) if m.contains("prefix"))
        );
    }
}
