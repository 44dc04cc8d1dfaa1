//! Reading records written by people and other programs: a walk over one
//! JSON object that remembers which keys it read and collects every
//! problem with its field path, so a manifest, a stored item or a schedule
//! is refused with all its mistakes at once, a "did you mean" for a
//! misspelt key, and nothing lost.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::duration;

/// One thing wrong with a record: where, what was there, and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Every problem found in one record, so a person can fix them in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
pub(crate) struct Invalid(pub Vec<Problem>);

/// Walks one JSON object, remembering which keys it read, and collects problems.
pub(crate) struct Reader<'a> {
    pub(crate) object: Option<&'a serde_json::Map<String, Value>>,
    pub(crate) path: String,
    pub(crate) seen: Vec<&'static str>,
    pub(crate) problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(value: &'a Value, path: &str) -> Self {
        let mut r = Self {
            object: value.as_object(),
            path: path.to_string(),
            seen: Vec::new(),
            problems: Vec::new(),
        };
        if r.object.is_none() {
            r.problems.push(Problem {
                path: path.to_string(),
                reason: format!("must be a mapping of fields, not {}", describe(value)),
            });
        }
        r
    }

    pub(crate) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn problem(&mut self, key: &str, reason: String) {
        let path = self.at(key);
        self.problems.push(Problem { path, reason });
    }

    /// A field written with no value (`wait:` in YAML) is refused rather
    /// than read as "use the default": it is more often a slip than a wish.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        let value = self.object?.get(key)?;
        if value.is_null() {
            self.problem(
                key,
                "has no value; give one, or remove the field to use the default".into(),
            );
            return None;
        }
        Some(value)
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            other => {
                let reason = format!("must be a non-empty string, not {}", describe(other));
                self.problem(key, reason);
                None
            }
        }
    }

    /// ECS cluster and service names: 1–255 letters, digits, `-` and `_`
    /// (an ARN is taken too, and reduced to its name).
    pub(crate) fn required_name(&mut self, key: &'static str) -> Option<String> {
        if self.object.is_some_and(|o| !o.contains_key(key)) {
            self.seen.push(key);
            self.problem(key, "is required".into());
            return None;
        }
        let given = self.string(key)?;
        let name = if given.starts_with("arn:") {
            given.rsplit('/').next().unwrap_or_default().to_string()
        } else {
            given.clone()
        };
        let ok = !name.is_empty()
            && name.len() <= 255
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            self.problem(
                key,
                format!("{given:?} is not an ECS name (1 to 255 letters, digits, - and _)"),
            );
            return None;
        }
        Some(name)
    }

    pub(crate) fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                let reason = format!("must be true or false, not {}", describe(other));
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn count(&mut self, key: &'static str, min: u64, max: u64) -> Option<u32> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n as u32),
            _ => {
                let reason = format!(
                    "{} is not allowed; use a whole number from {min} to {max}",
                    describe(value)
                );
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let value = self.get(key)?;
        match value.as_str().map(duration::parse) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                self.problem(key, e);
                None
            }
            None => {
                let reason = format!(
                    "{} is not a duration; write it like 30s, 10m or 1h30m",
                    describe(value)
                );
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn timestamp(&mut self, key: &'static str) -> Option<DateTime<Utc>> {
        let value = self.get(key)?;
        match value.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => Some(t.with_timezone(&Utc)),
            _ => {
                let reason = format!(
                    "{} is not a timestamp; write it in RFC 3339, like 2026-11-23T18:00:00Z",
                    describe(value)
                );
                self.problem(key, reason);
                None
            }
        }
    }

    pub(crate) fn object(&mut self, key: &'static str) -> Option<&'a Value> {
        self.get(key)
    }

    /// Refuses keys nobody read: a typo must not silently change behaviour.
    pub(crate) fn finish(&mut self) {
        let Some(object) = self.object else {
            return;
        };
        for key in object.keys() {
            if !self.seen.contains(&key.as_str()) {
                let mut known: Vec<&str> = self.seen.clone();
                known.sort_unstable();
                let reason = unknown_field(key, &known);
                self.problem(key, reason);
            }
        }
    }
}

/// "is not a known field", with the nearest known name when the key looks
/// like a typo of it, then every known name.
pub(crate) fn unknown_field(key: &str, known: &[&str]) -> String {
    match nearest(key, known) {
        Some(k) => format!(
            "is not a known field; did you mean {k}? Known fields are {}",
            known.join(", ")
        ),
        None => format!(
            "is not a known field; known fields are {}",
            known.join(", ")
        ),
    }
}

/// The known word `word` looks like a slip of, for "did you mean": the
/// nearest by Levenshtein distance, case aside, when it is at most two edits
/// away (a quarter of the word for long words).
pub(crate) fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&word, &k.to_lowercase()), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .map(|(_, k)| k)
}

/// A value as a person would name it in an error message.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Record names: as Kubernetes names them, so they are safe in keys and URLs.
pub fn is_record_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// A webhook (a notification's or a hook's) must be https: a report crosses networks and its URL often
/// carries a token. Plain http is taken only on the loopback interface.
pub(crate) fn check_webhook_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("{text:?} is not a URL ({e}); write it like https://hooks.example.com/recycler")
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{:?} is not https; plain http is allowed only to the loopback address (127.0.0.1, ::1, localhost)",
            url.host_str().unwrap_or_default()
        )),
        scheme => Err(format!(
            "the scheme {scheme:?} is not allowed; use an https:// URL"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_gets_a_suggestion_and_a_far_one_none() {
        let known = ["RecycleRequest", "RecycleSchedule"];
        assert_eq!(nearest("RecycleRequests", &known), Some("RecycleRequest"));
        assert_eq!(nearest("recycleschedule", &known), Some("RecycleSchedule"));
        assert_eq!(nearest("RecyleRequest", &known), Some("RecycleRequest"));
        assert_eq!(nearest("Widget", &known), None);
        assert_eq!(nearest("wiat", &["wait", "batchSize"]), Some("wait"));
    }
}
