//! The `gates` field of a request's spec: which CloudWatch alarms guard the
//! run (exact names, a name prefix, or both) and what an alarm in ALARM
//! does to it (`onAlarm`: pause, the default, or abort).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validate::{Problem, Reader, describe};

/// Names one DescribeAlarms call can take: the gate is read in one call
/// (plus the pages of a prefix), whatever else the operator does.
pub(crate) const MAX_ALARM_NAMES: usize = 100;

/// CloudWatch's own limit on an alarm name.
const MAX_NAME_LEN: usize = 255;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Gates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<AlarmGate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlarmGate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub on_alarm: OnAlarm,
    /// An alarm without data counts as OK; by default it holds the run,
    /// since a metric that stopped reporting is no proof of health.
    #[serde(default)]
    pub insufficient_data_is_ok: bool,
}

/// What an alarm in ALARM does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum OnAlarm {
    /// Hold before the next stop; go on by itself once the alarms are OK.
    #[default]
    Pause,
    /// End the run through Restoring, as Failed.
    Abort,
}

impl OnAlarm {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Abort => "abort",
        }
    }
}

/// Reads `gates` (at `path`), adding every problem to `problems`.
pub(crate) fn parse_gates(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<Gates> {
    let mut r = Reader::new(value, path);
    let alarms = r.object("alarms").and_then(|v| {
        let path = r.at("alarms");
        parse_alarms(v, &path, &mut r.problems)
    });
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    ok.then_some(Gates { alarms })
}

fn parse_alarms(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<AlarmGate> {
    let mut r = Reader::new(value, path);
    let names = alarm_names(&mut r);
    let prefix = r.string("prefix");
    if let Some(p) = &prefix
        && p.chars().count() > MAX_NAME_LEN
    {
        r.problem(
            "prefix",
            format!("is longer than {MAX_NAME_LEN} characters, the longest alarm name"),
        );
    }
    if r.object.is_some() && names.as_ref().is_none_or(Vec::is_empty) && prefix.is_none() {
        let given = r.object.is_some_and(|o| o.contains_key("names"));
        if !given {
            r.problem(
                "names",
                "is required unless a prefix is given: name the alarms that guard the run".into(),
            );
        }
    }
    let on_alarm = match r.get("onAlarm") {
        None => OnAlarm::Pause,
        Some(Value::String(s)) if s == "pause" => OnAlarm::Pause,
        Some(Value::String(s)) if s == "abort" => OnAlarm::Abort,
        Some(other) => {
            let hint = other
                .as_str()
                .and_then(|s| crate::validate::nearest(s, &["pause", "abort"]))
                .map(|n| format!(" (did you mean {n}?)"))
                .unwrap_or_default();
            r.problem(
                "onAlarm",
                format!(
                    "{} is not allowed{hint}; use pause or abort",
                    describe(other)
                ),
            );
            OnAlarm::Pause
        }
    };
    let insufficient_data_is_ok = r.bool("insufficientDataIsOk").unwrap_or(false);
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    ok.then(|| AlarmGate {
        names: names.unwrap_or_default(),
        prefix,
        on_alarm,
        insufficient_data_is_ok,
    })
}

/// `names`: a list of distinct alarm names, at most [`MAX_ALARM_NAMES`].
fn alarm_names(r: &mut Reader) -> Option<Vec<String>> {
    let value = r.get("names")?;
    let Some(items) = value.as_array() else {
        r.problem(
            "names",
            format!("must be a list of alarm names, not {}", describe(value)),
        );
        return None;
    };
    if items.is_empty() {
        r.problem(
            "names",
            "is empty: name at least one alarm, or remove the field and give a prefix".into(),
        );
        return None;
    }
    if items.len() > MAX_ALARM_NAMES {
        r.problem(
            "names",
            format!(
                "names {} alarms; at most {MAX_ALARM_NAMES} (one DescribeAlarms call), or use a prefix",
                items.len()
            ),
        );
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("names[{i}]");
        match item.as_str().map(str::trim) {
            Some(n) if !n.is_empty() && n.chars().count() <= MAX_NAME_LEN => {
                if names.iter().any(|k| k == n) {
                    r.problem(&at, format!("{n:?} is named twice"));
                } else {
                    names.push(n.to_string());
                }
            }
            _ => r.problem(
                &at,
                format!(
                    "{} is not an alarm name (1 to {MAX_NAME_LEN} characters)",
                    describe(item)
                ),
            ),
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Gates, Vec<Problem>> {
        let mut problems = Vec::new();
        let g = parse_gates(&v, "spec.gates", &mut problems);
        match g {
            Some(g) if problems.is_empty() => Ok(g),
            _ => Err(problems),
        }
    }

    #[test]
    fn names_prefix_and_defaults() {
        let g =
            parse(json!({"alarms": {"names": ["web-5xx", "web-p99"], "prefix": "web-"}})).unwrap();
        let a = g.alarms.unwrap();
        assert_eq!(a.names, ["web-5xx", "web-p99"]);
        assert_eq!(a.prefix.as_deref(), Some("web-"));
        assert_eq!(a.on_alarm, OnAlarm::Pause);
        assert!(!a.insufficient_data_is_ok);
        let a = parse(
            json!({"alarms": {"prefix": "web-", "onAlarm": "abort", "insufficientDataIsOk": true}}),
        )
        .unwrap()
        .alarms
        .unwrap();
        assert_eq!(a.on_alarm, OnAlarm::Abort);
        assert!(a.insufficient_data_is_ok && a.names.is_empty());
    }

    #[test]
    fn every_problem_names_its_field() {
        let err = parse(json!({"alarms": {"names": ["a", "a", 3, ""], "onAlarm": "abrot", "insufficentDataIsOk": true}, "hook": 1}))
            .unwrap_err();
        let text: Vec<String> = err.iter().map(Problem::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.gates.alarms.names[1]: \"a\" is named twice",
                "spec.gates.alarms.names[2]: 3 is not an alarm name (1 to 255 characters)",
                "spec.gates.alarms.names[3]: \"\" is not an alarm name (1 to 255 characters)",
                "spec.gates.alarms.onAlarm: \"abrot\" is not allowed (did you mean abort?); use pause or abort",
                "spec.gates.alarms.insufficentDataIsOk: is not a known field; did you mean insufficientDataIsOk? Known fields are insufficientDataIsOk, names, onAlarm, prefix",
                "spec.gates.hook: is not a known field; known fields are alarms",
            ]
        );
    }

    #[test]
    fn a_gate_must_name_something() {
        let err = parse(json!({"alarms": {"onAlarm": "pause"}})).unwrap_err();
        assert_eq!(err[0].path, "spec.gates.alarms.names");
        let err = parse(json!({"alarms": {"names": []}})).unwrap_err();
        assert!(err[0].reason.contains("is empty"), "{err:?}");
        let many: Vec<String> = (0..101).map(|i| format!("a{i}")).collect();
        let err = parse(json!({"alarms": {"names": many}})).unwrap_err();
        assert!(err[0].reason.contains("at most 100"), "{err:?}");
    }
}
