//! Human durations (`250ms`, `30s`, `10m`, `1h30m`) for flags, manifests and
//! the simulator's control API, with serde helpers that write them back in
//! the same form; and the time between two instants shown as an age
//! (`3m10s`, `4h2m`, `3d2h`). Every layer may use it: it depends on nothing
//! of the crate.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Parses `250ms`, `30s`, `1m30s`; a bare number is not accepted because its
/// unit would be a guess.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write it like 250ms, 30s, 10m or 1h30m")
    })
}

pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Ages as kubectl prints them: precise when small, coarse when large.
pub(crate) fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 2 * 86_400 => format!("{h}h"),
        s if s < 8 * 86_400 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

/// `#[serde(with = "serde_duration")]` for a `Duration` written as text.
pub mod serde_duration {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The same for `Option<Duration>`.
pub mod serde_opt_duration {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sub_second_and_compound() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
    }

    #[test]
    fn refuses_bare_numbers_with_a_hint() {
        let err = parse("30").unwrap_err();
        assert!(err.contains("30s"), "{err}");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .to_utc();
        let at = |s: i64| age(t0, t0 + chrono::Duration::seconds(s));
        assert_eq!(at(5), "5s");
        assert_eq!(at(190), "3m10s");
        assert_eq!(at(3600), "60m");
        assert_eq!(at(4 * 3600 + 120), "4h2m");
        assert_eq!(at(30 * 3600), "30h");
        assert_eq!(at(3 * 86_400 + 7200), "3d2h");
        assert_eq!(at(-5), "0s");
    }
}
