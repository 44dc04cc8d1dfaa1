//! The `hooks` field of a request's spec: which webhooks are asked, at
//! which points of the run, with which secret they are signed, and how long
//! one call and all the calls of one point may take.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::serde_duration;
use crate::validate::{Problem, Reader, describe, nearest};

/// Hooks one request may have: each is asked in turn at its points.
const MAX_HOOKS: usize = 5;
/// Environment variable names an operator's shell would accept.
const MAX_ENV_NAME: usize = 255;

/// A named point of the run where hooks are asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Point {
    /// Before the run touches anything (before the surge, or the first stop).
    BeforeStart,
    /// Before each batch is stopped.
    BeforeBatch,
    /// After each batch's replacements are serving.
    AfterBatch,
    /// After the run ended, whatever its outcome.
    AfterEnd,
}

impl Point {
    const ALL: [Point; 4] = [
        Self::BeforeStart,
        Self::BeforeBatch,
        Self::AfterBatch,
        Self::AfterEnd,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BeforeStart => "beforeStart",
            Self::BeforeBatch => "beforeBatch",
            Self::AfterBatch => "afterBatch",
            Self::AfterEnd => "afterEnd",
        }
    }
}

/// Where the signing secret is read from; the secret itself is never in a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum SecretSource {
    /// An environment variable of the operator's process.
    Env(String),
    /// A Secrets Manager secret (its SecretString), by ARN.
    SecretsManager(String),
}

