//! Human durations (`250ms`, `30s`, `1h30m`) in the control API, read and
//! written back in the same form. The simulator keeps its own few lines
//! rather than borrow the operator's: it depends on nothing of the product.

use std::time::Duration;

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

/// `#[serde(with = "serde_opt_duration")]` for an `Option<Duration>` written as text.
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
    fn parses_sub_second_and_compound_and_refuses_bare_numbers() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
        assert!(parse("30").unwrap_err().contains("30s"));
    }
}
