//! What the dry run says of a request's gates: which alarms guard it, when
//! they are read, what an alarm does to the run, and each alarm's state now.

use super::decide::{AlarmState, AlarmsSeen, Verdict, verdict};
use super::spec::{AlarmGate, OnAlarm};

/// The gate section of `apply --dry-run`, from the alarms read just now.
pub(crate) fn render(gate: &AlarmGate, seen: &AlarmsSeen) -> String {
    let mut which: Vec<String> = gate.names.iter().map(|n| format!("{n:?}")).collect();
    if let Some(p) = &gate.prefix {
        which.push(format!("every alarm whose name starts with {p:?}"));
    }
    let on_alarm = match gate.on_alarm {
        OnAlarm::Pause => "hold before the next stop, and go on once every gate alarm is OK",
        OnAlarm::Abort => "end the run through Restoring as Failed",
    };
    let silent = if gate.insufficient_data_is_ok {
        "counts as OK"
    } else {
        "holds the run"
    };
    let mut out = format!(
        "  Gate: alarms {}; read with cloudwatch:DescribeAlarms before the run starts, before each batch and while a batch waits\n    onAlarm: {} ({on_alarm}); INSUFFICIENT_DATA {silent}\n",
        which.join(", "),
        gate.on_alarm.as_str()
    );
    match seen {
        Ok(alarms) => {
            for a in alarms {
                let state = match a.state {
                    AlarmState::Ok => "OK",
                    AlarmState::Alarm => "ALARM",
                    AlarmState::InsufficientData => "INSUFFICIENT_DATA",
                };
                out.push_str(&format!("    {:?}: {state}: {}\n", a.name, a.reason));
            }
        }
        Err(e) => out.push_str(&format!("    alarms not read: {}\n", e.message)),
    }
    let now = match verdict(gate, Some(seen)) {
        Verdict::Clear => "every gate alarm is OK: the run would go on".to_string(),
        Verdict::Hold(why) => format!("the run would hold now: {why}"),
        Verdict::Abort(why) => format!("the run would end now: {why}"),
        Verdict::Fail(why) => format!("the run would fail at once: {why}"),
    };
    out.push_str(&format!("    Now: {now}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::super::decide::AlarmView;
    use super::*;

    #[test]
    fn the_dry_run_names_each_alarm_its_state_and_what_it_would_do() {
        let gate = AlarmGate {
            names: vec!["web-5xx".into()],
            prefix: Some("web-canary-".into()),
            on_alarm: OnAlarm::Abort,
            insufficient_data_is_ok: false,
        };
        let seen = Ok(vec![
            AlarmView {
                name: "web-5xx".into(),
                state: AlarmState::Alarm,
                reason: "Threshold Crossed".into(),
            },
            AlarmView {
                name: "web-canary-1".into(),
                state: AlarmState::Ok,
                reason: "fine".into(),
            },
        ]);
        let text = render(&gate, &seen);
        assert!(
            text.contains(
                "Gate: alarms \"web-5xx\", every alarm whose name starts with \"web-canary-\""
            ),
            "{text}"
        );
        assert!(
            text.contains("onAlarm: abort (end the run through Restoring as Failed)"),
            "{text}"
        );
        assert!(
            text.contains("\"web-5xx\": ALARM: Threshold Crossed"),
            "{text}"
        );
        assert!(
            text.contains("Now: the run would end now: aborted by alarm \"web-5xx\""),
            "{text}"
        );
    }
}