/// What a hook that gave no verdict within its deadline does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum OnTimeout {
    /// The run ends through Restoring, as Failed.
    #[default]
    Fail,
    /// The run goes on as if the hook had answered succeeded.
    Continue,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Hook {
    pub url: String,
    pub at: Vec<Point>,
    pub secret: SecretSource,
    /// One call, answer included.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// All the calls for one point: retries and answers of inProgress included.
    #[serde(with = "serde_duration")]
    pub deadline: Duration,
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

impl Hook {
    /// The hook as messages name it: its host, never its path (which may hold a token).
    pub(crate) fn label(&self) -> String {
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        format!("hook {host}")
    }
}

/// Reads `hooks` (at `path`), adding every problem to `problems`.
pub(crate) fn parse_hooks(
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Hook>> {
    let Some(items) = value.as_array() else {
        problems.push(Problem {
            path: path.to_string(),
            reason: format!("must be a list of hooks, not {}", describe(value)),
        });
        return None;
    };
    if items.len() > MAX_HOOKS {
        problems.push(Problem {
            path: path.to_string(),
            reason: format!("has {} hooks; at most {MAX_HOOKS}", items.len()),
        });
        return None;
    }
    let before = problems.len();
    let hooks: Vec<Option<Hook>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_hook(item, &format!("{path}[{i}]"), problems))
        .collect();
    (problems.len() == before).then(|| hooks.into_iter().flatten().collect())
}

fn parse_hook(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<Hook> {
    let mut r = Reader::new(value, path);
    let url = match r.string("url") {
        Some(u) => match crate::validate::check_webhook_url(&u) {
            Ok(()) => Some(u),
            Err(why) => {
                r.problem("url", why);
                None
            }
        },
        None if r.object.is_some_and(|o| !o.contains_key("url")) => {
            r.problem(
                "url",
                "is required: the https URL the hook is called at".into(),
            );
            None
        }
        None => None,
    };
    let at = points(&mut r);
    let secret = secret(&mut r);
    let timeout = r.duration("timeout").unwrap_or(Duration::from_secs(10));
    let deadline = r.duration("deadline").unwrap_or(Duration::from_secs(600));
    if timeout.is_zero() {
        r.problem("timeout", "must be longer than 0s".into());
    } else if timeout > deadline {
        r.problem(
            "timeout",
            format!(
                "{} is longer than the deadline {}: one call must fit in the time all calls of a point may take",
                crate::duration::format(timeout),
                crate::duration::format(deadline)
            ),
        );
    }
    let on_timeout = match r.get("onTimeout") {
        None => OnTimeout::Fail,
        Some(Value::String(s)) if s == "fail" => OnTimeout::Fail,
        Some(Value::String(s)) if s == "continue" => OnTimeout::Continue,
        Some(other) => {
            let hint = other
                .as_str()
                .and_then(|s| nearest(s, &["fail", "continue"]))
                .map(|n| format!(" (did you mean {n}?)"))
                .unwrap_or_default();
            r.problem(
                "onTimeout",
                format!(
                    "{} is not allowed{hint}; use fail or continue",
                    describe(other)
                ),
            );
            OnTimeout::Fail
        }
    };
    r.finish();
    let ok = r.problems.is_empty();
    problems.append(&mut r.problems);
    Some(Hook {
        url: url?,
        at: at?,
        secret: secret?,
        timeout,
        deadline,
        on_timeout,
    })
    .filter(|_| ok)
}

/// `at`: a non-empty list of distinct known points.
fn points(r: &mut Reader) -> Option<Vec<Point>> {
    let known: Vec<&str> = Point::ALL.iter().map(|p| p.as_str()).collect();
    let Some(value) = r.get("at") else {
        if r.object.is_some_and(|o| !o.contains_key("at")) {
            r.problem(
                "at",
                format!(
                    "is required: the points the hook is asked at, of {}",
                    known.join(", ")
                ),
            );
        }
        return None;
    };
    let Some(items) = value.as_array().filter(|a| !a.is_empty()) else {
        r.problem(
            "at",
            format!(
                "must be a non-empty list of points ({}), not {}",
                known.join(", "),
                describe(value)
            ),
        );
        return None;
    };
    let mut at = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let found = item
            .as_str()
            .and_then(|s| Point::ALL.into_iter().find(|p| p.as_str() == s));
        match found {
            Some(p) if at.contains(&p) => {
                r.problem(
                    &format!("at[{i}]"),
                    format!("{:?} is named twice", p.as_str()),
                );
                ok = false;
            }
            Some(p) => at.push(p),
            None => {
                let hint = item
                    .as_str()
                    .and_then(|s| nearest(s, &known))
                    .map(|n| format!(" (did you mean {n}?)"))
                    .unwrap_or_default();
                r.problem(
                    &format!("at[{i}]"),
                    format!(
                        "{} is not a point{hint}; use {}",
                        describe(item),
                        known.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(at)
}

/// `secret`: exactly one of `env` and `secretsManager`.
fn secret(r: &mut Reader) -> Option<SecretSource> {
    let Some(value) = r.get("secret") else {
        if r.object.is_some_and(|o| !o.contains_key("secret")) {
            r.problem(
                "secret",
                "is required: {env: NAME} or {secretsManager: ARN}, the key the calls are signed with".into(),
            );
        }
        return None;
    };
    let mut s = Reader::new(value, &r.at("secret"));
    let env = s.string("env");
    let arn = s.string("secretsManager");
    s.finish();
    let source = match (env, arn) {
        (Some(name), None) => {
            let ok = name.len() <= MAX_ENV_NAME
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                s.problem(
                    "env",
                    format!("{name:?} is not an environment variable name (letters, digits and _)"),
                );
            }
            Some(SecretSource::Env(name))
        }
        (None, Some(arn)) => {
            if !arn.starts_with("arn:") || arn.split(':').nth(2) != Some("secretsmanager") {
                s.problem(
                    "secretsManager",
                    format!("{arn:?} is not a Secrets Manager ARN like arn:aws:secretsmanager:us-east-1:123456789012:secret:name"),
                );
            }
            Some(SecretSource::SecretsManager(arn))
        }
        (Some(_), Some(_)) => {
            s.problem(
                "",
                "gives both env and secretsManager; give exactly one".into(),
            );
            None
        }
        (None, None) if s.problems.is_empty() => {
            s.problem(
                "",
                "gives neither env nor secretsManager; give exactly one".into(),
            );
            None
        }
        (None, None) => None,
    };
    let ok = s.problems.is_empty();
    for mut p in s.problems.drain(..) {
        p.path = p.path.trim_end_matches('.').to_string();
        r.problems.push(p);
    }
    source.filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<Hook>, Vec<Problem>> {
        let mut problems = Vec::new();
        match parse_hooks(&v, "spec.hooks", &mut problems) {
            Some(h) if problems.is_empty() => Ok(h),
            _ => Err(problems),
        }
    }

    #[test]
    fn a_hook_reads_with_its_defaults() {
        let hooks = parse(json!([{
            "url": "https://smoke.example.com/recycle",
            "at": ["beforeBatch", "afterBatch"],
            "secret": {"env": "SMOKE_HOOK_SECRET"},
        }]))
        .unwrap();
        assert_eq!(hooks[0].at, [Point::BeforeBatch, Point::AfterBatch]);
        assert_eq!(hooks[0].timeout, Duration::from_secs(10));
        assert_eq!(hooks[0].deadline, Duration::from_secs(600));
        assert_eq!(hooks[0].on_timeout, OnTimeout::Fail);
        assert_eq!(
            hooks[0].secret,
            SecretSource::Env("SMOKE_HOOK_SECRET".into())
        );
        assert_eq!(hooks[0].label(), "hook smoke.example.com");
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let problems = parse(json!([{
            "url": "http://smoke.example.com/x",
            "at": ["beforeBach", "afterBatch", "afterBatch"],
            "secret": {"env": "A", "secretsManager": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
            "timeout": "20m",
            "deadline": "10m",
            "onTimeout": "contine",
        }]))
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(Problem::to_string).collect();
        let text = text.join("\n");
        for want in [
            "spec.hooks[0].url: \"smoke.example.com\" is not https",
            "spec.hooks[0].at[0]: \"beforeBach\" is not a point (did you mean beforeBatch?)",
            "spec.hooks[0].at[2]: \"afterBatch\" is named twice",
            "spec.hooks[0].secret: gives both env and secretsManager; give exactly one",
            "spec.hooks[0].timeout: 20m is longer than the deadline 10m",
            "spec.hooks[0].onTimeout: \"contine\" is not allowed (did you mean continue?)",
        ] {
            assert!(text.contains(want), "{want}\nin\n{text}");
        }
    }

    #[test]
    fn loopback_may_be_plain_http_and_a_secret_is_required() {
        let problems =
            parse(json!([{"url": "http://127.0.0.1:9/x", "at": ["afterEnd"]}])).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.hooks[0].secret");
    }
}
